"""Benchmark afscope's TopK SAE trainer against SAELens's own trainer on the same cached tokens.

What is compared, and why
-------------------------
``afscope sae train`` claims to train a TopK SAE the way SAELens and sparsify do (AuxK, a dead
window in tokens, gradient clipping, unit-norm decoder rows with the parallel gradient removed)
and faster on a CPU (only the k chosen latents get gradient: one dense matmul per step instead of
six). The peer is SAELens 6's own ``SAETrainer`` with its ``TopKTrainingSAE``, fed the cached
activations through its ``DataProvider`` interface (an iterator of ``(B, d_in)`` batches; no
``HookedTransformer`` involved). Both get

* the same training tokens: residual stream of ``--model`` (``smollm2-135m-instruct``) at
  ``--layer`` over the records of ``--data`` that afscope's held-out split keeps for training
  (:func:`afscope.sae.run.split_records`, by text, seeded), at most ``--train-tokens`` of them;
* the same width ``--d-sae``, ``k``, batch size, learning rate, linear decay over the last
  ``--lr-decay-fraction`` of the steps, and token budget (``--epochs`` passes over the tokens);
  the dead window is the same number of tokens (SAELens counts it in steps: tokens / batch);
  everything else is each library's default (SAELens: MSE loss, aux coefficient 1.0, decoder init
  norm 0.1 with ``rescale_acts_by_decoder_norm``, clip at 1.0; afscope: FVU, AuxK 1/32 scaled by
  dead/k_aux, unit rows, clip at 1.0);
* the same evaluation, on the held-out texts' tokens (``--heldout-tokens``, never trained on):
  explained variance ``1 - SSE/SST`` (SST around the held-out mean), mean L0, dead fraction.

Tokens are collected once and cached in ``runs/bench_cache/`` (keyed by model, data file hash,
layer, counts, seed); a rerun starts from the cache. Each trainer runs in a fresh spawned process
(its own imports and memory peak; a thread samples RSS every 5 ms) with ``--threads`` torch
threads. Throughput is training tokens / wall seconds of the training loop (afscope's
``tokens_per_s``; SAELens's ``SAETrainer.fit``), evaluation excluded. The machine may be shared:
each phase prints its CPU time / wall and the load average.

The last line is ``ratio_vs_saelens=<afscope tokens/s / SAELens tokens/s>``; the line before says
whether afscope's held-out explained variance is equal or better. Nothing here asserts a timing::

    python benchmarks/bench_sae_train.py                  # defaults: 100k tokens x 3 epochs
    python benchmarks/bench_sae_train.py --quick          # smoke check (20k tokens, d_sae 1024)
    python benchmarks/bench_sae_train.py --train-tokens 200000 --epochs 10 --d-sae 8192
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: find _common
from _common import RssSampler, cpu_seconds, mb, run_phase

REPO = Path(__file__).resolve().parents[1]
DATA_FILE = "data/opus46_500.json"
MODEL = "smollm2-135m-instruct"


def shared_dir() -> Path:
    """``$AFSCOPE_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("AFSCOPE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def _loadavg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


# -- phase 0: the tokens --------------------------------------------------------------------------
def cache_path(opts: dict[str, Any]) -> Path:
    data = Path(opts["data"])
    sha = hashlib.sha256(data.read_bytes()).hexdigest()[:12]
    key = (f"{opts['model']}_{data.stem}-{sha}_L{opts['layer']}_len{opts['max_length']}_"
           f"{opts['train_tokens']}+{opts['heldout_tokens']}_f{opts['heldout_fraction']}_"
           f"s{opts['seed']}")
    return REPO / "runs" / "bench_cache" / f"sae_tokens_{key}.safetensors"


def collect_phase(opts: dict[str, Any]) -> dict[str, Any]:
    """Run the model over the train and held-out records (split by text) and cache the tokens."""
    import torch
    from safetensors.numpy import save_file

    from afscope.data.load import load_dataset
    from afscope.extract.runner import collect_tokens
    from afscope.models import load_model, resolve_layers
    from afscope.sae.run import split_records

    torch.set_num_threads(opts["threads"])
    t0 = time.perf_counter()
    lm = load_model(opts["model"])
    dataset = load_dataset(opts["data"])
    (layer,) = resolve_layers([opts["layer"]], lm.info.n_layers)
    train_ds, heldout_ds = split_records(dataset, opts["heldout_fraction"], opts["seed"])
    if heldout_ds is None:
        raise SystemExit(f"{opts['data']}: too few records for a held-out split")
    kw = dict(max_length=opts["max_length"], seed=opts["seed"])
    x = collect_tokens(lm, train_ds, layer, max_tokens=opts["train_tokens"], **kw)
    h = collect_tokens(lm, heldout_ds, layer, max_tokens=opts["heldout_tokens"], **kw)
    path = cache_path(opts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"train": x, "heldout": h}, str(tmp),
              metadata={"layer": str(layer), "n_train_records": str(len(train_ds)),
                        "n_heldout_records": str(len(heldout_ds))})
    tmp.replace(path)
    return {"seconds": time.perf_counter() - t0, "layer": layer}


