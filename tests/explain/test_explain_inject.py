"""Continuous tokens: vectors reach exactly the placeholder positions, in both modes.

``replace`` swaps the embedding output at the placeholders for ``embed_norm * unit(vector)``;
``add`` adds the norm-matched direction after block ``inject_layer``; nothing else moves, the
prefix before the first placeholder is untouched (causal), left padding shifts positions, a forward
of another length passes through, widths are projected by a full-rank per-layer map, and the
explainer's trainable parameters are the LoRA matrices plus that projector.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import build_model

from afscope.errors import ConfigError
from afscope.explain.config import ExplainTrainConfig
from afscope.explain.encode import Encoded, encode_prompt, placeholder_id, vector_batch
from afscope.explain.inject import (
    VectorBatch,
    VectorProjector,
    attach_projector,
    embedding_norm,
    find_projector,
    inject,
)
from afscope.explain.schema import VECTOR_MARKER
from afscope.explain.train import add_adapter
from afscope.models.hooks import record_residual
from afscope.organism.train import trainable_parameters

D = 32  # d_model of the tiny models


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def two_marker_prompt(tokenizer, text: str = "Compare") -> tuple[torch.Tensor, list[int]]:
    """``(ids (1, T), [p0, p1])`` of a chat prompt with two vector markers."""
    msgs = [{"role": "user",
             "content": f"{text} {VECTOR_MARKER} with {VECTOR_MARKER} please."}]
    ids, pos = encode_prompt(tokenizer, msgs, placeholder=placeholder_id(tokenizer))
    return torch.tensor([ids]), pos


def batch_for(positions: list[int], width: int = D, seed: int = 1, layers=(3, 5)) -> VectorBatch:
    g = torch.Generator().manual_seed(seed)
    k = len(positions)
    return VectorBatch(torch.randn(1, k, width, generator=g) * 7.0,
                       torch.tensor([list(layers)[:k]]), torch.tensor([positions]))


class EmbedRecorder:
    """Forward hook on the input-embedding module keeping its (possibly edited) output."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.outs: list[torch.Tensor] = []
        self.handle = model.get_input_embeddings().register_forward_hook(self)

    def __call__(self, _m, _i, out):
        self.outs.append(out.detach().clone())

    def __enter__(self) -> EmbedRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def test_encode_prompt_puts_one_placeholder_per_marker(tiny_tokenizer):
    ph = placeholder_id(tiny_tokenizer)
    ids, pos = two_marker_prompt(tiny_tokenizer)
    assert len(pos) == 2 and pos[0] < pos[1]
    assert [int(ids[0, p]) for p in pos] == [ph, ph]
    assert int((ids == ph).sum()) == 2  # the placeholder never appears elsewhere in this prompt
    with pytest.raises(ConfigError, match="one token"):
        placeholder_id(tiny_tokenizer, "placeholder that is many tokens")


@torch.no_grad()
def test_replace_puts_the_vector_exactly_at_the_placeholders(tiny_model, tiny_tokenizer):
    ids, pos = two_marker_prompt(tiny_tokenizer)
    vb = batch_for(pos)
    emb = tiny_model.get_input_embeddings()
    plain = emb(ids)  # (1, T, D)
    for embed_norm in (None, 2.5):
        with inject(tiny_model, vb, mode="replace", embed_norm=embed_norm):
            with EmbedRecorder(tiny_model) as rec:  # registered after inject's hook: sees its edit
                tiny_model(ids)
        got = rec.outs[0]
        scale = embedding_norm(tiny_model) if embed_norm is None else embed_norm
        expected = scale * unit(vb.vectors[0])  # (K, D)
        torch.testing.assert_close(got[0, pos], expected)
        assert torch.allclose(got[0, pos].norm(dim=-1), torch.full((2,), scale))
        others = [t for t in range(ids.shape[1]) if t not in pos]
        assert torch.equal(got[0, others], plain[0, others])
    # hooks are gone after the context: the next forward is the plain one
    with EmbedRecorder(tiny_model) as rec:
        tiny_model(ids)
    assert torch.equal(rec.outs[0], plain)
    # the scale is the mean norm of the embedding module's outputs (Gemma scales them)
    vocab = emb.weight.shape[0]
    all_ids = torch.arange(vocab)[None, :]
    assert embedding_norm(tiny_model, n_ids=vocab) == pytest.approx(
        float(emb(all_ids)[0].norm(dim=-1).mean()), rel=1e-5)


