"""masked_rows: the perturbed rows that ablation, occlusion, Shapley and the surrogates build."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, vmap

from tfx_explain._engine import masks
from tfx_explain._engine.masks import masked_rows


def _where(keep, x, b):
    return torch.where(keep, x.unsqueeze(1), b.unsqueeze(1)).flatten(0, 1)


def _inputs(n, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype) * 1e30  # huge values: no arithmetic
    b = torch.randn(n, d, generator=g, dtype=dtype)
    b[:, 0] = -0.0  # a signed zero must stay signed
    return x, b


@pytest.mark.parametrize("removed", [0.0, 0.01, 0.1, 0.125, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_masked_rows_are_torch_where_bit_for_bit(removed, dtype):
    x, b = _inputs(6, 20, dtype if dtype != torch.float16 else torch.float32)
    x, b = x.clamp(-6e4, 6e4).to(dtype), b.to(dtype)
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(9, 20, generator=g) >= removed
    ours, theirs = masked_rows(keep, x, b), _where(keep, x, b)
    assert ours.shape == theirs.shape == (54, 20) and ours.dtype == dtype
    bits = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16}
    assert torch.equal(ours.view(bits[dtype]), theirs.view(bits[dtype]))  # same bits, -0.0 too


def test_both_paths_are_taken_and_agree(monkeypatch):
    x, b = _inputs(4, 10)
    keep = torch.ones(11, 10, dtype=torch.bool)
    keep[1:].fill_diagonal_(False)  # single-feature ablation: 10 of 110 entries removed
    calls = []
    original = torch.where
    monkeypatch.setattr(torch, "where", lambda *a, **k: calls.append(1) or original(*a, **k))
    sparse = masked_rows(keep, x, b)
    assert calls == []  # copied and patched
    dense = masked_rows(torch.rand(11, 10) > 0.5, x, b)
    assert calls == [1]
    monkeypatch.setattr(torch, "where", original)
    assert torch.equal(sparse, _where(keep, x, b)) and dense.shape == (44, 10)


def test_masked_rows_carry_gradients_to_x_and_b():
    x, b = _inputs(3, 8)
    x, b = x / 1e30, b
    keep = torch.ones(9, 8, dtype=torch.bool)
    keep[1:].fill_diagonal_(False)
    w = torch.arange(8, dtype=torch.float64)
    gx, gb = torch.autograd.grad(
        (masked_rows(keep, x.requires_grad_(), b.requires_grad_()) @ w).sum(), (x, b)
    )
    ex, eb = torch.autograd.grad((_where(keep, x, b) @ w).sum(), (x, b))
    assert torch.equal(gx, ex) and torch.equal(gb, eb)
    # x kept in 8 of 9 rows per feature, b once: w_d * 8 and w_d * 1
    assert torch.equal(gx, (8 * w).expand(3, 8)) and torch.equal(gb, w.expand(3, 8))


def test_under_transforms_masked_rows_use_where():
    x, b = _inputs(3, 8)
    x = x / 1e30
    keep = torch.ones(9, 8, dtype=torch.bool)
    keep[1:].fill_diagonal_(False)
    per_sample = vmap(lambda x1, b1: masked_rows(keep, x1[None], b1[None]).sum())(x, b)
    torch.testing.assert_close(per_sample, _where(keep, x, b).reshape(3, -1).sum(1))
    g = grad(lambda x: masked_rows(keep, x, b).sum())(x)
    assert torch.equal(g, torch.full_like(x, 8.0))
    meta = masked_rows(keep.to("meta"), x.to("meta"), b.to("meta"))
    assert meta.shape == (27, 8) and meta.is_meta


def test_the_sparse_threshold_is_one_eighth():
    assert masks.SPARSE_REMOVED == 1 / 8


def test_removed_entries_are_found_once_per_mask_and_again_after_a_write():
    x, b = _inputs(3, 10)
    keep = torch.ones(11, 10, dtype=torch.bool)
    keep[1:].fill_diagonal_(False)
    first = masked_rows(keep, x, b)
    assert id(keep) in masks._REMOVED  # kept for the next chunk of the same call
    assert torch.equal(masked_rows(keep, x[:2], b[:2]), _where(keep, x[:2], b[:2]))
    keep[0, 3] = False  # written in place: its version moves, the indices are found again
    assert torch.equal(masked_rows(keep, x, b), _where(keep, x, b))
    assert not torch.equal(masked_rows(keep, x, b), first)
    key = id(keep)
    del keep
    assert key not in masks._REMOVED  # the entry dies with its mask


def test_masks_made_under_inference_mode_are_not_kept():
    x, b = _inputs(3, 10)
    with torch.inference_mode():
        keep = torch.ones(11, 10, dtype=torch.bool)
        keep[1:].fill_diagonal_(False)
        assert torch.equal(masked_rows(keep, x, b), _where(keep, x, b))
    assert id(keep) not in masks._REMOVED