def load_tokens(opts: dict[str, Any]) -> tuple[Any, Any, dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(cache_path(opts)), "pt") as f:
        return f.get_tensor("train"), f.get_tensor("heldout"), f.metadata()


# -- the two trainers -----------------------------------------------------------------------------
def heldout_metrics(encode: Any, decode: Any, h: Any, batch: int = 4096) -> dict[str, float]:
    """Explained variance, mean L0 and dead fraction of ``decode(encode(.))`` on ``h (n, d)``."""
    import torch

    sse = sst = l0 = 0.0
    mean = h.mean(0)
    fired = None
    with torch.no_grad():
        for i in range(0, len(h), batch):
            xb = h[i:i + batch]
            f = encode(xb)
            sse += float(((decode(f) - xb) ** 2).sum())
            sst += float(((xb - mean) ** 2).sum())
            active = f != 0
            l0 += float(active.sum())
            fired = active.any(0) if fired is None else fired | active.any(0)
    assert fired is not None
    return {"ev": 1 - sse / sst, "l0": l0 / len(h), "dead": float((~fired).float().mean())}


def _schedule(opts: dict[str, Any], n_train: int) -> dict[str, int]:
    budget = n_train * opts["epochs"]
    steps = math.ceil(budget / opts["batch_size"])
    from afscope.sae.train import default_dead_tokens

    return {"budget": budget, "steps": steps,
            "decay_steps": round(steps * opts["lr_decay_fraction"]),
            "dead_tokens": default_dead_tokens(budget)}


