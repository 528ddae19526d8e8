"""``afscope explain train``: LoRA-train an explainer on task folders (peft on the HF Trainer).

* **Data**: the ``train.jsonl`` of every task folder; a seeded share of *units* (scenarios or
  features) is held out as the validation set, and a fixed subset of it (``eval_size`` rows,
  chosen once) is evaluated every ``eval_steps`` steps.
* **Loss**: cross-entropy on the answer tokens only, each token weighted by its example's task
  weight, divided by the number of answer tokens in the batch (per-token normalization). Logits are
  computed only at answer positions (the full ``(B, T, V)`` tensor is never built: Gemma's vocab is
  262k).
* **Vectors** enter as continuous tokens (:mod:`afscope.explain.inject`); a per-layer projector,
  when widths differ, is a full-rank module trained beside LoRA and saved in the adapter by peft
  (``modules_to_save``).
* **Checkpoints** are peft adapters written by the Trainer (``OUT/checkpoints/checkpoint-N``) with
  the optimizer state needed to resume; early stopping on the validation loss and best-checkpoint
  selection are the Trainer's (``EarlyStoppingCallback``, ``load_best_model_at_end``). Resuming
  replays the same seeded data order and skips the batches already done.
* ``OUT/adapter`` is the selected adapter, ``OUT/explainer.json`` says how to load and drive it
  (base model identity, mode, projector, embedding scale, placeholder).
* **Many devices**: under ``torchrun`` / ``accelerate launch`` the Trainer trains with DDP;
  ``batch_size`` stays the global batch (see :mod:`afscope.organism.train`), the loss of each
  process is divided by the answer tokens of the *global* batch (all processes, all accumulation
  steps), so the gradient is the one a single process computes; only rank 0 writes ``OUT``. A
  checkpoint holds the whole (replicated) adapter and optimizer state, and the data order depends
  on the seed and the epoch only, so a run resumes on another number of processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from afscope.distributed import Launch, split_batch, training_launch
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.explain.config import ExplainTrainConfig
from afscope.explain.encode import Collator, Encoded, encode_examples, placeholder_id
from afscope.explain.inject import (
    PROJECTOR_ATTR,
    VectorBatch,
    VectorProjector,
    attach_projector,
    embedding_norm,
    find_projector,
    inject,
)
from afscope.explain.schema import (
    TRAIN_FILE,
    VECTORS_FILE,
    Example,
    check_vectors,
    read_examples,
    read_vectors,
)
from afscope.fileio import atomic_write_json, sha256_file, sha256_json
from afscope.models import LoadedModel, load_model
from afscope.organism.train import (
    adapter_folder,
    check_bf16,
    global_count,
    load_organism,
    rank_run,
    save_adapter,
    scale_args,
    target_modules,
    train_sampler,
    trainable_parameters,
)
from afscope.progress import trainer_progress

log = logging.getLogger(__name__)

EXPLAINER_FILE = "explainer.json"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
TRAIN_LOG = "train_log.json"
FORMAT_VERSION = 1


def load_tasks(folders: Sequence[Path], split_file: str = TRAIN_FILE
               ) -> tuple[list[Example], dict[str, torch.Tensor]]:
    """Examples of ``split_file`` in every folder and the union of their vectors.

    A vector name defined twice with different values is an error (it would be ambiguous).
    """
    examples: list[Example] = []
    vectors: dict[str, torch.Tensor] = {}
    for folder in folders:
        folder = Path(folder)
        exs = read_examples(folder / split_file)
        vfile = folder / VECTORS_FILE
        vecs = read_vectors(vfile)[0] if vfile.is_file() else {}
        check_vectors(exs, vecs, str(folder))
        for k, v in vecs.items():
            if k in vectors and not torch.equal(vectors[k], v):
                raise DataError(f"{vfile}: vector {k!r} differs from the one of the same name in "
                                "another task folder")
            vectors[k] = v
        examples += exs
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"example id {dup!r} appears in more than one task folder")
    return examples, vectors


def split_units(examples: Sequence[Example], fraction: float, seed: int
                ) -> tuple[list[Example], list[Example]]:
    """``(train, validation)``: a seeded ``fraction`` of the units goes to validation."""
    units = sorted({e.unit for e in examples})
    if fraction <= 0 or len(units) < 2:
        return list(examples), []
    rng = random.Random(seed)
    rng.shuffle(units)
    n_val = min(len(units) - 1, max(1, round(fraction * len(units))))
    val_units = set(units[:n_val])
    return ([e for e in examples if e.unit not in val_units],
            [e for e in examples if e.unit in val_units])


def subsample_units(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """The examples of at most ``n`` seeded units of each task: the smaller training sets of a
    data-scaling curve, nested (with one seed, a smaller set is part of every larger one)."""
    by_task: dict[str, set[str]] = {}
    for e in examples:
        by_task.setdefault(e.task, set()).add(e.unit)
    keep = set()
    for task, units in by_task.items():
        order = sorted(units)
        random.Random(seed).shuffle(order)
        keep |= {(task, u) for u in order[:n]}
    return [e for e in examples if (e.task, e.unit) in keep]


def balance_changed(examples: Sequence[Example], seed: int) -> list[Example]:
    """The examples with each task's rarer kind (changed or unchanged) repeated until it is as
    many as the other (whole copies, then a seeded sample of the rest).

    Why: where 10-15% of steering or context-ablation examples change, the cheapest loss is
    "no change" everywhere, and a short run learns exactly that (trained = majority); where 70%
    change (an organism's context ablation), it learns "change" everywhere. Balancing the
    training stream makes both answers worth predicting; evaluation keeps the natural mix.
    Tasks without both kinds (feature descriptions) pass through unchanged.
    """
    rng = random.Random(seed)
    out = list(examples)
    for task in sorted({e.task for e in examples}):
        rare, common = sorted(([e for e in examples if e.task == task and e.changed is flag]
                               for flag in (True, False)), key=len)
        if not rare or len(rare) == len(common):
            continue
        copies, rest = divmod(len(common), len(rare))
        out += rare * (copies - 1) + rng.sample(rare, rest)
    return out


def training_subset(examples: Sequence[Example], meta: dict[str, Any]) -> list[Example]:
    """The training examples an explainer saw when it trained on a subset (``max_train_units``
    in its ``explainer.json``): its training units after the validation split, subsampled the
    same way; ``examples`` unchanged otherwise. Baselines that read the training data (majority,
    nearest neighbour) then see the same data as the explainer."""
    n = meta.get("max_train_units")
    if n is None:
        return list(examples)
    train, _ = split_units(examples, meta.get("val_fraction", 0.0), meta["seed"])
    return subsample_units(train, n, meta["seed"])


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, Any]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings(), base.config


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


@contextlib.contextmanager
def _last_hidden(decoder: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Catches the decoder's final hidden states ``(B, T, D)`` during the next forward pass."""
    seen: dict[str, torch.Tensor] = {}

    def hook(_m: torch.nn.Module, _i: object, out: Any) -> None:
        seen["hidden"] = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    handle = decoder.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def answer_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], *, mode: str,
                inject_layer: int, embed_norm: float,
                n_tokens: torch.Tensor | int | None = None,
                exact: list[bool] | None = None) -> torch.Tensor:
    """Weighted per-token cross-entropy of the answer tokens of a right-padded batch.

    ``sum_i w_i * sum_t ce_it / n_answer_tokens``; logits only at the answer positions.
    ``n_tokens`` replaces the batch's own answer-token count: the Trainer's count over a whole
    optimizer step (every accumulation step, every process), so that micro-batches and processes
    add up to the loss of the step's global batch. ``exact``: appended, per example, whether every
    answer token is the top logit (what greedy decoding of the answer would write).
    """
    vb = None
    if "vec_positions" in batch:
        vb = VectorBatch(batch["vec_values"], batch["vec_layers"], batch["vec_positions"])
    inner = _unwrap(model)
    decoder, head, config = _decoder_and_head(inner)
    # the forward goes through the (possibly DDP-wrapped) model, so DDP syncs the gradients;
    # logits_to_keep=1 keeps its (B, T, V) logits from being built: the decoder's hidden states
    # are caught instead and only the answer positions meet the head
    with inject(inner, vb, mode=mode, inject_layer=inject_layer, embed_norm=embed_norm), \
            _last_hidden(decoder) as seen:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              logits_to_keep=1)
    hidden = seen["hidden"]  # (B, T, D)
    target = batch["labels"][:, 1:]
    mask = target != -100
    logits = head(hidden[:, :-1][mask]).float()  # (N, V)
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    ce = F.cross_entropy(logits, target[mask], reduction="none")
    if exact is not None:
        rows = mask.nonzero()[:, 0]
        wrong = torch.zeros(len(mask), device=rows.device).index_add_(
            0, rows, (logits.argmax(-1) != target[mask]).float())
        exact += (wrong == 0)[mask.any(dim=1)].tolist()
    w = batch["weights"].to(ce.dtype)[:, None].expand_as(target)[mask]
    if n_tokens is None:
        n_tokens = mask.sum().clamp_min(1)
    return (ce * w).sum() / n_tokens


