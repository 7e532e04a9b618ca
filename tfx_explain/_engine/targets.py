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

from . import trees
from .checks import value_check

__all__ = ["check_target", "check_output", "select_batch", "one_sample"]


def check_target(target: Any, batch: int, *, device: Any = None) -> torch.Tensor | None:
    """Check the type and shape of ``target`` (static); return ``None`` or a LongTensor.

    Whether a target is needed, and its range ``[0, C)``, depend on the width ``C``
    of ``fn``'s output, so :func:`check_output` checks them on the outputs that the
    row engine evaluates anyway: no extra call of ``fn`` only to learn ``C``.

    Args:
      target: ``None``, int, or LongTensor ``(B,)`` / ``(B, T)``.
      batch: the batch size ``B``.
      device: where the returned target lives (``x``'s device; ``None``: as given).

    Returns:
      ``None`` or a LongTensor ``(B,)`` / ``(B, T)``.
    """
    if target is None:
        return None
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        if target < 0:
            raise ValueError(f"target must be >= 0 (an output index), got {target}")
        return torch.full((batch,), int(target), dtype=torch.long, device=device)
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
    return target if device is None else target.to(device)


@value_check
def _check_range(target: torch.Tensor, n_outputs: int) -> None:
    if target.numel():
        low, high = int(target.min()), int(target.max())
        if low < 0 or high >= n_outputs:
            bad = low if low < 0 else high
            raise ValueError(f"target must be in [0, {n_outputs}), got a value {bad}")


def check_output(out: Any, rows: int, target: torch.Tensor | None) -> torch.Tensor:
    """Check what ``fn`` returned for ``rows`` rows against the target of those rows.

    The shape ``(rows,)`` or ``(rows, C)`` and whether a target is given are static
    checks; the target's range ``[0, C)`` is a value check (see ``checks``), made
    here for targets off the CPU (an out-of-range index there is a device-side
    assert) and by the bounds check of ``gather`` on the CPU (:func:`select_batch`
    turns its error into the same ``ValueError``).
    ``target`` is the target of all rows being evaluated, also when ``fn`` sees
    them one at a time under ``vmap``.
    """
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
    if target is None and out.ndim == 2:
        raise ValueError(
            f"target is required: fn returns {out.shape[1]} outputs per sample, "
            "so say which one to explain (an int or a LongTensor (B,) or (B, T))"
        )
    if target is not None and out.ndim == 1:
        raise ValueError("target must be None: fn returns one output per sample")
    if target is not None and target.device.type != "cpu":
        # on the CPU, gather checks the bounds as it picks (select_batch): no extra pass
        _check_range(target, out.shape[1])
    return out


def select_batch(out: torch.Tensor, target: torch.Tensor | None, repeat: int = 1) -> torch.Tensor:
    """Explained outputs of a batch: ``(B,)``, or ``(B, T)`` for a ``(B, T)`` target.

    With ``repeat`` > 1, ``out`` holds ``repeat`` consecutive rows per target row
    (``B = m * repeat`` for an ``(m,)`` or ``(m, T)`` target): the outputs are
    gathered from a ``(m, repeat, C)`` view with the target expanded over the rows,
    which costs no copy of the targets (``repeat_interleave`` and a gather along the
    rows measured 2-3% of an MLP feature ablation, one call per chunk).
    """
    if target is None:
        return out
    if repeat > 1:
        m = target.shape[0]
        width = 1 if target.ndim == 1 else target.shape[1]
        index = target.reshape(m, 1, width).expand(m, repeat, width)
        picked = _gather(out.reshape(m, repeat, out.shape[-1]), index, target)  # (m, repeat, T)
        return picked.reshape((m * repeat,) + target.shape[1:])
    if target.ndim == 1:  # view/unsqueeze, not [:, None] and [:, 0]: ~10 us less a call, cold
        return _gather(out, target.unsqueeze(1), target).squeeze(1)
    return _gather(out, target, target)


def _gather(out: torch.Tensor, index: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``out.gather(-1, index)``; an index out of range is the ValueError of ``target``."""
    try:
        return out.gather(-1, index)
    except RuntimeError as err:
        if "out of bounds" not in str(err):
            raise
        _check_range(target, out.shape[-1])  # raises, naming the value (when it can be read)
        raise


def one_sample(fn: Callable, target: torch.Tensor | None) -> Callable:
    """Turn a batched ``fn`` into ``f(x1, t1) -> ()``: one sample, one explained output.

    ``target`` holds the targets of all rows that ``f`` will be vmapped over; the
    checks of :func:`check_output` run against them.
    """

    def f1(x1: Any, t1: torch.Tensor | None) -> torch.Tensor:
        # (*F) -> (1, *F) -> (1,) or (1, C) -> (); a copy, as fn may write to its argument
        rows = trees.tree_map(lambda leaf: leaf.unsqueeze(0).clone(), x1)
        out = check_output(fn(rows), 1, target)
        if t1 is None:
            return out[0]
        return _gather(out[0], t1.reshape(1), target).squeeze(-1)

    return f1
