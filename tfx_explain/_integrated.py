"""Integrated gradients along the straight path, its completeness gap, and an adaptive variant."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch.utils import _pytree as pytree

from ._engine.batching import expand_targets, per_target, prepare
from ._engine.checks import (
    MAX_STEPS,
    check_baseline,
    check_choice,
    check_flag,
    check_positive_int,
    check_size,
    check_structure,
    has_values,
    is_transformed,
)
from ._engine.devices import like
from ._engine.reductions import path_sum
from ._engine.rows import check_vectorize, chunked, compiled, row_gradients, row_values, rows_of
from ._quadrature import RULES, quadrature

__all__ = [
    "integrated_gradients",
    "completeness_gap",
    "adaptive_integrated_gradients",
    "AdaptiveResult",
]


def integrated_gradients(
    fn: Callable,
    x: Any,
    *,
    baseline: Any = None,
    target: Any = None,
    steps: int = 50,
    rule: str = "gauss_legendre",
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
    multiply_by_inputs: bool = True,
) -> Any:
    """Integrated gradients along the straight path from ``baseline`` to ``x``.

    .. math::

        \\mathrm{IG}_i(x) = (x_i - x'_i) \\int_0^1
            \\frac{\\partial f_t(x' + \\alpha (x - x'))}{\\partial x_i}\\, d\\alpha
        \\approx (x_i - x'_i) \\sum_{s=1}^{S} w_s\\,
            \\frac{\\partial f_t(x' + \\alpha_s (x - x'))}{\\partial x_i}

    with :math:`x'` = ``baseline``, :math:`S` = ``steps`` and :math:`(\\alpha_s, w_s)`
    the nodes and weights of ``rule`` (weights sum to exactly 1). Completeness,
    :math:`\\sum_i \\mathrm{IG}_i = f_t(x) - f_t(x')`, holds up to the quadrature
    error; measure it with :func:`completeness_gap`. All ``B x S`` path points are
    one vectorized evaluation, and the result is differentiable (``torch.func.grad``
    through it gives exact second-order terms). With ``multiply_by_inputs=False``
    the factor :math:`(x_i - x'_i)` is left out: the result is the path-averaged
    gradient :math:`\\sum_s w_s \\partial f_t(x' + \\alpha_s (x - x'))/\\partial x_i`
    (Captum's ``multiply_by_inputs=False``), which is not complete.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      baseline: ``None`` (zeros), a number, or a tensor (pytree) broadcastable to ``x``.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      steps: number of path points ``S >= 1``.
      rule: ``"gauss_legendre"`` (default), ``"riemann_left"``, ``"riemann_right"``,
        ``"riemann_middle"`` or ``"riemann_trapezoid"``.
      chunk_size: samples evaluated at once; memory grows with ``chunk_size * S``.
      vectorize: ``"vmap"`` (rows isolated by vmap) or ``"batch"`` (one batched
        forward+backward over all path points; see :func:`input_gradients`).
      compile: run the path kernel through ``torch.compile`` (compiled once per
        ``fn`` and input shape, falling back to eager with a warning on failure).
      multiply_by_inputs: multiply the path-averaged gradient by ``x - baseline``
        (``True``, integrated gradients) or return it as is (``False``).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
      >>> x = torch.tensor([[1.0, 1.0, 2.0]], dtype=torch.float64)
      >>> integrated_gradients(lambda x: x @ w, x, steps=4).round(decimals=12)
      tensor([[ 1., -2.,  6.]], dtype=torch.float64)

    References:
      Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", 2017.
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    multiply_by_inputs = check_flag(multiply_by_inputs, "multiply_by_inputs")
    baseline = check_baseline(baseline, x)
    alphas, weights = quadrature(rule, steps, **like(x))
    return _batched_ig(
        fn, x, target, baseline, alphas, weights, chunk_size, vectorize, compile, multiply_by_inputs
    )


def _batched_ig(
    fn, x, target, baseline, alphas, weights, chunk_size, vectorize, compile, multiply=True
):
    targets, (x, baseline), unexpand = expand_targets(target, x, baseline)
    kernel = compiled(_ig_samples, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, alphas, weights, vectorize, multiply)

    what = "on the path from baseline to x"
    rows = alphas.shape[0]
    return unexpand(
        chunked(evaluate, chunk_size, x, targets, baseline, what=what, rows_per_sample=rows)
    )


def _ig_samples(fn, x, t, b, alphas, weights, vectorize, multiply=True):
    """Integrated gradients of ``n`` samples: every path point is one row of one call.

    Returns ``(attributions (n, *F), values (n S,))``; ``multiply=False`` leaves out
    the ``x - b`` factor (the path-averaged gradient).
    """
    steps = alphas.shape[0]
    delta = pytree.tree_map(torch.sub, x, b)

    def points(leaf_b: torch.Tensor, leaf_d: torch.Tensor) -> torch.Tensor:
        # (n, *F) -> (n, S, *F) -> (n S, *F)
        a = alphas.to(leaf_d.dtype).reshape((1, steps) + (1,) * (leaf_d.ndim - 1))
        return torch.addcmul(leaf_b.unsqueeze(1), a, leaf_d.unsqueeze(1)).flatten(0, 1)

    path = pytree.tree_map(points, b, delta)  # fresh rows: fn may get them without a copy
    t_rows = None if t is None else t.repeat_interleave(steps)
    grads, values = row_gradients(fn, path, t_rows, vectorize=vectorize, owned=True)

    def integrate(leaf_d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # (n S, *F) -> (n, S, *F); sum_s w_s g_s -> (n, *F)
        mean = path_sum(weights, g.reshape((leaf_d.shape[0], steps) + leaf_d.shape[1:]))
        return leaf_d * mean if multiply else mean

    return pytree.tree_map(integrate, delta, grads), values


def completeness_gap(
    fn: Callable,
    x: Any,
    attributions: Any,
    *,
    baseline: Any = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> torch.Tensor:
    """Per-sample completeness gap: attribution total minus the output change.

    .. math::

        \\delta(x) = \\sum_i a_i(x) - \\big(f_t(x) - f_t(x')\\big)

    Zero for exact Shapley values and, up to quadrature error, for integrated
    gradients; not expected to vanish for local methods such as gradient x input.
    :math:`f_t(x)` and :math:`f_t(x')` are ``2B`` rows of one call of the row
    engine, so ``fn`` gets fresh copies, never the caller's ``x``.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a pytree of them.
      attributions: attributions of ``x`` shaped like it, or ``(B, T, *F)`` for a
        ``(B, T)`` target.
      baseline: the baseline the attributions were computed against (``None``: zeros).
      target: the target they explain.
      chunk_size, vectorize, compile: as in :func:`integrated_gradients` (2 rows per
        sample).

    Returns:
      ``(B,)`` gaps, or ``(B, T)`` for a ``(B, T)`` target.

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0])
      >>> completeness_gap(lambda x: x @ w, torch.ones(1, 2), torch.tensor([[1.0, -2.0]]))
      tensor([0.])
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    multi = target is not None and target.ndim == 2
    leading = 2 if multi else 1
    totals = []
    check_structure(attributions, x, "attributions")
    a_leaves = pytree.tree_leaves(attributions)
    x_leaves = pytree.tree_leaves(per_target(x, target))
    for a, leaf in zip(a_leaves, x_leaves, strict=True):
        if a.ndim < leading or a.shape[leading:] != leaf.shape[leading:]:
            raise ValueError(
                f"attributions with shape {tuple(a.shape)} do not match x's "
                f"feature shape {tuple(leaf.shape[leading:])}"
            )
        totals.append(a.flatten(leading).sum(-1))
    total = torch.stack(totals).sum(0)
    return total - output_change(fn, x, target, baseline, chunk_size, vectorize, compile)


def output_change(fn, x, target, baseline, chunk_size, vectorize, compile):
    """``f_t(x) - f_t(baseline)`` per sample: ``(B,)``, or ``(B, T)`` for a ``(B, T)`` target."""
    kernel = compiled(_change_samples, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, vectorize)

    return chunked(evaluate, chunk_size, x, target, baseline, what="at x or at the baseline")


def _change_samples(fn, x, t, b, vectorize):
    """Output changes of ``n`` samples from the ``2n`` rows ``[x; b]`` of one call."""
    n = rows_of(x)
    rows = pytree.tree_map(lambda leaf_x, leaf_b: torch.cat([leaf_x, leaf_b]), x, b)  # (2n, *F)
    t_rows = None if t is None else torch.cat([t, t])
    values = row_values(fn, rows, t_rows, vectorize=vectorize)  # (2n,) or (2n, T)
    return values[:n] - values[n:], values


class AdaptiveResult(NamedTuple):
    """Result of :func:`adaptive_integrated_gradients`."""

    attributions: Any
    """Attributions shaped like ``x``."""
    steps: torch.Tensor
    """``(B,)`` number of path points used per sample."""
    gap: torch.Tensor
    """``(B,)`` completeness gap at the returned attributions."""


def adaptive_integrated_gradients(
    fn: Callable,
    x: Any,
    *,
    baseline: Any = None,
    target: Any = None,
    tol: float = 1e-4,
    start_steps: int = 8,
    max_steps: int = 512,
    rule: str = "gauss_legendre",
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> AdaptiveResult:
    """Integrated gradients with per-sample step counts chosen to meet a completeness tolerance.

    .. math::

        S_b = \\min\\{S \\in \\{S_0, 2S_0, 4S_0, \\dots\\} :
            |\\delta_S(x_b)| \\le \\mathrm{tol}\\}, \\quad S_b \\le S_{\\max}

    where :math:`\\delta_S` is the completeness gap of ``S``-point integrated gradients
    (see :func:`completeness_gap`). Each doubling re-evaluates only the samples that
    have not yet met ``tol``. Samples that reach ``max_steps`` without meeting it are
    returned with their last gap, so check ``result.gap``. Because the step count
    depends on data, this function works on plain tensors only (not under vmap/grad;
    on the shapes-only ``meta`` device it stops after ``start_steps``).

    Args:
      fn, x, baseline, rule, chunk_size, vectorize, compile: as in
        :func:`integrated_gradients`.
      target: ``None``, int or LongTensor ``(B,)``.
      tol: tolerance on ``|gap|`` (> 0).
      start_steps: first step count ``S_0 >= 1`` (``>= 2`` for the trapezoid rule).
      max_steps: cap on the step count (``start_steps <= max_steps <= MAX_STEPS``, 16384).

    Returns:
      :class:`AdaptiveResult` ``(attributions, steps (B,), gap (B,))``.

    Example:
      >>> import torch
      >>> result = adaptive_integrated_gradients(
      ...     lambda x: torch.sin(x).sum(-1), torch.ones(3, 2, dtype=torch.float64), tol=1e-10)
      >>> bool(result.gap.abs().max() <= 1e-10), result.steps.tolist()
      (True, [8, 8, 8])
    """
    if is_transformed(x):
        raise TypeError(
            "adaptive_integrated_gradients picks step counts from data and cannot run "
            "under torch.func transforms; use integrated_gradients with fixed steps"
        )
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 < tol < math.inf:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    check_choice(rule, "rule", RULES)
    start_steps = check_positive_int(start_steps, "start_steps")
    max_steps = check_size(max_steps, "max_steps", minimum=start_steps, maximum=MAX_STEPS)
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    if target is not None and target.ndim == 2:
        raise ValueError("target must be None, an int or a LongTensor (B,) here, got (B, T)")
    baseline = check_baseline(baseline, x)
    change = output_change(fn, x, target, baseline, chunk_size, vectorize, compile)
    batch = change.shape[0]

    attr = pytree.tree_map(torch.zeros_like, x)
    used = torch.zeros(batch, dtype=torch.long, device=change.device)
    gap = torch.full_like(change, float("inf"))
    todo = torch.arange(batch, device=change.device)
    steps = start_steps
    while todo.numel():
        pick = pytree.tree_map(lambda leaf, i=todo: leaf[i], (x, baseline))
        t = None if target is None else target[todo]
        alphas, weights = quadrature(rule, steps, **like(x))
        part = _batched_ig(fn, pick[0], t, pick[1], alphas, weights, chunk_size, vectorize, compile)
        part_gap = _total(part) - change[todo]
        for leaf, new in zip(pytree.tree_leaves(attr), pytree.tree_leaves(part), strict=True):
            leaf[todo] = new
        used[todo], gap[todo] = steps, part_gap
        if steps * 2 > max_steps or not has_values(x):  # meta x: no gaps to compare
            break
        todo = todo[part_gap.abs() > tol]
        steps *= 2
    return AdaptiveResult(attr, used, gap)


def _total(attr: Any) -> torch.Tensor:
    """Sum of attributions per sample over every leaf: ``(B, *F) -> (B,)``."""
    return torch.stack([a.flatten(1).sum(-1) for a in pytree.tree_leaves(attr)]).sum(0)
