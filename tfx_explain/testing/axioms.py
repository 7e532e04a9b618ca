"""Axiom checks for attribution methods: each returns the measured violation, to assert on.

A check takes an attribution ``method(fn, x, **options)`` (any function with the
library's calling convention, e.g. :func:`tfx_explain.integrated_gradients` or your
own), a batched ``fn`` and inputs ``x`` of shape ``(B, *F)``, computes what the axiom
says must hold, and returns how far the method is from it: a ``(B,)`` tensor of
non-negative violations, one per row (0 when the axiom holds exactly; detached from
autograd), or a float for :func:`convergence_rate`. Nothing is asserted inside, so a
test states its own tolerance: zero where the axiom is exact in floating point (dummy
features), float64 rounding where it is exact in real arithmetic, a rate where it is
approximate.

Keyword arguments of a check that are ``None`` (``baseline``, ``target``) are not
passed to the method, so the method's own defaults apply; every other keyword
(``steps``, ``rule``, ``groups``, ...) is passed through unchanged. ``baseline=None``
means zeros, as in every method of the library. ``target`` is ``None``, an int or a
LongTensor ``(B,)``. Randomized methods must draw the same numbers on every call for
the checks that compare calls (linearity, implementation invariance, batch
independence): wrap them with :func:`seeded`.

Shapley's axioms map onto these checks: efficiency is :func:`completeness_violation`,
symmetry :func:`symmetry_violation`, the null player :func:`dummy_violation` and
additivity :func:`linearity_violation` with ``alpha = beta = 1``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "batch_independence_violation",
    "completeness_violation",
    "convergence_rate",
    "dummy_violation",
    "expected_completeness_violation",
    "implementation_invariance_violation",
    "linearity_violation",
    "row_sum_violation",
    "seeded",
    "sensitivity_violation",
    "symmetry_violation",
]


# --------------------------------------------------------------------------- helpers


def _check_call(method: Any, fn: Any) -> None:
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}: {fn!r}")


def _check_x(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (B, *F), got {type(x).__name__}")
    if not x.is_floating_point() or x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(
            f"x must be a floating tensor (B, *F) with B >= 1, got {x.dtype} {tuple(x.shape)}"
        )
    return x


def _call(method: Callable, fn: Callable, x: torch.Tensor, **options: Any) -> torch.Tensor:
    """``method(fn, x, **options)`` without the options that are ``None``; checks the shape."""
    attr = method(fn, x, **{k: v for k, v in options.items() if v is not None})
    if not isinstance(attr, torch.Tensor) or attr.ndim < 1 or attr.shape[0] != x.shape[0]:
        raise ValueError(
            f"method must return a tensor (B, ...) with B = {x.shape[0]}, "
            f"got {getattr(attr, 'shape', type(attr).__name__)}"
        )
    return attr.detach()


def _features(attr: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Attributions ``(B, *F)`` as ``(B, D)``; refuses other shapes."""
    if attr.shape != x.shape:
        raise ValueError(
            f"method must return attributions shaped like x {tuple(x.shape)}, "
            f"got {tuple(attr.shape)}"
        )
    return attr.reshape(x.shape[0], -1)


def _baseline(baseline: Any, x: torch.Tensor, name: str = "baseline") -> torch.Tensor:
    """``None`` (zeros), a number, or a tensor broadcastable to ``x``, as a tensor like ``x``."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"{name} must be None, a number or a tensor, got {baseline!r}")
    try:
        return baseline.to(x.dtype).expand_as(x)
    except RuntimeError:
        raise ValueError(
            f"{name} with shape {tuple(baseline.shape)} does not broadcast to x "
            f"with shape {tuple(x.shape)}"
        ) from None


def _outputs(fn: Callable, x: torch.Tensor, target: Any) -> torch.Tensor:
    """The explained output per row: ``(B,)`` (detached: violations carry no autograd graph)."""
    out = fn(x).detach()
    if target is None:
        if out.ndim != 1:
            raise ValueError(f"target is required: fn returns shape {tuple(out.shape)}")
        return out
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = torch.full((x.shape[0],), int(target), dtype=torch.long, device=out.device)
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or target.ndim != 1:
        raise TypeError(f"target must be None, an int or a LongTensor (B,), got {target!r}")
    return out.gather(1, target[:, None])[:, 0]


def _index(value: Any, size: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int feature index, got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be a flat feature index in [0, {size}), got {value}")
    return int(value)


def _rowwise_max(diff: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` -> ``(B,)`` largest absolute entry per row."""
    return diff.reshape(diff.shape[0], -1).abs().amax(1)


