"""Lifting one-sample kernels to batches, the same way for every method.

A kernel is written for one sample ``x1`` (a pytree of ``(*F)`` leaves) and one
target ``t1`` (``None`` or a ``()`` LongTensor). :func:`lift` vmaps it over the
batch (in chunks of ``chunk_size`` samples) and, for a ``(B, T)`` target, over the
T targets too, so every method gets multi-target support for free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import vmap
from torch.utils import _pytree as pytree

from .checks import check_chunk_size, check_fn, check_inputs, is_transformed
from .devices import device_of
from .targets import check_target, probe

__all__ = ["prepare", "lift", "check_values", "per_target", "expand_targets"]


def prepare(fn: Callable, x: Any, target: Any, chunk_size: Any) -> tuple[Any, int | None]:
    """Validate the arguments every method shares; return ``(target, chunk_size)``."""
    check_fn(fn)
    batch = check_inputs(x, "x")
    chunk_size = check_chunk_size(chunk_size)
    n_outputs = None if target is None else probe(fn, x)
    return check_target(target, batch, n_outputs, device=device_of(x)), chunk_size


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


def lift(
    kernel: Callable,
    target: torch.Tensor | None,
    *,
    chunk_size: int | None,
    n_batched: int = 0,
    target_rows: bool = False,
) -> Callable:
    """Batch ``kernel(x1, t1, *args1)`` over samples (and targets).

    Args:
      kernel: one-sample function of ``(x1, t1, *args1)``.
      target: the checked target (``None``, ``(B,)`` or ``(B, T)``).
      chunk_size: samples per vmap chunk (``None``: all at once).
      n_batched: how many extra positional arguments carry a batch dimension;
        any further ones are shared by all samples.
      target_rows: the kernel takes a ``(T,)`` target itself (perturbation kernels,
        which evaluate each perturbed row once for all targets) instead of being
        vmapped over the targets.

    Returns:
      ``batched(x, target, *args)`` whose outputs have a leading ``B`` (then ``T``).
    """

    def batched(x: Any, t: Any, *args: Any) -> Any:
        n_shared = len(args) - n_batched
        inner = kernel
        if t is not None and t.ndim == 2 and not target_rows:
            # (T,) targets of one sample: vmap over T, everything else shared
            inner = vmap(kernel, in_dims=(None, 0) + (None,) * len(args))
        in_dims = (0, None if t is None else 0) + (0,) * n_batched + (None,) * n_shared
        return vmap(inner, in_dims=in_dims, chunk_size=chunk_size)(x, t, *args)

    return batched


def per_target(x: Any, target: torch.Tensor | None) -> Any:
    """View ``x`` with a target axis when the target is ``(B, T)``: ``(B, 1, *F)``."""
    if target is None or target.ndim == 1:
        return x
    return pytree.tree_map(lambda leaf: leaf.unsqueeze(1), x)


def check_values(values: torch.Tensor, what: str) -> None:
    """Refuse non-finite outputs of ``fn`` (skipped under transforms)."""
    if is_transformed(values):
        return
    if not bool(torch.isfinite(values).all()):
        bad = values[~torch.isfinite(values)].flatten()[0].item()
        raise ValueError(f"fn returned a non-finite value ({bad}) {what}")
