"""Which SAE latents each source selects, and whether the sources agree (issue 14 §2).

Seed 001 found that "the feature selection itself is distribution-specific". A transfer study
has several labelled sources, so this is measured directly, per model with an SAE, SAE layer and
SAE statistic:

1. **Per-source sets**: each two-class train/control source's top-n latents by
   ``|auroc - 0.5|`` on its fit part alone (:func:`~afscope.study.transfer.top_by_effect` of
   :func:`~afscope.study.transfer.source_effects`, the effect the invariant selections rank by).
2. **Invariant sets**, from all train sources and of the same n: the pooled top-n (the SAE
   probe's ranking, ``select_by``, of the stacked fit parts, on the raw latents: for ``auroc``
   the same as the probe's, whose normalizations are monotone), the worst-source ranking and the
   intersection (:func:`~afscope.study.transfer.invariant_select`, here without its fallback:
   an empty intersection stays empty). The probes of the matrix use ``invariant_features``
   latents; these sets use n so that every set has the same size.
3. **Comparison**: Jaccard overlap of every pair of sets; how many of each source's top-n are
   selective (same sign, ``|auroc - 0.5| >= threshold``) in every other train source (a control
   source is compared with the train sources, never required of them);
   every compared latent's AUROC in every source (fit parts; two-class eval sources on their
   whole set, shown only and never selected on).
4. **Per-source autointerp**: each latent's "fires on" tokens on each train/control source's
   fit records (:func:`afscope.features.tokens.fires_on`, offline and deterministic); with
   ``transfer.feature_sets_llm``, an LLM differential description
   (:func:`afscope.features.describe.describe_features`) on the texts of each source that
   selected it (every train source for the invariant sets).

``feature_sets.json``::

    kind "afscope_feature_sets", format_version 1, created, n, threshold, select_by
    sources[]   {name, role, selects (has a per-source set), train}
    entries[]   {model, layer, stat, d_sae, n_train_sources,
                 source_sets {source: [latent]},
                 invariant_sets {pooled|worst|intersection: [latent]},
                 jaccard {sets [label], matrix [[float|null]]},
                 mean_jaccard (per-source pairs; null with one source),
                 selective_elsewhere {source: {n_top, n_selective, latents}} (in every other
                                     train source),
                 selective_everywhere [latent] (in every train source), verdict,
                 latents[] {latent, sign (+1: fires more on AF over the train sources), sources
                            [source whose set has it], invariant [set], auroc {source: float|null},
                            selective_in [source], fires_on {source: {text, tokens, coverage,
                            n_active}|null}, description {source: str|null} (LLM, optional)}}
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from afscope.extract.store import TokenTopK
from afscope.features.tokens import LatentTokens, TokenNames, fires_on
from afscope.fileio import atomic_write_json
from afscope.probe.select import feature_auroc, rank_features
from afscope.study.transfer import (
    TransferData,
    _slug,
    _stack,
    invariant_select,
    source_effects,
    top_by_effect,
)

log = logging.getLogger(__name__)

FEATURE_SETS_FILE = "feature_sets.json"
KIND = "afscope_feature_sets"
FORMAT_VERSION = 1
SELECTIVE = 0.1
"""A latent is selective in a source when ``|auroc - 0.5| >= 0.1`` there (AUROC outside
[0.4, 0.6])."""
INVARIANT = ("pooled", "worst", "intersection")


def jaccard(a: Sequence[int], b: Sequence[int]) -> float | None:
    """``|a & b| / |a | b|``; None when both are empty."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else None