# --------------------------------------------------------------------------- checks


def completeness_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    baseline: Any = None,
    target: Any = None,
    **options: Any,
) -> torch.Tensor:
    """How far the attributions' total is from the output change (completeness, efficiency).

    .. math::

        v_b = \\Big|\\sum_i a_i(x_b) - \\big(f_t(x_b) - f_t(x'_b)\\big)\\Big|

    with :math:`a` = ``method(fn, x, baseline=baseline, target=target, **options)`` and
    :math:`x'` = ``baseline`` (zeros when ``None``). The sum runs over every non-batch
    entry, so interactions ``(B, *F, *F)`` (integrated Hessians) are checked too.
    Exact (to rounding) for exact Shapley values, sampled antithetic Shapley values,
    and for integrated gradients of linear models; up to the quadrature error for
    integrated gradients of other models (see :func:`convergence_rate`).

    Args:
      method: attribution function ``method(fn, x, **options)``.
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: inputs ``(B, *F)``.
      baseline: ``None`` (zeros; not passed), a number or a tensor broadcastable to ``x``.
      target: ``None`` (not passed), an int or a LongTensor ``(B,)``.
      **options: passed to ``method``.

    Returns:
      ``(B,)`` absolute completeness gaps.

    Example:
      >>> import torch
      >>> from tfx_explain import integrated_gradients
      >>> fn = lambda x: torch.tanh(x).sum(-1)
      >>> x = torch.ones(2, 3, dtype=torch.float64)
      >>> gap = completeness_violation(integrated_gradients, fn, x, steps=16)
      >>> bool(gap.max() < 1e-12)
      True

    References:
      Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", 2017.
    """
    _check_call(method, fn)
    x = _check_x(x)
    full = _baseline(baseline, x)
    attr = _call(method, fn, x, baseline=baseline, target=target, **options)
    total = attr.reshape(x.shape[0], -1).sum(-1)  # (B, ...) -> (B,)
    change = _outputs(fn, x, target) - _outputs(fn, full, target)
    return (total - change).abs()


