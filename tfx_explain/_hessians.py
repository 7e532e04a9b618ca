"""Integrated Hessians: pairwise interactions as integrated gradients of integrated gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import jacrev
from torch.utils import _pytree as pytree

from ._engine.batching import expand_targets, prepare
from ._engine.checks import check_baseline
from ._engine.devices import like
from ._engine.reductions import path_sum
from ._engine.rows import check_vectorize, chunked, compiled
from ._integrated import _ig_samples
from ._quadrature import quadrature

__all__ = ["integrated_hessians"]


def interactions(
    attribution: Callable, z: Any, delta: Any, weights: torch.Tensor
) -> tuple[Any, torch.Tensor]:
    """Weighted Jacobians of a first-order attribution at ``S`` outer rows per sample.

    .. math::

        \\Gamma_{ij} = \\sum_{s=1}^{S} w_s\\, \\delta_{s,j}\\,
            \\frac{\\partial A_i(z_s)}{\\partial z_{s,j}}

    Args:
      attribution: ``A(z) -> (attributions, values)`` for rows ``z``: each row's
        attributions depend on that row only (the row engine guarantees it), so
        one reverse pass of their sum over rows gives every row's Jacobian.
      z: pytree of ``(n S, *F)`` outer rows, sample-major (``S`` per sample).
      delta: pytree like ``z``: the factor :math:`\\delta_{s,j}` of each row.
      weights: ``(S,)`` outer weights.

    Returns:
      ``(gamma, values)``: ``gamma[i][j]`` is ``(n, *F_i, *F_j)``, nested in the
      structure of ``z`` twice (a tensor ``(n, *F, *F)`` when ``z`` is a tensor);
      ``values`` are those of ``attribution``.
    """

    def total(z: Any) -> tuple[Any, torch.Tensor]:
        attr, values = attribution(z)
        return pytree.tree_map(lambda a: a.sum(0), attr), values  # (n S, *F) -> (*F)

    jac, values = jacrev(total, has_aux=True)(z)  # jac[i][j]: (*F_i, n S, *F_j)
    d_leaves, spec = pytree.tree_flatten(delta)
    blocks, steps = pytree.tree_leaves(jac), weights.shape[0]
    rows = []
    for i, d_i in enumerate(d_leaves):
        row = []
        for j, d_j in enumerate(d_leaves):
            k = d_i.ndim - 1  # feature dims of leaf i
            block = blocks[i * len(d_leaves) + j].movedim(k, 0)  # (n S, *F_i, *F_j)
            block = block * d_j.reshape(d_j.shape[:1] + (1,) * k + d_j.shape[1:])
            # (n S, ...) -> (n, S, ...); sum_s w_s -> (n, *F_i, *F_j)
            block = block.reshape((-1, steps) + block.shape[1:])
            row.append(path_sum(weights, block))
        rows.append(pytree.tree_unflatten(row, spec))
    return pytree.tree_unflatten(rows, spec), values


def _ih_samples(fn, x, t, b, alphas, weights, vectorize):
    """Integrated Hessians of ``n`` samples: ``n S`` outer points, ``n S^2`` rows of ``fn``."""
    steps = alphas.shape[0]

    def outer(leaf_x: torch.Tensor, leaf_b: torch.Tensor) -> torch.Tensor:
        # (n, *F) -> (n, S, *F) -> (n S, *F): z_s = b + beta_s (x - b)
        a = alphas.to(leaf_x.dtype).reshape((1, steps) + (1,) * (leaf_x.ndim - 1))
        return (leaf_b.unsqueeze(1) + a * (leaf_x - leaf_b).unsqueeze(1)).flatten(0, 1)

    z = pytree.tree_map(outer, x, b)
    b_rows = pytree.tree_map(lambda leaf: leaf.repeat_interleave(steps, dim=0), b)
    delta = pytree.tree_map(
        lambda leaf_x, leaf_b: (leaf_x - leaf_b).repeat_interleave(steps, 0), x, b
    )
    t_rows = None if t is None else t.repeat_interleave(steps)

    def attribution(z: Any) -> tuple[Any, torch.Tensor]:  # IG of each z_s against b
        return _ig_samples(fn, z, t_rows, b_rows, alphas, weights, vectorize)

    return interactions(attribution, z, delta, weights)


def integrated_hessians(
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
) -> Any:
    """Integrated Hessians: the integrated gradients of each feature's integrated gradients.

    .. math::

        \\Gamma_{ij}(x) = (x_j - x'_j) \\int_0^1
            \\frac{\\partial\\, \\mathrm{IG}_i(x' + \\beta (x - x'))}{\\partial x_j}\\, d\\beta,
        \\qquad \\sum_j \\Gamma_{ij}(x) = \\mathrm{IG}_i(x)

    where :math:`\\mathrm{IG}_i` is :func:`integrated_gradients` against the same
    ``baseline`` :math:`x'`. Off the diagonal, :math:`\\Gamma_{ij}` measures how
    features ``i`` and ``j`` interact; rows sum to the integrated gradients (exactly
    in the limit, up to the outer quadrature error with ``steps`` points). Both
    integrals use ``rule`` with ``steps`` points: the ``S^2`` inner path points of
    a sample are rows of one call of the row engine, and one reverse pass per
    feature ``i`` differentiates their integrated gradients, so one sample costs
    ``D`` backward passes over ``S^2`` rows. The result is differentiable and
    vmappable like every method's.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``, twice differentiable.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      baseline: ``None`` (zeros), a number, or a tensor (pytree) broadcastable to ``x``.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      steps: path points ``S`` of each of the two integrals.
      rule: quadrature rule, as in :func:`integrated_gradients`.
      chunk_size: samples evaluated at once; memory grows with ``chunk_size * S^2 * D``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).

    Returns:
      Interactions ``(B, *F, *F)`` (``(B, T, *F, *F)`` for a ``(B, T)`` target). For a
      dict/tuple ``x`` they are nested twice in its structure: ``gamma[i][j]`` is
      ``(B, *F_i, *F_j)``, the interactions of leaf ``i``'s features with leaf ``j``'s.

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
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    alphas, weights = quadrature(rule, steps, **like(x))
    targets, (x, baseline), unexpand = expand_targets(target, x, baseline)
    kernel = compiled(_ih_samples, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, alphas, weights, vectorize)

    what = "on the path from baseline to x"
    return unexpand(chunked(evaluate, chunk_size, x, targets, baseline, what=what))
