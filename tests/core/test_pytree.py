"""Dict and tuple inputs: every method on pytrees, and errors that name the leaf.

The reference for a tree ``{"u": (B, 3), "v": (B, 2, 2)}`` is the same method on
its flat ``(B, 7)`` concatenation: a pytree input must change nothing but the
packaging of the result.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils import _pytree as pytree

import tfx_explain as tx
from tfx_explain._engine import masks as _masks

F64 = torch.float64
B = 3


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tree(dtype_v=F64) -> dict[str, torch.Tensor]:
    g = _gen(1)
    return {
        "u": torch.randn(B, 3, generator=g, dtype=F64),
        "v": torch.randn(B, 2, 2, generator=g, dtype=F64).to(dtype_v),
    }


def _flat(tree) -> torch.Tensor:
    return torch.cat([leaf.flatten(1) for leaf in pytree.tree_leaves(tree)], dim=1)


def _split(flat: torch.Tensor, like) -> dict[str, torch.Tensor]:
    u, v = flat.split([3, 4], dim=1)
    return {"u": u.to(like["u"].dtype), "v": v.reshape(-1, 2, 2).to(like["v"].dtype)}


_W1 = torch.randn(7, 4, generator=_gen(0), dtype=F64) / math.sqrt(7)
_W2 = torch.randn(4, 2, generator=_gen(5), dtype=F64)


def _fn(x):
    """A tanh MLP ``(B, 7) -> (B, 2)`` reading a tree as its flat concatenation."""
    flat = _flat(x) if not isinstance(x, torch.Tensor) else x
    return torch.tanh(flat.to(F64) @ _W1) @ _W2


def _as_tuple(tree):
    return (tree["u"], tree["v"])


def _groups_tree(kind: str):
    """The partition {u}, {v[0], v[3]}, {v[1]}, {v[2]} named by leaf and by indices."""
    if kind == "dict":
        return {"u": "u", "v03": ("v", torch.tensor([0, 3])), "v1": ("v", [1]), "v2": ("v", [2])}
    return {"u": 0, "v03": (1, torch.tensor([0, 3])), "v1": (1, [1]), "v2": (1, [2])}


GROUPS_FLAT = {"u": [0, 1, 2], "v03": [3, 6], "v1": [4], "v2": [5]}
TARGET = torch.tensor([0, 1, 1])


def _methods():
    refs_tree = {
        "u": torch.randn(4, 3, generator=_gen(7), dtype=F64),
        "v": torch.randn(4, 2, 2, generator=_gen(8), dtype=F64),
    }
    return {
        "input_gradients": lambda x, g: tx.input_gradients(_fn, x, target=TARGET),
        "gradient_x_input": lambda x, g: tx.gradient_x_input(_fn, x, target=TARGET),
        "integrated_gradients": lambda x, g: tx.integrated_gradients(
            _fn, x, target=TARGET, steps=8, baseline=0.5
        ),
        "smoothgrad": lambda x, g: tx.smoothgrad(tx.input_gradients, n_samples=3, sigma=0.0)(
            _fn, x, target=TARGET
        ),
        "expected_gradients": lambda x, g: tx.expected_gradients(
            _fn,
            x,
            target=TARGET,
            n_samples=4,
            generator=_gen(2),
            baselines=_flat(refs_tree) if isinstance(x, torch.Tensor) else _like(refs_tree, x),
        ),
        "feature_ablation": lambda x, g: tx.feature_ablation(
            _fn, x, target=TARGET, groups=g, baseline=0.5
        ),
        "shapley_values": lambda x, g: tx.shapley_values(
            _fn, x, target=TARGET, groups=g, baseline=0.5
        ),
        "shapley_values[sampled]": lambda x, g: tx.shapley_values(
            _fn, x, target=TARGET, groups=g, n_permutations=4, generator=_gen(3)
        ),
    }


def _like(tree, x):
    return _as_tuple(tree) if isinstance(x, tuple) else tree


METHODS = _methods()


@pytest.mark.parametrize("kind", ["dict", "tuple"])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_on_a_tree_equals_its_flat_version(name, kind):
    method = METHODS[name]
    tree = _tree()
    x = tree if kind == "dict" else _as_tuple(tree)
    attr = method(x, _groups_tree(kind))
    flat = method(_flat(tree), GROUPS_FLAT)
    if kind == "dict":
        assert isinstance(attr, dict) and list(attr) == ["u", "v"]
        leaves = [attr["u"], attr["v"]]
    else:
        assert isinstance(attr, tuple) and len(attr) == 2
        leaves = list(attr)
    for leaf, ref in zip(leaves, pytree.tree_leaves(tree), strict=True):
        assert leaf.shape == ref.shape and leaf.dtype == ref.dtype
    torch.testing.assert_close(_flat(attr), flat, rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["dict", "tuple"])
def test_adaptive_integrated_gradients_on_a_tree_equals_its_flat_version(kind):
    tree = _tree()
    x = tree if kind == "dict" else _as_tuple(tree)
    fn = lambda z: _fn(z)[:, 1]  # noqa: E731 - a (B,) output, as adaptive IG needs no target
    result = tx.adaptive_integrated_gradients(fn, x, tol=1e-9)
    flat = tx.adaptive_integrated_gradients(fn, _flat(tree), tol=1e-9)
    assert type(result.attributions) is type(x)
    torch.testing.assert_close(_flat(result.attributions), flat.attributions, rtol=0, atol=1e-12)
    assert torch.equal(result.steps, flat.steps)
    assert result.gap.abs().max() <= 1e-9
    gap = tx.completeness_gap(fn, x, result.attributions)
    torch.testing.assert_close(gap, result.gap, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["dict", "tuple"])
def test_smoothgrad_with_noise_keeps_the_tree(kind):
    tree = _tree()
    x = tree if kind == "dict" else _as_tuple(tree)
    smooth = tx.smoothgrad(tx.integrated_gradients, n_samples=4, sigma=0.3, generator=_gen(4))
    attr = smooth(_fn, x, target=TARGET, steps=4)
    assert type(attr) is type(x)
    for leaf, ref in zip(pytree.tree_leaves(attr), pytree.tree_leaves(x), strict=True):
        assert leaf.shape == ref.shape and leaf.dtype == ref.dtype
        assert bool(torch.isfinite(leaf).all())


@pytest.mark.parametrize("name", list(METHODS))
def test_mixed_dtype_leaves_keep_their_dtypes(name):
    tree = _tree(dtype_v=torch.float32)
    attr = METHODS[name](tree, _groups_tree("dict"))
    assert attr["u"].dtype == F64 and attr["v"].dtype == torch.float32
    reference = METHODS[name](_tree(), _groups_tree("dict"))
    torch.testing.assert_close(attr["v"], reference["v"].float(), rtol=1e-4, atol=1e-5)


def test_unflatten_rows_casts_each_leaf():
    like = {"a": torch.zeros(2, dtype=torch.float32), "b": torch.zeros(1, 2, dtype=F64)}
    rows = torch.arange(8, dtype=F64).reshape(2, 4) / 3
    out = _masks.unflatten_rows(rows, like)
    assert out["a"].dtype == torch.float32 and out["b"].dtype == F64
    assert out["b"].shape == (2, 1, 2)
    torch.testing.assert_close(out["b"].flatten(1), rows[:, 2:], rtol=0.0, atol=0.0)


def test_group_matrix_takes_a_leaf_and_a_long_tensor_of_indices():
    x1 = {"u": torch.zeros(3), "v": torch.zeros(2, 2)}
    names, matrix = _masks.group_matrix({"u": "u", "v": ("v", torch.tensor([3, 0, 1, 2]))}, x1)
    assert names == ["u", "v"]
    assert matrix.tolist() == [[True] * 3 + [False] * 4, [False] * 3 + [True] * 4]


def test_group_attributions_and_global_importance_on_trees():
    attr = {"u": torch.ones(2, 3), "v": torch.full((2, 2, 2), 2.0)}
    sums = tx.group_attributions(
        attr, {"u": "u", "v0": ("v", torch.tensor([0])), "v": ("v", [1, 2, 3])}
    )
    assert sums.tolist() == [[3.0, 2.0, 6.0]] * 2
    importance = tx.global_importance(attr, groups={"u": "u", "v": "v"})
    torch.testing.assert_close(importance, torch.tensor([3 / 11, 8 / 11]))


def test_combine_on_trees_scales_by_the_peak_over_all_leaves():
    a = {"u": torch.tensor([[2.0, -1.0]]), "v": torch.tensor([[[4.0]]])}
    b = {"u": torch.tensor([[1.0, 0.0]]), "v": torch.tensor([[[0.0]]])}
    c = tx.combine(a, b)
    assert isinstance(c, dict) and c["v"].shape == (1, 1, 1)
    torch.testing.assert_close(c["u"], torch.tensor([[0.75, -0.125]]))
    torch.testing.assert_close(c["v"], torch.tensor([[[0.5]]]))
    flat = tx.combine(_flat(a), _flat(b))
    torch.testing.assert_close(_flat(c), flat)
    pair = tx.combine(_as_tuple(a), _as_tuple(b))
    assert isinstance(pair, tuple)
    torch.testing.assert_close(_flat(pair), flat)


def test_combine_refuses_trees_of_different_structure():
    a = {"u": torch.ones(1, 2), "v": torch.ones(1, 1)}
    with pytest.raises(ValueError, match=r"attributions\[1\]\['v'\]"):
        tx.combine(a, {"u": torch.ones(1, 2)})


# ---- errors name the leaf -----------------------------------------------------------------


def test_a_baseline_missing_a_key_names_it():
    with pytest.raises(ValueError, match=r"misses baseline\['v'\]") as info:
        tx.integrated_gradients(_fn, _tree(), target=0, baseline={"u": torch.zeros(B, 3)})
    assert "TreeSpec" not in str(info.value)


def test_a_baseline_with_an_extra_key_names_it():
    baseline = {"u": torch.zeros(B, 3), "v": torch.zeros(B, 2, 2), "w": torch.zeros(B, 1)}
    with pytest.raises(ValueError, match=r"baseline\['w'\] not in x"):
        tx.feature_ablation(_fn, _tree(), target=0, groups=None, baseline=baseline)


def test_expected_gradients_baselines_missing_a_key_names_it():
    with pytest.raises(ValueError, match=r"misses baselines\['u'\]"):
        tx.expected_gradients(_fn, _tree(), target=0, baselines={"v": torch.zeros(2, 2, 2)})


def test_attributions_missing_a_key_name_it_in_completeness_gap():
    with pytest.raises(ValueError, match=r"misses attributions\['v'\]"):
        tx.completeness_gap(_fn, _tree(), {"u": torch.zeros(B, 3)}, target=0)


def test_mismatched_batch_sizes_name_the_leaf():
    x = {"u": torch.zeros(B, 3), "v": torch.zeros(B + 1, 2, 2)}
    with pytest.raises(ValueError, match=r"x\['v'\] has batch size 4"):
        tx.input_gradients(_fn, x, target=0)


def test_a_non_floating_leaf_is_named():
    x = {"u": torch.zeros(B, 3), "v": torch.zeros(B, 2, 2, dtype=torch.long)}
    with pytest.raises(TypeError, match=r"x\['v'\] must be a floating tensor"):
        tx.integrated_gradients(_fn, x, target=0)
    with pytest.raises(TypeError, match=r"x\[1\] must be a floating tensor"):
        tx.shapley_values(_fn, _as_tuple(x), target=0, groups={"a": 0, "b": 1})


def test_a_group_naming_an_unknown_leaf_is_refused():
    with pytest.raises(TypeError, match=r"groups\['w'\] names leaf 'w'"):
        tx.feature_ablation(_fn, _tree(), target=0, groups={"u": "u", "v": "v", "w": "w"})
    with pytest.raises(TypeError, match=r"groups\['w'\] names leaf 'w'"):
        tx.feature_ablation(_fn, _tree(), target=0, groups={"u": "u", "w": ("w", [0])})


def test_group_indices_outside_the_leaf_are_refused():
    groups = {"u": "u", "v": ("v", torch.tensor([0, 1, 2, 3, 4]))}
    with pytest.raises(ValueError, match=r"groups\['v'\]\[1\] holds 4"):
        tx.shapley_values(_fn, _tree(), target=0, groups=groups)
    with pytest.raises(TypeError, match=r"integer tensor"):
        tx.shapley_values(_fn, _tree(), target=0, groups={"u": "u", "v": ("v", torch.ones(4))})


def test_methods_without_tree_support_say_so():
    with pytest.raises(TypeError, match=r"dict|tuple|tensor"):
        tx.expected_hessians(_fn, _tree(), target=0, baselines=_tree())


@pytest.mark.parametrize("kind", ["dict", "tuple"])
def test_integrated_hessians_of_a_tree_are_the_blocks_of_its_flat_version(kind):
    # gamma[i][j] (B, *F_i, *F_j) is the (leaf i, leaf j) block of the flat (B, 7, 7) result
    tree = _tree()
    x = tree if kind == "dict" else _as_tuple(tree)
    keys = ["u", "v"] if kind == "dict" else [0, 1]
    options = {"target": TARGET, "steps": 3, "baseline": 0.5}
    gamma = tx.integrated_hessians(_fn, x, **options)
    flat = tx.integrated_hessians(_fn, _flat(tree), **options)
    spans = {keys[0]: slice(0, 3), keys[1]: slice(3, 7)}
    leaves = dict(zip(keys, pytree.tree_leaves(x), strict=True))
    for i in keys:
        assert type(gamma[i]) is type(x)
        for j in keys:
            block = gamma[i][j]
            assert block.shape == leaves[i].shape + leaves[j].shape[1:]
            torch.testing.assert_close(
                block.reshape(B, leaves[i][0].numel(), -1),
                flat[:, spans[i], spans[j]],
                rtol=0.0,
                atol=1e-12,
            )
