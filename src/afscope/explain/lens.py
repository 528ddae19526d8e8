"""A token lens: the linear map from a target layer's residual stream to the explainer's embeddings.

Why: a vector read at layer ``L`` of the target (an SAE decoder row, a steering direction) is
written in that layer's basis, and a ``replace`` continuous token puts it where the explainer
expects an *input embedding*. A short LoRA run on a CPU does not learn that change of basis from
a few hundred labelled vectors (measured: the trained explainer scored like the no-vector control).
The map itself needs no labels: at every token of plain text, the residual ``h_L(t)`` of the
target and the explainer's input embedding of the same token ``e(t)`` form a pair, and a ridge
regression over tens of thousands of such pairs gives ``W (d_expl, d_target)`` with
``W h_L(t) ~ e(t)``. Initialising the projector with it lets the explainer *see* which token a
direction reads from the first step; LoRA then learns to name it.

The fit is self-supervised (tokens of the activation cache, no feature or behaviour labels), so
the held-out evaluation stays honest; its own held-out token accuracy is recorded.
For a cross-model explainer (another tokenizer), a target token's embedding is the mean of the
explainer's embeddings of the tokens of its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from afscope.errors import ArtifactError
from afscope.models.hooks import record_residual
from afscope.models.loading import LoadedModel


def cache_sequences(cache_path: str | Path, max_tokens: int) -> list[np.ndarray]:
    """Token-id sequences of an activation cache's records (from its per-token store), in record
    order, until ``max_tokens`` tokens; the cache must hold per-token top-k (``--token-topk``)."""
    from afscope.extract.store import ActivationCache

    cache = ActivationCache(cache_path)
    if not cache.token_k or not cache.sae_layers:
        raise ArtifactError(f"{cache_path}: the token lens needs the cache's per-token store "
                            "(extract with --sae and --token-topk)")
    tt = cache.token_topk(cache.sae_layers[0])
    assert tt is not None
    order = np.lexsort((tt.pos, tt.row))
    rows, ids = tt.row[order], tt.token_id[order]
    cuts = np.flatnonzero(np.diff(rows)) + 1
    out, total = [], 0
    for seq in np.split(ids, cuts):
        if total >= max_tokens:
            break
        seq = seq[:max_tokens - total]
        out.append(seq.astype(np.int64))
        total += len(seq)
    return out


def token_embeddings(target_tokenizer: Any, explainer: LoadedModel, ids: torch.Tensor
                     ) -> torch.Tensor:
    """The explainer's input embeddings ``(n, d_expl)`` of target token ``ids (n,)`` (output of
    its embedding module, so Gemma's scale is in). Same vocabulary: by id; else the mean over
    the explainer's tokens of each target token's text."""
    emb = explainer.model.get_input_embeddings()
    device = emb.weight.device
    same = target_tokenizer.get_vocab() == explainer.tokenizer.get_vocab()
    with torch.no_grad():
        if same:
            return emb(ids.to(device)[None])[0].float().cpu()
        uniq, inverse = ids.unique(return_inverse=True)
        rows = []
        for t in uniq.tolist():
            text = target_tokenizer.decode([t])
            sub = explainer.tokenizer(text, add_special_tokens=False)["input_ids"] or \
                [explainer.tokenizer.unk_token_id or 0]
            rows.append(emb(torch.tensor([sub], device=device))[0].float().mean(0).cpu())
        return torch.stack(rows)[inverse]


def residuals(target: LoadedModel, sequences: Sequence[np.ndarray], layers: Sequence[int],
              skip_first: int = 1) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Residual streams ``{layer: (n, d_target)}`` after each block in ``layers`` and the token
    ids ``(n,)`` they sit on, one sequence per forward pass; the first ``skip_first`` positions of
    each (the attention sink's outsized norms) are left out."""
    model = target.model
    device = next(model.parameters()).device
    acts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    ids_out = []
    with torch.no_grad():
        for seq in sequences:
            if len(seq) <= skip_first:
                continue
            ids = torch.as_tensor(seq, device=device)[None]
            with record_residual(model, list(layers), stop=True) as got:
                model(input_ids=ids)
            for layer in layers:
                acts[layer].append(got[layer][0, skip_first:].float().cpu())
            ids_out.append(ids[0, skip_first:].cpu())
    if not ids_out:
        raise ArtifactError("the token lens got no tokens to fit on")
    return {k: torch.cat(v) for k, v in acts.items()}, torch.cat(ids_out)


def fit_ridge(x: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """``W (d_y, d_x)`` minimising ``|x_c W^T - y|^2 + lam |W|^2`` with ``x_c`` the centred
    ``x (n, d_x)``; ``lam = ridge *`` the mean eigenvalue of ``x_c^T x_c``, so the penalty does not
    depend on the scale of ``x`` or the number of rows. float64."""
    x = x.double()
    xc = x - x.mean(0)
    gram = xc.T @ xc
    lam = ridge * float(gram.diagonal().mean())
    gram = gram + lam * torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(gram, xc.T @ y.double()).T.float()


def fit_token_lens(target: LoadedModel, explainer: LoadedModel, sequences: Sequence[np.ndarray],
                   layers: Sequence[int], *, ridge: float = 0.01, held_out: float = 0.1,
                   seed: int = 0) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    """Per layer, ``W (d_expl, d_target)`` mapping the target's residual at a token to the
    direction of the explainer's embedding of that token (fit on all but a seeded ``held_out``
    share of the tokens), and fit statistics: the token count and, on the held-out tokens, how
    often the nearest explainer embedding (cosine) of ``W h`` is the true token's (same
    vocabulary only; else None)."""
    acts, ids = residuals(target, sequences, layers)
    y = token_embeddings(target.tokenizer, explainer, ids)
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    n = len(ids)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(held_out * n)
    test, train = perm[:n_test], perm[n_test:]
    same = target.tokenizer.get_vocab() == explainer.tokenizer.get_vocab()
    if same:
        vocab = explainer.model.get_input_embeddings().weight.detach().float().cpu()
        vocab = vocab / vocab.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    maps, stats = {}, {"n_tokens": n, "n_sequences": len(sequences), "ridge": ridge,
                       "held_out_token_accuracy": {}}
    for layer in layers:
        w = fit_ridge(acts[layer][train], y[train], ridge)
        acc = None
        if same and n_test:
            pred = acts[layer][test[:4096]] @ w.T
            acc = float(((pred @ vocab.T).argmax(-1) == ids[test[:4096]]).float().mean())
        stats["held_out_token_accuracy"][str(layer)] = acc
        maps[layer] = w
    return maps, stats