def add_adapter(model: torch.nn.Module, cfg: ExplainTrainConfig, with_projector: bool) -> Any:
    """``model`` wrapped by a fresh seeded LoRA adapter; the projector (if any) trains in full."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(cfg.seed)
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target_modules(model, cfg.target_modules),
                      modules_to_save=[PROJECTOR_ATTR] if with_projector else None,
                      task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, lora)


def _needs_projector(cfg_projection: str, d_target: int | None, d_model: int) -> bool:
    if d_target is None:
        return False
    if cfg_projection == "none" and d_target != d_model:
        raise ConfigError(f"field 'projection': the target vectors are {d_target} wide and the "
                          f"explainer's d_model is {d_model}; set projection: auto or linear")
    return cfg_projection in ("linear", "lens") or d_target != d_model


def _lens_cache(cfg: ExplainTrainConfig) -> Path:
    """``cfg.lens_cache``, else the ``cache`` a task folder was built from (its manifest)."""
    if cfg.lens_cache is not None:
        return Path(cfg.lens_cache)
    for folder in cfg.data:
        manifest = Path(folder) / "manifest.json"
        if manifest.is_file():
            cache = json.loads(manifest.read_text(encoding="utf-8")).get("config", {}).get("cache")
            if cache:
                return Path(cache)
    raise ConfigError("projection 'lens' needs an activation cache to fit on: set lens_cache "
                      "(--lens-cache), or train on a task folder built with --cache")


#: token lenses fit in this process, by all the fit depends on: the demo's scaling explainers
#: reuse the main explainer's fit instead of running the target over the cache again
_LENS_FITS: dict[str, tuple[dict[int, Any], dict[str, Any]]] = {}


def fit_lens_projector(cfg: ExplainTrainConfig, lm: LoadedModel, examples: Sequence[Any],
                       layers: list[int]) -> dict[str, Any]:
    """Fit the token lens (:mod:`afscope.explain.lens`) of every vector layer into the projector
    attached to ``lm`` and freeze it; returns the fit statistics for ``explainer.json``."""
    from afscope.explain.lens import cache_sequences, fit_token_lens

    cache = _lens_cache(cfg)
    targets = sorted({str(e.meta.get("model")) for e in examples if e.vectors})
    if len(targets) != 1 or targets[0] == "None":
        raise ConfigError(f"projection 'lens': the vectors must come from one named target "
                          f"model (meta.model of the examples), got {targets}")
    key = sha256_json({"target": targets[0], "explainer": lm.info.fingerprint,
                       "cache": str(cache.resolve()), "cache_mtime": cache.stat().st_mtime_ns,
                       "tokens": cfg.lens_tokens, "layers": layers, "ridge": cfg.lens_ridge,
                       "seed": cfg.seed, "dtype": cfg.dtype})
    if key not in _LENS_FITS:
        if len(_LENS_FITS) >= 4:  # a long process (a test run) keeps only a few
            _LENS_FITS.pop(next(iter(_LENS_FITS)))
        target = lm if targets[0] == cfg.model else load_model(targets[0], dtype=cfg.dtype,
                                                                 device=cfg.device)
        _LENS_FITS[key] = fit_token_lens(target, lm, cache_sequences(cache, cfg.lens_tokens),
                                         layers, ridge=cfg.lens_ridge, seed=cfg.seed)
    maps, stats = _LENS_FITS[key]
    projector = find_projector(lm.model)
    assert projector is not None
    with torch.no_grad():
        for layer, w in maps.items():
            projector.maps[f"L{layer}"].weight.copy_(w)
    return {"target": targets[0], "cache": str(cache), **stats}


def _trainer_class(group_by_length: bool = False) -> Any:
    from transformers import Trainer

    class ExplainTrainer(Trainer):
        """The HF Trainer with :func:`answer_loss` (weights, answer-only, continuous tokens)."""

        # the loss below is already divided by the whole step's answer tokens
        loss_is_scaled_for_ga = True

        def __init__(self, *args: Any, inject_args: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.inject_args = inject_args
            self._exact: list[bool] | None = None  # collected during an evaluation only
            # makes the Trainer count the answer tokens of each optimizer step over all
            # accumulation steps and processes (``shift_labels`` of the batch) into
            # ``num_items_in_batch``
            self.model_accepts_loss_kwargs = True

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = self.train_dataset if train_dataset is None else train_dataset
            return (train_sampler(dataset, self.args, group_by_length)
                    or super()._get_train_sampler(train_dataset))

        def evaluation_loop(self, dataloader: Any, description: str,
                            prediction_loss_only: bool | None = None,
                            ignore_keys: list[str] | None = None,
                            metric_key_prefix: str = "eval") -> Any:
            """The Trainer's, plus ``<prefix>_exact``: the share of validation answers whose
            every token is the top logit (a run at chance on the one token that decides an
            answer has a low loss and a low ``exact``)."""
            self._exact = []
            output = super().evaluation_loop(dataloader, description, prediction_loss_only,
                                             ignore_keys, metric_key_prefix)
            counts = torch.tensor([float(sum(self._exact)), float(len(self._exact))],
                                  device=self.args.device)
            n_exact, n = self.accelerator.reduce(counts, reduction="sum").tolist()
            output.metrics[f"{metric_key_prefix}_exact"] = n_exact / n if n else 0.0
            self._exact = None
            return output

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            if num_items_in_batch is None:  # a step whose tokens were not counted
                loss = answer_loss(model, inputs, **self.inject_args)
                loss = loss / self.current_gradient_accumulation_steps
            else:
                # DDP averages the gradients of the processes; times their number, the sum of
                # every process's share over the global token count is the global-batch loss
                loss = answer_loss(model, inputs, n_tokens=num_items_in_batch,
                                   **self.inject_args) * self.accelerator.num_processes
            return (loss, None) if return_outputs else loss

        def prediction_step(self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool,
                            ignore_keys: Any = None) -> tuple[Any, None, None]:
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss = answer_loss(model, inputs, exact=self._exact, **self.inject_args)
            return loss.detach(), None, None

    return ExplainTrainer


def _rows(encoded: Sequence[Encoded], eval_: bool = False) -> list[dict[str, Any]]:
    return [{"input_ids": e.prompt + e.answer, "encoded": e, "eval": eval_} for e in encoded]


class _SplitCollator:
    """Training batches through ``train`` (which counts their tokens), evaluation through
    ``val``: the Trainer calls the collator in train mode only while training."""

    def __init__(self, train: Collator, val: Collator) -> None:
        self.train, self.val = train, val

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        rows_ = [r["encoded"] for r in rows]
        batch = self.train(rows_) if not rows[0].get("eval") else self.val(rows_)
        # the targets answer_loss scores, (B, T-1): what the Trainer counts into num_items_in_batch
        batch["shift_labels"] = batch["labels"][:, 1:]
        return batch


def _start_step(checkpoint: str | None) -> int:
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else 0


def weights_checksum(model: torch.nn.Module) -> str:
    """A hash of every parameter's sum and sum of squares (float64): cheap (one pass, no copy)
    and different for a same-shape model with other weights, which a file-name/size fingerprint
    of a local folder is not."""
    with torch.no_grad():
        stats = [[n, round(float(p.double().sum()), 6), round(float(p.double().square().sum()), 6)]
                 for n, p in sorted(model.named_parameters())]
    return sha256_json(stats)


def _identity(lm: LoadedModel) -> dict[str, Any]:
    return {"name": lm.info.name, "weights_sha256": lm.info.weights_sha256,
            "checksum": weights_checksum(lm.model), "d_model": lm.info.d_model,
            "n_layers": lm.info.n_layers}


def check_base(saved: dict[str, Any], lm: LoadedModel, where: Path) -> None:
    """A saved explainer/checkpoint must belong to the loaded base model (same weights hash)."""
    mine = _identity(lm)
    if any(saved.get(k) != mine[k] for k in ("weights_sha256", "checksum", "d_model")):
        raise ConfigError(f"{where}: trained on base model {saved.get('name')!r} (weights "
                          f"{str(saved.get('weights_sha256'))[:12]}, d_model {saved.get('d_model')}), "
                          f"not on {mine['name']!r} (weights {str(mine['weights_sha256'])[:12]}, "
                          f"d_model {mine['d_model']})")


def read_explainer(run_dir: str | Path) -> dict[str, Any]:
    """``explainer.json`` of a train run (what :func:`load_explainer` needs)."""
    path = Path(run_dir) / EXPLAINER_FILE
    if not path.is_file():
        raise ArtifactError(f"{run_dir}: not an explainer run (no {EXPLAINER_FILE}); run "
                            "`afscope explain train` first")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("kind") != "afscope_explainer" or meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: not an afscope explainer file of format {FORMAT_VERSION}")
    return meta


def prepare_model(lm: LoadedModel, meta: dict[str, Any], seed: int = 0) -> None:
    """Attach the projector described by ``meta`` to the base model (before peft wraps it)."""
    proj = meta.get("projection")
    if proj:
        attach_projector(lm.model, VectorProjector(proj["layers"], proj["d_target"],
                                                   proj["d_explainer"], seed=seed))


def base_adapter_info(cfg: ExplainTrainConfig) -> dict[str, Any] | None:
    """What ``explainer.json`` records of ``--base-adapter`` (None without one): the base model's
    name and the adapter folder. The adapter's weights are pinned by the merged model's
    ``weights_sha256`` (base + adapter file), which :func:`check_base` compares."""
    if cfg.base_adapter is None:
        return None
    return {"model": cfg.model, "path": str(adapter_folder(cfg.base_adapter).resolve())}


def load_base(meta: dict[str, Any], *, dtype: str = "float32", device: str = "cpu"
              ) -> LoadedModel:
    """The model an explainer was trained from: its base, with its ``base_adapter`` merged."""
    merged = meta.get("base_adapter")
    if not merged:
        return load_model(meta["model"]["name"], dtype=dtype, device=device)
    return load_organism(merged["model"], merged["path"], dtype=dtype, device=device)


def load_explainer(run_dir: str | Path, *, lm: LoadedModel | None = None, dtype: str = "float32",
                   device: str = "cpu", adapter: str | Path | None = None
                   ) -> tuple[LoadedModel, dict[str, Any]]:
    """The trained explainer of ``run_dir`` (base + adapter + projector) and its metadata.

    ``lm``: a loaded base model to wrap in place (it must be the one trained on).
    """
    from peft import PeftModel

    run_dir = Path(run_dir)
    meta = read_explainer(run_dir)
    if lm is None:
        lm = load_base(meta, dtype=dtype, device=device)
    check_base(meta["model"], lm, run_dir / EXPLAINER_FILE)
    prepare_model(lm, meta)
    folder = Path(adapter) if adapter is not None else run_dir / ADAPTER_DIR
    model = PeftModel.from_pretrained(lm.model, str(folder))
    model.eval()
    return LoadedModel(model=model, tokenizer=lm.tokenizer, info=lm.info), meta


def _training_args(cfg: ExplainTrainConfig, has_val: bool, launch: Launch) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(Path(cfg.out) / CHECKPOINTS_DIR),
        per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay, logging_steps=1,
        eval_strategy="steps" if has_val else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.eval_steps, save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=has_val, metric_for_best_model=f"eval_{cfg.best_metric}",
        greater_is_better=cfg.best_metric == "exact", prediction_loss_only=True,
        label_names=["labels"],
        report_to=[], use_cpu=cfg.device == "cpu", disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False, **scale_args(cfg, launch))


def train_explainer(cfg: ExplainTrainConfig, *, lm: LoadedModel | None = None
                    ) -> tuple[Path, dict[str, Any]]:
    """Train (or resume) an explainer; returns ``(OUT, summary)``. See the module docstring.

    ``lm``: a loaded explainer base model, wrapped in place by peft (pass a copy to keep it);
    ``cfg.base_adapter`` is merged into it first.
    Under torchrun / accelerate launch every rank trains (DDP); only rank 0 writes ``OUT``.
    """
    from transformers import EarlyStoppingCallback, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(cfg.out)
    ckpt_dir = out / CHECKPOINTS_DIR
    launch = training_launch()
    split_batch(cfg.batch_size, launch)
    check_bf16(cfg.bf16, cfg.device)
    resume_from = None
    if cfg.resume:
        resume_from = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        if resume_from is None:
            raise ArtifactError(f"{ckpt_dir}: no checkpoint to resume from")
    elif ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        raise ConfigError(f"{ckpt_dir}: checkpoints of an earlier run exist; pass --resume to "
                          "continue it or choose another --out")
    with rank_run("explain train", cfg.to_dict(), out, launch) as run:
        examples, vectors = load_tasks(cfg.data)
        for folder in cfg.data:
            run.add_dataset(str(folder), {"train_sha256": sha256_file(Path(folder) / TRAIN_FILE)})
        with run.timer("load_model"):
            if lm is None:
                lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
            merged = base_adapter_info(cfg)
            if merged is not None:
                lm = load_organism(lm, merged["path"])
        run.add_model("explainer", lm.info.to_dict())
        d_model = lm.info.d_model
        d_target = next(iter(vectors.values())).shape[0] if vectors else None
        layers = sorted({v.layer for e in examples for v in e.vectors})
        with_proj = _needs_projector(cfg.projection, d_target, d_model)
        meta = {
            "kind": "afscope_explainer", "format_version": FORMAT_VERSION,
            "model": _identity(lm), "base_adapter": merged, "mode": cfg.mode,
            "inject_layer": cfg.inject_layer,
            "projection": {"layers": layers, "d_target": d_target, "d_explainer": d_model,
                           "init": "lens" if cfg.projection == "lens" else "default"}
            if with_proj else None,
            "target_width": d_target, "embed_norm": embedding_norm(lm.model),
            "placeholder": placeholder_id(lm.tokenizer),
            "tasks": sorted({f"{e.task}/{e.question_type}" for e in examples}),
            "data": [str(Path(f).resolve()) for f in cfg.data],
            "data_sha256": [sha256_file(Path(f) / TRAIN_FILE) for f in cfg.data],
            "weights": cfg.weights, "max_length": cfg.max_length, "seed": cfg.seed,
            "val_fraction": cfg.val_fraction, "max_train_units": cfg.max_train_units,
            "balance_changed": cfg.balance_changed,
        }
        if resume_from is not None:
            old = read_explainer(out)
            check_base(old["model"], lm, Path(resume_from))
            if old["data_sha256"] != meta["data_sha256"]:
                raise ConfigError(f"{out}: the task files changed since the checkpoints were "
                                  "written; resuming would change the data order")
        train_ex, val_ex = split_units(examples, cfg.val_fraction, cfg.seed)
        if cfg.max_train_units is not None:
            train_ex = subsample_units(train_ex, cfg.max_train_units, cfg.seed)
        if cfg.balance_changed:
            n_before = len(train_ex)
            train_ex = balance_changed(train_ex, cfg.seed)
            run.add_output("balance_changed", {"examples": n_before, "balanced": len(train_ex)})
        enc_train, dropped = encode_examples(lm.tokenizer, train_ex, max_length=cfg.max_length,
                                             weights=cfg.weights, placeholder=meta["placeholder"])
        enc_val, _ = encode_examples(lm.tokenizer, val_ex, max_length=cfg.max_length,
                                     weights=cfg.weights, placeholder=meta["placeholder"])
        if not enc_train:
            raise DataError("no training example fits max_length; raise it")
        task_of = {e.id: e.task for e in train_ex}
        rng = random.Random(cfg.seed)
        enc_val = sorted(rng.sample(enc_val, min(cfg.eval_size, len(enc_val))), key=lambda e: e.id)
        if meta["projection"]:
            prepare_model(lm, meta, seed=cfg.seed)
            if cfg.projection == "lens":
                with run.timer("token_lens"):
                    meta["projection"]["lens"] = fit_lens_projector(cfg, lm, examples, layers)
        if vectors and meta["projection"] is None and d_target != d_model:
            raise ConfigError(f"vector width {d_target} != explainer d_model {d_model}")
        peft_model = add_adapter(lm.model, cfg, with_proj)
        if cfg.projection == "lens":  # a fixed map: Adam steps of lr 1e-3 would wash it out
            for name, p in peft_model.named_parameters():
                if PROJECTOR_ATTR in name:
                    p.requires_grad_(False)
        n_train, n_total = trainable_parameters(peft_model)
        if launch.is_main:
            atomic_write_json(out / EXPLAINER_FILE, meta)

        class _Stamp(TrainerCallback):  # each checkpoint names its base model and data
            def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if state.is_world_process_zero and folder.is_dir():
                    atomic_write_json(folder / EXPLAINER_FILE, meta)

        collator = Collator(vectors, lm.tokenizer.pad_token_id
                            if lm.tokenizer.pad_token_id is not None else meta["placeholder"])
        callbacks: list[Any] = [_Stamp(), trainer_progress("explainer LoRA steps")]
        if enc_val and cfg.patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.patience))
        trainer = _trainer_class(cfg.group_by_length)(
            model=peft_model, args=_training_args(cfg, bool(enc_val), launch),
            train_dataset=_rows(enc_train), eval_dataset=_rows(enc_val, True) if enc_val else None,
            data_collator=_SplitCollator(collator, Collator(vectors, collator.pad_id)),
            callbacks=callbacks,
            inject_args={"mode": cfg.mode, "inject_layer": cfg.inject_layer,
                         "embed_norm": meta["embed_norm"]})
        trainer.remove_callback(PrinterCallback)
        with run.timer("train"):
            t0 = time.perf_counter()
            trainer.train(resume_from_checkpoint=resume_from)
            seconds = time.perf_counter() - t0
        peft_model.eval()
        folder = out / ADAPTER_DIR
        if launch.is_main:
            save_adapter(peft_model, folder)
        hist = trainer.state.log_history
        log_rows = {"train": [{"step": h["step"], "loss": h["loss"], "epoch": h.get("epoch")}
                              for h in hist if "loss" in h],
                    "eval": [{"step": h["step"], "loss": h["eval_loss"],
                              "exact": h.get("eval_exact")} for h in hist if "eval_loss" in h]}
        if launch.is_main:
            atomic_write_json(out / TRAIN_LOG, log_rows)
        steps_run = trainer.state.global_step
        # the dataloader prefetches one batch beyond the last step
        tokens = global_count(trainer, sum(
            collator.tokens_seen[:(steps_run - _start_step(resume_from)) * cfg.grad_accum]))
        summary = {
            "adapter": str(folder), "n_train": len(enc_train),
            "n_train_by_task": dict(sorted(Counter(task_of[e.id] for e in enc_train).items())),
            "n_val": len(enc_val),
            "n_dropped": dropped, "steps": steps_run, "train_seconds": round(seconds, 3),
            "tokens": tokens, "tokens_per_s": tokens / seconds if seconds > 0 else None,
            "trainable_params": n_train, "total_params": n_total,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "best_metric": cfg.best_metric, "best_eval": trainer.state.best_metric,
            "stopped_early": bool(enc_val and cfg.patience and steps_run < trainer.state.max_steps),
            "first_loss": log_rows["train"][0]["loss"] if log_rows["train"] else None,
            "last_loss": log_rows["train"][-1]["loss"] if log_rows["train"] else None,
            "resumed_from": resume_from, "processes": launch.count,
        }
        for k, v in summary.items():
            run.add_output(k, v)
    return out, summary