def expected_completeness_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    baselines: torch.Tensor,
    repeats: int = 64,
    target: Any = None,
    **options: Any,
) -> torch.Tensor:
    """Completeness in expectation (expected gradients), as a z-score over repeated draws.

    .. math::

        g_{b,r} = \\sum_i a^{(r)}_i(x_b) - \\Big(f_t(x_b) - \\frac{1}{M}\\sum_{m} f_t(x'_m)\\Big),
        \\qquad v_b = \\frac{|\\bar g_b|}{\\max(s_b / \\sqrt{R},\\ \\epsilon_b)}

    where :math:`a^{(r)}` are ``R = repeats`` independent draws of the randomized
    ``method(fn, x, baselines=baselines, **options)`` (one call on ``x`` with each row
    repeated ``R`` times: the method must draw independently per row, as
    :func:`tfx_explain.expected_gradients` does), :math:`\\bar g_b` and :math:`s_b` the
    mean and standard deviation of the ``R`` gaps, and :math:`\\epsilon_b` a rounding
    floor (:math:`2^{10}` machine epsilons times the output scale, plus the
    smallest normal number). An unbiased
    method gives :math:`v_b` of order 1 (a Student t variable with ``R - 1`` degrees of
    freedom); a biased one grows like :math:`\\sqrt{R}`.

    Args:
      method: randomized attribution function taking ``baselines`` ``(M, *F)``.
      fn: batched callable.
      x: inputs ``(B, *F)``.
      baselines: reference rows ``(M, *F)``, passed to ``method``.
      repeats: number of independent draws ``R >= 2`` per row.
      target: ``None`` (not passed), an int or a LongTensor ``(B,)``.
      **options: passed to ``method`` (e.g. ``n_samples``, ``generator``).

    Returns:
      ``(B,)`` z-scores of the mean completeness gap.

    Example:
      >>> import torch
      >>> from tfx_explain import expected_gradients
      >>> fn = lambda x: torch.sin(x).sum(-1)
      >>> x, refs = torch.ones(2, 3, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64)
      >>> z = expected_completeness_violation(
      ...     expected_gradients, fn, x, baselines=refs, n_samples=4,
      ...     generator=torch.Generator().manual_seed(0))
      >>> bool(z.max() < 6)
      True

    References:
      Erion et al., "Improving performance of deep learning models with axiomatic
      attribution priors and expected gradients", 2021.
    """
    _check_call(method, fn)
    x = _check_x(x)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 2:
        raise ValueError(f"repeats must be an int >= 2, got {repeats!r}")
    if not isinstance(baselines, torch.Tensor) or baselines.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"baselines must be a tensor (M, *F) with F = {tuple(x.shape[1:])}, "
            f"got {getattr(baselines, 'shape', baselines)!r}"
        )
    batch = x.shape[0]
    rows = x.repeat_interleave(repeats, 0)  # (B * R, *F), row b repeated R times
    row_target = target
    if isinstance(target, torch.Tensor):
        row_target = target.repeat_interleave(repeats, 0)
    attr = _call(method, fn, rows, baselines=baselines, target=row_target, **options)
    totals = attr.reshape(batch, repeats, -1).sum(-1)  # (B, R)
    out_x = _outputs(fn, x, target)
    out_refs = fn(baselines.to(x.dtype)).detach()  # (M,) or (M, C)
    if target is None:
        ref_mean = out_refs.mean(0).expand(batch)
    else:  # (M, C) -> (M, B): each row's explained output of every reference
        picked = torch.as_tensor(target, device=out_refs.device).expand(batch)
        ref_mean = out_refs[:, picked].mean(0)
    gaps = totals - (out_x - ref_mean)[:, None]  # (B, R)
    scale = out_x.abs() + ref_mean.abs() + totals.abs().mean(-1)
    info = torch.finfo(x.dtype)
    floor = 1024 * info.eps * scale + info.tiny  # positive: all-zero gaps give 0, not nan
    error = torch.maximum(gaps.std(1) / math.sqrt(repeats), floor)
    return gaps.mean(1).abs() / error


def sensitivity_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    feature: int,
    baseline: Any = None,
    target: Any = None,
    **options: Any,
) -> torch.Tensor:
    """Sensitivity (a): with one differing feature, it alone gets the whole output change.

    .. math::

        x' = x \\text{ with } x'_k = \\mathrm{baseline}_k, \\qquad
        v_b = \\max\\Big(\\big|a_k(x_b) - (f_t(x_b) - f_t(x'_b))\\big|,\\
              \\max_{i \\neq k} |a_i(x_b)|\\Big)

    The method is called with ``baseline=x'``, which differs from ``x`` in the flat
    feature ``k = feature`` only. A method that is sensitive and complete gives the
    differing feature exactly the output change and every other feature 0: exact for
    Shapley values, occlusion and ablation, up to quadrature error for integrated
    gradients (the other features get exactly 0 since :math:`x_i - x'_i = 0`).

    Args:
      method: attribution function taking ``baseline``.
      fn: batched callable.
      x: inputs ``(B, *F)``.
      feature: flat index ``k`` (into ``*F`` flattened) of the differing feature.
      baseline: where feature ``k`` of the reference comes from: ``None`` (0), a number,
        or a tensor broadcastable to ``x``.
      target: ``None`` (not passed), an int or a LongTensor ``(B,)``.
      **options: passed to ``method``.

    Returns:
      ``(B,)`` violations.

    Example:
      >>> import torch
      >>> from tfx_explain import shapley_values
      >>> fn = lambda x: x.prod(-1)
      >>> x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
      >>> sensitivity_violation(shapley_values, fn, x, feature=1)
      tensor([0.], dtype=torch.float64)

    References:
      Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", 2017.
    """
    _check_call(method, fn)
    x = _check_x(x)
    batch = x.shape[0]
    k = _index(feature, x[0].numel(), "feature")
    reference = x.reshape(batch, -1).clone()  # (B, D)
    reference[:, k] = _baseline(baseline, x).reshape(batch, -1)[:, k]
    reference = reference.reshape(x.shape)
    attr = _features(_call(method, fn, x, baseline=reference, target=target, **options), x)
    change = _outputs(fn, x, target) - _outputs(fn, reference, target)
    own = (attr[:, k] - change).abs()
    others = torch.cat([attr[:, :k], attr[:, k + 1 :]], dim=1).abs()  # (B, D - 1)
    return torch.maximum(own, others.amax(1)) if others.shape[1] else own


