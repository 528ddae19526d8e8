"""``afscope plan``: what a run will cost before paying for it.

For an extract config (and each model x dataset of a study config) it reports

* **tokens**: exact, from the model's tokenizer with extract's truncation; also the *padded* tokens
  the forward passes really compute (extract's length-bucketed batches, planned per chunk exactly
  as :func:`afscope.extract.runner.plan_batches` does);
* **FLOPs**: ``2 x (parameters of the blocks that run) x tokens`` (the forward stops after the
  deepest requested block; the LM head never runs) plus attention,
  ``4 x n_heads x head_dim x keys`` per token and block (causal: a row of T tokens has
  ``T(T+1)/2`` keys over its tokens); SAE encoding adds ``2 x d_in x d_sae`` per masked token.
  Training is ``6 x params x tokens`` for full fine-tuning, ``4 x`` for LoRA (frozen weights get
  no weight gradient) — used for a study's SAEs;
* **cache bytes**: the chunk files byte for byte (safetensors header included) for dense pooled
  rows and per-token top-k latents; per-sample SAE latents are an upper bound (their number of
  non-zeros is only known after the run); the small JSON files are estimated;
* **memory per device**: weights (all parameters x dtype bytes) + the activations of one batch
  (its token budget x the widths a block holds at once) + SAEs;
* **time**: FLOPs / the FLOP rate measured by running the model's forward on a few real batches
  of the dataset here (``measure``), or tokens / ``tokens_per_s`` when given (e.g. a GPU run's
  manifest ``outputs.tokens_per_s``), or the machine's fp32 matmul peak x
  :data:`PEAK_EFFICIENCY` when the model does not fit this machine.

The model's shape comes from its config on a ``meta`` device (no weights read or allocated).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from afscope.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

PEAK_EFFICIENCY = 0.35
"""Share of the fp32 matmul peak a forward reaches when no model benchmark ran (on this 2-core CPU
``bench_extract.py`` measured 30-40% for Gemma 3 270M)."""
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_ST_ORDER = ["U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16"]
"""safetensors lays tensors out by dtype (this order), then by name; the header lists them so."""
JSON_OVERHEAD = 4096
"""index.json + manifest.json + lock/timing files of a cache (estimate)."""


@dataclass(frozen=True)
class ModelShape:
    """Parameter counts and widths of a model, read from its config only."""

    name: str
    n_params: int
    block_params: list[int]  # per decoder block
    embed_params: int  # input embeddings (+ an untied LM head, counted in n_params)
    n_layers: int
    d_model: int
    d_ff: int
    n_heads: int
    head_dim: int
    n_kv_heads: int
    vocab: int


def model_shape(name_or_path: str, *, trust_remote_code: bool = False) -> ModelShape:
    """The shape of ``name_or_path`` (embedded name, folder or hub id) without loading weights:
    the model is built on the ``meta`` device, so every count is exact for any architecture."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from afscope.models.embedded import EMBEDDED, prepare
    from afscope.models.hooks import decoder_layers
    from afscope.models.loading import text_config

    folder = str(prepare(name_or_path)) if name_or_path in EMBEDDED else name_or_path
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"could not read the config of model {name_or_path!r}: {e}") from None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    blocks = decoder_layers(model)
    tc = text_config(config)
    n_heads = int(tc.num_attention_heads)
    d_model = int(tc.hidden_size)
    return ModelShape(
        name=name_or_path, n_params=sum(p.numel() for p in model.parameters()),
        block_params=[sum(p.numel() for p in b.parameters()) for b in blocks],
        embed_params=model.get_input_embeddings().weight.numel(), n_layers=len(blocks),
        d_model=d_model, d_ff=int(getattr(tc, "intermediate_size", 4 * d_model)),
        n_heads=n_heads, head_dim=int(getattr(tc, "head_dim", None) or d_model // n_heads),
        n_kv_heads=int(getattr(tc, "num_key_value_heads", None) or n_heads),
        vocab=int(tc.vocab_size))


def forward_flops(shape: ModelShape, deepest: int, rows: list[list[int]]) -> int:
    """FLOPs of forwards through blocks ``0..deepest`` of padded batches; ``rows`` lists each
    batch's row lengths (a batch computes ``len(rows) x max(rows)`` tokens).

    Per token and block: ``2 x block params`` (every weight is one multiply-add) and per query
    ``4 x n_heads x head_dim x keys`` (scores and values), causal over the padded width T:
    ``T(T+1)/2`` keys per row. Norms, rotary and activations count 0."""
    params = sum(shape.block_params[: deepest + 1])
    total = 0
    for batch in rows:
        b, t = len(batch), max(batch)
        total += 2 * params * b * t + (deepest + 1) * 4 * shape.n_heads * shape.head_dim * b * (
            t * (t + 1) // 2)
    return total


def safetensors_bytes(tensors: dict[str, tuple[str, tuple[int, ...]]],
                      metadata: dict[str, str] | None = None) -> int:
    """Exact size of a safetensors file of ``{name: (dtype, shape)}`` (dtype as safetensors
    spells it: F32, I64, I32): 8 bytes + the JSON header padded to 8 + the data."""
    size = {"U64": 8, "I64": 8, "F64": 8, "F32": 4, "U32": 4, "I32": 4, "BF16": 2, "F16": 2}
    order = sorted(tensors, key=lambda n: (_ST_ORDER.index(tensors[n][0]), n))
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name in order:
        dtype, shp = tensors[name]
        n = size[dtype] * math.prod(shp)
        header[name] = {"dtype": dtype, "shape": list(shp), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    return 8 + (len(text) + 7) // 8 * 8 + offset


@dataclass
class SAEPlan:
    """An SAE encoded into a cache: its width, its k (TopK; None = unknown sparsity)."""

    layer: int
    d_sae: int
    k: int | None = None


@dataclass
class Plan:
    """The estimate of one job (an extract of one dataset by one model), or a sum of them."""

    what: str
    records: int = 0
    tokens: int = 0  # real tokens the model reads
    padded_tokens: int = 0  # tokens the padded batches compute
    masked_tokens: int = 0  # tokens under the pooling mask
    flops: int = 0
    cache_bytes: int = 0  # chunk files, exact for dense rows and per-token top-k
    cache_bytes_upper: int = 0  # + per-sample SAE latents at their upper bound + JSON estimate
    weights_bytes: int = 0
    activation_bytes: int = 0
    memory_bytes: int = 0  # per device (process)
    seconds: float | None = None
    rate_source: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mask_counts(lengths: list[int], starts: list[int], mask: str, skip_first: int) -> list[int]:
    """Tokens under ``mask`` per record (what :func:`afscope.models.masks.token_mask` selects)."""
    import torch

    from afscope.models.masks import MaskSpec, token_mask

    spec = MaskSpec.parse(mask)
    out = []
    for lo in range(0, len(lengths), 256):
        part = lengths[lo:lo + 256]
        t = max(part)
        am = (torch.arange(t)[None, :] < torch.tensor(part)[:, None]).long()
        st = torch.tensor(starts[lo:lo + 256]) if spec.kind == "response" else None
        out += token_mask(am, spec, st, skip_first=skip_first).sum(dim=1).tolist()
    return out


def plan_extract_job(shape: ModelShape, tokenizer: Any, records: list[Any], *, layers: list[Any],
                     pools: list[str], mask: str = "all", skip_first: int = 0,
                     max_length: int = 1024, batch_tokens: int = 2048, chunk_size: int = 256,
                     dtype: str = "float32", saes: list[SAEPlan] | None = None,
                     token_topk: int = 0, what: str = "extract") -> Plan:
    """Tokens, FLOPs, cache bytes and memory of extracting ``records`` (no time: see
    :func:`estimate_time`)."""
    from afscope.extract.runner import encode_records, plan_batches
    from afscope.models.hooks import resolve_layers

    saes = list(saes or [])
    resolved = resolve_layers(layers, shape.n_layers)
    deepest = max(resolved)
    enc = encode_records(tokenizer, records, max_length)
    lengths = [len(x) for x in enc.ids]
    masked = _mask_counts(lengths, enc.response_start, mask, skip_first)
    n, d = len(records), shape.d_model
    plan = Plan(what=what, records=n, tokens=sum(lengths), masked_tokens=sum(masked))
    batches: list[list[int]] = []
    meta = {"afscope": json.dumps({"chunk": 0, "fingerprint": "0" * 64}, sort_keys=True)}
    upper = 0
    for k, lo in enumerate(range(0, n, chunk_size)):
        hi = min(n, lo + chunk_size)
        m = hi - lo
        batches += [[lengths[lo + i] for i in b] for b in plan_batches(lengths[lo:hi],
                                                                      batch_tokens)]
        meta["afscope"] = json.dumps({"chunk": k, "fingerprint": "0" * 64}, sort_keys=True)
        dense = {f"L{layer}.{p}": ("F32", (m, d)) for layer in resolved for p in pools}
        dense.update({"n_tokens": ("I64", (m,)), "row": ("I64", (m,))})
        sparse = dict(dense)
        for s in saes:  # per-sample latents: nnz <= min(d_sae, k x masked tokens) per record
            nnz = sum(min(s.d_sae, (s.k or s.d_sae) * masked[lo + i]) for i in range(m))
            sparse.update({f"sae.L{s.layer}.indptr": ("I64", (m + 1,)),
                           f"sae.L{s.layer}.indices": ("I32", (nnz,)),
                           f"sae.L{s.layer}.max": ("F32", (nnz,)),
                           f"sae.L{s.layer}.mean": ("F32", (nnz,)),
                           f"sae.L{s.layer}.argmax": ("I32", (nnz,))})
        plan.cache_bytes += safetensors_bytes(dense, meta)
        upper += safetensors_bytes(sparse, meta)
        if saes and token_topk > 0:
            t = sum(masked[lo:hi])
            tok = {"row": ("I64", (t,)), "pos": ("I32", (t,)), "token_id": ("I32", (t,))}
            for s in saes:
                kk = min(token_topk, s.d_sae)
                tok.update({f"L{s.layer}.indices": ("I32", (t, kk)),
                            f"L{s.layer}.values": ("F32", (t, kk))})
            size = safetensors_bytes(tok, meta)
            plan.cache_bytes += size
            upper += size
    records_bytes = sum(len(json.dumps({"category": r.category, "id": r.id, "label": r.label,
                                        "row": i}, sort_keys=True)) + 1
                        for i, r in enumerate(records))
    plan.cache_bytes_upper = upper + records_bytes + JSON_OVERHEAD
    plan.padded_tokens = sum(len(b) * max(b) for b in batches)
    plan.flops = forward_flops(shape, deepest, batches) + sum(
        2 * d * s.d_sae * plan.masked_tokens for s in saes)
    nbytes = DTYPE_BYTES[dtype]
    widest = max((len(b) * max(b) for b in batches), default=0)
    plan.weights_bytes = shape.n_params * nbytes + sum(2 * d * s.d_sae * 4 for s in saes)
    # one batch: residual in and out, attention q/k/v/o, the MLP's two d_ff-wide halves, and
    # the recorded layers; SAE latents (float32) of its masked tokens
    plan.activation_bytes = widest * nbytes * (6 * d + 2 * shape.d_ff + len(resolved) * d) + sum(
        widest * s.d_sae * 4 for s in saes)
    plan.memory_bytes = plan.weights_bytes + plan.activation_bytes
    if saes:
        plan.notes.append("per-sample SAE latents: upper bound (non-zeros known after the run)")
    plan._batches = batches  # type: ignore[attr-defined]  (for the micro-benchmark)
    plan._deepest = deepest  # type: ignore[attr-defined]
    return plan


def measure_rate(name: str, records: list[Any], *, layers: list[int], dtype: str, device: str,
                 max_length: int, batch_tokens: int, n_batches: int = 4) -> tuple[float, float]:
    """``(FLOP/s, load seconds)`` of extract's forward on this machine: the model is loaded and
    run over up to ``n_batches`` batches of the longest-first plan of a seeded sample of
    ``records`` (the first batch is a warm-up and is not timed)."""
    import random

    from afscope.extract.runner import iter_batches, plan_batches
    from afscope.models import MaskSpec, load_model

    t0 = time.perf_counter()
    lm = load_model(name, dtype=dtype, device=device)
    load_s = time.perf_counter() - t0
    shape = model_shape(name)
    sample = random.Random(0).sample(records, min(len(records), 48))
    from afscope.extract.runner import encode_records

    lengths = [len(x) for x in encode_records(lm.tokenizer, sample, max_length).ids]
    plan = plan_batches(lengths, batch_tokens)[: n_batches + 1]
    chosen = [sample[i] for b in plan for i in b]
    timed_rows = [[lengths[i] for i in b] for b in plan[1:]] or [[lengths[i] for i in plan[0]]]
    start, t_start = 0, None
    for b in iter_batches(lm, chosen, layers, MaskSpec.parse("all"), max_length=max_length,
                          batch_tokens=batch_tokens):
        start += 1
        if start == 1:
            _sync(device)
            t_start = time.perf_counter()
    _sync(device)
    elapsed = time.perf_counter() - (t_start or time.perf_counter())
    flops = forward_flops(shape, max(layers), timed_rows)
    if elapsed <= 0:
        raise ArtifactError("the micro-benchmark ran no timed batch")
    return flops / elapsed, load_s


def _sync(device: str) -> None:
    if device.startswith("cuda") or device == "shard":
        import torch

        torch.cuda.synchronize()


def matmul_peak(device: str = "cpu", n: int = 1024, repeats: int = 5) -> float:
    """fp32 FLOP/s of an ``n x n`` matmul here, best of ``repeats``."""
    import torch

    dev = "cuda" if device == "shard" else device
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t = time.perf_counter()
        torch.mm(a, b)
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def estimate_time(plan: Plan, *, flops_per_s: float | None = None,
                  tokens_per_s: float | None = None, load_s: float = 0.0,
                  source: str = "") -> Plan:
    """Fill ``plan.seconds``: tokens / ``tokens_per_s`` (real tokens, as a manifest's
    ``outputs.tokens_per_s`` counts them) when given, else FLOPs / ``flops_per_s``; plus
    ``load_s``."""
    if tokens_per_s:
        plan.seconds = plan.tokens / tokens_per_s + load_s
        plan.rate_source = source or f"given: {tokens_per_s:g} tokens/s"
    elif flops_per_s:
        plan.seconds = plan.flops / flops_per_s + load_s
        plan.rate_source = source or f"{flops_per_s / 1e9:.1f} GFLOP/s"
    return plan


def total(parts: list[Plan], what: str) -> Plan:
    """The sum of ``parts`` (memory: the largest part, since jobs run one after another)."""
    out = Plan(what=what)
    for p in parts:
        for k in ("records", "tokens", "padded_tokens", "masked_tokens", "flops", "cache_bytes",
                  "cache_bytes_upper"):
            setattr(out, k, getattr(out, k) + getattr(p, k))
        out.memory_bytes = max(out.memory_bytes, p.memory_bytes)
        out.weights_bytes = max(out.weights_bytes, p.weights_bytes)
        out.activation_bytes = max(out.activation_bytes, p.activation_bytes)
        out.notes += [n for n in p.notes if n not in out.notes]
    times = [p.seconds for p in parts]
    known = [t for t in times if t is not None]
    out.seconds = sum(known) if parts and len(known) == len(times) else None
    out.rate_source = "; ".join(sorted({p.rate_source for p in parts if p.rate_source}))
    return out


# --- configs -------------------------------------------------------------------------------


def detect_kind(data: dict[str, Any]) -> str:
    """``study`` or ``extract``: the config class that validates ``data``."""
    from afscope.extract.config import ExtractConfig
    from afscope.study.config import StudyConfig

    for kind, cls in (("study", StudyConfig), ("extract", ExtractConfig)):
        try:
            cls.model_validate(data)
            return kind
        except Exception:  # noqa: BLE001 - try the next kind
            continue
    raise ConfigError("plan: the config is neither an extract nor a study config (validate it "
                      "with `afscope extract --config FILE` or `afscope study --config FILE`)")


def _fits_here(plan: Plan, device: str) -> bool:
    import torch

    if device.startswith("cuda") or device == "shard":
        free = sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    else:
        import os

        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return plan.memory_bytes < 0.7 * free


def _timed(plan: Plan, name: str, records: list[Any], *, dtype: str, device: str,
           max_length: int, batch_tokens: int, measure: bool, tokens_per_s: float | None,
           rates: dict[str, tuple[float, float]]) -> Plan:
    if tokens_per_s:
        return estimate_time(plan, tokens_per_s=tokens_per_s)
    if measure and _fits_here(plan, device):
        if name not in rates:
            deepest = plan._deepest  # type: ignore[attr-defined]
            rates[name] = measure_rate(name, records, layers=[deepest], dtype=dtype,
                                       device=device, max_length=max_length,
                                       batch_tokens=batch_tokens)
        rate, load_s = rates[name]
        rates[name] = (rate, 0.0)  # the model loads once per run
        return estimate_time(plan, flops_per_s=rate, load_s=load_s,
                             source=f"measured here: {rate / 1e9:.1f} GFLOP/s ({device}, {dtype})")
    peak = matmul_peak("cpu" if device == "auto" else device) * PEAK_EFFICIENCY
    plan.notes.append(f"time from the matmul peak x {PEAK_EFFICIENCY} (model not run here)")
    return estimate_time(plan, flops_per_s=peak, source=f"matmul peak x {PEAK_EFFICIENCY}")


def plan_config(path: str | Path, *, kind: str | None = None, measure: bool = True,
                tokens_per_s: float | None = None) -> tuple[Plan, list[Plan]]:
    """``(total, parts)`` for an extract or study YAML file."""
    from afscope.config import build_config, load_yaml
    from afscope.data.load import load_dataset
    from afscope.models.device import device_and_dtype
    from afscope.models.loading import load_tokenizer

    data = load_yaml(path)
    kind = kind or detect_kind(data)
    rates: dict[str, tuple[float, float]] = {}
    parts: list[Plan] = []
    if kind == "extract":
        from afscope.extract.config import ExtractConfig

        cfg = build_config(ExtractConfig, path)
        device, dtype = device_and_dtype(cfg.device, cfg.dtype)
        ds = load_dataset(cfg.data, label_map=cfg.label_map)
        shape = model_shape(cfg.model)
        saes = [_sae_plan(p) for p in cfg.sae]
        plan = plan_extract_job(shape, load_tokenizer(cfg.model), ds.records, layers=cfg.layers,
                                pools=list(cfg.pool), mask=cfg.mask, skip_first=cfg.skip_first,
                                max_length=cfg.max_length, batch_tokens=cfg.batch_tokens,
                                chunk_size=cfg.chunk_size, dtype=dtype, saes=saes,
                                token_topk=cfg.token_topk, what=f"extract {cfg.model} {cfg.data}")
        parts.append(_timed(plan, cfg.model, ds.records, dtype=dtype, device=device,
                            max_length=cfg.max_length, batch_tokens=cfg.batch_tokens,
                            measure=measure, tokens_per_s=tokens_per_s, rates=rates))
        return total(parts, f"extract ({path})"), parts
    if kind != "study":
        raise ConfigError(f"plan: kind {kind!r}: expected extract or study")
    from afscope.study.config import StudyConfig

    cfg = build_config(StudyConfig, path)
    ex = cfg.extract
    device, dtype = device_and_dtype(ex.device, ex.dtype)
    datasets = _study_datasets(cfg, path)
    for spec in cfg.models:
        shape = model_shape(spec.name)
        tok = load_tokenizer(spec.name)
        saes = []
        if spec.sae:
            from afscope.models.hooks import resolve_layers

            for layer in resolve_layers(spec.sae.layers or spec.layers, shape.n_layers):
                saes.append(SAEPlan(layer, spec.sae.d_sae, spec.sae.k))
        for label, records in datasets:
            plan = plan_extract_job(shape, tok, records, layers=spec.layers, pools=list(spec.pools),
                                    mask=ex.mask, skip_first=ex.skip_first,
                                    max_length=ex.max_length, batch_tokens=ex.batch_tokens,
                                    dtype=dtype, saes=saes,
                                    token_topk=spec.sae.token_topk if spec.sae else 0,
                                    what=f"extract {spec.name} {label}")
            parts.append(_timed(plan, spec.name, records, dtype=dtype, device=device,
                                max_length=ex.max_length, batch_tokens=ex.batch_tokens,
                                measure=measure, tokens_per_s=tokens_per_s, rates=rates))
        if spec.sae:
            parts.append(_sae_training(shape, spec, saes, parts[-1]))
    return total(parts, f"study ({path})"), parts


def _sae_training(shape: ModelShape, spec: Any, saes: list[SAEPlan], like: Plan) -> Plan:
    """A study's SAE training: token collection (a forward up to each SAE's layer over
    ``max_tokens`` tokens) and ``epochs`` passes of encode + decode, x3 for training."""
    s = spec.sae
    d = shape.d_model
    p = Plan(what=f"sae train {spec.name} ({len(saes)} x d_sae={s.d_sae})")
    for sae in saes:
        p.tokens += s.max_tokens
        p.flops += 2 * sum(shape.block_params[: sae.layer + 1]) * s.max_tokens
        p.flops += 6 * 2 * d * s.d_sae * s.max_tokens * s.epochs
    p.memory_bytes = max(like.memory_bytes, s.max_tokens * d * 4 + 4 * 2 * d * s.d_sae * 4)
    if like.seconds is not None and like.flops:
        p.seconds = p.flops / (like.flops / max(like.seconds, 1e-9))
        p.rate_source = like.rate_source
    p.notes.append("SAE training: time at the extract's FLOP rate (SAE matmuls are larger, "
                   "so usually faster)")
    return p


def _study_datasets(cfg: Any, path: str | Path) -> list[tuple[str, list[Any]]]:
    """``(label, records)`` of every dataset a study extracts (subsamples: the first records of
    a seeded shuffle, the same count the study keeps)."""
    import random

    from afscope.data.load import load_dataset
    from afscope.data.synth import generate_corpus

    out: list[tuple[str, list[Any]]] = []

    def add(label: str, records: list[Any], cap: int | None) -> None:
        if cap is not None and cap < len(records):
            records = random.Random(cfg.seed).sample(records, cap)
        out.append((label, records))

    if cfg.train is not None:
        train = load_dataset(cfg.train.data, label_map=cfg.train.label_map)
        add(str(cfg.train.data), train.records, cfg.train.max_records)
    for e in cfg.ood:
        add(e.name, load_dataset(e.data, label_map=e.label_map).records, e.max_records)
    for s in cfg.sources:
        records = (generate_corpus(s.synth.n, seed=s.synth.seed) if s.synth is not None
                   else load_dataset(s.data, label_map=s.label_map).records)
        add(s.name, list(records), s.max_records)
    if not out:
        raise ConfigError(f"{path}: the study names no dataset (train, ood or sources)")
    return out


def _sae_plan(folder: Path) -> SAEPlan:
    from afscope.sae.io import read_sae_config

    cfg = read_sae_config(folder)
    return SAEPlan(int(cfg.hook_layer or 0), int(cfg.d_sae),
                   int(cfg.k) if cfg.architecture == "topk" and cfg.k else None)


# --- formatting ----------------------------------------------------------------------------


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "unknown"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
