"""LoRA fine-tuning of a model organism: peft on the HF ``Trainer`` (so accelerate / DDP work).

Loss is on the assistant turn only: each chat is rendered with the model's chat template (the same
rendering generation uses), tokenized once with character offsets, and a token is a label iff its
characters overlap the assistant content plus the end-of-turn token; everything else is -100.
Batches are padded to their longest row by ``DataCollatorForSeq2Seq``. The run directory gets the
adapter (``adapter/adapter_model.safetensors`` + ``adapter_config.json``), ``train_log.json``
(loss per step) and tokens/s in the manifest; no optimizer state and nothing pickled.

Many devices: under ``torchrun`` / ``accelerate launch`` the Trainer trains with DDP. The helpers
below (shared with ``explain train``) keep such a run equal to one process: ``batch_size`` is the
global batch (accelerate's ``split_batches`` gives each of N processes ``batch_size/N`` of the
batch one process would take), the data order is seeded by ``seed`` and the epoch only, the loss
is normalized by the answer tokens of the whole global batch, and only rank 0 writes the run
directory.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from afscope.distributed import Launch, split_batch, training_launch
from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.fileio import atomic_dir, atomic_write_json, sha256_file, sha256_json
from afscope.models import LoadedModel, load_model, render_chat
from afscope.organism.config import OrganismTrainConfig
from afscope.organism.data import read_examples
from afscope.progress import trainer_progress
from afscope.runs import Run, start_run

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
TRAIN_LOG = "train_log.json"
#: Projection names of the attention and MLP blocks of llama, gemma and mistral.
DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                    "up_proj", "down_proj")


@dataclass
class Encoded:
    """One tokenized chat: ``input_ids (T,)`` and ``labels (T,)`` (-100 outside the answer)."""

    input_ids: list[int]
    labels: list[int]


def target_modules(model: torch.nn.Module, wanted: Sequence[str] | None = None) -> list[str]:
    """Names (last component) of the ``nn.Linear`` modules LoRA adapts, found in ``model``.

    Default :data:`DEFAULT_TARGETS`; a name with no matching linear layer is a ConfigError.
    """
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear)}
    wanted = list(wanted) if wanted else [t for t in DEFAULT_TARGETS if t in names]
    missing = [t for t in wanted if t not in names]
    if missing or not wanted:
        raise ConfigError(f"field 'target_modules': no linear layer named {missing or wanted} in "
                          f"{type(model).__name__}; its linear layers are {sorted(names)}")
    return wanted


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], max_length: int,
                template: str | None = None) -> Encoded:
    """Tokenize a chat whose last turn is the assistant's; labels cover that turn only.

    The labelled character span is ``[start of the assistant content, its end + the EOS string
    when the template writes one right after it)``; templates that end a turn without EOS (the
    plain template of base models) get EOS inserted there, so the organism learns to stop.
    Truncated to ``max_length`` tokens from the right.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError("encode_chat: the last message must be the assistant's")
    head = render_chat(tokenizer, messages[:-1], add_generation_prompt=True, template=template)
    full = render_chat(tokenizer, messages, add_generation_prompt=False, template=template)
    answer = messages[-1]["content"]
    if not full.startswith(head):
        raise DataError("encode_chat: the chat template renders the prompt differently with and "
                        "without the answer; cannot locate the assistant turn")
    start = full.find(answer, len(head))
    if start < 0:
        raise DataError("encode_chat: assistant content not found in the rendered chat")
    end = start + len(answer)
    eos = tokenizer.eos_token or ""
    if eos and not full.startswith(eos, end):
        full = full[:end] + eos + full[end:]
    end += len(eos)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    labels = [t if (b > start and a < end and b > a) else -100
              for t, (a, b) in zip(ids, offsets)]
    bos = tokenizer.bos_token_id
    if bos is not None and tokenizer("a")["input_ids"][:1] == [bos] and ids[:1] != [bos]:
        ids, labels = [bos, *ids], [-100, *labels]  # as the generation engine encodes prompts
    return Encoded(ids[:max_length], labels[:max_length])