def dummy_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    dummies: int | Sequence[int],
    **options: Any,
) -> torch.Tensor:
    """Dummy (sensitivity (b), null player): features that ``fn`` ignores get exactly 0.

    .. math::

        v_b = \\max_{i \\in \\mathcal{D}} |a_i(x_b)|

    over the ``dummies`` :math:`\\mathcal{D}`, features on which ``fn`` does not depend
    at all. For interactions ``(B, *F, *F)`` the rows and columns of the dummies are
    checked. The axiom is exact in floating point, so assert ``v == 0`` with zero
    tolerance: gradient methods multiply by the dummy's gradient, an exact 0;
    perturbation methods (occlusion, ablation, Shapley values) difference the outputs
    of rows that differ only in the dummy, an exact 0 as long as ``fn`` gives such rows
    equal outputs wherever they sit in a batch. Batched matrix products on CPU (MKL)
    may round a row differently depending on its position, which leaves a few ulps of
    ``f`` on the dummy; that is a property of ``fn``, not of the method.

    Args:
      method: attribution function.
      fn: batched callable that ignores the ``dummies``.
      x: inputs ``(B, *F)``.
      dummies: a flat feature index or a sequence of them (may be empty).
      **options: passed to ``method``.

    Returns:
      ``(B,)`` largest absolute attribution of a dummy (0 when there is none).

    Example:
      >>> import torch
      >>> from tfx_explain import integrated_gradients
      >>> fn = lambda x: torch.tanh(x[:, 0] * x[:, 2])
      >>> dummy_violation(integrated_gradients, fn, torch.ones(2, 3), dummies=[1])
      tensor([0., 0.])
    """
    _check_call(method, fn)
    x = _check_x(x)
    batch, size = x.shape[0], x[0].numel()
    if isinstance(dummies, numbers.Integral) and not isinstance(dummies, bool):
        dummies = [dummies]
    if isinstance(dummies, (str, bytes)) or not isinstance(dummies, Sequence):
        raise TypeError(f"dummies must be an int or a sequence of ints, got {dummies!r}")
    index = [_index(d, size, "dummies") for d in dummies]
    attr = _call(method, fn, x, **options)
    if attr.shape == x.shape + x.shape[1:]:  # interactions (B, *F, *F)
        square = attr.reshape(batch, size, size)
        picked = torch.cat([square[:, index, :], square[:, :, index].transpose(1, 2)], dim=1)
    else:
        picked = _features(attr, x)[:, index]
    if not index:
        return x.new_zeros(batch)
    return _rowwise_max(picked)


