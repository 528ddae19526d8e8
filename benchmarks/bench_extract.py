"""Benchmark ``afscope extract`` against the plain per-sample loop the seeds used.

What is compared, and why
-------------------------
The seeds cached activations with the obvious loop: one sample at a time, the *full* model (every
block and the LM head, whose 262k-vocabulary logits dominate Gemma 3's FLOPs) with
``output_hidden_states=True``, then max and mean over ``hidden_states[layer + 1]``. ``afscope
extract`` claims to do the same job faster: length-bucketed batches filled to a token budget,
``inference_mode``, a forward pass that stops after the deepest requested block (no LM head), and
only pooled rows kept in memory. This script runs both on the same records in one invocation and
prints

* tokens/s of (a) the plain loop and (b) ``afscope.extract.extract`` (model loaded beforehand and
  passed as ``lm=``, so loading is not timed; the cache goes to a temporary directory);
* the peak RSS of each phase, measured honestly: each phase runs in a fresh process (multiprocessing
  "spawn"), a background thread samples that process's RSS (``/proc/self/statm``) every few
  milliseconds during the phase and the peak minus the RSS just before the phase is reported, next to
  ``ru_maxrss`` (the high-water mark of the whole child, model loading included);
* the max abs difference between the pooled values of (a) and (b) (same tokens, same layer);
* the roofline fraction of (b): useful FLOPs of the blocks it runs / wall time / the fp32 GFLOP/s of
  a 2048x2048 ``torch.mm`` measured in the same process just before the phase (best of several).
  FLOPs per token per block = 2 x (q, k, v, o and gate, up, down weights) plus attention scores and
  values 2 x 2 x keys x head_dim x n_heads, where keys is the real number of keys the token attends
  (causal, capped by the sliding window of sliding layers), summed over every sample at its real
  length. Embedding lookups, norms, rotary and activations count 0; padding counts 0 (it is waste);
* memory evidence that (b) never holds every per-token activation: its peak RSS delta next to the
  size those activations would take (total tokens x d_model x 4 bytes).

The plain loop costs 3-4 s per sample on a 2-core CPU (the LM head alone is 2 x 640 x 262144
FLOPs per token, more than the 18 blocks together), so by default it runs on the first
``--naive-n`` (16) records only and its tokens/s is compared with (b)'s over all ``--n`` records
(the records are of similar length: tokens/record is printed for both); ``--naive-n 300`` runs it
on all of them (~15-20 min on 2 cores). The pooled-value check uses the records both phases ran;
(a) always runs in float32, so with ``--dtype bfloat16`` the check measures bf16's error.
Every weight is read once before each phase (the safetensors weights are memory-mapped), so RSS
deltas are activations and buffers, not the page-in of weights.

The machine may be shared: each phase prints its process CPU time / wall (about the thread count
when the cores were ours) and the load average, so a disturbed run can be recognised.

The last line is ``ratio_vs_naive=<tokens/s (b) / tokens/s (a)>``. Nothing here asserts a timing.
``--profile`` adds a torch.profiler breakdown of (b) (matmuls vs attention vs elementwise vs
tokenization) on a few records. Usage::

    python benchmarks/bench_extract.py            # defaults: --n 300 --layer 12
    python benchmarks/bench_extract.py --quick    # smoke check, n=20
    python benchmarks/bench_extract.py --batch-tokens 4096 --threads 2 --profile
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import RssSampler, cpu_seconds, maxrss_bytes, mb

REPO = Path(__file__).resolve().parents[1]
DATA_FILE = "data/opus46_500.json"


# -- helpers that run in the phase processes ----------------------------------------------------------
def shared_dir() -> Path:
    """``$AFSCOPE_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("AFSCOPE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def matmul_gflops(size: int = 2048, reps: int = 10, dtype: str = "float32") -> float:
    """Best-of-``reps`` GFLOP/s of a ``size`` x ``size`` ``torch.mm`` (the machine's practical peak)."""
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(size, size).to(dt)
    b = torch.randn(size, size).to(dt)
    out = torch.empty(size, size, dtype=dt)
    for _ in range(2):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


@dataclass
class PhaseResult:
    name: str
    n_records: int
    tokens: int
    seconds: float
    cpu_seconds: float
    rss_baseline: int
    rss_peak: int
    rss_quarters: list[int]
    maxrss_before: int
    maxrss_after: int
    gflops_before: float
    gflops_after: float
    loadavg: tuple[float, float, float]
    threads: int
    attn: str
    dtype: str
    lengths: np.ndarray
    pooled: dict[str, np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def _setup(opts: dict[str, Any], dtype: str) -> tuple[Any, Any]:
    """Configure torch in a fresh process; load the model and the records (not timed).

    Every weight is read once before the phase: the safetensors weights are memory-mapped, so
    without this the first forward's page-in of the weights (~1 GiB for Gemma, most of it the
    262k x 640 embedding that only the LM head reads in full) would be counted as the phase's RSS.
    """
    import torch
    from transformers.utils import logging as hf_logging

    from afscope.data.load import load_dataset
    from afscope.models import load_model

    logging.basicConfig(level=logging.WARNING)
    hf_logging.disable_progress_bar()
    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    lm = load_model(opts["model"], dtype=dtype, device=opts.get("device", "cpu"))
    if opts["attn"]:
        lm.model.set_attn_implementation(opts["attn"])
    with torch.inference_mode():
        for p in lm.model.parameters():
            p.sum()
    dataset = load_dataset(opts["data"])[: opts["n_records"]]
    return lm, dataset


def _run_phase(kind: str, opts: dict[str, Any]) -> PhaseResult:
    """Body of one phase process: ``kind`` is "naive" or "extract"."""
    import torch

    dtype = opts["dtype"] if kind == "extract" else "float32"  # the peer is the fp32 reference
    lm, dataset = _setup(opts, dtype)
    layer = opts["layer"]
    gflops_before = matmul_gflops()
    gc.collect()
    maxrss_before = maxrss_bytes()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    extra: dict[str, Any] = {}
    cpu0 = cpu_seconds()
    if kind == "naive":
        n, d = len(dataset), lm.info.d_model
        pooled = {"max": np.empty((n, d), np.float32), "mean": np.empty((n, d), np.float32)}
        lengths = np.empty(n, np.int64)
        with RssSampler() as rss:
            t0 = time.perf_counter()
            with torch.no_grad():
                for i, rec in enumerate(dataset.records):
                    ids = lm.tokenizer(rec.text, return_tensors="pt")["input_ids"]
                    ids = ids[:, : opts["max_length"]]  # extract truncates the same way
                    out = lm.model(ids.to(lm.model.device), output_hidden_states=True)
                    h = out.hidden_states[layer + 1][0].float()
                    pooled["max"][i] = h.max(dim=0).values.cpu().numpy()
                    pooled["mean"][i] = h.mean(dim=0).cpu().numpy()
                    lengths[i] = ids.shape[1]
                    del out, h
            seconds = time.perf_counter() - t0
    else:
        from afscope.extract import ExtractConfig, extract

        with tempfile.TemporaryDirectory(prefix="afscope-bench-") as tmp:
            cfg = ExtractConfig(model=opts["model"], data=opts["data"], out=Path(tmp) / "cache",
                                layers=[layer], pool=["max", "mean"], dtype=dtype,
                                device=lm.info.device, batch_tokens=opts["batch_tokens"], max_length=opts["max_length"])
            with RssSampler() as rss:
                t0 = time.perf_counter()
                cache = extract(cfg, lm=lm, dataset=dataset)
                seconds = time.perf_counter() - t0
            assert cache is not None, "extract did not complete"
            pooled = {p: cache.get(layer, p) for p in ("max", "mean")}
            lengths = cache.n_tokens()
            if dtype != "float32":
                extra["gflops_dtype"] = matmul_gflops(dtype=dtype)
            if opts["profile"]:
                extra["profile"] = _profile_extract(lm, dataset, cfg, Path(tmp), opts)
    cpu = cpu_seconds() - cpu0
    return PhaseResult(
        name=kind, n_records=len(dataset), tokens=int(lengths.sum()), seconds=seconds,
        cpu_seconds=cpu, rss_baseline=rss.baseline, rss_peak=rss.peak,
        rss_quarters=rss.quarter_peaks(),
        maxrss_before=maxrss_before, maxrss_after=maxrss_bytes(), gflops_before=gflops_before,
        gflops_after=matmul_gflops(), loadavg=load0, threads=torch.get_num_threads(),
        attn=str(lm.model.config._attn_implementation), dtype=dtype,
        lengths=np.asarray(lengths), pooled=pooled, extra=extra)


_GROUPS = {
    "matmul (linear/mm/bmm)": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul",
                               "aten::linear", "mkldnn", "aten::_mkldnn"),
    "attention (sdpa kernel / softmax)": ("scaled_dot_product", "flash_attention", "softmax"),
    "elementwise/norm/rope/gelu": ("aten::mul", "aten::add", "aten::pow", "aten::mean",
                                   "aten::rsqrt", "aten::gelu", "aten::tanh", "aten::neg",
                                   "aten::cat", "aten::sum", "aten::sub", "aten::div",
                                   "aten::sin", "aten::cos", "aten::where", "aten::copy_",
                                   "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous"),
    "pooling (amax/masked_fill)": ("aten::amax", "aten::masked_fill", "aten::max"),
}


def _profile_extract(lm: Any, dataset: Any, cfg: Any, tmp: Path, opts: dict[str, Any]
                     ) -> dict[str, Any]:
    """Where (b)'s time goes, on the first ``--profile-n`` records: torch.profiler self CPU time
    grouped by kind, plus tokenization and padding measured directly."""
    from torch.profiler import ProfilerActivity, profile

    from afscope.extract import extract
    from afscope.extract.runner import plan_batches

    sub = dataset[: opts["profile_n"]]
    t0 = time.perf_counter()
    enc = lm.tokenizer([r.text for r in sub.records], add_special_tokens=True,
                       return_offsets_mapping=True)
    tok_s = time.perf_counter() - t0
    cfg2 = cfg.model_copy(update={"out": tmp / "profiled"})
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        extract(cfg2, lm=lm, dataset=sub)
    wall = time.perf_counter() - t0
    rows = [(e.key, e.self_cpu_time_total / 1e6, e.count) for e in prof.key_averages()]
    total = sum(r[1] for r in rows)
    groups: dict[str, float] = {g: 0.0 for g in _GROUPS}
    groups["other"] = 0.0
    for key, sec, _ in rows:
        for g, keys in _GROUPS.items():
            if any(k in key for k in keys):
                groups[g] += sec
                break
        else:
            groups["other"] += sec
    lengths = [min(len(x), cfg.max_length) for x in enc["input_ids"]]
    padded = sum(len(b) * max(lengths[i] for i in b)
                 for b in plan_batches(lengths, cfg.batch_tokens))
    top = sorted(rows, key=lambda r: -r[1])[:12]
    return {"n": len(sub), "wall": wall, "self_cpu_total": total, "groups": groups, "top": top,
            "tokenize_s": tok_s, "real_tokens": sum(lengths), "padded_tokens": padded}


def run_in_fresh_process(kind: str, opts: dict[str, Any]) -> PhaseResult:
    """Run one phase in a new spawned interpreter so its RSS and timings are its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=1, maxtasksperchild=1) as pool:
        return pool.apply(_run_phase, (kind, opts))


# -- FLOP counting -------------------------------------------------------------------------------------
@dataclass
class Arch:
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab: int
    windows: list[int | None]  # per block: sliding window or None (full causal attention)

    @classmethod
    def from_config(cls, config: Any) -> Arch:
        from afscope.models import text_config

        c = text_config(config)
        heads = int(c.num_attention_heads)
        head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
        types = getattr(c, "layer_types", None) or ["full_attention"] * c.num_hidden_layers
        window = getattr(c, "sliding_window", None)
        windows = [int(window) if t == "sliding_attention" and window else None for t in types]
        return cls(n_layers=int(c.num_hidden_layers), d_model=int(c.hidden_size), n_heads=heads,
                   n_kv_heads=int(getattr(c, "num_key_value_heads", None) or heads),
                   head_dim=head_dim, d_ff=int(c.intermediate_size), vocab=int(c.vocab_size),
                   windows=windows)

    @property
    def linear_flops_per_token(self) -> int:
        """2 x weights of q, k, v, o and gate, up, down of one block."""
        d, hd = self.d_model, self.head_dim
        attn = d * self.n_heads * hd * 2 + d * self.n_kv_heads * hd * 2
        return 2 * (attn + 3 * d * self.d_ff)

    def attention_flops(self, length: int, block: int) -> int:
        """QK^T and AV of one sample in one block: 2 x 2 x keys x head_dim x n_heads summed over
        positions, keys = position + 1 (causal) capped by the block's sliding window."""
        keys = np.arange(1, length + 1, dtype=np.int64)
        w = self.windows[block]
        if w is not None:
            keys = np.minimum(keys, w)
        return int(4 * self.head_dim * self.n_heads * keys.sum())

    def flops(self, lengths: np.ndarray, n_blocks: int, lm_head: bool = False) -> int:
        """Useful FLOPs of running blocks ``0..n_blocks-1`` (and the LM head) over the samples."""
        tokens = int(np.sum(lengths))
        total = tokens * n_blocks * self.linear_flops_per_token
        for length in lengths:
            total += sum(self.attention_flops(int(length), b) for b in range(n_blocks))
        if lm_head:
            total += tokens * 2 * self.d_model * self.vocab
        return total


# -- report --------------------------------------------------------------------------------------------
def _print_phase(r: PhaseResult) -> None:
    util = r.cpu_seconds / r.seconds
    print(f"  records {r.n_records}, tokens {r.tokens:,}, wall {r.seconds:.1f} s, "
          f"{r.tokens_per_s:,.1f} tokens/s ({r.tokens / r.n_records:.0f} tokens/record)")
    print(f"  threads {r.threads}, attention {r.attn}, dtype {r.dtype}; process CPU time / wall = "
          f"{util:.2f} (≈ threads when the cores are ours; lower = other load on the machine)")
    print(f"  peak RSS over the phase: +{mb(r.rss_peak - r.rss_baseline)} above the "
          f"{mb(r.rss_baseline)} before it (sampled every 5 ms); ru_maxrss of the process "
          f"{mb(r.maxrss_before)} before -> {mb(r.maxrss_after)} after (includes model loading)")
    print("  peak RSS above the baseline in each quarter of the phase: "
          + ", ".join(f"+{mb(q)}" for q in r.rss_quarters))
    print(f"  fp32 2048^3 torch.mm in this process: {r.gflops_before:.1f} GFLOP/s before, "
          f"{r.gflops_after:.1f} after; load average at start {r.loadavg[0]:.2f}")


def _print_profile(p: dict[str, Any], extract_tps: float) -> None:
    print(f"\n[profile] extract on the first {p['n']} records under torch.profiler "
          f"(wall {p['wall']:.1f} s incl. profiler overhead; self CPU time summed over ops "
          f"{p['self_cpu_total']:.1f} s)")
    for g, sec in sorted(p["groups"].items(), key=lambda kv: -kv[1]):
        print(f"  {g:<36} {sec:7.2f} s  {100 * sec / p['self_cpu_total']:5.1f}%")
    print("  top ops by self CPU time:")
    for key, sec, count in p["top"]:
        print(f"    {key:<52} {sec:7.2f} s  x{count}")
    pad = p["padded_tokens"] / p["real_tokens"] - 1
    tok_tps = p["real_tokens"] / p["tokenize_s"]
    print(f"  tokenization (fast tokenizer, with offsets): {p['tokenize_s']:.2f} s for "
          f"{p['real_tokens']:,} tokens = {tok_tps:,.0f} tokens/s "
          f"({100 * extract_tps / tok_tps:.1f}% of extract's time at its measured rate)")
    print(f"  padding: {p['padded_tokens']:,} padded vs {p['real_tokens']:,} real tokens "
          f"(+{100 * pad:.1f}%)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="records for extract (first n of the file)")
    ap.add_argument("--naive-n", type=int, default=16,
                    help="records for the plain per-sample loop (first k; 0 skips it)")
    ap.add_argument("--layer", type=int, default=12)
    ap.add_argument("--batch-tokens", type=int, default=None,
                    help="extract's token budget per batch (default: ExtractConfig's)")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", type=Path, default=None,
                    help=f"dataset (default: $AFSCOPE_SHARED/{DATA_FILE} or ../shared/{DATA_FILE})")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's)")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default=None,
                    help="attention implementation (default: what load_model picks)")
    ap.add_argument("--device", default="cpu",
                    help="torch device of both phases: cpu, cuda, cuda:N, auto (afscope's resolver)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="dtype of (b); (a) always runs in float32 as the reference")
    ap.add_argument("--profile", action="store_true",
                    help="also profile extract with torch.profiler on --profile-n records")
    ap.add_argument("--profile-n", type=int, default=24)
    ap.add_argument("--quick", action="store_true", help="smoke check: n=20, naive-n=4")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.naive_n, args.profile_n = 20, min(args.naive_n, 4), min(args.profile_n, 8)
    args.naive_n = min(args.naive_n, args.n)

    from afscope.extract import ExtractConfig
    from afscope.models import EMBEDDED, prepare

    data = args.data or shared_dir() / DATA_FILE
    if not data.exists():
        print(f"error: dataset {data} not found (set AFSCOPE_SHARED or pass --data)",
              file=sys.stderr)
        return 2
    if args.model in EMBEDDED:
        t0 = time.perf_counter()
        prepare(args.model)  # first use converts the GGUF (~1 min); not part of any phase
        prep_s = time.perf_counter() - t0
    else:
        prep_s = 0.0
    batch_tokens = args.batch_tokens or ExtractConfig.model_fields["batch_tokens"].default
    opts = {"model": args.model, "data": str(data), "layer": args.layer, "dtype": args.dtype,
            "device": args.device,
            "threads": args.threads, "attn": args.attn, "max_length": args.max_length,
            "batch_tokens": batch_tokens, "profile": args.profile, "profile_n": args.profile_n}

    from transformers import AutoConfig

    from afscope.models.embedded import prepared_path

    cfg_path = prepared_path(args.model) if args.model in EMBEDDED else args.model
    arch = Arch.from_config(AutoConfig.from_pretrained(cfg_path))
    if not 0 <= args.layer < arch.n_layers:
        print(f"error: --layer {args.layer} out of range (model has {arch.n_layers})",
              file=sys.stderr)
        return 2

    print(f"bench_extract: model {args.model}, layer {args.layer} (blocks 0..{args.layer} of "
          f"{arch.n_layers}), pools max+mean, data {data}")
    print(f"  (a) plain loop on the first {args.naive_n} records, (b) extract on the first "
          f"{args.n}; batch_tokens {batch_tokens}; each phase in a fresh spawned process; "
          f"model prepare {prep_s:.1f} s (not timed)")
    print(f"  cpu: {os.cpu_count()} cores; load average now "
          f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.2f}")

    naive = None
    if args.naive_n > 0:
        naive = run_in_fresh_process("naive", {**opts, "n_records": args.naive_n})
        print("\n(a) plain per-sample loop: full model + LM head, output_hidden_states=True, "
              "torch.no_grad")
        _print_phase(naive)
    ext = run_in_fresh_process("extract", {**opts, "n_records": args.n})
    print("\n(b) afscope.extract.extract (lm= passed in, cache in a temp dir)")
    _print_phase(ext)

    # correctness: same tokens, same pooled values
    if naive is not None:
        k = naive.n_records
        same_tokens = bool(np.array_equal(naive.lengths, ext.lengths[:k]))
        print(f"\npooled values, (a) vs (b) on the {k} records both ran "
              f"(token counts identical: {same_tokens}):")
        for p in ("max", "mean"):
            a, b = naive.pooled[p], ext.pooled[p][:k]
            diff = float(np.max(np.abs(a - b)))
            scale = float(np.max(np.abs(a)))
            spread = a.std(axis=0) if k > 1 else np.ones(a.shape[1], np.float32)
            in_std = float(np.max(np.abs(a - b) / np.maximum(spread, 1e-12)))
            print(f"  {p:<4} max abs diff {diff:.3g} (max |value| {scale:.3g}, relative "
                  f"{diff / scale:.2g}; worst dimension: {in_std:.2g} x its std across records)")

    # roofline of (b)
    n_blocks = args.layer + 1
    flops_b = arch.flops(ext.lengths, n_blocks)
    lin = ext.tokens * n_blocks * arch.linear_flops_per_token
    peak = max(ext.gflops_before, ext.gflops_after)
    achieved = flops_b / ext.seconds / 1e9
    from afscope.extract.runner import plan_batches

    lengths = [int(x) for x in ext.lengths]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in plan_batches(lengths, batch_tokens))
    print(f"\nroofline of (b): {n_blocks} blocks x {arch.linear_flops_per_token / 1e6:.2f} MFLOP/token "
          f"(2 x q,k,v,o,gate,up,down weights) = {lin / 1e12:.2f} TFLOP, + attention "
          f"{(flops_b - lin) / 1e12:.3f} TFLOP (2x2 x keys x head_dim {arch.head_dim} x "
          f"{arch.n_heads} heads; causal, sliding window {max(w or 0 for w in arch.windows)} "
          f"where the block has one; per sample at its real length)")
    print(f"  = {flops_b / 1e12:.2f} TFLOP useful ({flops_b / ext.tokens / 1e6:.1f} MFLOP/token); "
          f"achieved {achieved:.1f} GFLOP/s vs measured fp32 mm peak {peak:.1f} GFLOP/s")
    print(f"  padding in extract's batch plan: {padded:,} padded tokens for {ext.tokens:,} real "
          f"(+{100 * (padded / ext.tokens - 1):.1f}%, counted as waste)")
    print(f"roofline_fraction={achieved / peak:.2f}")
    if "gflops_dtype" in ext.extra:
        print(f"  ({ext.dtype}: the same FLOPs vs a {ext.dtype} 2048^3 mm peak of "
              f"{ext.extra['gflops_dtype']:.1f} GFLOP/s give {achieved / ext.extra['gflops_dtype']:.2f})")
    if naive is not None:
        flops_a = arch.flops(naive.lengths, arch.n_layers, lm_head=True)
        peak_a = max(naive.gflops_before, naive.gflops_after)
        print(f"  (for context, (a) runs {flops_a / naive.tokens / 1e6:.0f} MFLOP/token: all "
              f"{arch.n_layers} blocks + LM head {2 * arch.d_model * arch.vocab / 1e6:.0f}; its "
              f"roofline fraction is {flops_a / naive.seconds / 1e9 / peak_a:.2f})")

    # memory evidence
    all_acts = ext.tokens * arch.d_model * 4
    rss_b = ext.rss_peak - ext.rss_baseline
    pooled_bytes = sum(v.nbytes for v in ext.pooled.values())
    print(f"\nmemory: every per-token activation of layer {args.layer} for the {ext.n_records} "
          f"records would take {ext.tokens:,} x {arch.d_model} x 4 B = {mb(all_acts)}; "
          f"(b)'s whole peak RSS delta is {mb(rss_b)} ({rss_b / all_acts:.2f}x that), the pooled "
          f"output is {pooled_bytes / 2**20:.1f} MiB; one batch's (B, T, d) residual at "
          f"batch_tokens {batch_tokens} is {mb(batch_tokens * arch.d_model * 4)}")
    print("  (b)'s peak per quarter of its run: "
          + ", ".join(f"+{mb(q)}" for q in ext.rss_quarters)
          + " (flat = bounded by the batch, not by the number of records processed)")
    if naive is not None:
        print(f"  (a)'s peak RSS delta is {mb(naive.rss_peak - naive.rss_baseline)} for one "
              f"sample at a time (float32 logits of {int(naive.lengths.max())} x {arch.vocab} = "
              f"{mb(int(naive.lengths.max()) * arch.vocab * 4)} plus all "
              f"{arch.n_layers + 1} hidden states)")

    if args.profile and "profile" in ext.extra:
        _print_profile(ext.extra["profile"], ext.tokens_per_s)

    ratio = ext.tokens_per_s / naive.tokens_per_s if naive is not None else float("nan")
    print(f"\ntokens/s: (a) {naive.tokens_per_s if naive else float('nan'):,.1f}, "
          f"(b) {ext.tokens_per_s:,.1f}")
    print(f"ratio_vs_naive={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
