"""The pytree helpers' fast path for a lone tensor returns exactly what pytree returns."""

import pytest
import torch
from torch.utils import _pytree as pytree

from tfx_explain._engine import trees

TREES = {
    "tensor": torch.arange(6.0).reshape(3, 2),
    "parameter": torch.nn.Parameter(torch.ones(2, 3)),
    "dict": {"b": torch.ones(3, 1), "a": torch.zeros(3, 2)},
    "tuple": (torch.ones(4, 2), [torch.zeros(4, 1)]),
}


@pytest.mark.parametrize("name", TREES)
def test_leaves_and_rows_match_pytree(name):
    tree = TREES[name]
    ours, theirs = trees.leaves(tree), pytree.tree_leaves(tree)
    assert len(ours) == len(theirs) and all(a is b for a, b in zip(ours, theirs, strict=True))
    assert trees.n_rows(tree) == theirs[0].shape[0]


@pytest.mark.parametrize("name", TREES)
def test_tree_map_matches_pytree(name):
    tree = TREES[name]
    ours = trees.tree_map(lambda a, b: a * 2 + b, tree, tree)
    theirs = pytree.tree_map(lambda a, b: a * 2 + b, tree, tree)
    assert pytree.tree_structure(ours) == pytree.tree_structure(theirs)
    for a, b in zip(pytree.tree_leaves(ours), pytree.tree_leaves(theirs), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", TREES)
def test_flatten_round_trips(name):
    tree = TREES[name]
    values, spec = trees.flatten(tree)
    assert all(a is b for a, b in zip(values, pytree.tree_leaves(tree), strict=True))
    back = trees.unflatten(values, spec)
    assert pytree.tree_structure(back) == pytree.tree_structure(tree)
    assert all(a is b for a, b in zip(trees.leaves(back), values, strict=True))