class _Counting:
    """Wraps a collator and records the non-pad tokens of each batch it builds (for tokens/s).

    The dataloader prefetches a batch beyond the last step, so a run's tokens are the first
    ``steps x grad_accum`` entries of ``per_batch``, not their sum.
    """

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.per_batch: list[int] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(features)
        self.per_batch.append(int(batch["attention_mask"].sum()))
        return batch


def build_dataset(tokenizer: Any, examples: Sequence[dict[str, Any]], max_length: int
                  ) -> list[dict[str, list[int]]]:
    """Encoded rows for the Trainer; rows whose answer is truncated away entirely are dropped."""
    rows, dropped = [], 0
    for ex in examples:
        e = encode_chat(tokenizer, ex["messages"], max_length)
        if all(x == -100 for x in e.labels):
            dropped += 1
            continue
        rows.append({"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids),
                     "labels": e.labels})
    if dropped:
        log.warning("%d of %d examples dropped: no answer token within max_length=%d",
                    dropped, len(examples), max_length)
    if not rows:
        raise ConfigError(f"field 'max_length': {max_length} tokens leave no answer token in any "
                          "example; raise it")
    return rows


def add_lora(model: Any, cfg: OrganismTrainConfig) -> Any:
    """``model`` wrapped in a fresh LoRA adapter (seeded init); only LoRA weights train."""
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(cfg.seed)
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target_modules(model, cfg.target_modules),
                      task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, lora)


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# ---- many devices: shared by organism train and explain train ----------------------------------

def check_bf16(bf16: bool, device: str) -> None:
    """Refuse ``bf16`` on a device that cannot compute in bf16 (one clear message, before any
    model is loaded, instead of an error deep in autocast)."""
    if not bf16:
        return
    from transformers.utils import is_torch_bf16_available_on_device

    kind = torch.device(device).type
    if not is_torch_bf16_available_on_device(kind):
        raise ConfigError(f"field 'bf16': this {kind} device cannot compute in bf16 (no bf16 "
                          "autocast here); leave bf16 off (fp32) on this machine")


@contextlib.contextmanager
def rank_run(command: str, config: dict[str, Any], out: Path, launch: Launch) -> Iterator[Run]:
    """:func:`~afscope.runs.start_run` in ``out`` on rank 0; any other rank of a DDP run keeps its
    manifest in a temporary folder, removed on exit, so only rank 0 writes the run directory."""
    if launch.is_main:
        with start_run(command, config, out) as run:
            yield run
        return
    with tempfile.TemporaryDirectory(prefix=f"afscope-rank{launch.index}-") as tmp:
        with start_run(command, config, Path(tmp) / "run") as run:
            yield run


def scale_args(cfg: Any, launch: Launch) -> dict[str, Any]:
    """``TrainingArguments`` keywords for ``cfg``'s global batch, precision and memory options.

    ``per_device_train_batch_size`` is the *global* batch: with ``split_batches`` accelerate cuts
    each batch the sampler makes into ``launch.count`` equal parts, so the batches (and the
    sampler, which sees the global batch size) are those of one process.
    """
    split_batch(cfg.batch_size, launch)
    check_bf16(cfg.bf16, cfg.device)
    return dict(per_device_train_batch_size=cfg.batch_size, bf16=cfg.bf16,
                accelerator_config={"split_batches": True},
                activation_checkpointing=cfg.gradient_checkpointing,
                # non-reentrant: the frozen embeddings give LoRA's inputs no grad; reentrant
                # checkpointing would then drop every LoRA gradient
                activation_checkpointing_kwargs={"use_reentrant": False}
                if cfg.gradient_checkpointing else None,
                seed=cfg.seed, data_seed=cfg.seed)


def _length_grouped_class() -> Any:
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class SeededLengthGroupedSampler(LengthGroupedSampler):
        """HF's length-grouped order (random mega-batches of ``50 x batch``, each sorted by
        length) drawn from ``seed + epoch``: the same on every rank and in a resumed run
        (HF's own draws from the global RNG, which training itself moves)."""

        def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
            super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Iterator[int]:
            self.generator.manual_seed(self.seed + self.epoch)
            return super().__iter__()

    return SeededLengthGroupedSampler