def symmetry_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    pair: tuple[int, int],
    **options: Any,
) -> torch.Tensor:
    """Symmetry: two features that ``fn`` treats alike, with equal values, get equal attributions.

    .. math::

        v_b = |a_i(x_b) - a_j(x_b)| \\quad \\text{given } x_i = x_j,\\ x'_i = x'_j,\\
        f(\\dots, x_i, \\dots, x_j, \\dots) = f(\\dots, x_j, \\dots, x_i, \\dots)

    for ``pair = (i, j)``. The inputs (and a tensor ``baseline`` among the options)
    must already hold equal values in the two features; a ``ValueError`` says so
    otherwise. Holds for Shapley values and for integrated gradients on the straight
    path (not on other paths), and for gradients and occlusion.

    Args:
      method: attribution function.
      fn: batched callable symmetric in the pair.
      x: inputs ``(B, *F)`` with ``x[:, i] == x[:, j]`` (flat indices).
      pair: the two flat feature indices ``(i, j)``.
      **options: passed to ``method``.

    Returns:
      ``(B,)`` absolute differences of the pair's attributions.

    Example:
      >>> import torch
      >>> from tfx_explain import integrated_gradients
      >>> fn = lambda x: torch.sin(x[:, 0] * x[:, 1]) + x[:, 2]
      >>> symmetry_violation(integrated_gradients, fn, torch.ones(1, 3), pair=(0, 1))
      tensor([0.])

    References:
      Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", 2017.
    """
    _check_call(method, fn)
    x = _check_x(x)
    batch, size = x.shape[0], x[0].numel()
    if not isinstance(pair, Sequence) or len(pair) != 2:
        raise TypeError(f"pair must be a pair of feature indices (i, j), got {pair!r}")
    i, j = (_index(p, size, "pair") for p in pair)
    if i == j:
        raise ValueError(f"pair must name two different features, got {pair!r}")
    for name, value in (("x", x), ("baseline", options.get("baseline"))):
        if not isinstance(value, torch.Tensor) or value.is_meta:  # meta: shapes, no values
            continue
        flat = _baseline(value, x, name).reshape(batch, -1)
        if not torch.equal(flat[:, i], flat[:, j]):
            raise ValueError(
                f"{name} must hold equal values in features {i} and {j} for the symmetry "
                f"axiom to apply, got {flat[:, i].tolist()} and {flat[:, j].tolist()}"
            )
    attr = _features(_call(method, fn, x, **options), x)
    return (attr[:, i] - attr[:, j]).abs()


def implementation_invariance_violation(
    method: Callable, fn: Callable, twin: Callable, x: torch.Tensor, **options: Any
) -> torch.Tensor:
    """Implementation invariance: two implementations of one function get the same attributions.

    .. math::

        v_b = \\max_i |a_i(f; x_b) - a_i(g; x_b)| \\quad \\text{given } f \\equiv g

    Both ``fn`` and ``twin`` must compute the same function (e.g. an MLP and a copy with
    permuted hidden units: :func:`tfx_explain.testing.strategies.equivalent_mlps`).
    Methods that only look at the function's values and gradients satisfy it, to the
    rounding by which the two implementations differ.

    Args:
      method: attribution function.
      fn, twin: two batched callables computing the same function.
      x: inputs ``(B, *F)``.
      **options: passed to ``method`` on both calls.

    Returns:
      ``(B,)`` largest absolute difference per row.

    Example:
      >>> import torch
      >>> from tfx_explain import input_gradients
      >>> f = lambda x: torch.tanh(x).sum(-1)
      >>> g = lambda x: -torch.tanh(-x).sum(-1)
      >>> implementation_invariance_violation(input_gradients, f, g, torch.ones(2, 3))
      tensor([0., 0.])

    References:
      Sundararajan, Taly and Yan, "Axiomatic Attribution for Deep Networks", 2017.
    """
    _check_call(method, fn)
    _check_call(method, twin)
    x = _check_x(x)
    return _rowwise_max(_call(method, fn, x, **options) - _call(method, twin, x, **options))


