"""Targets: which output of ``fn`` is explained, turned into a per-sample scalar here only.

A target is ``None`` (``fn`` returns ``(B,)``), an int, a LongTensor ``(B,)`` or a
LongTensor ``(B, T)`` (T targets per sample, explained in one vectorized pass).
After :func:`check_target` it is ``None`` or a LongTensor ``(B,)`` / ``(B, T)``.
Outputs are picked with ``gather``: tensor indexing would call ``.item()`` under vmap.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from .checks import is_transformed

__all__ = [
    "check_target",
    "check_output",
    "select",
    "select_batch",
    "select_rows",
    "one_sample",
    "probe",
]


def check_target(target: Any, batch: int, n_outputs: int | None) -> torch.Tensor | None:
    """Validate ``target`` against the batch size and ``fn``'s output width.

    Args:
      target: ``None``, int, or LongTensor ``(B,)`` / ``(B, T)``.
      batch: the batch size ``B``.
      n_outputs: ``C`` when ``fn`` returns ``(B, C)``; ``None`` when it returns ``(B,)``.

    Returns:
      ``None`` or a LongTensor ``(B,)`` / ``(B, T)``.
    """
    if target is None:
        if n_outputs is not None:
            raise ValueError(
                f"target is required: fn returns {n_outputs} outputs per sample, "
                "so say which one to explain (an int or a LongTensor (B,) or (B, T))"
            )
        return None
    if n_outputs is None and not is_transformed(target):
        raise ValueError(f"target must be None: fn returns one output per sample, got {target!r}")
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        if not 0 <= target < n_outputs:
            raise ValueError(f"target must be in [0, {n_outputs}), got {target}")
        return torch.full((batch,), int(target), dtype=torch.long)
    if not isinstance(target, torch.Tensor):
        raise TypeError(
            f"target must be None, an int or a LongTensor, got {type(target).__name__}: {target!r}"
        )
    if target.dtype != torch.long:
        raise TypeError(f"target must be a LongTensor (torch.long), got dtype {target.dtype}")
    if target.ndim not in (1, 2) or target.shape[0] != batch:
        raise ValueError(
            f"target must have shape ({batch},) or ({batch}, T), got {tuple(target.shape)}"
        )
    if target.ndim == 2 and target.shape[1] == 0:
        raise ValueError(f"target of shape {tuple(target.shape)} holds no targets: T must be >= 1")
    if not is_transformed(target) and n_outputs is not None and target.numel():
        low, high = int(target.min()), int(target.max())
        if low < 0 or high >= n_outputs:
            bad = low if low < 0 else high
            raise ValueError(f"target must be in [0, {n_outputs}), got a value {bad}")
    return target


def check_output(out: Any, rows: int) -> torch.Tensor:
    """Check that ``fn`` returned ``(rows,)`` or ``(rows, C)`` (a static shape check)."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"fn must return a tensor, got {type(out).__name__}")
    if not out.is_floating_point():
        raise TypeError(
            f"fn must return a floating tensor, got dtype {out.dtype}; attributions explain "
            "real-valued outputs (cast, e.g. return logits or probabilities, not labels)"
        )
    if out.ndim not in (1, 2) or out.shape[0] != rows:
        raise ValueError(
            f"fn must return shape ({rows},) or ({rows}, C) for {rows} input rows, "
            f"got {tuple(out.shape)}; fn must keep the batch dimension"
        )
    return out


def probe(fn: Callable, x: Any) -> int | None:
    """Run ``fn`` on the first row of ``x``; return ``C`` for ``(B, C)`` outputs, else None."""
    first = pytree.tree_map(lambda leaf: leaf[:1], x)
    out = check_output(fn(first), 1)
    if not is_transformed(out) and not bool(torch.isfinite(out).all()):
        raise ValueError(f"fn returned a non-finite value for the first row of x: {out}")
    return None if out.ndim == 1 else int(out.shape[1])


def select(out1: torch.Tensor, t1: torch.Tensor | None) -> torch.Tensor:
    """One sample's explained output: ``out1`` is ``()`` or ``(C,)``, ``t1`` is None or ``()``."""
    if t1 is None:
        return out1
    return out1.gather(-1, t1.reshape(1)).squeeze(-1)


def select_batch(out: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Explained outputs of a batch: ``(B,)``, or ``(B, T)`` for a ``(B, T)`` target."""
    if target is None:
        if out.ndim != 1:
            raise ValueError("target is required: fn returns several outputs per sample")
        return out
    if target.ndim == 1:
        return out.gather(1, target[:, None])[:, 0]
    return out.gather(1, target)


def select_rows(out: torch.Tensor, t1: torch.Tensor | None) -> torch.Tensor:
    """Outputs of ``R`` rows of one sample: ``(R,)``, or ``(R, T)`` for ``(T,)`` targets."""
    if t1 is None:
        if out.ndim != 1:
            raise ValueError("target is required: fn returns several outputs per sample")
        return out
    rows = out.shape[0]
    if t1.ndim == 0:
        return out.gather(1, t1.reshape(1, 1).expand(rows, 1))[:, 0]
    return out.gather(1, t1.reshape(1, -1).expand(rows, -1))


def one_sample(fn: Callable) -> Callable:
    """Turn a batched ``fn`` into ``f(x1, t1) -> ()``: one sample, one explained output."""

    def f1(x1: Any, t1: torch.Tensor | None) -> torch.Tensor:
        # (*F) -> (1, *F) -> (1,) or (1, C) -> ()
        out = check_output(fn(pytree.tree_map(lambda leaf: leaf.unsqueeze(0), x1)), 1)
        if t1 is None and out.ndim != 1:
            raise ValueError("target is required: fn returns several outputs per sample")
        return select(out[0], t1)

    return f1
