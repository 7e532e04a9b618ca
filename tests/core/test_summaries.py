"""group_attributions, global_importance and combine: closed forms and validation."""

from __future__ import annotations

import pytest
import torch

import tfx_explain as tx

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ATTR = torch.tensor(
    [[0.5, -1.0, 2.0, 0.0, 3.0], [-0.5, 4.0, -2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]],
    dtype=F64,
)
GROUPS = {"b": [1, 3], "a": [4, 0], "c": [2]}  # neither sorted nor contiguous


# ---- group_attributions --------------------------------------------------------------------


def test_group_attributions_sums_each_group_in_mapping_order():
    sums = tx.group_attributions(ATTR, GROUPS)
    expected = torch.tensor(
        [[-1.0, 3.5, 2.0], [5.0, -0.5, -2.0], [0.0, 0.0, 0.0]], dtype=F64
    )  # columns b, a, c
    assert sums.dtype == F64
    assert torch.equal(sums, expected)


def test_group_attributions_of_image_shaped_and_tree_attributions():
    attr = torch.arange(12, dtype=F64).reshape(2, 2, 3)  # (B, 2, 3): flat indices 0..5
    sums = tx.group_attributions(attr, {"row0": [0, 1, 2], "row1": [3, 4, 5]})
    assert torch.equal(sums, attr.sum(2))
    tree = {"u": attr[:, 0], "v": attr[:, 1]}
    by_key = tx.group_attributions(tree, {"u": "u", "v0": ("v", [0]), "v12": ("v", [1, 2])})
    expected = torch.stack([attr[:, 0].sum(1), attr[:, 1, 0], attr[:, 1, 1:].sum(1)], 1)
    assert torch.equal(by_key, expected)


def test_group_attributions_sum_to_the_total():
    attr = torch.randn(6, 7, generator=_gen(0), dtype=F64)
    groups = {"x": [6, 2], "y": [0, 1, 3], "z": [4, 5]}
    torch.testing.assert_close(
        tx.group_attributions(attr, groups).sum(1), attr.sum(1), rtol=0, atol=1e-14
    )


def test_group_attributions_recover_ablated_group_drops():
    # feature_ablation shares a group's drop evenly; summing it back gives the drop
    w = torch.randn(5, generator=_gen(1), dtype=F64)

    def fn(x):
        return torch.tanh(x @ w) + x[:, 0] * x[:, 4]

    x = torch.randn(4, 5, generator=_gen(2), dtype=F64)
    attr = tx.feature_ablation(fn, x, groups=GROUPS)
    sums = tx.group_attributions(attr, GROUPS)
    for g, members in enumerate(GROUPS.values()):
        ablated = x.clone()
        ablated[:, members] = 0.0
        torch.testing.assert_close(sums[:, g], fn(x) - fn(ablated), rtol=0, atol=1e-14)


def test_group_attributions_recover_group_shapley_values():
    # Shapley values of groups, summed back per group: efficiency over the groups
    def fn(x):
        return x[:, 0] * x[:, 1] + torch.sin(x[:, 2] + x[:, 3]) * x[:, 4]

    x = torch.randn(3, 5, generator=_gen(3), dtype=F64)
    sums = tx.group_attributions(tx.shapley_values(fn, x, groups=GROUPS), GROUPS)
    torch.testing.assert_close(sums.sum(1), fn(x) - fn(torch.zeros_like(x)), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("groups", "error", "pattern"),
    [
        ({"a": [0, 1], "b": [1, 2, 3, 4]}, ValueError, "groups"),  # overlap
        ({"a": [0, 1], "b": [2, 3]}, ValueError, "groups"),  # feature 4 missing
        ({"a": [0, 1, 2], "b": [3, 4, 5]}, ValueError, "groups"),  # out of range
        ({"a": [0, 1, 2, 3, 4], "b": []}, ValueError, "groups"),  # empty group
        ({"a": [0, 0, 1, 2, 3, 4]}, ValueError, "groups"),  # listed twice
        ({"a": [0, 1, 2, 3, 4.0]}, ValueError, "groups"),  # not an int
        ({"a": "everything"}, TypeError, "groups"),  # unknown leaf key
        ([[0, 1], [2, 3, 4]], TypeError, "groups"),  # not a mapping
        ({}, TypeError, "groups"),
    ],
)
def test_group_attributions_refuses_bad_groups(groups, error, pattern):
    with pytest.raises(error, match=rf"\b{pattern}\b"):
        tx.group_attributions(ATTR, groups)


def test_group_attributions_refuses_non_tensors():
    with pytest.raises(TypeError, match="attributions"):
        tx.group_attributions([[1.0, 2.0]], {"a": [0, 1]})


