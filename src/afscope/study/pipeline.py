"""``afscope study CONFIG``: the detection study of seed 001 as one rerunnable command.

data (split + leakage-checked OOD sets) -> text baselines -> per model: SAEs trained on the train
split's tokens, one cache per dataset (residual pools + SAE latents) -> probes on every layer x
pooling and SAE statistic, CV AUROC, feature-count sweeps -> optional autointerp, whose selected
features feed one more probe -> ``results.json`` + ``scores.jsonl`` -> the HTML report.

Every estimator is fitted on the train split only and evaluated on the same held-out and OOD rows
as every other method, so the ladder compares like with like.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import numpy as np

from afscope.extract import ActivationCache, ExtractConfig, extract
from afscope.models import LoadedModel, load_model, resolve_layers
from afscope.probe import (
    ProbeConfig,
    cross_validate,
    evaluate_scores,
    fit_probe,
    save_probe,
    sweep,
)
from afscope.probe.text import fit_baseline
from afscope.runs import Run, start_run
from afscope.sae import SAETrainConfig, run_sae_train, sae_encoder
from afscope.study.config import ModelSpec, StudyConfig
from afscope.study.datasets import StudyData, prepare_data
from afscope.study.results import ResultsBuilder

log = logging.getLogger(__name__)


def probe_label(cfg: ProbeConfig) -> str:
    """Short readable name of a probe config, e.g. ``logistic_l1 C=0.1 log1p``."""
    parts = [cfg.method]
    if cfg.method != "diffmean" and cfg.C != 1.0:
        parts.append(f"C={cfg.C:g}")
    if cfg.normalize != "none":
        parts.append(cfg.normalize)
    if cfg.n_features:
        parts.append(f"top{cfg.n_features}")
    return " ".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


class _Study:
    """State shared by the steps of one run (datasets, labels, the results being built)."""

    def __init__(self, cfg: StudyConfig, out: Path, data: StudyData, run: Run) -> None:
        self.cfg, self.out, self.data, self.run = cfg, out, data, run
        self.results = ResultsBuilder(cfg.title)
        self.results.datasets = data.info()
        self.labels = {n: np.array([r.label for r in d.records], dtype=np.int64)
                       for n, d in data.datasets.items()}
        self.categories = {n: [r.category for r in d.records] for n, d in data.datasets.items()}
        self.texts = {n: [r.text for r in d.records] for n, d in data.datasets.items()}
        self.tokenizers: dict[str, Any] = {}
        if data.dropped.get("train"):
            self.results.verdicts.append(
                f"{data.dropped['train']} records of {cfg.train.data} were removed before the "
                f"split as near-duplicates of OOD records (word-shingle Jaccard >= "
                f"{cfg.leakage_threshold}), so the OOD sets measure generalization.")

    def evaluate(self, method: str, score: Any, threshold: float) -> None:
        """Score every evaluation set with ``score(name) -> (n,) probabilities`` and record it."""
        for name in self.data.eval_names():
            s = np.asarray(score(name), dtype=np.float64)
            ev = evaluate_scores(self.labels[name], s, self.categories[name], threshold=threshold,
                                 n_boot=self.cfg.n_boot, seed=self.cfg.seed)
            self.results.add_evaluation(method, name, self.data.roles[name], ev, s,
                                        self.labels[name], self.categories[name])

    def probe(self, method_id: str, family: str, features: str, X: dict[str, Any],
              pcfg: ProbeConfig, space: dict[str, Any], *, model: str, layer: int) -> None:
        """Fit ``pcfg`` on ``X["train"]``, CV it, save it, evaluate it on every other set."""
        y = self.labels["train"]
        pcfg = pcfg.model_copy(update={"seed": self.cfg.seed})
        probe = fit_probe(X["train"], y, pcfg, feature_space=space)
        cv = cross_validate(X["train"], y, pcfg, folds=self.cfg.cv_folds, seed=self.cfg.seed)
        folder = save_probe(probe, self.out / "probes" / _slug(method_id))
        self.results.add_method(
            method_id, family, features, pcfg.method, model=model, layer=layer,
            params=pcfg.to_dict(), n_features=int(probe.selected.size),
            n_nonzero=probe.n_nonzero,
            cv={"auroc_mean": cv["auroc_mean"], "auroc_std": cv["auroc_std"]},
            artifact=str(folder.relative_to(self.out)))
        self.evaluate(method_id, lambda n: probe.proba1(X[n]), probe.threshold)


def _baselines(st: _Study) -> None:
    for spec in st.cfg.baseline_specs():
        name = spec.id
        with st.run.timer(f"baseline_{name}"):
            est = fit_baseline(spec.name, st.texts["train"], st.labels["train"],
                               seed=st.cfg.seed, **spec.params)
            folder = est.save(st.out / "probes" / f"baseline-{_slug(name)}")
            st.results.add_method(f"baseline/{name}", "baseline", name, spec.name,
                                  params=est.get_params(), artifact=str(folder.relative_to(st.out)))
            st.evaluate(f"baseline/{name}", lambda n: est.scores(st.texts[n]), 0.5)


def sae_layers(spec: ModelSpec, layers: list[int], n_layers: int) -> list[int]:
    """The resolved layers of ``layers`` that get an SAE (``spec.sae.layers``, default all)."""
    if spec.sae is None:
        return []
    if spec.sae.layers is None:
        return list(layers)
    wanted = resolve_layers(spec.sae.layers, n_layers)
    missing = [la for la in wanted if la not in layers]
    if missing:
        from afscope.errors import ConfigError

        raise ConfigError(f"model {spec.name!r}: field 'sae.layers' resolves to {wanted}, but "
                          f"{missing} are not among the probed layers {layers}")
    return wanted


def train_saes(cfg: StudyConfig, out: Path, run: Run, sae_log: list[dict[str, Any]],
               spec: ModelSpec, lm: LoadedModel, layers: list[int], dataset: Any) -> list[Any]:
    """Train one TopK SAE per layer of ``layers`` on ``dataset``'s tokens (metrics appended to
    ``sae_log``); returns their encoders."""
    assert spec.sae is not None
    encoders = []
    run_dirs = {layer: out / "sae" / _slug(spec.name) / f"L{layer}" for layer in layers}
    for i, layer in enumerate(layers):
        run_dir = run_dirs[layer]
        tcfg = SAETrainConfig(
            model=spec.name, layer=layer, out=run_dir, d_sae=spec.sae.d_sae, k=spec.sae.k,
            max_tokens=spec.sae.max_tokens, epochs=spec.sae.epochs,
            batch_size=spec.sae.batch_size, lr=spec.sae.lr, mask=cfg.extract.mask,
            skip_first=cfg.extract.skip_first, max_length=cfg.extract.max_length,
            batch_tokens=cfg.extract.batch_tokens, dtype=cfg.extract.dtype,
            device=cfg.extract.device, seed=cfg.seed)
        with run.timer(f"sae_{spec.name}_L{layer}"):
            # the first run's forward passes also write the later layers' token blocks
            folder, m = run_sae_train(tcfg, lm=lm, dataset=dataset,
                                      prefetch=[(x, run_dirs[x]) for x in layers[i + 1:]])
        sae_log.append({
            "model": spec.name, "layer": layer, "d_sae": spec.sae.d_sae, "k": spec.sae.k,
            "explained_variance": m["heldout_explained_variance"],  # held-out texts' tokens
            "mean_l0": m["heldout_mean_l0"], "dead_fraction": m["heldout_dead_fraction"],
            "tokens_per_s": m["tokens_per_s"],
            "path": str(folder.relative_to(out))})
        encoders.append(sae_encoder(folder, device=cfg.extract.device))
    return encoders


def _caches(st: _Study, spec: ModelSpec, lm: LoadedModel, layers: list[int],
            encoders: list[Any]) -> dict[str, ActivationCache]:
    ex = st.cfg.extract
    caches = {}
    for name, ds in st.data.datasets.items():
        ecfg = ExtractConfig(
            model=spec.name, data=st.data.files[name],
            out=st.out / "cache" / _slug(spec.name) / name, layers=list(layers),
            pool=list(spec.pools), mask=ex.mask, skip_first=ex.skip_first,
            max_length=ex.max_length, batch_tokens=ex.batch_tokens, dtype=ex.dtype,
            device=ex.device, token_topk=spec.sae.token_topk if spec.sae else 0,
            seed=st.cfg.seed)
        with st.run.timer(f"extract_{spec.name}_{name}"):
            cache = extract(ecfg, lm=lm, dataset=ds, encoders=encoders)
        assert cache is not None  # unsharded runs always complete
        caches[name] = cache
    return caches


def _model(st: _Study, spec: ModelSpec) -> dict[str, ActivationCache]:
    ex = st.cfg.extract
    with st.run.timer(f"load_{spec.name}"):
        lm = load_model(spec.name, dtype=ex.dtype, device=ex.device)
    st.run.add_model(spec.name, lm.info.to_dict())
    st.tokenizers[spec.name] = lm.tokenizer
    layers = resolve_layers(spec.layers, lm.info.n_layers)
    encoders = train_saes(st.cfg, st.out, st.run, st.results.sae, spec, lm,
                          sae_layers(spec, layers, lm.info.n_layers),
                          st.data.datasets["train"]) if spec.sae else []
    caches = _caches(st, spec, lm, layers, encoders)
    for layer in layers:
        for pool in spec.pools:
            X = {n: c.get(layer, pool) for n, c in caches.items()}
            space = caches["train"].feature_space(layer, f"resid.{pool}")
            for pcfg in st.cfg.probes:
                st.probe(f"{spec.name}/L{layer}/resid.{pool}/{probe_label(pcfg)}", "activation",
                         f"resid.{pool}", X, pcfg, space, model=spec.name, layer=layer)
        if not spec.sae or layer not in caches["train"].sae_layers:
            continue
        for stat in spec.sae.stats:
            X = {n: c.sae_features(layer, stat) for n, c in caches.items()}
            space = caches["train"].feature_space(layer, f"sae.{stat}")
            ids = []
            for pcfg in st.cfg.sae_probes:
                ids.append(f"{spec.name}/L{layer}/sae.{stat}/{probe_label(pcfg)}")
                st.probe(ids[-1], "sae", f"sae.{stat}", X, pcfg, space, model=spec.name,
                         layer=layer)
            if st.cfg.sweep is not None and ids:
                sw, pcfg = st.cfg.sweep, st.cfg.sae_probes[0]
                counts = [n for n in sw.n_features if n < X["train"].shape[1]] + [None]
                with st.run.timer(f"sweep_{spec.name}_L{layer}_{stat}"):
                    points = sweep(X["train"], st.labels["train"], pcfg, n_features=counts,
                                   Cs=sw.Cs, folds=sw.folds, seed=st.cfg.seed,
                                   X_test=X["test"], y_test=st.labels["test"])
                st.results.sweeps.append({"method": ids[0], "param": "n_features",
                                          "points": points})
    del lm
    gc.collect()
    return caches


def _autointerp(st: _Study, caches: dict[str, dict[str, ActivationCache]]) -> None:
    from afscope.features import run_autointerp
    from afscope.features.pipeline import selected_ids
    from afscope.features.tokens import TokenNames
    from afscope.llm import make_backend

    cfg = st.cfg.autointerp
    assert cfg is not None
    targets = [(s.name, layer) for s in st.cfg.models if s.sae
               for layer in caches[s.name]["train"].sae_layers]
    if not targets:
        log.warning("autointerp: no model has an SAE; skipped")
        return
    model, layer = targets[0]
    if st.cfg.autointerp_target:
        wanted = [t for t in targets if f"{t[0]}/L{t[1]}" == st.cfg.autointerp_target]
        if not wanted:
            from afscope.errors import ConfigError

            raise ConfigError(f"field 'autointerp_target': {st.cfg.autointerp_target!r} is not "
                              f"one of {[f'{m}/L{la}' for m, la in targets]}")
        model, layer = wanted[0]
    cache = caches[model]["train"]
    X = cache.sae_features(layer, "max")
    tok = st.tokenizers[model]
    backend = make_backend(cfg.llm_config())
    stats: dict[str, Any] = {}
    with st.run.timer("autointerp"):
        rows = run_autointerp(
            X, st.labels["train"], st.texts["train"],
            [r.id for r in st.data.datasets["train"].records], st.categories["train"], backend,
            st.out / "features" / _slug(model) / f"L{layer}", cfg,
            token_topk=cache.token_topk(layer), model=model, layer=layer,
            decode=lambda i: tok.convert_tokens_to_string([tok.convert_ids_to_tokens(int(i))]),
            stats=stats, names=TokenNames(tok))
    st.run.add_output("autointerp", stats)
    st.results.features = rows
    described = sum(r["description"] is not None for r in rows)
    if rows and described < len(rows):
        st.results.verdicts.append(
            f"Autointerp: {described} of {len(rows)} feature descriptions by {backend.describe()} "
            f"could be parsed; the rest are counted as parse failures, not guessed.")
    llm = st.cfg.autointerp.llm if st.cfg.autointerp is not None else None
    if rows and (llm is None or llm.backend == "transformers"):
        st.results.verdicts.append(
            "Autointerp ran on a local model: its answers are constrained to the format (they "
            "parse), but a model this small describes and labels features weakly; point "
            "autointerp.llm at a stronger backend (vLLM, Anthropic) before trusting them.")
    selected = selected_ids(st.out / "features" / _slug(model) / f"L{layer}")
    if selected:
        Xs = {n: c.sae_features(layer, "max")[:, selected] for n, c in caches[model].items()}
        space = {**cache.feature_space(layer, "sae.max"), "selected": selected}
        pcfg = ProbeConfig(method="logistic_l1", C=0.1, normalize="log1p")
        st.probe(f"{model}/L{layer}/sae.max[autointerp {len(selected)}]/{probe_label(pcfg)}",
                 "sae", "sae.max (autointerp-selected)", Xs, pcfg, space, model=model,
                 layer=layer)


def run_study(cfg: StudyConfig) -> Path:
    """Run the whole study into ``cfg.out``; returns the run directory."""
    if cfg.sources:
        from afscope.study.transfer import run_transfer

        return run_transfer(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)  # a failure keeps the caches: a rerun resumes them
    with start_run("study", cfg.to_dict(), out) as run:
        with run.timer("data"):
            data = prepare_data(cfg, out)
        for name, ds in data.datasets.items():
            run.add_dataset(name, ds.info())
        st = _Study(cfg, out, data, run)
        _baselines(st)
        caches = {spec.name: _model(st, spec) for spec in cfg.models}
        if cfg.autointerp is not None:
            _autointerp(st, caches)
        st.results.write(out)
        if cfg.report:
            from afscope.report import write_report

            with run.timer("report"):
                path = write_report(out)
            run.add_output("report", str(path))
        for name in data.eval_names():
            run.add_output(f"ladder_{name}", [
                {"method": m, "auroc": ci["value"] if ci else None}
                for m, ci in st.results.ladder(name)])
    return out