def linearity_violation(
    method: Callable,
    fn: Callable,
    other: Callable,
    x: torch.Tensor,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    **options: Any,
) -> torch.Tensor:
    """Linearity (Shapley additivity): attributions of a linear combination combine linearly.

    .. math::

        v_b = \\max_i \\big|a_i(\\alpha f + \\beta g; x_b)
              - \\alpha\\, a_i(f; x_b) - \\beta\\, a_i(g; x_b)\\big|

    with :math:`f` = ``fn`` and :math:`g` = ``other`` (same output shape). Holds for
    every method in the library (a randomized one must draw the same numbers on each
    of the three calls: use :func:`seeded`); Shapley additivity is ``alpha = beta = 1``.

    Args:
      method: attribution function.
      fn, other: batched callables with the same output shape.
      x: inputs ``(B, *F)``.
      alpha, beta: the real coefficients.
      **options: passed to ``method`` on each call.

    Returns:
      ``(B,)`` largest absolute deviation per row.

    Example:
      >>> import torch
      >>> from tfx_explain import occlusion
      >>> f, g = lambda x: x.prod(-1), lambda x: torch.cos(x).sum(-1)
      >>> x = torch.ones(1, 3, dtype=torch.float64)
      >>> bool(linearity_violation(occlusion, f, g, x, alpha=2.0, beta=-1.0, window=1) < 1e-15)
      True
    """
    _check_call(method, fn)
    _check_call(method, other)
    x = _check_x(x)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")

    def combined(z: torch.Tensor) -> torch.Tensor:
        return alpha * fn(z) + beta * other(z)

    mixed = _call(method, combined, x, **options)
    parts = alpha * _call(method, fn, x, **options) + beta * _call(method, other, x, **options)
    return _rowwise_max(mixed - parts)


def _per_row(options: dict[str, Any], rows: Any, batch: int) -> dict[str, Any]:
    """Options with the per-row ones (``target``, ``baseline`` of leading size B) sliced."""
    out = dict(options)
    for key in ("target", "baseline"):
        value = options.get(key)
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == batch:
            out[key] = value[rows]
    return out


def batch_independence_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    permutation: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    """Batch independence: a row's attribution depends neither on the other rows nor its position.

    .. math::

        v_b = \\max\\Big(\\max_i |a_i(x)_b - a_i(x_{b:b+1})_0|,\\
              \\max_i |a_i(x)_b - a_i(x_{\\pi})_{\\pi^{-1}(b)}|\\Big)

    comparing each row of one batched call with the row explained alone and with the
    batch reordered by :math:`\\pi` = ``permutation`` (default: reversed). A ``target``
    or ``baseline`` option with a leading dimension of size ``B`` is sliced and
    reordered with the rows. Deterministic methods satisfy it up to the rounding of
    batched versus single-row linear algebra; a randomized method only when its draws
    do not depend on the batch size (:func:`seeded` sampled Shapley values do;
    expected gradients and SmoothGrad draw per row and do not).

    Args:
      method: attribution function.
      fn: batched callable.
      x: inputs ``(B, *F)``.
      permutation: LongTensor ``(B,)`` reordering the rows (default: reversed order).
      **options: passed to ``method``.

    Returns:
      ``(B,)`` largest absolute difference per row.

    Example:
      >>> import torch
      >>> from tfx_explain import gradient_x_input
      >>> x = torch.arange(6.0).reshape(3, 2)
      >>> batch_independence_violation(gradient_x_input, lambda x: (x**2).sum(-1), x)
      tensor([0., 0., 0.])
    """
    _check_call(method, fn)
    x = _check_x(x)
    batch = x.shape[0]
    if permutation is None:
        permutation = torch.arange(batch - 1, -1, -1)
    if (
        not isinstance(permutation, torch.Tensor)
        or permutation.dtype != torch.long
        or not torch.equal(permutation.sort().values, torch.arange(batch))
    ):
        raise ValueError(
            f"permutation must be a LongTensor permuting range({batch}), got {permutation!r}"
        )
    full = _call(method, fn, x, **options)
    alone = torch.cat(
        [
            _call(method, fn, x[b : b + 1], **_per_row(options, slice(b, b + 1), batch))
            for b in range(batch)
        ]
    )
    moved = _call(method, fn, x[permutation], **_per_row(options, permutation, batch))
    back = moved[permutation.argsort()]
    return torch.maximum(_rowwise_max(full - alone), _rowwise_max(full - back))