def compare_sets(X: dict[str, Any], y: dict[str, np.ndarray], sources: Sequence[str],
                 train: Sequence[str], n: int, *, threshold: float = SELECTIVE,
                 select_by: str = "auroc", eval_sources: Sequence[str] = ()) -> dict[str, Any]:
    """The per-source and invariant selections of ``X`` and how they compare.

    ``X`` / ``y``: feature matrices ``(n_records, d)`` and labels keyed ``"<source>.fit"`` for
    ``sources`` (each two-class; ``train`` is the subset the invariant sets pool) and
    ``"<source>.test"`` for ``eval_sources`` (AUROC columns only). Returns the fields of one
    ``entries[]`` item of ``feature_sets.json`` except the model/layer/stat, fires-on and LLM
    fields.
    """
    eff = source_effects(X, y, sources)  # (n_sources, d)
    d = eff.shape[1]
    n = min(n, d)
    row = {s: i for i, s in enumerate(sources)}
    source_sets = {s: np.sort(top_by_effect(eff[row[s]], n)).tolist() for s in sources}
    eff_train = eff[[row[s] for s in train]]
    Xp = _stack([X[f"{s}.fit"] for s in train])
    yp = np.concatenate([y[f"{s}.fit"] for s in train])
    invariant = {
        "pooled": np.sort(rank_features(Xp, yp, select_by)[:n]).tolist(),
        "worst": invariant_select(eff_train, n, "worst").tolist(),
        "intersection": invariant_select(eff_train, n, "intersection", fallback=False).tolist(),
    }
    labels = [*sources, *INVARIANT]
    members = [*source_sets.values(), *invariant.values()]
    matrix = [[jaccard(a, b) for b in members] for a in members]
    pairs = [jaccard(source_sets[a], source_sets[b]) for a, b in itertools.combinations(sources, 2)]
    pairs = [p for p in pairs if p is not None]
    mean_j = float(np.mean(pairs)) if pairs else None

    union = sorted(set().union(*members))
    # a latent's direction is that of its mean effect over the train sources, as in
    # invariant_select; "everywhere" and "elsewhere" mean the train sources (a control such as
    # minimal pairs is shown, but would veto every latent that reads vocabulary)
    sign = np.sign(eff_train.mean(axis=0))
    selective = (np.abs(eff) >= threshold) & (np.sign(eff) == sign)  # (n_sources, d)
    in_train = [row[s] for s in train]
    everywhere = [f for f in union if sign[f] != 0 and selective[in_train, f].all()]
    elsewhere = {}
    for s in sources:
        others = [row[o] for o in train if o != s]
        sgn = np.sign(eff[row[s]])
        keep = [f for f in source_sets[s] if sgn[f] != 0 and all(
            abs(eff[o, f]) >= threshold and np.sign(eff[o, f]) == sgn[f] for o in others)]
        elsewhere[s] = {"n_top": len(source_sets[s]), "n_selective": len(keep), "latents": keep}

    ev_auroc = {}
    for e in eval_sources:
        ye = y[f"{e}.test"]
        if len(np.unique(ye)) == 2:
            ev_auroc[e] = feature_auroc(X[f"{e}.test"], ye)
    latents = []
    for f in union:
        auroc: dict[str, float | None] = {s: float(eff[row[s], f] + 0.5) for s in sources}
        auroc.update({e: float(ev_auroc[e][f]) if e in ev_auroc else None for e in eval_sources})
        latents.append({
            "latent": int(f), "sign": int(sign[f]),
            "sources": [s for s in sources if f in source_sets[s]],
            "invariant": [k for k in INVARIANT if f in invariant[k]],
            "auroc": auroc,
            "selective_in": [s for s in sources if selective[row[s], f]]})
    # most widely selected first, then by the worst train source
    worst = (eff_train * sign).min(axis=0)
    latents.sort(key=lambda r: (-len(r["sources"]) - len(r["invariant"]), -worst[r["latent"]],
                                r["latent"]))
    out = {"n_train_sources": len(train), "source_sets": source_sets,
           "invariant_sets": invariant,
           "jaccard": {"sets": labels, "matrix": matrix}, "mean_jaccard": mean_j,
           "selective_elsewhere": elsewhere, "selective_everywhere": everywhere,
           "latents": latents}
    out["verdict"] = verdict(out, n, threshold)
    return out


def verdict(entry: dict[str, Any], n: int, threshold: float) -> str:
    """One plain sentence: how much the per-source selections overlap, and how many latents are
    selective in every train source."""
    sources = list(entry["source_sets"])
    union = len(entry["latents"])
    inter = len(entry["invariant_sets"]["intersection"])
    head = (f"The per-source top-{n} selections of {len(sources)} sources overlap by "
            f"{entry['mean_jaccard']:.2f} on average (Jaccard)"
            if entry["mean_jaccard"] is not None else
            f"One source selects alone (top-{n}): nothing to compare")
    return (f"{head}; {len(entry['selective_everywhere'])} of the {union} compared latents are "
            f"selective (|AUROC - 0.5| >= {threshold:g}, one sign) in every one of the "
            f"{entry['n_train_sources']} train sources, and the intersection selection keeps "
            f"{inter} of {n}.")


def source_profiles(topk: dict[str, TokenTopK | None], d_sae: int, names: TokenNames
                    ) -> dict[str, dict[int, LatentTokens]]:
    """Each source's :func:`fires_on` profiles over all rows of its per-token top-k store (empty
    without a store): computed once per layer, read by every statistic's entry."""
    return {s: fires_on(tt, np.unique(tt.row), d_sae, names) if tt is not None else {}
            for s, tt in topk.items()}


def token_descriptions(profiles: dict[str, dict[int, LatentTokens]], latents: Sequence[int]
                       ) -> dict[int, dict[str, dict[str, Any] | None]]:
    """``{latent: {source: {text "Fires on: a, b", tokens, coverage, n_active} | None}}`` from
    each source's profiles (:func:`source_profiles`); None where the latent's strongest
    activations are spread over many tokens or too rare (:func:`fires_on`), or the source has
    no store."""
    out: dict[int, dict[str, dict[str, Any] | None]] = {int(f): {} for f in latents}
    for s, prof in profiles.items():
        for f in out:
            p = prof.get(f)
            out[f][s] = None if p is None else {
                "text": "Fires on: " + ", ".join(p.fires_on), "tokens": list(p.fires_on),
                "coverage": p.coverage, "n_active": p.n_active}
    return out