def train_sampler(dataset: Sequence[dict[str, Any]], args: Any, group_by_length: bool) -> Any:
    """The sampler of a training run: None (the Trainer's seeded random order, accelerate's
    ``SeedableRandomSampler``) or, with ``group_by_length``, length-grouped mega-batches of the
    global batch x ``grad_accum`` (one optimizer step's examples have similar lengths)."""
    if not group_by_length:
        return None
    lengths = [len(row["input_ids"]) for row in dataset]
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
    return _length_grouped_class()(batch, lengths, args.data_seed)


def _organism_trainer(group_by_length: bool) -> Any:
    from transformers import Trainer

    class OrganismTrainer(Trainer):
        """The HF Trainer with :func:`train_sampler` (seeded length grouping when asked)."""

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            dataset = self.train_dataset if train_dataset is None else train_dataset
            return (train_sampler(dataset, self.args, group_by_length)
                    or super()._get_train_sampler(train_dataset))

    return OrganismTrainer


def global_count(trainer: Any, n: int) -> int:
    """``n`` summed over the DDP processes of ``trainer`` (each counted its share of a batch)."""
    if trainer.accelerator.num_processes == 1:
        return n
    total = trainer.accelerator.reduce(torch.tensor(n, device=trainer.args.device), "sum")
    return int(total.item())


def fit_lora(peft_model: Any, tokenizer: Any, rows: list[dict[str, list[int]]],
             cfg: OrganismTrainConfig, workdir: str | Path, launch: Launch | None = None
             ) -> dict[str, Any]:
    """Train with the HF Trainer; returns ``{"log": [...], "tokens": n, "seconds": s, ...}``.

    ``save_strategy="no"`` + ``save_only_model``: no checkpoint, no optimizer state on disk.
    ``launch`` (default: the environment's) says how many DDP processes share the global batch;
    ``tokens`` counts this process's share.
    """
    from transformers import DataCollatorForSeq2Seq, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    launch = training_launch() if launch is None else launch
    args = TrainingArguments(
        output_dir=str(workdir), gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay, logging_steps=1,
        save_strategy="no", save_only_model=True, report_to=[], use_cpu=cfg.device == "cpu",
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
        ddp_find_unused_parameters=False,  # every LoRA weight is used in every step
        **scale_args(cfg, launch))
    collator = _Counting(DataCollatorForSeq2Seq(tokenizer, padding="longest",
                                                label_pad_token_id=-100, return_tensors="pt"))
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "right"  # training positions start at 0 for every row
    try:
        trainer = _organism_trainer(cfg.group_by_length)(
            model=peft_model, args=args, train_dataset=rows, data_collator=collator,
            callbacks=[trainer_progress("organism LoRA steps")])
        trainer.remove_callback(PrinterCallback)  # the loss goes to train_log.json, not stdout
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    finally:
        tokenizer.padding_side = old_side
    peft_model.eval()
    steps = [{"step": h["step"], "loss": h["loss"], "lr": h.get("learning_rate"),
              "epoch": h.get("epoch")} for h in trainer.state.log_history if "loss" in h]
    tokens = global_count(trainer, sum(collator.per_batch[: trainer.state.global_step
                                                          * cfg.grad_accum]))
    return {"log": steps, "tokens": tokens, "seconds": seconds,
            "steps": trainer.state.global_step,
            "tokens_per_s": tokens / seconds if seconds > 0 else None}


def save_adapter(peft_model: Any, folder: str | Path) -> Path:
    """Write the adapter folder atomically (peft's safetensors + ``adapter_config.json``)."""
    with atomic_dir(folder) as tmp:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
    folder = Path(folder)
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise ArtifactError(f"{folder}: peft wrote no {ADAPTER_WEIGHTS}")
    return folder


