"""What every method does before it builds rows: shared checks and multi-target expansion.

:func:`prepare` runs the checks every method shares. :func:`expand_targets`
turns a ``(B, T)`` target into ``B * T`` single-target samples, so every
gradient method gets multi-target support from the row engine for free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from .checks import check_chunk_size, check_fn, check_inputs
from .devices import device_of
from .targets import check_target

__all__ = ["prepare", "per_target", "expand_targets"]


def prepare(fn: Callable, x: Any, target: Any, chunk_size: Any) -> tuple[Any, int | None]:
    """Validate the arguments every method shares; return ``(target, chunk_size)``.

    ``fn`` is not called here: its outputs are checked (shape, finiteness, target
    range) by the row engine on the rows the method evaluates anyway.
    """
    check_fn(fn)
    batch = check_inputs(x, "x")
    chunk_size = check_chunk_size(chunk_size)
    return check_target(target, batch, device=device_of(x)), chunk_size


def expand_targets(
    target: torch.Tensor | None, *trees: Any
) -> tuple[torch.Tensor | None, tuple[Any, ...], Callable]:
    """Treat a ``(B, T)`` target as ``B * T`` single-target samples.

    Returns:
      ``(targets, trees, unexpand)``: targets ``None`` or ``(B * T,)``; each tree's
      leaves repeated ``T`` times along dim 0; ``unexpand`` maps ``(B * T, ...)``
      results back to ``(B, T, ...)``.
    """
    if target is None or target.ndim == 1:
        return target, trees, lambda result: result
    batch, n_targets = target.shape
    repeated = tuple(
        pytree.tree_map(lambda leaf: leaf.repeat_interleave(n_targets, dim=0), tree)
        for tree in trees
    )

    def unexpand(result: Any) -> Any:
        return pytree.tree_map(lambda r: r.reshape((batch, n_targets) + r.shape[1:]), result)

    return target.reshape(-1), repeated, unexpand


def per_target(x: Any, target: torch.Tensor | None) -> Any:
    """View ``x`` with a target axis when the target is ``(B, T)``: ``(B, 1, *F)``."""
    if target is None or target.ndim == 1:
        return x
    return pytree.tree_map(lambda leaf: leaf.unsqueeze(1), x)