def convergence_rate(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    steps: Sequence[int] = (16, 32, 64, 128),
    baseline: Any = None,
    target: Any = None,
    floor: float | None = None,
    **options: Any,
) -> float:
    """Observed order of convergence of the completeness gap as the step count grows.

    .. math::

        \\delta(S) = \\sum_b \\Big|\\sum_i a^{(S)}_i(x_b) - \\big(f_t(x_b) - f_t(x'_b)\\big)\\Big|,
        \\qquad p = -\\operatorname{slope}\\big(\\log S,\\ \\log \\delta(S)\\big)

    with :math:`a^{(S)}` = ``method(fn, x, steps=S, ...)`` and the slope a least-squares
    fit over the step counts whose gap lies above ``floor``. The fit uses the upper
    envelope :math:`\\max_{S' \\ge S} \\delta(S')`, so a gap that happens to dip near a
    sign change of the quadrature error cannot make a rule look faster than it is.
    The order is asymptotic: pick step counts past the pre-asymptotic range. Quadrature theory on a
    smooth path integrand: :math:`p \\ge 1` for left and right Riemann sums,
    :math:`p \\ge 2` for the midpoint and trapezoid rules, and a Gauss-Legendre gap
    falls geometrically (:math:`\\delta \\sim \\rho^{-2S}`), so its fitted order is large
    and grows with ``S``. When fewer than two step counts leave a gap above the floor
    (the rule has converged to rounding), the rate is ``inf``.

    Args:
      method: attribution function taking ``steps`` (e.g. integrated gradients).
      fn: batched callable, smooth along the paths.
      x: inputs ``(B, *F)``.
      steps: two or more increasing step counts.
      baseline: ``None`` (zeros; not passed), a number or a tensor.
      target: ``None`` (not passed), an int or a LongTensor ``(B,)``.
      floor: gaps at or below it are rounding noise and left out of the fit; default
        :math:`10^4` machine epsilons times the output and attribution scale
        (plus :math:`10^4` times the smallest normal number).
      **options: passed to ``method`` (e.g. ``rule``).

    Returns:
      The fitted order ``p`` (a float; ``inf`` when converged to rounding).

    Example:
      >>> import torch
      >>> from tfx_explain import integrated_gradients
      >>> fn = lambda x: torch.sin(x).sum(-1)
      >>> x = torch.full((2, 3), 1.5, dtype=torch.float64)
      >>> p = convergence_rate(integrated_gradients, fn, x, rule="riemann_left")
      >>> round(p, 1)
      1.0
    """
    _check_call(method, fn)
    x = _check_x(x)
    if (
        isinstance(steps, (str, bytes))
        or not isinstance(steps, Sequence)
        or len(steps) < 2
        or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in steps)
        or any(b <= a for a, b in zip(steps, steps[1:], strict=False))
        or steps[0] < 1
    ):
        raise ValueError(f"steps must be two or more increasing positive ints, got {steps!r}")
    if floor is not None and (
        isinstance(floor, bool) or not isinstance(floor, numbers.Real) or not floor >= 0
    ):
        raise ValueError(f"floor must be a number >= 0, got {floor!r}")
    out_x, out_b = _outputs(fn, x, target), _outputs(fn, _baseline(baseline, x), target)
    change = out_x - out_b
    gaps, scale = [], float(out_x.abs().sum() + out_b.abs().sum())
    for s in steps:
        attr = _call(method, fn, x, baseline=baseline, target=target, steps=int(s), **options)
        flat = attr.reshape(x.shape[0], -1)
        gaps.append(float((flat.sum(-1) - change).abs().sum()))
        scale = max(scale, float(flat.abs().sum()))
    if floor is None:
        info = torch.finfo(x.dtype)
        floor = 1e4 * (info.eps * scale + info.tiny)
    # upper envelope: a gap that dips near a sign change of the error must not fake a rate
    envelope = [max(gaps[k:]) for k in range(len(gaps))]
    kept = [(math.log(s), math.log(g)) for s, g in zip(steps, envelope, strict=True) if g > floor]
    if len(kept) < 2:
        return math.inf
    mean_s = sum(s for s, _ in kept) / len(kept)
    mean_g = sum(g for _, g in kept) / len(kept)
    slope = sum((s - mean_s) * (g - mean_g) for s, g in kept) / sum(
        (s - mean_s) ** 2 for s, _ in kept
    )
    return -slope


