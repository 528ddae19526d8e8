"""Benchmark ``afscope explain train`` against seed 000's training loop on the same examples.

What is compared, and why
-------------------------
Seed 000 trains its explainer with TransluceAI/introspective-interp. Its collator renders each
chat with the answer, tokenizes the batch left-padded to the batch's longest row, and finds where
the answer starts by decoding: for each row it decodes growing prefixes of the tokenized chat until
the text (whitespace removed, special tokens skipped) equals the rendered prompt's, and masks the
labels before that point. The model's own forward then takes ``labels``: the full ``(B, T, V)``
logits and the HF loss. The peer here is that recipe on peft + the HF ``Trainer`` (the prompt's
reference text is decoded once per row, not once per prefix as there: a generous peer).

``afscope.explain.train.train_explainer`` tokenizes prompt and answer apart once, before training
(the labels are the answer's own ids), pads each batch to its longest row as well, and computes
logits only at the answer positions.

Both train for ``--steps`` optimizer steps of ``--batch-size`` on the same examples in the same
order (same sampler seed; the script checks that both consumed the same real tokens), with the
same LoRA settings (r, alpha, :func:`afscope.organism.train.target_modules`), lr and schedule. The
data is a context-ablation task folder (``afscope.explain.data``, task ``context_ablation``) built
from a counterfactual folder synthesized in a temp dir: the user turn of every record is a
scratchpad transcript of the synthetic corpus (``afscope.data.synth``, ``--traces`` per prompt)
plus the request, so prompts are a few hundred tokens. Each phase runs in a fresh spawned process
with ``--threads`` torch threads and the model loaded before the clock starts.

Printed: training wall / CPU time, tokens/s counting the same real (non-pad) tokens of the same
examples for both (afscope's encoding of them; the peer's own count, one token more per example
for the template's trailing newline, is printed beside it), peak RSS above the phase's start and
``ru_maxrss``; evaluation generation tokens/s (the trained explainer generates greedily the answers
of the test split through ``afscope.generate.generate`` from the token ids of
``afscope.explain.encode.encode_examples``: new tokens / seconds); last the line
``ratio_vs_naive=<afscope training tokens/s / peer training tokens/s>``. Nothing asserts a
timing. Usage::

    python benchmarks/bench_explain.py                   # 8 steps x batch 4, ~400-token prompts
    python benchmarks/bench_explain.py --traces 2        # two transcripts per prompt (~620 tokens)
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_task(root: Path, n_records: int, traces: int, seed: int = 0) -> Path:
    """A context-ablation task folder built from a synthesized counterfactual folder.

    Every record's user turn is ``traces`` scratchpad transcripts of the synthetic corpus (the
    record's own first) and its request; behaviours are drawn with a seeded RNG (about half change).
    """
    from afscope.counterfactual.schema import (
        CONTEXT_FIELDS,
        split_by_scenario,
        write_dataset,
    )
    from afscope.data.cues import MONITORED_SYSTEM, UNMONITORED_SYSTEM
    from afscope.data.synth.generator import generate_corpus
    from afscope.data.synth.scenarios import HARMFUL
    from afscope.explain.data import ExplainDataConfig, build_task_data
    from afscope.judge.rules import BEHAVIOURS

    harmful = {s.key for s in HARMFUL}
    corpus = generate_corpus(n_records * traces, seed=seed)
    rng = random.Random(seed)
    records = []
    for i in range(n_records):
        own = corpus[i]
        shown = [own] + [corpus[(i + k * n_records) % len(corpus)] for k in range(1, traces)]
        transcript = "\n\n".join(r.text for r in shown)
        request = f"I need {own.extra['request']}."
        user = f"Transcript of the conversation so far:\n\n{transcript}\n\n{request}"
        before = rng.choice(BEHAVIOURS)
        after = before if rng.random() < 0.5 else rng.choice([b for b in BEHAVIOURS if b != before])
        rec = {
            "ablation_prompt": user, "system_prompt": MONITORED_SYSTEM, "hint": "monitoring context",
            "hint_prompt_full": _chatml(MONITORED_SYSTEM, user),
            "original_prompt_full": _chatml(UNMONITORED_SYSTEM, user),
            "random_hint_prediction": before, "zeroshot_prediction": after,
            "changed_pred_bc_hint": before != after, "hint_user_prompt": user,
            "unmonitored_system_prompt": UNMONITORED_SYSTEM,
            "response_monitored": own.text, "response_unmonitored": own.text,
            "original_user_prompt": user,
            "label": "harmful" if own.extra["scenario"] in harmful else "benign",
            "id": f"bench-{i:04d}", "scenario": own.extra["scenario"],
            "behaviour_monitored": before, "behaviour_unmonitored": after,
            "af_monitored": False, "af_unmonitored": False, "changed": before != after,
            "judge_method": "rules", "model": "synthetic",
        }
        records.append({k: rec[k] for k in CONTEXT_FIELDS})
    train, test = split_by_scenario(records, 0.25, seed)
    cf = root / "counterfactual"
    cf.mkdir(parents=True)
    write_dataset(cf, train, test, {"n_train": len(train), "n_test": len(test)})
    folder, _ = build_task_data(ExplainDataConfig(task="context_ablation", source=cf,
                                                  out=root / "task"))
    return folder


def _chatml(system: str, user: str) -> str:
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def _squash(text: str) -> str:
    return "".join(text.split())


class SeedCollator:
    """Seed 000's collate step (see the module docstring): chats left-padded to the batch max,
    labels masked before the answer found by decoding growing prefixes of each row."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer
        self.real: list[int] = []  # non-pad tokens of each batch built (own tokenization)
        self.ours: list[int] = []  # afscope's token count of the same examples
        self.padded: list[int] = []  # B x T of each batch
        self.not_found = 0

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:

        tok = self.tok
        enc = tok([r["full"] for r in rows], padding=True, return_tensors="pt",
                  padding_side="left")
        enc_prompt = tok([r["prompt"] for r in rows], padding=True, return_tensors="pt",
                         padding_side="left")
        ids, att = enc["input_ids"], enc["attention_mask"]
        labels = ids.clone()
        T = ids.shape[1]
        for i in range(len(rows)):
            start = T - int(att[i].sum())
            row = ids[i, start:].tolist()
            p = enc_prompt["input_ids"][i][enc_prompt["attention_mask"][i].bool()].tolist()
            ref = _squash(tok.decode(p, skip_special_tokens=True))
            for t in range(1, len(row) + 1):
                if _squash(tok.decode(row[:t], skip_special_tokens=True)) == ref:
                    labels[i, :start + t] = -100
                    break
            else:
                self.not_found += 1
                labels[i, :] = -100
        self.real.append(int(att.sum()))
        self.ours.append(sum(r["n_ours"] for r in rows))
        self.padded.append(int(ids.numel()))
        return {"input_ids": ids, "attention_mask": att, "labels": labels}