@pytest.mark.parametrize("arch", [
    "llama", "mistral",
    "gemma3",  # its embedding scales its output by sqrt(d_model): measured on the output
])
@torch.no_grad()
def test_replace_token_has_the_norm_of_the_real_token_embeddings(arch, tiny_tokenizer):
    model = build_model(arch, len(tiny_tokenizer))
    ids, pos = two_marker_prompt(tiny_tokenizer)
    with inject(model, batch_for(pos), mode="replace"):
        with EmbedRecorder(model) as rec:
            model(ids)
    real = model.get_input_embeddings()(torch.arange(len(tiny_tokenizer))).norm(dim=-1).mean()
    assert torch.allclose(rec.outs[0][0, pos].norm(dim=-1), real.expand(2), rtol=1e-4)


@torch.no_grad()
def test_add_changes_only_the_placeholders_by_a_norm_matched_vector(tiny_model, tiny_tokenizer):
    ids, pos = two_marker_prompt(tiny_tokenizer)
    vb = batch_for(pos)
    layer = 1
    with record_residual(tiny_model, [layer, layer + 1]) as base:
        tiny_model(ids)
    with inject(tiny_model, vb, mode="add", inject_layer=layer):
        # registered after inject's edit hook on the same block: records the edited residual
        with record_residual(tiny_model, [layer, layer + 1]) as edited:
            tiny_model(ids)
    h0, h1 = base[layer][0], edited[layer][0]  # (T, D)
    others = [t for t in range(ids.shape[1]) if t not in pos]
    assert torch.equal(h1[others], h0[others])
    delta = h1[pos] - h0[pos]  # (K, D)
    torch.testing.assert_close(delta.norm(dim=-1), h0[pos].norm(dim=-1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(unit(delta), unit(vb.vectors[0]), rtol=1e-4, atol=1e-5)
    # the edit propagates: the next block's output changes from the first placeholder on
    assert torch.equal(edited[layer + 1][0, :pos[0]], base[layer + 1][0, :pos[0]])
    assert not torch.allclose(edited[layer + 1][0, pos[0]:], base[layer + 1][0, pos[0]:])
    # block inject_layer's input (the residual after the block before) is untouched
    with inject(tiny_model, vb, mode="add", inject_layer=layer):
        with record_residual(tiny_model, [layer - 1]) as before:
            tiny_model(ids)
    with record_residual(tiny_model, [layer - 1]) as plain_before:
        tiny_model(ids)
    assert torch.equal(before[layer - 1], plain_before[layer - 1])


@pytest.mark.parametrize("mode", ["replace", "add"])
@torch.no_grad()
def test_the_vector_changes_logits_after_the_placeholder_only(mode, tiny_model, tiny_tokenizer):
    ids, pos = two_marker_prompt(tiny_tokenizer)
    vb = batch_for(pos)
    plain = tiny_model(ids).logits[0]  # (T, V)
    with inject(tiny_model, vb, mode=mode, inject_layer=1):
        edited = tiny_model(ids).logits[0]
    assert torch.equal(edited[:pos[0]], plain[:pos[0]])  # causal: the prefix never sees it
    diff = (edited - plain).abs().amax(dim=-1)  # (T,)
    assert bool((diff[pos[0]:] > 1e-6).all()), diff
    # another vector gives other logits: the explainer reads the vector, not only the slot
    with inject(tiny_model, batch_for(pos, seed=2), mode=mode, inject_layer=1):
        other = tiny_model(ids).logits[0]
    assert not torch.allclose(other[pos[0]:], edited[pos[0]:])
    # no vector, or only padding slots: a plain forward
    empty = VectorBatch(vb.vectors, vb.layers, torch.full_like(vb.positions, -1))
    assert empty.empty and not vb.empty
    for b in (None, empty):
        with inject(tiny_model, b, mode=mode):
            assert torch.equal(tiny_model(ids).logits[0], plain)


def test_shifted_moves_positions_and_keeps_pad_slots():
    vb = VectorBatch(torch.zeros(2, 2, D), torch.zeros(2, 2, dtype=torch.long),
                     torch.tensor([[3, 7], [5, -1]]))
    moved = vb.shifted(torch.tensor([2, 0]))
    assert moved.positions.tolist() == [[5, 9], [5, -1]]
    assert vb.positions.tolist() == [[3, 7], [5, -1]]  # not in place
    assert moved.vectors is vb.vectors and moved.layers is vb.layers
    assert vb.shifted(torch.tensor([4, 4])).positions.tolist() == [[7, 11], [9, -1]]


@torch.no_grad()
def test_left_padding_moves_the_vectors_with_their_placeholders(tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer))
    ph = placeholder_id(tiny_tokenizer)
    rows, prompts = [], []
    for i, text in enumerate(["Hi", "A much longer request with many more words in it"]):
        ids, pos = two_marker_prompt(tiny_tokenizer, text)
        prompts.append(ids[0].tolist())
        rows.append(Encoded(f"r{i}", ids[0].tolist(), [], pos, [f"v{i}a", f"v{i}b"], [1, 1]))
    T = max(len(p) for p in prompts)
    offsets = torch.tensor([T - len(p) for p in prompts])
    assert int(offsets[0]) > 0 and int(offsets[1]) == 0
    ids = torch.tensor([[tiny_tokenizer.pad_token_id] * (T - len(p)) + p for p in prompts])
    att = (torch.arange(T)[None] >= offsets[:, None]).long()
    g = torch.Generator().manual_seed(0)
    vectors = {f"v{i}{s}": torch.randn(D, generator=g) for i in range(2) for s in "ab"}
    right = vector_batch(rows, vectors)
    vb = vector_batch(rows, vectors, starts=offsets.tolist())
    assert torch.equal(vb.positions, right.shifted(offsets).positions)
    assert bool((ids.gather(1, vb.positions) == ph).all())
    scale = embedding_norm(model)
    with inject(model, vb, mode="replace", embed_norm=scale, seq_len=T):
        with EmbedRecorder(model) as rec:
            model(ids, attention_mask=att)
            model(ids[:, :T - 1], attention_mask=att[:, :T - 1])  # another length: untouched
            model(ids[:, -1:])  # a cached decoding step: untouched
    edited, shorter, step = rec.outs
    plain = model.get_input_embeddings()(ids)
    for b in range(2):
        for j, key in enumerate(rows[b].keys):
            p = int(vb.positions[b, j])
            torch.testing.assert_close(edited[b, p], scale * unit(vectors[key]))
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[torch.arange(2)[:, None], vb.positions] = False
    assert torch.equal(edited[mask], plain[mask])
    assert torch.equal(shorter, plain[:, :T - 1]) and torch.equal(step, plain[:, -1:])


@torch.no_grad()
def test_seq_len_edits_only_the_prefill_of_generation(tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer))
    ids, pos = two_marker_prompt(tiny_tokenizer)
    T = ids.shape[1]
    vb = batch_for(pos)
    with inject(model, vb, mode="add", inject_layer=1, seq_len=T):
        with record_residual(model, [1]) as acts:
            model(ids[:, :T - 1])
        shorter = acts[1]
        with record_residual(model, [1]) as acts:
            model(ids)
        full = acts[1]
    with record_residual(model, [1]) as acts:
        model(ids)
    plain = acts[1]
    assert torch.equal(shorter, plain[:, :T - 1])  # a forward of another length passes through
    assert not torch.allclose(full[0, pos], plain[0, pos])


