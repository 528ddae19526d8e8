"""Vector families of the steering task: the refusal direction equals a hand-computed difference at
the last prompt token, random directions copy another vector's norms, and the residual norm scale
is the mean norm at the last token."""

from __future__ import annotations

import pytest
import torch

from afscope.generate import render_prompt
from afscope.models import load_model
from afscope.steer import (
    RandomVectorConfig,
    RefusalVectorConfig,
    SteeringVector,
    load_vector,
    random_vector,
    refusal_vector,
    run_random,
    run_refusal,
)
from afscope.steer.build import last_token_norms, request_sets


def _last_hidden(lm, texts: list[str], layer: int) -> torch.Tensor:
    rows = []
    for t in texts:
        ids = lm.tokenizer(t, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hs = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]
        rows.append(hs[-1].double())
    return torch.stack(rows)


def test_refusal_vector_is_harmful_minus_harmless_at_the_last_prompt_token(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    harmful, harmless = request_sets(lm, 5, seed=3)
    assert len(harmful) == len(harmless) == 5
    assert all(r.label == 1 for r in harmful) and all(r.label == 0 for r in harmless)
    # each record is what the model reads before answering: chat template + generation prompt
    first = harmful.records[0].text
    assert first.endswith(render_prompt(lm.tokenizer, "x")[-5:])
    vec = refusal_vector(lm, [0, 2], n=5, seed=3)
    assert vec.source == "refusal" and vec.layers == [0, 2]
    assert vec.created_from["method"] == "refusal" and vec.created_from["seed"] == 3
    for layer in (0, 2):
        want = (_last_hidden(lm, [r.text for r in harmful], layer).mean(0)
                - _last_hidden(lm, [r.text for r in harmless], layer).mean(0)).float()
        torch.testing.assert_close(vec.at(layer), want, rtol=1e-4, atol=1e-5)


def test_last_token_norms_is_the_mean_norm_of_the_last_token(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    harmful, _ = request_sets(lm, 4, seed=0)
    norms = last_token_norms(lm, harmful, [1])
    want = _last_hidden(lm, [r.text for r in harmful], 1).norm(dim=-1).mean()
    assert norms[1] == pytest.approx(float(want), rel=1e-5)


def _like() -> SteeringVector:
    g = torch.Generator().manual_seed(0)
    return SteeringVector({1: 3.0 * torch.randn(16, generator=g), 4: torch.randn(16, generator=g)},
                          model="m", model_fingerprint="f" * 64, source="diffmean")


def test_random_vector_matches_norms_and_is_seeded():
    like = _like()
    a, b, c = random_vector(like, 7), random_vector(like, 7), random_vector(like, 8)
    assert a.source == "random" and a.layers == like.layers and a.model_fingerprint == "f" * 64
    for layer in like.layers:
        assert float(a.at(layer).norm()) == pytest.approx(like.norms[layer], rel=1e-5)
        torch.testing.assert_close(a.at(layer), b.at(layer))
        assert not torch.allclose(a.at(layer), c.at(layer))
        cos = torch.nn.functional.cosine_similarity(a.at(layer), like.at(layer), dim=0)
        assert abs(float(cos)) < 0.9
    assert a.created_from["seed"] == 7 and a.created_from["like_source"] == "diffmean"


def test_run_random_and_run_refusal_write_vector_files(tiny_model_dir, tmp_path):
    path = run_refusal(RefusalVectorConfig(model=str(tiny_model_dir), out=tmp_path / "ref",
                                           layers=[1, 2], n=3, seed=1))
    ref = load_vector(path)
    assert ref.source == "refusal" and ref.layers == [1, 2]
    rnd_path = run_random(RandomVectorConfig(like=tmp_path / "ref", out=tmp_path / "rnd", seed=2))
    rnd = load_vector(rnd_path)
    from afscope.fileio import sha256_file

    assert rnd.created_from["like_sha256"] == sha256_file(path)
    assert rnd.norms == pytest.approx(ref.norms, rel=1e-5)
    assert (tmp_path / "rnd" / "manifest.json").is_file()
