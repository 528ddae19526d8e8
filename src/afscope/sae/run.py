"""``afscope sae train``: collect one layer's tokens from a model, train a TopK SAE, save it.

The records are split into train and held-out *before* any token is collected, so the held-out
tokens come from texts the SAE never saw (tokens of one text are correlated: a split by token
would leak). The split is :func:`afscope.data.split.stratified_split` by category, seeded, and
independent of file order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from afscope.data.dataset import Dataset
from afscope.data.split import stratified_split
from afscope.errors import ConfigError
from afscope.extract.runner import collect_tokens, load_inputs
from afscope.fileio import atomic_write_json
from afscope.models import LoadedModel, resolve_layers
from afscope.runs import start_run
from afscope.sae.io import save_sae
from afscope.sae.train import train_sae

log = logging.getLogger(__name__)

SAE_SUBDIR = "sae"
METRICS_FILE = "metrics.json"


def split_records(dataset: Dataset, heldout_fraction: float, seed: int
                  ) -> tuple[Dataset, Dataset | None]:
    """Train and held-out records (whole texts), stratified by category and seeded.

    Returns ``(train, None)`` when the dataset is too small for a held-out record, in which case
    :func:`~afscope.sae.train_sae` holds out the last rows of the training tokens instead.
    """
    parts = stratified_split(dataset, {"train": 1 - heldout_fraction, "heldout": heldout_fraction},
                             seed=seed, stratify_by="category")
    if len(parts["heldout"]) == 0 or len(parts["train"]) == 0:
        return dataset, None
    return parts["train"], parts["heldout"]


def collect_split_tokens(lm: LoadedModel, dataset: Dataset, layer: int, cfg: Any
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-token activations ``(n_train, d), (n_heldout, d)`` of the train and held-out records.

    At most ``cfg.max_tokens`` training tokens and ``heldout_fraction * max_tokens`` held-out ones
    (at least 1); held-out is ``None`` when the dataset has too few records to split.
    """
    train_ds, heldout_ds = split_records(dataset, cfg.heldout_fraction, cfg.seed)
    kw = dict(mask=cfg.mask, skip_first=cfg.skip_first, max_length=cfg.max_length,
              batch_tokens=cfg.batch_tokens, seed=cfg.seed)
    x = collect_tokens(lm, train_ds, layer, max_tokens=cfg.max_tokens, **kw)
    if heldout_ds is None:
        log.warning("dataset %s: too few records for a held-out split; holding out the last "
                    "%.0f%% of the training tokens instead", dataset.name,
                    100 * cfg.heldout_fraction)
        return x, None
    n_heldout = max(1, int(cfg.max_tokens * cfg.heldout_fraction))
    return x, collect_tokens(lm, heldout_ds, layer, max_tokens=n_heldout, **kw)


def run_sae_train(cfg: Any, *, lm: LoadedModel | None = None,
                  dataset: Dataset | None = None) -> tuple[Path, dict[str, Any]]:
    """Train and save an SAE per ``cfg`` (:class:`~afscope.sae.SAETrainConfig`).

    Writes ``OUT/sae`` (SAELens folder, ``hook_layer`` set), ``OUT/metrics.json`` (held-out and
    train explained variance, L0 and dead fraction, training tokens/s; see
    :func:`~afscope.sae.train_sae`) and ``OUT/manifest.json``; returns the SAE folder and the
    metrics.
    """
    if cfg.data is None and dataset is None:
        raise ConfigError("field 'data': required (the dataset to collect tokens from)")
    out = Path(cfg.out)
    with start_run("sae train", cfg.to_dict(), out) as run:
        lm, dataset = load_inputs(run, cfg, lm=lm, dataset=dataset)
        (layer,) = resolve_layers([cfg.layer], lm.info.n_layers)
        with run.timer("collect_tokens"):
            x, heldout = collect_split_tokens(lm, dataset, layer, cfg)
        log.info("collected %d training + %d held-out tokens x %d at layer %d", len(x),
                 0 if heldout is None else len(heldout), x.shape[1], layer)
        with run.timer("train"):
            sae, metrics = train_sae(x, cfg, heldout=heldout, model_name=lm.info.name,
                                     hook_name=f"blocks.{layer}.hook_resid_post",
                                     hook_layer=layer)
        metrics.update(layer=layer, n_tokens=metrics["n_train_tokens"], d_in=int(x.shape[1]),
                       d_sae=cfg.d_sae, k=cfg.k)
        folder = save_sae(sae, out / SAE_SUBDIR)
        atomic_write_json(out / METRICS_FILE, metrics)
        for key, value in metrics.items():
            run.add_output(key, value)
    return folder, metrics
