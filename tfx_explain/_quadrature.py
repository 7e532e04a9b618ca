"""Quadrature rules on [0, 1]: ``(alphas, weights)`` with weights summing to exactly 1.

.. math::

    \\int_0^1 g(\\alpha)\\, d\\alpha \\approx \\sum_{s=1}^{S} w_s\\, g(\\alpha_s),
    \\qquad \\sum_s w_s = 1

Every rule integrates constants exactly, so integrated gradients of a linear
function are exact for every rule and step count. (Captum 0.9's trapezoid rule has
weights summing to ``1 - 1/S``, which scales every attribution by that factor.)
Nodes and weights are computed in float64 and cast once to the requested dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._engine.checks import MAX_STEPS, check_choice, check_size

__all__ = ["RULES", "quadrature"]


def _riemann_left(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n) / n, np.full(n, 1.0 / n)


def _riemann_right(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(1, n + 1) / n, np.full(n, 1.0 / n)


def _riemann_middle(n: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)


def _riemann_trapezoid(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n < 2:
        raise ValueError(f"steps must be >= 2 for rule='riemann_trapezoid', got {n}")
    weights = np.full(n, 1.0 / (n - 1))
    weights[[0, -1]] = 0.5 / (n - 1)
    return np.linspace(0.0, 1.0, n), weights


def _legendre(n: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P_{n-1}(x), P_n(x))`` by the three-term recurrence, in ``O(len(x))`` memory."""
    p0, p1, t = np.ones_like(x), x.copy(), np.empty_like(x)
    for j in range(2, n + 1):  # P_j = ((2j - 1) x P_{j-1} - (j - 1) P_{j-2}) / j
        np.multiply(x, p1, out=t)
        t *= (2 * j - 1) / j
        p0 *= (j - 1) / j
        np.subtract(t, p0, out=p0)
        p0, p1 = p1, p0
    return p0, p1


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n <= _DENSE_GAUSS_LEGENDRE:  # numpy's eigenvalue method builds an (n, n) matrix
        nodes, weights = np.polynomial.legendre.leggauss(n)  # on [-1, 1], weights sum to 2
        return (nodes + 1.0) / 2.0, weights / 2.0
    # Newton on P_n from Tricomi's approximation of the (n + 1) // 2 nodes in (0, 1)
    k = np.arange(1, (n + 1) // 2 + 1)
    x = (1.0 - (n - 1) / (8.0 * n**3)) * np.cos(np.pi * (4 * k - 1) / (4 * n + 2))
    for _ in range(10):
        p0, p1 = _legendre(n, x)
        slope = n * (x * p1 - p0) / (x * x - 1.0)  # P_n'(x)
        step = p1 / slope
        x = x - step
        if np.abs(step).max() < 1e-15:
            break
    weights = 2.0 / ((1.0 - x * x) * slope * slope)
    middle = n % 2  # x descends to 0 for odd n, listed once
    nodes = np.concatenate([-x, x[::-1][middle:]])
    weights = np.concatenate([weights, weights[::-1][middle:]])
    return (nodes + 1.0) / 2.0, weights / 2.0


_DENSE_GAUSS_LEGENDRE = 100

_RULES = {
    "riemann_left": _riemann_left,
    "riemann_right": _riemann_right,
    "riemann_middle": _riemann_middle,
    "riemann_trapezoid": _riemann_trapezoid,
    "gauss_legendre": _gauss_legendre,
}
RULES = tuple(_RULES)
"""Names of the quadrature rules, for ``rule=``: ``("riemann_left", ..., "gauss_legendre")``."""


def _sum_to_one(weights: np.ndarray) -> np.ndarray:
    """Move the rounding residue onto the largest weight so that ``fsum(weights) == 1``."""
    weights = weights / math.fsum(weights)
    big = int(np.argmax(weights))
    rest = math.fsum(np.delete(weights, big))
    weights[big] = 1.0 - rest  # exact by Sterbenz's lemma when rest is in [0.5, 2]
    return weights


def quadrature(
    rule: str = "gauss_legendre",
    steps: int = 50,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of a quadrature rule on [0, 1].

    .. math::

        \\int_0^1 g(\\alpha)\\, d\\alpha \\approx \\sum_{s=1}^{S} w_s\\, g(\\alpha_s)

    with ``S = steps`` nodes ``alphas`` and ``weights`` summing to 1 (exactly, in
    float64: ``math.fsum(weights) == 1.0``). Left/right Riemann sums have error
    O(1/S), midpoint and trapezoid O(1/S^2), Gauss-Legendre is exact for
    polynomials of degree up to 2S - 1 and converges geometrically on smooth g.

    Args:
      rule: ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``,
        ``"riemann_trapezoid"`` (needs ``steps >= 2``) or ``"gauss_legendre"``.
      steps: number of nodes ``1 <= S <= MAX_STEPS`` (16384; Gauss-Legendre nodes
        beyond 100 are found by Newton's method in ``O(S)`` memory).
      dtype: floating ``torch.dtype`` of the returned tensors.
      device: device of the returned tensors (``None``: the CPU); the methods pass
        the device of their input.

    Returns:
      ``(alphas, weights)``, two tensors of shape ``(S,)``.

    Example:
      >>> alphas, weights = quadrature("riemann_middle", 4)
      >>> alphas.tolist(), weights.tolist()
      ([0.125, 0.375, 0.625, 0.875], [0.25, 0.25, 0.25, 0.25])
    """
    check_choice(rule, "rule", RULES)
    steps = check_size(steps, "steps", maximum=MAX_STEPS)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float64), got {dtype!r}")
    alphas, weights = _RULES[rule](steps)
    weights = _sum_to_one(weights)
    return (
        torch.as_tensor(alphas, dtype=torch.float64).to(device=device, dtype=dtype),
        torch.as_tensor(weights, dtype=torch.float64).to(device=device, dtype=dtype),
    )
