"""Benchmark ``afscope organism train`` against a plain peft + Trainer loop on the same data.

What is compared
----------------
(a) the obvious recipe: render each chat with the template, tokenize with
    ``padding="max_length"`` (every row padded to ``--max-length``), labels = input ids with pads
    set to -100 (loss on the prompt too), peft ``get_peft_model`` with the same LoRA settings, HF
    ``Trainer`` with the same batch size, steps, lr and seed;
(b) ``afscope.organism.train_organism``: assistant-only labels from token offsets, batches padded to
    their longest row (``DataCollatorForSeq2Seq``), same LoRA settings and steps.

Both train for ``--steps`` optimizer steps on the first ``--n`` train-split examples of a fresh
``afscope organism data`` set; the model is loaded before each phase (not timed). Printed: real
(non-pad) tokens/s, padded tokens/s, steps/s, CPU time / wall and the ratio (b)/(a). Real tokens/s
is the fair unit: (a) spends FLOPs on padding, which is the point of the comparison.

Run: ``python benchmarks/bench_organism_train.py --model smollm2-135m-instruct --steps 10``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds  # noqa: E402


def plain(model_name: str, examples: list[dict], args: argparse.Namespace, work: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    from afscope.models import load_model, render_chat
    from afscope.organism import target_modules

    lm = load_model(model_name)
    tok = lm.tokenizer
    rows = []
    for ex in examples:
        text = render_chat(tok, ex["messages"], add_generation_prompt=False)
        enc = tok(text, padding="max_length", truncation=True, max_length=args.max_length)
        labels = [t if m else -100 for t, m in zip(enc["input_ids"], enc["attention_mask"])]
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                     "labels": labels})
    set_seed(0)
    model = get_peft_model(lm.model, LoraConfig(
        r=16, lora_alpha=32, target_modules=target_modules(lm.model), task_type="CAUSAL_LM"))
    real: list[int] = []  # non-pad tokens per batch built (one is prefetched past the end)

    def collate(batch: list[dict]) -> dict:
        out = {k: torch.tensor([b[k] for b in batch]) for k in batch[0]}
        real.append(int(out["attention_mask"].sum()))
        return out

    targs = TrainingArguments(output_dir=str(work), per_device_train_batch_size=args.batch_size,
                              max_steps=args.steps, learning_rate=1e-3, logging_steps=1,
                              save_strategy="no", report_to=[], seed=0, use_cpu=True,
                              disable_tqdm=True, remove_unused_columns=False)
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate)
    trainer.remove_callback(PrinterCallback)
    c0, t0 = cpu_seconds(), time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    padded = args.steps * args.batch_size * args.max_length
    return {"wall": wall, "cpu": cpu_seconds() - c0, "real": sum(real[: args.steps]),
            "padded": padded}


def ours(model_name: str, data: Path, args: argparse.Namespace, out: Path) -> dict:
    from afscope.models import load_model
    from afscope.organism import OrganismTrainConfig, train_organism

    lm = load_model(model_name)
    cfg = OrganismTrainConfig(model=model_name, data=data, out=out, max_steps=args.steps,
                              lr=1e-3, batch_size=args.batch_size, max_length=args.max_length)
    c0 = cpu_seconds()
    _, s = train_organism(cfg, lm=lm)
    return {"wall": s["train_seconds"], "cpu": cpu_seconds() - c0, "real": s["tokens"],
            "padded": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=64, help="training examples")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args()

    import json

    from afscope.organism import OrganismDataConfig, build_organism_data, read_examples

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path, _ = build_organism_data(OrganismDataConfig(n=args.n * 2, out=tmp / "data"))
        examples = read_examples(path, "train")[: args.n]
        subset = tmp / "subset.jsonl"
        subset.write_text("".join(json.dumps(e) + "\n" for e in examples))
        a = plain(args.model, examples, args, tmp / "plain")
        b = ours(args.model, subset, args, tmp / "ours")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model {args.model}, {args.steps} steps x batch {args.batch_size}, max_length "
          f"{args.max_length}, load average {load:.1f}")
    for name, r in (("(a) plain peft+Trainer, pad to max_length", a),
                    ("(b) afscope organism train", b)):
        padded = f", padded {r['padded'] / r['wall']:,.0f} tok/s" if r["padded"] else ""
        print(f"{name:44s} real {r['real'] / r['wall']:8,.0f} tok/s{padded}, "
              f"{args.steps / r['wall']:.2f} steps/s, cpu/wall {r['cpu'] / r['wall']:.2f}")
    print(f"ratio (b)/(a), real tokens/s: {(b['real'] / b['wall']) / (a['real'] / a['wall']):.2f}x; "
          f"steps/s: {a['wall'] / b['wall']:.2f}x")


if __name__ == "__main__":
    main()
