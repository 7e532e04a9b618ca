"""Pytree walks with a fast path for the usual input: one plain tensor.

``torch.utils._pytree`` builds a tree spec on every walk, about 2-4 us even for a
lone tensor, and a method call walks its input a dozen times (checks, routing,
chunking, autograd). A tensor is always a pytree leaf, so for a tensor these
helpers return exactly what ``pytree`` would, without the walk; any other tree
goes to ``pytree`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

__all__ = ["flatten", "leaves", "n_rows", "tree_map", "unflatten"]


def leaves(tree: Any) -> list[Any]:
    """``pytree.tree_leaves(tree)``."""
    return [tree] if isinstance(tree, torch.Tensor) else pytree.tree_leaves(tree)


def tree_map(f: Callable, tree: Any, *rest: Any) -> Any:
    """``pytree.tree_map(f, tree, *rest)``."""
    if isinstance(tree, torch.Tensor):
        return f(tree, *rest)
    return pytree.tree_map(f, tree, *rest)


def flatten(tree: Any) -> tuple[list[Any], Any]:
    """``pytree.tree_flatten(tree)``; the spec of a lone tensor is ``None``."""
    if isinstance(tree, torch.Tensor):
        return [tree], None
    return pytree.tree_flatten(tree)


def unflatten(values: list[Any], spec: Any) -> Any:
    """The inverse of :func:`flatten`."""
    return values[0] if spec is None else pytree.tree_unflatten(values, spec)


def n_rows(tree: Any) -> int:
    """The leading (batch) dimension of a pytree's first leaf."""
    return (tree if isinstance(tree, torch.Tensor) else pytree.tree_leaves(tree)[0]).shape[0]