def saelens_phase(opts: dict[str, Any]) -> dict[str, Any]:
    """SAELens ``SAETrainer`` + ``TopKTrainingSAE`` on an in-memory ``DataProvider``."""
    import logging

    import torch

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(opts["threads"])
    x, h, _ = load_tokens(opts)
    sched = _schedule(opts, len(x))
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    B, lr = opts["batch_size"], opts["saelens_lr"] or opts["lr"]

    def provider(gen: torch.Generator):  # an endless stream of (B, d_in) batches, epoch by epoch
        order = torch.randperm(len(x), generator=gen)
        pos = 0
        while True:
            if pos + B > len(order):
                order = torch.cat([order[pos:], torch.randperm(len(x), generator=gen)])
                pos = 0
            yield x[order[pos:pos + B]]
            pos += B

    torch.manual_seed(opts["seed"])
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(
        d_in=x.shape[1], d_sae=opts["d_sae"], k=opts["k"], dtype="float32", device="cpu",
        normalize_activations=opts["saelens_normalize"]))
    cfg = SAETrainerConfig(
        total_training_samples=sched["budget"], train_batch_size_samples=B, lr=lr,
        lr_end=lr,  # the constant schedule ignores it; the decay starts from lr
        lr_decay_steps=sched["decay_steps"], device="cpu",
        dead_feature_window=max(1, sched["dead_tokens"] // B),
        feature_sampling_window=10**9, n_batches_for_norm_estimate=20,
        logger=LoggingConfig(log_to_wandb=False))
    trainer = SAETrainer(cfg, sae, provider(torch.Generator().manual_seed(opts["seed"])))
    cpu0, load0 = cpu_seconds(), _loadavg()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    sae.eval()
    m = heldout_metrics(sae.encode, sae.decode, h)
    return {**m, "tokens": trainer.n_training_samples, "seconds": seconds,
            "cpu_wall": cpu / seconds, "rss": rss.peak - rss.baseline, "load": (load0, _loadavg()),
            "steps": trainer.n_training_steps, "dead_window": int(trainer.dead_neurons.sum()),
            **sched}


def afscope_phase(opts: dict[str, Any]) -> dict[str, Any]:
    """``afscope.sae.train_sae`` with the same tokens, width, k, batch, lr and budget."""
    import logging

    import torch

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(opts["threads"])
    x, h, _ = load_tokens(opts)
    sched = _schedule(opts, len(x))
    from afscope.sae import SAETrainConfig, train_sae

    cfg = SAETrainConfig(d_sae=opts["d_sae"], k=opts["k"], lr=opts["lr"],
                         lr_decay_fraction=opts["lr_decay_fraction"], epochs=opts["epochs"],
                         batch_size=opts["batch_size"], seed=opts["seed"])
    cpu0, load0 = cpu_seconds(), _loadavg()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        sae, metrics = train_sae(x, cfg, heldout=h)
        seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    m = heldout_metrics(sae.encode, sae.decode, h)
    assert abs(m["ev"] - metrics["heldout_explained_variance"]) < 1e-4  # the same measure
    # the loop's own throughput, as SAELens's fit(); seconds above also hold the final evaluation
    loop_s = metrics["budget_tokens"] / metrics["tokens_per_s"]
    return {**m, "tokens": metrics["budget_tokens"], "seconds": loop_s, "cpu_wall": cpu / seconds,
            "rss": rss.peak - rss.baseline, "load": (load0, _loadavg()),
            "steps": metrics["steps"], "dead_window": round(metrics["dead_fraction_window"]
                                                             * opts["d_sae"]),
            "train_ev": metrics["train_explained_variance"], **sched}


def profile_phase(opts: dict[str, Any]) -> dict[str, Any]:
    """Where a few afscope training steps spend their time (torch.profiler, by op)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from afscope.sae import SAETrainConfig, train_sae

    torch.set_num_threads(opts["threads"])
    x, _, _ = load_tokens(opts)
    n = min(len(x), 20 * opts["batch_size"])
    cfg = SAETrainConfig(d_sae=opts["d_sae"], k=opts["k"], lr=opts["lr"], epochs=1,
                         batch_size=opts["batch_size"], seed=opts["seed"])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_sae(x[:n], cfg)
    return {"table": prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)}


# -- main -----------------------------------------------------------------------------------------
def _show(name: str, r: dict[str, Any]) -> None:
    print(f"  {name:8s} {r['tokens'] / r['seconds']:>9,.0f} tokens/s  ({r['tokens']:,} tokens, "
          f"{r['steps']:,} steps, {r['seconds']:.1f} s, CPU/wall {r['cpu_wall']:.2f}, "
          f"load {r['load'][0]:.1f}->{r['load'][1]:.1f})  peak RSS +{mb(r['rss'])}")
    print(f"  {'':8s} held-out explained variance {r['ev']:.4f}, L0 {r['l0']:.1f}, dead "
          f"{r['dead']:.1%}; dead by the {r['dead_tokens']:,}-token window at the end: "
          f"{r['dead_window']:,}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--data", default=None,
                    help=f"dataset file (default $AFSCOPE_SHARED/{DATA_FILE})")
    ap.add_argument("--layer", type=float, default=0.5, help="layer: int or fraction of depth")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--heldout-fraction", type=float, default=0.1, help="records held out")
    ap.add_argument("--train-tokens", type=int, default=100_000)
    ap.add_argument("--heldout-tokens", type=int, default=20_000)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3, help="token budget = epochs x train tokens")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=3e-3, help="both trainers (afscope default)")
    ap.add_argument("--lr-decay-fraction", type=float, default=0.2)
    ap.add_argument("--saelens-lr", type=float, default=None, help="SAELens's lr (default: --lr)")
    ap.add_argument("--saelens-normalize", default="none",
                    help="SAELens normalize_activations (none, expected_average_only_in, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each phase")
    ap.add_argument("--skip-saelens", action="store_true", help="afscope only (no ratio)")
    ap.add_argument("--skip-afscope", action="store_true", help="SAELens only (no ratio)")
    ap.add_argument("--profile", action="store_true", help="+ where afscope's step time goes")
    ap.add_argument("--quick", action="store_true", help="20k tokens x 2 epochs, d_sae 1024")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_tokens, args.heldout_tokens, args.epochs, args.d_sae = 20_000, 5_000, 2, 1024
    layer: int | float = int(args.layer) if args.layer == int(args.layer) and args.layer >= 1 \
        else args.layer
    opts = {**vars(args), "layer": layer,
            "data": str(args.data or shared_dir() / DATA_FILE)}

    path = cache_path(opts)
    if path.exists():
        print(f"tokens: cached {path.relative_to(REPO)}")
    else:
        r = run_phase(collect_phase, opts)
        print(f"tokens: collected in {r['seconds']:.0f} s -> {path.relative_to(REPO)}")
    x, h, meta = load_tokens(opts)
    print(f"  {opts['model']} layer {meta['layer']}, {Path(opts['data']).name}: "
          f"{len(x):,} training tokens from {meta['n_train_records']} records, {len(h):,} "
          f"held-out tokens from {meta['n_heldout_records']} other records; d_in {x.shape[1]}")
    del x, h
    print(f"SAE: d_sae {args.d_sae}, k {args.k}, batch {args.batch_size}, lr {args.lr} "
          f"(linear decay over the last {args.lr_decay_fraction:.0%}), {args.epochs} epochs, "
          f"{args.threads} threads")

    res = {}
    if not args.skip_saelens:
        res["saelens"] = run_phase(saelens_phase, opts)
    if not args.skip_afscope:
        res["afscope"] = run_phase(afscope_phase, opts)
    for name, r in res.items():
        _show(name, r)
    if "afscope" in res:
        print(f"  afscope train explained variance (as many training tokens): "
              f"{res['afscope']['train_ev']:.4f}")
    if args.profile:
        print(run_phase(profile_phase, opts)["table"])
    if len(res) < 2:
        return 0
    a, s = res["afscope"], res["saelens"]
    verdict = "equal or better" if a["ev"] >= s["ev"] - 1e-3 else "WORSE"
    print(f"held-out explained variance: afscope {a['ev']:.4f} vs SAELens {s['ev']:.4f} "
          f"({verdict})")
    print(f"ratio_vs_saelens={(a['tokens'] / a['seconds']) / (s['tokens'] / s['seconds']):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
