"""Every place a tensor meets the model, on CUDA and in bf16 (tiny random models).

Marked ``gpu``: ``tests/conftest.py`` skips them where torch sees no CUDA device;
``benchmarks/gpu_check.sh`` runs them (``pytest -m gpu``) on a GPU machine. Each compares the GPU
result with the CPU float32 one: fp32 on CUDA within 1e-4 (TF32 is off in torch by default for
matmuls), bf16 within a few percent of the values' scale.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from afscope.data.dataset import Dataset
from afscope.data.synth import generate_corpus
from afscope.explain.inject import VectorBatch, VectorProjector, attach_projector, inject
from afscope.extract import ExtractConfig, extract
from afscope.generate.engine import GenerationParams, generate
from afscope.generate.steering import Steering, steer_batch
from afscope.models import add_to_residual, load_model, record_residual
from afscope.sae import SAE, SAEConfig, extract_with_sae, save_sae
from afscope.sae.encode import SAEEncoder

pytestmark = pytest.mark.gpu

BF16_REL = 0.05  # bf16 keeps 8 bits of mantissa; 4 blocks of a random d=32 model stay within this


def _rel_err(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a = np.asarray(torch.as_tensor(a).float().cpu())
    b = np.asarray(torch.as_tensor(b).float().cpu())
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-8))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synth.jsonl"
    Dataset.from_records(generate_corpus(16, seed=5), "synth").to_jsonl(path)
    return path


def _extract(model_dir, data, out, **kw):
    cfg = ExtractConfig(model=str(model_dir), data=data, out=out, layers=[1, 3],
                        pool=["max", "mean", "last"], chunk_size=8, batch_tokens=512,
                        max_length=64, skip_first=1, **kw)
    return extract(cfg)


def test_load_model_auto_is_cuda_bf16(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device="auto", dtype="auto")
    p = next(lm.model.parameters())
    assert p.is_cuda and p.dtype in (torch.bfloat16, torch.float16)
    assert lm.info.device == "cuda" and lm.info.dtype in ("bfloat16", "float16")


@pytest.mark.parametrize("device,dtype,tol", [("cuda", "float32", 1e-4),
                                              ("cuda:0", "bfloat16", BF16_REL),
                                              ("shard", "bfloat16", BF16_REL)])
def test_extraction_on_cuda_equals_cpu(tiny_model_dir, corpus, tmp_path, device, dtype, tol):
    ref = _extract(tiny_model_dir, corpus, tmp_path / "cpu")
    got = _extract(tiny_model_dir, corpus, tmp_path / "gpu", device=device, dtype=dtype)
    for layer in (1, 3):
        for p in ("max", "mean", "last"):
            a, b = got.get(layer, p), ref.get(layer, p)
            assert a.dtype == np.float32 and a.shape == b.shape
            assert _rel_err(a, b) < tol, (layer, p)


@torch.no_grad()
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_steering_hook_on_cuda_adds_alpha_v(tiny_model_dir, dtype):
    lm = load_model(str(tiny_model_dir), device="cuda", dtype=str(dtype).split(".")[1])
    model, tok = lm.model, lm.tokenizer
    enc = tok(["hello there monitored", "I refuse"], return_tensors="pt", padding=True,
              padding_side="left")
    ids, att = enc["input_ids"].cuda(), enc["attention_mask"].cuda()
    v = torch.randn(lm.info.d_model)  # on the CPU, float32: the hook places it
    steering = Steering({1: v}, alpha=3.0, positions="both")
    with record_residual(model, [1]) as plain:
        model(input_ids=ids, attention_mask=att)
    with steer_batch(model, [steering, None], att), record_residual(model, [1]) as steered:
        model(input_ids=ids, attention_mask=att)
    h, h0 = steered[1], plain[1]
    assert h.is_cuda and h.dtype == dtype
    expect = h0[0].float() + att[0, :, None].float() * (3.0 * v.cuda())[None, :]
    tol = 1e-5 if dtype == torch.float32 else BF16_REL
    assert _rel_err(h[0], expect) < tol
    assert torch.equal(h[1], h0[1])  # unsteered row untouched
    # add_to_residual too, and greedy generation with steering runs end to end on cuda
    with add_to_residual(model, {1: v}, alpha=2.0), record_residual(model, [1]) as added:
        model(input_ids=ids, attention_mask=att)
    assert _rel_err(added[1][1], h0[1].float() + 2.0 * v.cuda()) < tol
    out = generate(model, tok, ["hello", "monitored"], GenerationParams(max_tokens=4,
                   temperature=0.0), steering=[steering, None])
    assert len(out) == 2


@torch.no_grad()
@pytest.mark.parametrize("mode", ["replace", "add"])
def test_injected_vector_is_on_the_model_device_and_dtype(tiny_model_dir, mode):
    lm = load_model(str(tiny_model_dir), device="cuda", dtype="bfloat16")
    model = lm.model
    attach_projector(model, VectorProjector([2], 48, lm.info.d_model))
    proj = model.afscope_projector
    assert proj.maps["L2"].weight.is_cuda and proj.maps["L2"].weight.dtype == torch.float32
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]], device="cuda")
    vb = VectorBatch(torch.randn(1, 1, 48), torch.tensor([[2]]), torch.tensor([[3]]))  # CPU
    seen: dict[str, torch.Tensor] = {}
    emb = model.get_input_embeddings()
    with inject(model, vb, mode=mode, inject_layer=1, embed_norm=2.0), \
            record_residual(model, [1]) as acts:
        # registered after inject's hook, so it sees the edited embeddings
        handle = emb.register_forward_hook(lambda _m, _i, o: seen.__setitem__("emb", o))
        try:
            model(input_ids=ids)
        finally:
            handle.remove()
    out = seen["emb"] if mode == "replace" else acts[1]
    assert out.is_cuda and out.dtype == torch.bfloat16
    if mode == "replace":
        assert abs(float(out[0, 3].float().norm()) - 2.0) < 0.05


@torch.no_grad()
def test_sae_encode_on_cuda_is_float32_and_matches_cpu():
    sae = SAE(SAEConfig(architecture="topk", d_in=32, d_sae=64, k=5))
    for p in sae.parameters():
        p.copy_(torch.randn(p.shape))
    enc = SAEEncoder(sae.to(torch.bfloat16), layer=1)  # a bf16 SAE is encoded in float32
    x = torch.randn(10, 32)
    ref = enc.encode(x).cpu()
    got = enc.encode(x.to("cuda", torch.bfloat16))
    assert got.is_cuda and got.dtype == torch.float32 and enc.sae.W_enc.is_cuda
    assert _rel_err(got, ref) < BF16_REL


def test_extract_with_sae_on_cuda_matches_cpu(tiny_model_dir, corpus, tmp_path):
    sae = SAE(SAEConfig(architecture="topk", d_in=32, d_sae=48, k=6, hook_layer=1))
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape))
    folder = save_sae(sae, tmp_path / "sae")
    caches = {}
    for device in ("cpu", "cuda"):
        cfg = ExtractConfig(model=str(tiny_model_dir), data=corpus, out=tmp_path / device,
                            layers=[1], pool=["max"], chunk_size=8, batch_tokens=512,
                            max_length=64, skip_first=1, sae=[folder], token_topk=4,
                            device=device, dtype="float32")
        caches[device] = extract_with_sae(cfg)
    a = caches["cuda"].sae_features(1, "max").toarray()
    b = caches["cpu"].sae_features(1, "max").toarray()
    assert _rel_err(a, b) < 1e-3