def adapter_folder(path: str | Path) -> Path:
    """The adapter folder of ``path``: the folder itself or a train run's ``adapter/``."""
    path = Path(path)
    for cand in (path, path / ADAPTER_DIR):
        if (cand / ADAPTER_CONFIG).is_file() and (cand / ADAPTER_WEIGHTS).is_file():
            return cand
    raise ArtifactError(f"{path}: not a LoRA adapter folder (no {ADAPTER_CONFIG} and "
                        f"{ADAPTER_WEIGHTS}, nor under {ADAPTER_DIR}/)")


def base_model_name(name: str) -> str:
    """The base model of a model name: ``<base>`` of an organism's ``<base>+organism``."""
    return str(name).split("+", 1)[0]


def load_organism(base: str | LoadedModel, adapter: str | Path, *, merge: bool = True,
                  dtype: str = "float32", device: str = "cpu") -> LoadedModel:
    """The base model with the adapter applied (merged into the weights for speed by default).

    A loaded ``base`` is wrapped in place (pass a copy to keep it). The returned
    :class:`ModelInfo` names the organism (``<base>+organism``, weights hash of base weights +
    adapter), so stores keyed by the model fingerprint never mix its answers with the base's.
    """
    import dataclasses

    from peft import PeftModel

    lm = base if isinstance(base, LoadedModel) else load_model(base, dtype=dtype, device=device)
    folder = adapter_folder(adapter)
    model = PeftModel.from_pretrained(lm.model, str(folder))
    if merge:
        model = model.merge_and_unload()
    model.eval()
    info = dataclasses.replace(
        lm.info, name=f"{lm.info.name}+organism",
        weights_sha256=sha256_json([lm.info.weights_sha256, sha256_file(folder / ADAPTER_WEIGHTS)]))
    return LoadedModel(model=model, tokenizer=lm.tokenizer, info=info)


def train_organism(cfg: OrganismTrainConfig, *, lm: LoadedModel | None = None
                   ) -> tuple[Path, dict[str, Any]]:
    """Train a LoRA organism; returns the adapter folder and the training summary.

    ``lm`` reuses a loaded base model: peft injects the LoRA layers into it in place (pass a copy
    to keep the base model clean). Under torchrun / accelerate launch every rank trains (DDP)
    and only rank 0 writes ``OUT``; the others return the same folder and their own summary.
    """
    out = Path(cfg.out)
    launch = training_launch()
    split_batch(cfg.batch_size, launch)
    check_bf16(cfg.bf16, cfg.device)
    with rank_run("organism train", cfg.to_dict(), out, launch) as run:
        examples = read_examples(cfg.data, cfg.split)
        run.add_dataset("data", {"path": str(cfg.data), "sha256": sha256_file(cfg.data),
                                 "split": cfg.split, "n": len(examples)})
        with run.timer("load_model"):
            if lm is None:
                lm = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
        run.add_model("base", lm.info.to_dict())
        rows = build_dataset(lm.tokenizer, examples, cfg.max_length)
        peft_model = add_lora(lm.model, cfg)
        n_train, n_total = trainable_parameters(peft_model)
        with run.timer("train"), tempfile.TemporaryDirectory(dir=run.path) as work:
            result = fit_lora(peft_model, lm.tokenizer, rows, cfg, work, launch)
        folder = out / ADAPTER_DIR
        if launch.is_main:
            save_adapter(peft_model, folder)
            atomic_write_json(out / TRAIN_LOG, result["log"])
        summary = {"adapter": str(folder), "n_examples": len(rows), "steps": result["steps"],
                   "tokens": result["tokens"], "tokens_per_s": result["tokens_per_s"],
                   "train_seconds": round(result["seconds"], 3),
                   "trainable_params": n_train, "total_params": n_total,
                   "processes": launch.count,
                   "first_loss": result["log"][0]["loss"] if result["log"] else None,
                   "last_loss": result["log"][-1]["loss"] if result["log"] else None}
        for k, v in summary.items():
            run.add_output(k, v)
    return folder, summary