@torch.no_grad()
def test_width_mismatch_needs_a_projector(tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer))
    ids, pos = two_marker_prompt(tiny_tokenizer)
    wide = batch_for(pos, width=48, layers=(1, 2))
    for mode in ("replace", "add"):
        with pytest.raises(ConfigError, match=r"vector width 48 differs from the explainer's "
                                              r"d_model 32 and no projection is configured"):
            with inject(model, wide, mode=mode):
                model(ids)
    assert find_projector(model) is None
    proj = VectorProjector([1, 2], 48, D, seed=0)
    attach_projector(model, proj)
    assert find_projector(model) is proj
    for key in ("L1", "L2"):
        w = proj.maps[key].weight
        assert w.shape == (D, 48) and proj.maps[key].bias is None
        torch.testing.assert_close(w @ w.T, torch.eye(D), atol=1e-5, rtol=0)  # orthogonal rows
    assert not torch.equal(proj.maps["L1"].weight, proj.maps["L2"].weight)
    torch.testing.assert_close(VectorProjector([1, 2], 48, D, seed=0).maps["L1"].weight,
                               proj.maps["L1"].weight, rtol=0, atol=0)  # seeded
    scale = embedding_norm(model)
    with inject(model, wide, mode="replace"):
        with EmbedRecorder(model) as rec:
            model(ids)
    v = wide.vectors[0]  # (2, 48)
    expected = torch.stack([proj.maps["L1"](v[0]), proj.maps["L2"](v[1])])  # (2, 32)
    torch.testing.assert_close(rec.outs[0][0, pos], scale * unit(expected))
    # a vector of a target layer the projector has no map for
    bad = VectorBatch(wide.vectors, torch.tensor([[1, 7]]), wide.positions)
    with pytest.raises(ConfigError, match=r"no projection for target layer 7.*\[1, 2\]"):
        with inject(model, bad, mode="replace"):
            model(ids)