def _train_phase(kind: str, task: Path, out: Path, model_name: str, steps: int, batch_size: int,
                 max_length: int, threads: int, device: str = "cpu") -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    from _common import RssSampler, cpu_seconds, maxrss_bytes

    from afscope.explain.config import ExplainTrainConfig
    from afscope.models import load_model

    cfg = ExplainTrainConfig(data=[task], model=model_name, out=out, max_steps=steps,
                             batch_size=batch_size, max_length=max_length, lr=1e-3,
                             val_fraction=0.0, eval_steps=steps + 1, seed=0, device=device)
    lm = load_model(model_name, device=device)
    if kind == "ours":
        from afscope.explain.train import train_explainer

        with RssSampler() as rss:
            t0, c0 = time.perf_counter(), cpu_seconds()
            _, s = train_explainer(cfg, lm=lm)
            call, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        return {"wall_s": s["train_seconds"], "call_s": call, "cpu_s": cpu, "tokens": s["tokens"],
                "own_tokens": s["tokens"], "steps": s["steps"], "loss": s["last_loss"],
                "rss_peak": rss.peak - rss.baseline, "maxrss": maxrss_bytes(), "padded": None,
                "not_found": 0}
    return _seed_train(cfg, lm)


def _seed_train(cfg: Any, lm: Any) -> dict[str, Any]:
    from _common import RssSampler, cpu_seconds, maxrss_bytes
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    from afscope.explain.encode import encode_examples
    from afscope.explain.schema import TRAIN_FILE, read_examples
    from afscope.models import render_chat
    from afscope.organism.train import target_modules

    tok = lm.tokenizer
    examples = read_examples(cfg.data[0] / TRAIN_FILE)
    kept, _ = encode_examples(tok, examples, max_length=cfg.max_length)
    n_ours = {e.id: e.n_tokens for e in kept}
    rows = []
    for ex in examples:
        if ex.id not in n_ours:
            continue
        chat = ex.chat()
        rows.append({"n_ours": n_ours[ex.id],
                     "prompt": render_chat(tok, chat, add_generation_prompt=True),
                     "full": render_chat(tok, [*chat, {"role": "assistant", "content": ex.answer}],
                                         add_generation_prompt=False)})
    set_seed(cfg.seed)
    model = get_peft_model(lm.model, LoraConfig(
        r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=target_modules(lm.model, cfg.target_modules), task_type="CAUSAL_LM",
        bias="none"))
    collate = SeedCollator(tok)
    targs = TrainingArguments(
        output_dir=str(cfg.out), per_device_train_batch_size=cfg.batch_size,
        max_steps=cfg.max_steps, learning_rate=cfg.lr, lr_scheduler_type=cfg.scheduler,
        weight_decay=cfg.weight_decay, logging_steps=1, save_strategy="no", report_to=[],
        seed=cfg.seed, data_seed=cfg.seed, use_cpu=cfg.device == "cpu", disable_tqdm=True,
        dataloader_num_workers=0, remove_unused_columns=False)
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate)
    trainer.remove_callback(PrinterCallback)
    with RssSampler() as rss:
        t0, c0 = time.perf_counter(), cpu_seconds()
        trainer.train()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    n = trainer.state.global_step  # the dataloader prefetches one batch past the last step
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"wall_s": wall, "call_s": wall, "cpu_s": cpu, "tokens": sum(collate.ours[:n]),
            "own_tokens": sum(collate.real[:n]), "steps": n, "loss": losses[-1] if losses else None,
            "rss_peak": rss.peak - rss.baseline, "maxrss": maxrss_bytes(),
            "padded": sum(collate.padded[:n]), "not_found": collate.not_found}