def row_sum_violation(
    method: Callable,
    reference: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    baseline: Any = None,
    target: Any = None,
    **options: Any,
) -> torch.Tensor:
    """Interaction completeness: the rows of an interaction matrix sum to the attributions.

    .. math::

        v_b = \\max_i \\Big|\\sum_j \\Gamma_{ij}(x_b) - a_i(x_b)\\Big|

    with :math:`\\Gamma` = ``method(fn, x, ...)`` of shape ``(B, *F, *F)`` (e.g.
    :func:`tfx_explain.integrated_hessians`) and :math:`a` = ``reference(fn, x, ...)``
    (e.g. :func:`tfx_explain.integrated_gradients`), both called with the same
    ``baseline``, ``target`` and options. For integrated Hessians the identity holds
    in the limit of many steps (up to the outer quadrature error).

    Args:
      method: interaction function returning ``(B, *F, *F)``.
      reference: attribution function returning ``(B, *F)``.
      fn: batched callable.
      x: inputs ``(B, *F)``.
      baseline: ``None`` (not passed), a number or a tensor.
      target: ``None`` (not passed), an int or a LongTensor ``(B,)``.
      **options: passed to both functions (e.g. ``steps``, ``rule``).

    Returns:
      ``(B,)`` largest absolute row-sum deviation.

    Example:
      >>> import torch
      >>> from tfx_explain import integrated_gradients, integrated_hessians
      >>> fn = lambda x: x[:, 0] * x[:, 1] ** 2
      >>> x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
      >>> v = row_sum_violation(integrated_hessians, integrated_gradients, fn, x, steps=4)
      >>> bool(v.max() < 1e-14)
      True

    References:
      Janizek, Sturmfels and Lee, "Explaining Explanations: Axiomatic Feature
      Interactions for Deep Networks", JMLR 2021.
    """
    _check_call(method, fn)
    _check_call(reference, fn)
    x = _check_x(x)
    batch, size = x.shape[0], x[0].numel()
    gamma = _call(method, fn, x, baseline=baseline, target=target, **options)
    if gamma.shape != x.shape + x.shape[1:]:
        raise ValueError(
            f"method must return interactions (B, *F, *F) = {tuple(x.shape + x.shape[1:])}, "
            f"got {tuple(gamma.shape)}"
        )
    attr = _features(_call(reference, fn, x, baseline=baseline, target=target, **options), x)
    return _rowwise_max(gamma.reshape(batch, size, size).sum(-1) - attr)


def seeded(method: Callable, *, seed: int) -> Callable:
    """A randomized method that draws the same numbers on every call.

    .. math::

        \\tilde a(f, x) = a(f, x;\\ \\mathrm{generator} = G_{\\mathrm{seed}})

    where :math:`G_{\\mathrm{seed}}` is a fresh ``torch.Generator`` seeded with ``seed``
    at each call, so checks that compare several calls (linearity, implementation
    invariance, batch independence) compare like with like.

    Args:
      method: attribution function taking a ``generator`` keyword (e.g.
        :func:`tfx_explain.expected_gradients`, sampled :func:`tfx_explain.shapley_values`).
      seed: the seed (an int >= 0).

    Returns:
      ``seeded_method(fn, x, **options)``.

    Example:
      >>> import torch
      >>> from tfx_explain import shapley_values
      >>> sampled = seeded(shapley_values, seed=0)
      >>> x = torch.ones(1, 3)
      >>> a = sampled(lambda x: x.prod(-1), x, n_permutations=2)
      >>> bool(torch.equal(a, sampled(lambda x: x.prod(-1), x, n_permutations=2)))
      True
    """
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")

    def seeded_method(fn: Callable, x: Any, **options: Any) -> Any:
        return method(fn, x, generator=torch.Generator().manual_seed(int(seed)), **options)

    seeded_method.__name__ = f"seeded_{getattr(method, '__name__', 'method')}"
    return seeded_method