def test_projector_is_identity_when_widths_match():
    proj = VectorProjector([0, 3, 3], D, D)
    assert proj.layers == [0, 3]
    for key in ("L0", "L3"):
        assert torch.equal(proj.maps[key].weight, torch.eye(D))
    v = torch.randn(5, D)
    layers = torch.tensor([0, 3, 3, 0, 3])
    with torch.no_grad():
        assert torch.equal(proj(v, layers), v)


@torch.no_grad()
def test_a_half_precision_projector_maps_vectors():
    proj = VectorProjector([1], 48, D).to(torch.bfloat16)
    out = proj(torch.randn(2, 48), torch.tensor([1, 1]))
    assert out.shape == (2, D)


@torch.no_grad()
def test_bad_mode_and_inject_layer_are_config_errors(tiny_tokenizer):
    model = build_model("llama", len(tiny_tokenizer))
    _, pos = two_marker_prompt(tiny_tokenizer)
    vb = batch_for(pos)
    with pytest.raises(ConfigError, match="injection mode 'swap'"):
        with inject(model, vb, mode="swap"):
            pass
    with pytest.raises(ConfigError, match="inject_layer 4: the explainer has 4 layers"):
        with inject(model, vb, mode="add", inject_layer=4):
            pass


def test_trainable_parameters_are_lora_plus_a_full_rank_projector(tiny_tokenizer, tmp_path):
    model = build_model("llama", len(tiny_tokenizer))
    layers, r, n_layers = [1, 2, 5], 4, 4
    n_base = sum(p.numel() for p in model.parameters())
    attach_projector(model, VectorProjector(layers, 48, D, seed=0))
    peft = add_adapter(model, ExplainTrainConfig(data=[tmp_path], r=r, lora_alpha=8),
                       with_projector=True)
    # per block: q 32->32, k 32->16, v 32->16, o 32->32, gate/up 32->64, down 64->32;
    # LoRA A is (r, in) and B is (out, r): r * (in + out) each
    lora = n_layers * r * ((32 + 32) + (32 + 16) * 2 + (32 + 32) + (32 + 64) * 2 + (64 + 32))
    proj = len(layers) * 48 * D
    trainable, total = trainable_parameters(peft)
    assert lora == 8192 and trainable == lora + proj
    assert total == n_base + lora + 2 * proj  # peft keeps the frozen original beside the copy
    names = {n for n, p in peft.named_parameters() if p.requires_grad}
    lora_names = {n for n in names if ".lora_A." in n or ".lora_B." in n}
    proj_names = {n for n in names if "afscope_projector" in n}
    assert names == lora_names | proj_names and not lora_names & proj_names
    assert len(lora_names) == n_layers * 7 * 2 and len(proj_names) == len(layers)
    assert sum(p.numel() for n, p in peft.named_parameters() if n in lora_names) == lora
    for n, p in peft.named_parameters():
        if n not in names:
            assert not p.requires_grad, n  # base weights (and the projector's frozen original)
    wrapper = find_projector(peft)
    assert wrapper is not None and not isinstance(wrapper, VectorProjector)
    trained = wrapper.modules_to_save["default"]
    assert isinstance(trained, VectorProjector) and trained.layers == layers
    for key in ("L1", "L2", "L5"):
        w = trained.maps[key].weight
        assert w.requires_grad and w.shape == (D, 48)
        assert int(torch.linalg.matrix_rank(w.detach())) == D
    # the wrapper runs the trained copy
    v, lay = torch.randn(3, 48), torch.tensor([1, 2, 5])
    with torch.no_grad():
        trained.maps["L2"].weight.mul_(2.0)
        torch.testing.assert_close(wrapper(v, lay)[1], 2.0 * wrapper.original_module(v, lay)[1])