def llm_descriptions(X: dict[str, Any], data: TransferData, which: dict[str, list[int]],
                     topk: dict[str, TokenTopK | None], backend: Any, out: Path, *, seed: int
                     ) -> dict[int, dict[str, str | None]]:
    """``{latent: {source: description | None}}``: :func:`describe_features` of ``which[s]`` on
    the fit part of each source ``s``, stored (resumably) in
    ``out/<source>/descriptions.jsonl``. None = the reply did not parse."""
    from afscope.features.config import DescribeParams
    from afscope.features.describe import describe_features, describe_store
    from afscope.features.samples import TokenPeaks

    params = DescribeParams()
    res: dict[int, dict[str, str | None]] = {}
    for s, feats in which.items():
        if not feats:
            continue
        recs = data.fit[s].records
        store = describe_store(out / _slug(s), params, seed)
        tt = topk.get(s)
        describe_features(X[f"{s}.fit"], np.array([r.label for r in recs]),
                          [r.text for r in recs], [r.id for r in recs],
                          [r.category for r in recs], feats, backend, store, params, seed=seed,
                          peaks=TokenPeaks(tt, feats) if tt is not None else None)
        for f in feats:
            row = store.get(int(f))
            res.setdefault(int(f), {})[s] = row.get("description") if row else None
    return res


def describer(llm: Any) -> Any:
    """The LLM backend of ``transfer.feature_sets_llm`` (True: the local default), recording a
    failed item instead of raising."""
    from afscope.llm import LLMConfig, make_backend

    base = llm if isinstance(llm, LLMConfig) else LLMConfig()
    return make_backend(base.model_copy(update={"on_error": "record"}))


def model_feature_sets(cfg: Any, data: TransferData, spec: Any, caches: dict[str, Any],
                       tokenizer: Any, out: Path, backend: Any = None) -> list[dict[str, Any]]:
    """The ``entries[]`` of one model (``spec``, with an SAE): every SAE layer of ``caches``
    (``{"<source>.fit"|"<source>.test": ActivationCache}``) x ``spec.sae.stats``. ``backend``
    (an :class:`~afscope.llm.LLMBackend`) adds the LLM descriptions, stored under
    ``out/feature_sets/<model>/L<layer>.<stat>/``."""
    n = cfg.transfer.feature_sets
    if backend is None and cfg.transfer.feature_sets_llm is not False:
        backend = describer(cfg.transfer.feature_sets_llm)
    sources = [s for s, sd in data.specs.items() if sd.role in ("train", "control")]
    train = data.train_sources
    evals = [s for s, sd in data.specs.items() if sd.role == "eval"]
    y = {f"{s}.fit": np.array([r.label for r in data.fit[s].records], np.int64) for s in sources}
    y.update({f"{e}.test": np.array([r.label for r in data.test[e].records], np.int64)
              for e in evals})
    select_by = cfg.sae_probes[0].select_by if cfg.sae_probes else "auroc"
    names = TokenNames(tokenizer)
    first = caches[next(iter(caches))]
    entries = []
    for layer in first.sae_layers:
        d_sae = first.sae_width(layer)
        topk = {s: caches[f"{s}.fit"].token_topk(layer) for s in sources}
        profiles = source_profiles(topk, d_sae, names)
        for stat in spec.sae.stats:
            X = {k: caches[k].sae_features(layer, stat) for k in y}
            entry: dict[str, Any] = {"model": spec.name, "layer": layer, "stat": stat,
                                     "d_sae": d_sae}
            entry.update(compare_sets(X, y, sources, train, n, select_by=select_by,
                                      eval_sources=evals))
            lat = [r["latent"] for r in entry["latents"]]
            tokens = token_descriptions(profiles, lat)
            for r in entry["latents"]:
                r["fires_on"] = tokens[r["latent"]]
            if backend is not None:
                inv = set().union(*entry["invariant_sets"].values())
                which = {s: sorted(set(entry["source_sets"][s]) | (inv if s in train else set()))
                         for s in sources}
                folder = out / "feature_sets" / _slug(spec.name) / f"L{layer}.{stat}"
                desc = llm_descriptions(X, data, which, topk, backend, folder, seed=cfg.seed)
                for r in entry["latents"]:
                    r["description"] = desc.get(r["latent"], {})
            log.info("%s L%d sae.%s: %s", spec.name, layer, stat, entry["verdict"])
            entries.append(entry)
    return entries


def write_feature_sets(out: Path, cfg: Any, data: TransferData, entries: list[dict[str, Any]]
                       ) -> Path:
    """``out/feature_sets.json`` (layout in the module docstring), written atomically."""
    doc = {"kind": KIND, "format_version": FORMAT_VERSION,
           "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "n": cfg.transfer.feature_sets, "threshold": SELECTIVE,
           "select_by": cfg.sae_probes[0].select_by if cfg.sae_probes else "auroc",
           "sources": [{"name": s, "role": sd.role, "selects": sd.role in ("train", "control"),
                        "train": sd.role == "train"} for s, sd in data.specs.items()],
           "entries": entries}
    return atomic_write_json(Path(out) / FEATURE_SETS_FILE, doc)
