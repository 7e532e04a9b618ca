"""Integrated Hessians: pairwise interactions as integrated gradients of integrated gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import jacrev, vmap

from ._engine.batching import check_values, lift, prepare
from ._engine.checks import check_baseline, check_differentiable
from ._engine.targets import one_sample
from ._integrated import ig_kernel
from ._quadrature import quadrature

__all__ = ["integrated_hessians"]


def _ih_kernel(f1, x1, t1, b1, alphas, weights):
    shape = x1.shape

    def inner(z):  # (D,) -> (D,): integrated gradients of z against b1, fn's values as aux
        attr, values = ig_kernel(f1, z.reshape(shape), t1, b1, alphas, weights)
        return attr.reshape(-1), values

    start, delta = b1.reshape(-1), (x1 - b1).reshape(-1)
    path = start + alphas[:, None].to(delta.dtype) * delta  # (S, D)
    # (S, D, D): d IG_i / d z_j along the path; (S, S): fn on every inner path point
    jac, values = vmap(jacrev(inner, has_aux=True))(path)
    gamma = torch.tensordot(weights.to(jac.dtype), jac, dims=1) * delta  # (D, D)
    return gamma.reshape(shape + shape), values


def integrated_hessians(
    fn: Callable,
    x: torch.Tensor,
    *,
    baseline: Any = None,
    target: Any = None,
    steps: int = 50,
    rule: str = "gauss_legendre",
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Integrated Hessians: the integrated gradients of each feature's integrated gradients.

    .. math::

        \\Gamma_{ij}(x) = (x_j - x'_j) \\int_0^1
            \\frac{\\partial\\, \\mathrm{IG}_i(x' + \\beta (x - x'))}{\\partial x_j}\\, d\\beta,
        \\qquad \\sum_j \\Gamma_{ij}(x) = \\mathrm{IG}_i(x)

    where :math:`\\mathrm{IG}_i` is :func:`integrated_gradients` against the same
    ``baseline`` :math:`x'`. Off the diagonal, :math:`\\Gamma_{ij}` measures how
    features ``i`` and ``j`` interact; rows sum to the integrated gradients (exactly
    in the limit, up to the outer quadrature error with ``steps`` points). Both
    integrals use ``rule`` with ``steps`` points, so one sample costs
    ``steps^2 x D`` gradient evaluations.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``, twice differentiable.
      x: input tensor ``(B, *F)``.
      baseline: ``None`` (zeros), a number, or a tensor broadcastable to ``x``.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      steps: path points ``S`` of each of the two integrals.
      rule: quadrature rule, as in :func:`integrated_gradients`.
      chunk_size: samples evaluated at once.

    Returns:
      Interactions ``(B, *F, *F)`` (``(B, T, *F, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> x = torch.tensor([[2.0, 3.0]], dtype=torch.float64)
      >>> integrated_hessians(lambda x: x[:, 0] * x[:, 1], x, steps=2)
      tensor([[[1.5000, 1.5000],
               [1.5000, 1.5000]]], dtype=torch.float64)

    References:
      Janizek, Sturmfels and Lee, "Explaining Explanations: Axiomatic Feature
      Interactions for Deep Networks", JMLR 2021.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be one tensor (B, *F) here, got {type(x).__name__}")
    target, chunk_size = prepare(fn, x, target, chunk_size)
    check_differentiable(fn, x)
    baseline = check_baseline(baseline, x)
    alphas, weights = quadrature(rule, steps)
    f1 = one_sample(fn)

    def kernel(x1, t1, b1):
        return _ih_kernel(f1, x1, t1, b1, alphas, weights)

    gamma, values = lift(kernel, target, chunk_size=chunk_size, n_batched=1)(x, target, baseline)
    check_values(values, "on the path from baseline to x")
    return gamma
