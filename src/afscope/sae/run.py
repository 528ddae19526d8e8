"""``afscope sae train``: collect one layer's tokens from a model, train a TopK SAE, save it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from afscope.data.dataset import Dataset
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


def run_sae_train(cfg: Any, *, lm: LoadedModel | None = None,
                  dataset: Dataset | None = None) -> tuple[Path, dict[str, Any]]:
    """Train and save an SAE per ``cfg`` (:class:`~afscope.sae.SAETrainConfig`).

    Writes ``OUT/sae`` (SAELens folder, ``hook_layer`` set), ``OUT/metrics.json`` (explained
    variance, L0, dead fraction, training tokens/s) and ``OUT/manifest.json``; returns the SAE
    folder and the metrics.
    """
    if cfg.data is None and dataset is None:
        raise ConfigError("field 'data': required (the dataset to collect tokens from)")
    out = Path(cfg.out)
    with start_run("sae train", cfg.to_dict(), out) as run:
        lm, dataset = load_inputs(run, cfg, lm=lm, dataset=dataset)
        (layer,) = resolve_layers([cfg.layer], lm.info.n_layers)
        with run.timer("collect_tokens"):
            x = collect_tokens(lm, dataset, layer, mask=cfg.mask, skip_first=cfg.skip_first,
                               max_length=cfg.max_length, batch_tokens=cfg.batch_tokens,
                               max_tokens=cfg.max_tokens, seed=cfg.seed)
        log.info("collected %d tokens x %d at layer %d", *x.shape, layer)
        with run.timer("train"):
            sae, metrics = train_sae(x, cfg, model_name=lm.info.name,
                                     hook_name=f"blocks.{layer}.hook_resid_post",
                                     hook_layer=layer)
        metrics.update(layer=layer, n_tokens=int(x.shape[0]), d_in=int(x.shape[1]),
                       d_sae=cfg.d_sae, k=cfg.k)
        folder = save_sae(sae, out / SAE_SUBDIR)
        atomic_write_json(out / METRICS_FILE, metrics)
        for key, value in metrics.items():
            run.add_output(key, value)
    return folder, metrics
