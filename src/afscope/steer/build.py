"""Build steering vectors: difference of means (seed 003), a refusal direction, matched-norm
random directions, a probe's direction, an SAE latent.

* :func:`diffmean_vector` runs the model over two record sets with the activation cache's forward
  loop (:func:`afscope.extract.runner.iter_batches`: length-bucketed batches, ``inference_mode``,
  early stop after the deepest layer, the same token masks) and returns ``mean(A) - mean(B)`` per
  layer. Only running sums leave a batch, so memory does not grow with the dataset.
* :func:`refusal_vector` is the refusal direction of Arditi et al. (2024): the same difference of
  means, harmful minus harmless requests, at the last token of the chat-rendered prompt (where the
  model decides how to answer).
* :func:`random_vector` draws seeded Gaussian directions with another vector's norm at each of its
  layers: the control every steering effect is measured against.
* :func:`probe_vector` undoes a residual probe's standardization: the probe scores
  ``sum_j coef_j (x_j - mean_j) / scale_j``, so its direction in raw residual space is
  ``coef / scale`` on the selected features (0 elsewhere), unit-normalized.
* :func:`sae_vector` takes row ``W_dec[feature]`` of an SAE: what that latent writes back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.data import Dataset, LeakageGuard, load_dataset
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.extract import pool
from afscope.extract.runner import iter_batches
from afscope.fileio import sha256_file
from afscope.models import LoadedModel, MaskSpec, load_model, resolve_layers
from afscope.runs import start_run
from afscope.steer.config import (
    DiffMeanConfig,
    ProbeVectorConfig,
    RandomVectorConfig,
    RefusalVectorConfig,
    SAEVectorConfig,
)
from afscope.steer.vectors import VECTOR_FILE, SteeringVector, load_vector

log = logging.getLogger(__name__)


@torch.inference_mode()
def mean_activations(lm: LoadedModel, dataset: Dataset, layers: list[int], *,
                     mask: str = "response", skip_first: int = 1, weighting: str = "sample",
                     max_length: int = 1024, batch_tokens: int = 2048) -> dict[int, torch.Tensor]:
    """Mean residual activation ``{layer: (d_model,) float64}`` of ``dataset`` over ``mask``.

    ``weighting="sample"`` averages each record's token mean (every record counts once);
    ``"token"`` averages all masked tokens together (seed 003's ``acts.mean(dim=0)``).
    """
    if weighting not in ("sample", "token"):
        raise ConfigError(f"field 'weighting': expected sample or token, got {weighting!r}")
    if len(dataset) == 0:
        raise DataError(f"dataset {dataset.name}: no records to average")
    spec = MaskSpec.parse(mask)
    d = lm.info.d_model
    sums = {layer: torch.zeros(d, dtype=torch.float64) for layer in layers}
    count = 0
    for b in iter_batches(lm, dataset.records, layers, spec, max_length=max_length,
                          batch_tokens=batch_tokens, skip_first=skip_first):
        for layer in layers:
            h = b.acts[layer]  # (B, T, D)
            if weighting == "sample":
                rows = pool(h, b.mask, ["mean"])["mean"]  # (B, D) float32
                sums[layer] += rows.double().sum(dim=0).cpu()
            else:
                sums[layer] += h[b.mask].double().sum(dim=0).cpu()  # (N_masked, D) -> (D,)
        count += len(b.rows) if weighting == "sample" else int(b.mask.sum())
    means = {layer: s / count for layer, s in sums.items()}
    for layer, m in means.items():
        if not torch.isfinite(m).all():
            raise ArtifactError(f"non-finite activations at layer {layer} for dataset "
                                f"{dataset.name} (dtype {lm.info.dtype}; try float32)")
    return means


@torch.inference_mode()
def last_token_norms(lm: LoadedModel, dataset: Dataset, layers: list[int], *,
                     max_length: int = 1024, batch_tokens: int = 4096) -> dict[int, float]:
    """Mean L2 norm of the residual stream at each record's last token, per layer: the scale a
    steering push is measured against (an added norm of 1x this is as large as the stream)."""
    if len(dataset) == 0:
        raise DataError(f"dataset {dataset.name}: no records")
    sums = dict.fromkeys(layers, 0.0)
    for b in iter_batches(lm, dataset.records, layers, MaskSpec.parse("last"),
                          max_length=max_length, batch_tokens=batch_tokens):
        for layer in layers:
            sums[layer] += float(b.acts[layer][b.mask].float().norm(dim=-1).sum())
    return {layer: s / len(dataset) for layer, s in sums.items()}


def diffmean_vector(lm: LoadedModel, set_a: Dataset, set_b: Dataset, layers: list[int], *,
                    created_from: dict[str, Any] | None = None, **kwargs: Any) -> SteeringVector:
    """``mean(A) - mean(B)`` at each of ``layers`` (resolved indices); ``kwargs`` go to
    :func:`mean_activations` (mask, skip_first, weighting, max_length, batch_tokens)."""
    mean_a = mean_activations(lm, set_a, layers, **kwargs)
    mean_b = mean_activations(lm, set_b, layers, **kwargs)
    vectors = {layer: (mean_a[layer] - mean_b[layer]).float() for layer in layers}
    prov = {"set_a": {"name": set_a.name, "n": len(set_a), "content_hash": set_a.content_hash},
            "set_b": {"name": set_b.name, "n": len(set_b), "content_hash": set_b.content_hash},
            **{k: v for k, v in kwargs.items()}, **(created_from or {})}
    return SteeringVector(vectors=vectors, model=lm.info.name,
                          model_fingerprint=lm.info.fingerprint, source="diffmean",
                          created_from=prov)


def _subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=n, replace=False))
    return ds.subset(idx)


def _diffmean_sets(cfg: DiffMeanConfig) -> tuple[Dataset, Dataset]:
    data_a = load_dataset(cfg.data_a, label_map=cfg.label_map)
    if cfg.data_b is not None:
        return data_a, load_dataset(cfg.data_b, label_map=cfg.label_map)
    labels = data_a.labels
    if labels.min() == labels.max():
        raise DataError(f"{cfg.data_a}: every record has label {int(labels[0])}; without "
                        "--data-b the dataset must hold both AF and non-AF records")
    pos = data_a.subset(np.flatnonzero(labels == 1), name=f"{data_a.name}[af]")
    neg = data_a.subset(np.flatnonzero(labels == 0), name=f"{data_a.name}[not_af]")
    return pos, neg


def _target(cfg: Any, run: Any, lm: LoadedModel | None) -> tuple[LoadedModel, list[int]]:
    """The model a vector is built in (``lm`` when the caller holds it) and the resolved
    ``cfg.layers`` (every layer when unset), both recorded in the manifest."""
    with run.timer("load_model"):
        lm = lm if lm is not None else load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
    run.add_model("model", lm.info.to_dict())
    layers = (list(range(lm.info.n_layers)) if cfg.layers is None
              else resolve_layers(cfg.layers, lm.info.n_layers))
    return lm, layers


def _write(run: Any, vec: SteeringVector, out: Path) -> Path:
    """Save ``vec`` to ``out/vector.safetensors`` and record it, its layers and norms."""
    path = vec.save(Path(out) / VECTOR_FILE)
    run.add_output("vector", str(path))
    run.add_output("layers", vec.layers)
    run.add_output("norms", {str(k): round(v, 6) for k, v in vec.norms.items()})
    return path


def run_diffmean(cfg: DiffMeanConfig, *, lm: LoadedModel | None = None) -> Path:
    """``afscope steer vector diffmean``: write ``cfg.out/vector.safetensors`` and a manifest."""
    with start_run("steer vector diffmean", cfg.to_dict(), cfg.out) as run:
        with run.timer("load_data"):
            set_a, set_b = _diffmean_sets(cfg)
            set_a = _subset(set_a, cfg.max_samples, cfg.seed)
            set_b = _subset(set_b, cfg.max_samples, cfg.seed + 1)
        run.add_dataset("set_a", set_a.info())
        run.add_dataset("set_b", set_b.info())
        if cfg.eval_only:
            evals = [load_dataset(p, eval_only=True, label_map=cfg.label_map)
                     for p in cfg.eval_only]
            guard = LeakageGuard(evals, threshold=cfg.leakage_threshold)
            guard.check(set_a, purpose="steering vector set A")
            guard.check(set_b, purpose="steering vector set B")
        lm, layers = _target(cfg, run, lm)
        with run.timer("diffmean"):
            vec = diffmean_vector(lm, set_a, set_b, layers, mask=cfg.mask,
                                  skip_first=cfg.skip_first, weighting=cfg.weighting,
                                  max_length=cfg.max_length, batch_tokens=cfg.batch_tokens)
        return _write(run, vec, cfg.out)


def request_sets(lm: LoadedModel, n: int, seed: int, template: str | None = None
                 ) -> tuple[Dataset, Dataset]:
    """``n`` harmful and ``n`` harmless synthetic requests, each rendered as the model reads it
    before answering (chat template + generation prompt)."""
    from afscope.data import Record
    from afscope.data.cues import requests
    from afscope.generate import render_prompt

    sets = []
    for name, frac in (("harmful", 1.0), ("harmless", 0.0)):
        reqs = requests(n, seed, harmful_fraction=frac)
        recs = [Record(text=render_prompt(lm.tokenizer, r.text, template), category=r.scenario,
                       label=int(r.harmful), id=f"{name}-{i}") for i, r in enumerate(reqs)]
        sets.append(Dataset.from_records(recs, name))
    return sets[0], sets[1]


def refusal_vector(lm: LoadedModel, layers: list[int], *, n: int = 128, seed: int = 1000,
                   template: str | None = None) -> SteeringVector:
    """Harmful minus harmless mean residual ``(d_model,)`` at the last prompt token, per layer.

    Adding it pushes the model towards refusing, subtracting it towards complying. The requests
    are the synthetic scenarios' (:func:`afscope.data.cues.requests`, seeded by ``seed``).
    """
    harmful, harmless = request_sets(lm, n, seed, template)
    vec = diffmean_vector(lm, harmful, harmless, layers, mask="last", skip_first=0,
                          created_from={"method": "refusal", "n": n, "seed": seed,
                                        "template": template})
    return SteeringVector(vectors=vec.vectors, model=vec.model,
                          model_fingerprint=vec.model_fingerprint, source="refusal",
                          created_from=vec.created_from)


def run_refusal(cfg: RefusalVectorConfig, *, lm: LoadedModel | None = None) -> Path:
    """``afscope steer vector refusal``: write ``cfg.out/vector.safetensors`` and a manifest."""
    with start_run("steer vector refusal", cfg.to_dict(), cfg.out) as run:
        lm, layers = _target(cfg, run, lm)
        with run.timer("diffmean"):
            vec = refusal_vector(lm, layers, n=cfg.n, seed=cfg.seed, template=cfg.template)
        return _write(run, vec, cfg.out)


def random_vector(like: SteeringVector, seed: int = 0, *,
                  created_from: dict[str, Any] | None = None) -> SteeringVector:
    """A seeded Gaussian direction per layer of ``like``, scaled to ``like``'s norm there.

    Same layers, width, norms and model as ``like``: steering with it at the same alphas adds a
    push of the same size in a direction that means nothing.
    """
    gen = torch.Generator().manual_seed(seed)
    vectors = {}
    for layer, v in like.vectors.items():
        r = torch.randn(like.d_model, generator=gen, dtype=torch.float64)
        vectors[layer] = (r / r.norm() * float(v.norm())).float()
    prov = {"method": "random", "seed": seed, "like_source": like.source, **(created_from or {})}
    return SteeringVector(vectors=vectors, model=like.model,
                          model_fingerprint=like.model_fingerprint, source="random",
                          created_from=prov)


def run_random(cfg: RandomVectorConfig) -> Path:
    """``afscope steer vector random``: directions matched in norm to ``cfg.like``."""
    with start_run("steer vector random", cfg.to_dict(), cfg.out) as run:
        like_path = Path(cfg.like) / VECTOR_FILE if Path(cfg.like).is_dir() else Path(cfg.like)
        like = load_vector(like_path)
        vec = random_vector(like, cfg.seed, created_from={
            "like": str(like_path), "like_sha256": sha256_file(like_path)})
        return _write(run, vec, cfg.out)


def probe_vector(probe: Any, *, model: str | None = None,
                 created_from: dict[str, Any] | None = None) -> SteeringVector:
    """Unit direction ``(d_model,)`` of a probe fitted on pooled residual activations.

    Refuses probes on SAE latents (their weights live in latent space, not the residual stream)
    and probes with a non-linear normalization (no single residual direction exists).
    """
    space = getattr(probe, "feature_space_", None) or {}
    kind = str(space.get("kind") or "")
    if kind.startswith("sae."):
        raise ArtifactError(f"probe was trained on SAE latents ({kind}); a steering vector needs "
                            "a probe on residual features (resid.max|mean|last). Use "
                            "`afscope steer vector sae` for one latent's decoder direction")
    if not kind.startswith("resid."):
        raise ArtifactError(f"probe has no residual feature space (feature_space.kind={kind!r}); "
                            "train it with `afscope probe train --features resid.<pool>`")
    if probe.normalize != "none":
        raise ArtifactError(f"probe uses normalize={probe.normalize!r}, a non-linear transform: "
                            "its weights are no direction in residual space; train with "
                            "--normalize none")
    if space.get("layer") is None:
        raise ArtifactError("probe feature_space has no 'layer'")
    w = np.zeros(probe.n_features_in_, dtype=np.float64)
    w[probe.selected_] = probe.coef_ / probe.scale_  # undo the standardization
    norm = float(np.linalg.norm(w))
    if norm == 0.0:
        raise ArtifactError("probe has all-zero weights (over-regularized?); no direction")
    layer = int(space["layer"])
    prov = {"feature_space": space, "method": probe.method,
            "raw_norm": norm, **(created_from or {})}
    return SteeringVector(vectors={layer: torch.from_numpy(w / norm).float()}, model=model,
                          model_fingerprint=space.get("model"), source="probe",
                          created_from=prov)


def run_probe_vector(cfg: ProbeVectorConfig) -> Path:
    """``afscope steer vector probe``: the direction of ``cfg.probe`` to ``cfg.out``."""
    from afscope.probe import WEIGHTS_FILE, load_probe

    with start_run("steer vector probe", cfg.to_dict(), cfg.out) as run:
        probe = load_probe(cfg.probe)
        vec = probe_vector(probe, model=cfg.model, created_from={
            "probe": str(cfg.probe), "probe_sha256": sha256_file(Path(cfg.probe) / WEIGHTS_FILE)})
        return _write(run, vec, cfg.out)


def sae_vector(sae: Any, feature: int, *, layer: int | None = None, normalize: bool = True,
               created_from: dict[str, Any] | None = None) -> SteeringVector:
    """Decoder row ``W_dec[feature]`` ``(d_in,)`` of ``sae`` (an :class:`afscope.sae.SAE`) at
    ``layer`` (default the SAE's ``hook_layer``), optionally unit-normalized."""
    cfg = sae.cfg
    if not 0 <= feature < cfg.d_sae:
        raise ConfigError(f"field 'feature': {feature} is out of range for an SAE with "
                          f"d_sae={cfg.d_sae}")
    layer = layer if layer is not None else cfg.hook_layer
    if layer is None or layer < 0:
        raise ConfigError("field 'layer': the SAE's cfg.json has no hook_layer; pass --layer")
    v = sae.decoder_directions()[feature].detach().float().cpu()
    norm = float(v.norm())
    if norm == 0.0:
        raise ArtifactError(f"SAE latent {feature} has an all-zero decoder row; no direction")
    prov = {"feature": feature, "d_sae": cfg.d_sae, "raw_norm": norm, "hook_name": cfg.hook_name,
            "normalized": normalize, **(created_from or {})}
    return SteeringVector(vectors={int(layer): v / norm if normalize else v},
                          model=cfg.model_name, model_fingerprint=None, source="sae",
                          created_from=prov)


def run_sae_vector(cfg: SAEVectorConfig) -> Path:
    """``afscope steer vector sae``: latent ``cfg.feature``'s decoder row to ``cfg.out``."""
    from afscope.sae import WEIGHTS_FILE, load_sae

    with start_run("steer vector sae", cfg.to_dict(), cfg.out) as run:
        sae = load_sae(cfg.sae)
        vec = sae_vector(sae, cfg.feature, layer=cfg.layer, normalize=cfg.normalize,
                         created_from={"sae": str(cfg.sae),
                                       "sae_sha256": sha256_file(Path(cfg.sae) / WEIGHTS_FILE)})
        return _write(run, vec, cfg.out)