# ---- global_importance ---------------------------------------------------------------------


def test_global_importance_closed_form():
    # mean |a| over samples: (1/3) * [1, 5, 4, 1, 3]; total 14/3
    importance = tx.global_importance(ATTR)
    expected = torch.tensor([1.0, 5.0, 4.0, 1.0, 3.0], dtype=F64) / 14.0
    torch.testing.assert_close(importance, expected, rtol=0, atol=1e-16)
    assert importance.dtype == F64


def test_global_importance_of_groups_uses_group_sums():
    # |group sum| per sample (cancellation inside a group counts): b: 1, 5, 0; a: 3.5, 0.5, 0;
    # c: 2, 2, 0 -> means 2, 4/3, 4/3 (times 1/3 dropped in the ratio): 6, 4, 4 over 14
    importance = tx.global_importance(ATTR, groups=GROUPS)
    expected = torch.tensor([6.0, 4.0, 4.0], dtype=F64) / 14.0
    torch.testing.assert_close(importance, expected, rtol=0, atol=1e-16)


def test_global_importance_properties():
    attr = torch.randn(20, 2, 3, generator=_gen(4), dtype=F64)
    importance = tx.global_importance(attr)
    assert importance.shape == (6,)
    assert abs(float(importance.sum()) - 1.0) < 1e-15
    assert bool((importance >= 0).all())
    # invariant to positive scaling and to flipping the sign of any entry
    signs = torch.where(torch.rand(attr.shape, generator=_gen(5)) < 0.5, -1.0, 1.0).to(F64)
    torch.testing.assert_close(
        tx.global_importance(3.5 * attr * signs), importance, rtol=0, atol=1e-15
    )
    # a tree gives the importance of its concatenated leaves
    tree = {"u": attr[:, 0], "v": attr[:, 1]}
    torch.testing.assert_close(tx.global_importance(tree), importance, rtol=0, atol=1e-15)


def test_global_importance_of_all_zeros_is_zeros():
    importance = tx.global_importance(torch.zeros(4, 3))
    assert torch.equal(importance, torch.zeros(3))
    assert bool(torch.isfinite(importance).all())


def test_global_importance_refuses_bad_groups():
    with pytest.raises(ValueError, match=r"\bgroups\b"):
        tx.global_importance(ATTR, groups={"a": [0, 1]})


# ---- combine -------------------------------------------------------------------------------


def test_combine_closed_form():
    a = torch.tensor([[2.0, -1.0, 0.0], [0.5, 0.25, -0.5]], dtype=F64)
    b = torch.tensor([[1.0, 1.0, -4.0], [0.0, 0.0, 0.0]], dtype=F64)
    # per sample: a / max|a| = [1, -0.5, 0], [1, 0.5, -1]; b / max|b| = [0.25, 0.25, -1], zeros
    expected = torch.tensor([[0.625, -0.125, -0.5], [0.5, 0.25, -0.5]], dtype=F64)
    combined = tx.combine(a, b)
    assert combined.dtype == F64
    assert torch.equal(combined, expected)


def test_combine_properties():
    a = torch.randn(5, 2, 3, generator=_gen(6), dtype=F64)
    b = torch.randn(5, 2, 3, generator=_gen(7), dtype=F64)
    c = torch.randn(5, 2, 3, generator=_gen(8), dtype=F64)
    combined = tx.combine(a, b, c)
    assert combined.shape == a.shape
    assert bool((combined.abs() <= 1).all())
    # invariant to positive per-sample scaling of any input
    scale = torch.rand(5, 1, 1, generator=_gen(9), dtype=F64) + 0.1
    torch.testing.assert_close(tx.combine(a * scale, b, c), combined, rtol=0, atol=1e-15)
    # identical inputs combine to the normalized input; order does not matter
    peak = a.flatten(1).abs().amax(1)[:, None, None]
    torch.testing.assert_close(tx.combine(a, a), a / peak, rtol=0, atol=1e-15)
    torch.testing.assert_close(tx.combine(c, a, b), combined, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "arguments",
    [
        (torch.ones(2, 3),),
        (),
        (torch.ones(2, 3), torch.ones(2, 4)),
        (torch.ones(2, 3), torch.ones(3, 3)),
        (torch.ones(2, 3), [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
    ],
    ids=["one", "none", "feature_shape", "batch", "not_a_tensor"],
)
def test_combine_refuses_bad_arguments(arguments):
    with pytest.raises((ValueError, TypeError), match="attributions"):
        tx.combine(*arguments)


def test_group_attributions_of_no_rows_is_empty():
    out = tx.group_attributions(torch.zeros(0, 4), {"a": [0, 1], "b": [2, 3]})
    assert out.shape == (0, 2)
