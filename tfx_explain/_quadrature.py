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

from ._engine.checks import check_choice, check_positive_int

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


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)  # on [-1, 1], weights sum to 2
    return (nodes + 1.0) / 2.0, weights / 2.0


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
      steps: number of nodes ``S >= 1``.
      dtype: floating dtype of the returned tensors.
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
    steps = check_positive_int(steps, "steps")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    alphas, weights = _RULES[rule](steps)
    weights = _sum_to_one(weights)
    return (
        torch.as_tensor(alphas, dtype=torch.float64).to(device=device, dtype=dtype),
        torch.as_tensor(weights, dtype=torch.float64).to(device=device, dtype=dtype),
    )
