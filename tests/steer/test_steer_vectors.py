"""Steering vectors: diffmean equals a hand-computed mean difference; probe and SAE directions;
the safetensors round trip and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from steer_helpers import AF_TEXTS, ALIGNED_TEXTS, tiny_dataset, write_jsonl

from afscope.errors import ArtifactError
from afscope.models import LoadedModel, ModelInfo, load_model
from afscope.probe import ProbeConfig, fit_probe, save_probe
from afscope.sae import SAE, SAEConfig, save_sae
from afscope.steer import (
    DiffMeanConfig,
    ProbeVectorConfig,
    SAEVectorConfig,
    SteeringVector,
    diffmean_vector,
    load_vector,
    probe_vector,
    run_diffmean,
    run_probe_vector,
    run_sae_vector,
    sae_vector,
)


def _info(d_model: int = 32, fingerprint_source: str = "x") -> ModelInfo:
    return ModelInfo(name="tiny", source=fingerprint_source, revision=None, weights_sha256=None,
                     architecture="LlamaForCausalLM", n_layers=4, d_model=d_model,
                     dtype="float32", device="cpu", has_chat_template=True)


def _hand_means(model, tok, texts: list[str], layer: int, skip_first: int) -> torch.Tensor:
    """Per-record forward with output_hidden_states: mean over tokens, then over records."""
    rows = []
    for t in texts:
        ids = tok(t, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]
        rows.append(hs[skip_first:].double().mean(0))
    return torch.stack(rows).mean(0)


def test_diffmean_equals_hand_computed(tiny_model, tiny_tokenizer):
    lm = LoadedModel(tiny_model, tiny_tokenizer, _info())
    a = tiny_dataset(AF_TEXTS, "alignment_faking", "a")
    b = tiny_dataset(ALIGNED_TEXTS, "aligned", "b")
    # hidden_states[i + 1] is block i's output except for the last block (final norm applied)
    vec = diffmean_vector(lm, a, b, [0, 2], mask="all", skip_first=1, batch_tokens=64)
    assert vec.layers == [0, 2] and vec.source == "diffmean" and vec.d_model == 32
    for layer in (0, 2):
        want = (_hand_means(tiny_model, tiny_tokenizer, AF_TEXTS, layer, 1)
                - _hand_means(tiny_model, tiny_tokenizer, ALIGNED_TEXTS, layer, 1)).float()
        torch.testing.assert_close(vec.vectors[layer], want, rtol=1e-4, atol=1e-5)
    assert vec.created_from["set_a"]["n"] == 3 and vec.created_from["set_b"]["n"] == 2


def test_diffmean_token_weighting(tiny_model, tiny_tokenizer):
    lm = LoadedModel(tiny_model, tiny_tokenizer, _info())
    a = tiny_dataset(AF_TEXTS, "alignment_faking", "a")
    b = tiny_dataset(ALIGNED_TEXTS, "aligned", "b")
    vec = diffmean_vector(lm, a, b, [2], mask="all", skip_first=0, weighting="token")

    def token_mean(texts):
        hs = []
        for t in texts:
            ids = tiny_tokenizer(t, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                hs.append(tiny_model(input_ids=ids, output_hidden_states=True).hidden_states[3][0])
        return torch.cat(hs).double().mean(0)

    want = (token_mean(AF_TEXTS) - token_mean(ALIGNED_TEXTS)).float()
    torch.testing.assert_close(vec.vectors[2], want, rtol=1e-4, atol=1e-5)


def test_run_diffmean_one_labelled_file(tmp_path, tiny_model_dir):
    data = tmp_path / "d.jsonl"
    rows = ([{"text": t, "label": "alignment_faking"} for t in AF_TEXTS]
            + [{"text": t, "label": "aligned"} for t in ALIGNED_TEXTS])
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "vec"
    path = run_diffmean(DiffMeanConfig(model=str(tiny_model_dir), data_a=data, layers=[-1],
                                       out=out))
    lm = load_model(str(tiny_model_dir))
    vec = load_vector(out, model=lm.info)  # a run directory means its vector.safetensors
    assert path == out / "vector.safetensors" and vec.layers == [3]
    assert vec.model_fingerprint == lm.info.fingerprint
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["datasets"]["set_a"]["n"] == 3 and manifest["datasets"]["set_b"]["n"] == 2
    # same vector from two files: A minus B
    a = write_jsonl(tmp_path / "a.jsonl", AF_TEXTS, "alignment_faking")
    b = write_jsonl(tmp_path / "b.jsonl", ALIGNED_TEXTS, "aligned")
    run_diffmean(DiffMeanConfig(model=str(tiny_model_dir), data_a=a, data_b=b, layers=[-1],
                                out=tmp_path / "vec2"))
    torch.testing.assert_close(load_vector(tmp_path / "vec2").vectors[3], vec.vectors[3])


def test_diffmean_leakage_guard(tmp_path, tiny_model_dir):
    from afscope.errors import LeakageError

    a = write_jsonl(tmp_path / "a.jsonl", AF_TEXTS, "alignment_faking")
    b = write_jsonl(tmp_path / "b.jsonl", ALIGNED_TEXTS, "aligned")
    gold = write_jsonl(tmp_path / "gold.jsonl", AF_TEXTS[:1], "alignment_faking")
    with pytest.raises(LeakageError):
        run_diffmean(DiffMeanConfig(model=str(tiny_model_dir), data_a=a, data_b=b, layers=[1],
                                    eval_only=[gold], out=tmp_path / "vec"))
    assert not (tmp_path / "vec").exists()  # bad input leaves nothing behind


def _probe(space_kind: str = "resid.mean", normalize: str = "none"):
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 40)
    X = rng.normal(size=(80, 8)) * np.array([1, 5, 1, 1, 1, 1, 1, 0.2]) + 3.0
    X[:, 1] += 15.0 * y
    space = {"model": "fp123", "layer": 2, "kind": space_kind, "n_features": 8}
    return fit_probe(X, y, ProbeConfig(method="logistic_l2", normalize=normalize),
                     feature_space=space), X


def test_probe_direction_round_trip(tmp_path):
    probe, X = _probe()
    save_probe(probe, tmp_path / "probe")
    path = run_probe_vector(ProbeVectorConfig(probe=tmp_path / "probe", model="tiny",
                                              out=tmp_path / "vec"))
    vec = load_vector(path)
    v = vec.at(2).double().numpy()
    assert vec.layers == [2] and vec.source == "probe" and vec.model_fingerprint == "fp123"
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-6)
    # the direction is the probe's raw-space gradient: moving X along it moves the decision
    # function by |coef/scale| per unit, and nothing orthogonal to it changes the score
    w = probe.coef_ / probe.scale_
    np.testing.assert_allclose(v, w / np.linalg.norm(w), rtol=1e-5, atol=1e-6)
    step = probe.decision_function(X[:1] + v) - probe.decision_function(X[:1])
    assert step[0] == pytest.approx(np.linalg.norm(w), rel=1e-5)


def test_probe_vector_refuses_sae_space_and_nonlinear():
    probe, _ = _probe(space_kind="sae.max")
    with pytest.raises(ArtifactError, match="SAE latents"):
        probe_vector(probe)
    probe, _ = _probe(normalize="log1p")
    with pytest.raises(ArtifactError, match="non-linear"):
        probe_vector(probe)


def test_sae_decoder_column(tmp_path):
    sae = SAE(SAEConfig(architecture="relu", d_in=32, d_sae=16, hook_layer=1,
                        model_name="tiny"))
    with torch.no_grad():
        sae.W_dec.copy_(torch.randn(16, 32))
    vec = sae_vector(sae, 5, normalize=False)
    torch.testing.assert_close(vec.at(1), sae.W_dec[5].detach())
    save_sae(sae, tmp_path / "sae")
    path = run_sae_vector(SAEVectorConfig(sae=tmp_path / "sae", feature=5, layer=3,
                                          out=tmp_path / "v"))
    vec = load_vector(path)
    assert vec.layers == [3] and vec.model == "tiny"
    torch.testing.assert_close(vec.at(3), sae.W_dec[5].detach() / sae.W_dec[5].norm())
    with pytest.raises(Exception, match="out of range"):
        sae_vector(sae, 16)


def test_save_load_round_trip_and_refusals(tmp_path):
    vec = SteeringVector({0: torch.randn(32), 2: torch.randn(32)}, model="tiny",
                         model_fingerprint=_info().fingerprint, source="diffmean",
                         created_from={"note": "x"})
    path = vec.save(tmp_path / "v.safetensors")
    back = load_vector(path, model=_info())
    assert back.layers == [0, 2] and back.created_from == {"note": "x"}
    assert back.model == "tiny" and back.norms == pytest.approx(vec.norms)
    for k in (0, 2):
        assert torch.equal(back.vectors[k], vec.vectors[k])
    with pytest.raises(ArtifactError, match="width 32 does not match d_model=64"):
        load_vector(path, model=_info(d_model=64))
    with pytest.raises(ArtifactError, match="allow-other-model"):
        load_vector(path, model=_info(fingerprint_source="other"))
    load_vector(path, model=_info(fingerprint_source="other"), allow_other_model=True)
    with pytest.raises(ArtifactError, match="has no direction for layer 1"):
        back.at(1)


def test_load_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"layer.0": torch.zeros(4)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ArtifactError, match="kind"):
        load_vector(tmp_path / "x.safetensors")
    (tmp_path / "y.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_vector(tmp_path / "y.safetensors")
    with pytest.raises(ArtifactError, match="not found"):
        load_vector(tmp_path / "missing.safetensors")
    with pytest.raises(ArtifactError, match="NaN"):
        SteeringVector({0: torch.tensor([float("nan")])}, None, None, "sae")