def _eval_phase(task: Path, run_dir: Path, n: int, new_tokens: int, batch_size: int,
                max_length: int, threads: int, device: str = "cpu") -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    from _common import RssSampler, cpu_seconds, maxrss_bytes

    from afscope.explain.encode import encode_examples
    from afscope.explain.schema import TEST_FILE, read_examples
    from afscope.explain.train import load_explainer
    from afscope.generate import GenerationParams, generate

    lm, meta = load_explainer(run_dir, device=device)
    examples = read_examples(task / TEST_FILE)[:n]
    enc, _ = encode_examples(lm.tokenizer, examples, max_length=max_length,
                             placeholder=meta["placeholder"])
    prompts = [e.prompt for e in enc]
    with RssSampler() as rss:
        t0, c0 = time.perf_counter(), cpu_seconds()
        gens = generate(lm.model, lm.tokenizer, prompts, GenerationParams(max_tokens=new_tokens),
                        batch_size=batch_size)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"wall_s": wall, "cpu_s": cpu, "tokens": sum(len(g.token_ids) for g in gens),
            "rows": len(prompts), "prompt_tokens": sum(map(len, prompts)),
            "rss_peak": rss.peak - rss.baseline, "maxrss": maxrss_bytes()}




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps of each training phase")
    ap.add_argument("--batch-size", type=int, default=4, help="examples per step")
    ap.add_argument("--max-length", type=int, default=1024,
                    help="longest example in tokens (longer ones are left out of both phases)")
    ap.add_argument("--records", type=int, default=48, help="counterfactual records (3 examples "
                    "each; about a quarter of the scenarios go to the test split)")
    ap.add_argument("--traces", type=int, default=1, help="corpus transcripts per prompt")
    ap.add_argument("--eval-n", type=int, default=8, help="test examples to generate for")
    ap.add_argument("--new-tokens", type=int, default=48, help="max new tokens per explanation")
    ap.add_argument("--eval-batch-size", type=int, default=8, help="prompts per generate call")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each phase")
    ap.add_argument("--device", default="cpu", help="torch device of every phase (cpu, cuda, "
                    "cuda:N, auto); the explainer trains in float32 on it")
    args = ap.parse_args(argv)

    import os

    from _common import mb, run_phase

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = build_task(root / "data", args.records, args.traces)
        from afscope.explain.schema import TRAIN_FILE, read_examples

        n_train = len(read_examples(task / TRAIN_FILE))
        print(f"bench_explain: {args.model}, context-ablation task ({n_train} train examples, "
              f"{args.traces} transcript(s) per prompt), {args.steps} steps x batch "
              f"{args.batch_size}, max_length {args.max_length}, {args.threads} threads; each "
              "phase in a fresh spawned process")
        res = {k: run_phase(_train_phase, k, task, root / k, args.model, args.steps,
                            args.batch_size, args.max_length, args.threads, args.device)
               for k in ("naive", "ours")}
        ev = run_phase(_eval_phase, task, root / "ours", args.eval_n, args.new_tokens,
                       args.eval_batch_size, args.max_length, args.threads, args.device)
    a, b = res["naive"], res["ours"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    same = a["tokens"] == b["tokens"] and a["steps"] == b["steps"]
    per = b["tokens"] / max(1, b["steps"] * args.batch_size)
    print(f"  {b['steps']} steps, {b['tokens']} real tokens ({per:.0f} per example), "
          f"{a['padded']} with the padding to each batch's longest row; same examples in both: "
          f"{'yes' if same else 'NO (peer: ' + str(a['tokens']) + ' tokens)'}")
    for label, r in (("seed 000 recipe (peft+Trainer)", a), ("afscope explain train", b)):
        print(f"  {label:<31} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s cpu  "
              f"{r['tokens'] / r['wall_s']:7.1f} tokens/s  peak RSS +{mb(r['rss_peak'])} "
              f"(ru_maxrss {mb(r['maxrss'])})  last loss {r['loss']:.3f}")
    print(f"  peer's own non-pad token count: {a['own_tokens']} ({a['not_found']} rows without "
          f"a found answer start); afscope's train_explainer call incl. encoding and adapter "
          f"save: {b['call_s']:.1f} s")
    print(f"  eval generation (afscope.generate, trained explainer, {ev['rows']} test prompts, "
          f"{ev['prompt_tokens'] / max(ev['rows'], 1):.0f} prompt tokens each, <= {args.new_tokens}"
          f" new, batch {args.eval_batch_size}): {ev['tokens']} new tokens in {ev['wall_s']:.1f} s"
          f" = {ev['tokens'] / ev['wall_s']:.1f} tokens/s, cpu {ev['cpu_s']:.1f} s, peak RSS "
          f"+{mb(ev['rss_peak'])} (ru_maxrss {mb(ev['maxrss'])})")
    print(f"  load average {load:.1f}")
    print(f"ratio_vs_naive={(b['tokens'] / b['wall_s']) / (a['tokens'] / a['wall_s']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
