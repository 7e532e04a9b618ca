"""Quadrature rules on [0, 1]: exact weight sums, polynomial exactness, convergence orders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tfx_explain import RULES, quadrature

F64 = torch.float64
RIEMANN = ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


def _min_steps(rule: str) -> int:
    return 2 if rule == "riemann_trapezoid" else 1


def _integrate(rule: str, steps: int, g) -> float:
    alphas, weights = quadrature(rule, steps)
    return math.fsum((weights * g(alphas)).tolist())


def test_rules_are_the_documented_five():
    assert set(RULES) == {
        "riemann_left",
        "riemann_right",
        "riemann_middle",
        "riemann_trapezoid",
        "gauss_legendre",
    }


@pytest.mark.parametrize("rule", sorted(RULES))
def test_weights_sum_to_exactly_one(rule):
    for steps in range(_min_steps(rule), 201):
        alphas, weights = quadrature(rule, steps)
        assert math.fsum(weights.tolist()) == 1.0, steps
        assert alphas.shape == weights.shape == (steps,)
        assert alphas.dtype == weights.dtype == F64
        assert bool((weights > 0).all())
        assert bool((alphas >= 0).all() and (alphas <= 1).all())
        assert bool((alphas[1:] > alphas[:-1]).all())  # distinct, increasing nodes


def test_default_is_fifty_point_gauss_legendre():
    alphas, weights = quadrature()
    reference = quadrature("gauss_legendre", 50)
    assert torch.equal(alphas, reference[0]) and torch.equal(weights, reference[1])


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 7, 10])
def test_riemann_nodes_and_weights(steps):
    k = torch.arange(steps, dtype=F64)
    uniform = torch.full((steps,), 1.0 / steps, dtype=F64)
    for rule, nodes in (
        ("riemann_left", k / steps),
        ("riemann_right", (k + 1) / steps),
        ("riemann_middle", (k + 0.5) / steps),
    ):
        alphas, weights = quadrature(rule, steps)
        torch.testing.assert_close(alphas, nodes, rtol=0, atol=1e-15)
        torch.testing.assert_close(weights, uniform, rtol=0, atol=1e-15)
    if steps >= 2:
        alphas, weights = quadrature("riemann_trapezoid", steps)
        assert alphas[0] == 0.0 and alphas[-1] == 1.0
        h = 1.0 / (steps - 1)
        expected = torch.full((steps,), h, dtype=F64)
        expected[[0, -1]] = h / 2
        torch.testing.assert_close(weights, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("steps", range(1, 13))
def test_gauss_legendre_is_exact_up_to_degree_2n_minus_1(steps):
    # the integral of a^k over [0, 1] is 1 / (k + 1)
    for k in range(2 * steps):
        value = _integrate("gauss_legendre", steps, lambda a, k=k: a**k)
        assert abs(value - 1.0 / (k + 1)) < 1e-14, (steps, k)


@pytest.mark.parametrize("steps", range(1, 7))
def test_gauss_legendre_is_not_exact_at_degree_2n(steps):
    # error of n-point Gauss-Legendre on [0, 1] for a^(2n): (n!)^4 / ((2n + 1) ((2n)!)^2)
    n = steps
    expected_error = math.factorial(n) ** 4 / ((2 * n + 1) * math.factorial(2 * n) ** 2)
    error = 1.0 / (2 * n + 1) - _integrate("gauss_legendre", n, lambda a: a ** (2 * n))
    assert expected_error > 1e-8
    assert error == pytest.approx(expected_error, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(1, 12),
    data=st.data(),
)
def test_gauss_legendre_integrates_random_polynomials(steps, data):
    coefficients = data.draw(
        st.lists(
            st.floats(-10, 10, allow_nan=False, allow_infinity=False),
            min_size=1,
            max_size=2 * steps,
        )
    )
    exact = math.fsum(c / (k + 1) for k, c in enumerate(coefficients))

    def poly(a):
        return sum(c * a**k for k, c in enumerate(coefficients))

    scale = 1.0 + math.fsum(abs(c) for c in coefficients)
    assert abs(_integrate("gauss_legendre", steps, poly) - exact) < 1e-14 * scale


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("steps", [1, 2, 3, 8, 33])
def test_constants_are_exact_for_every_rule(rule, steps):
    steps = max(steps, _min_steps(rule))
    assert _integrate(rule, steps, lambda a: torch.full_like(a, 3.25)) == 3.25


@pytest.mark.parametrize("rule", ["riemann_middle", "riemann_trapezoid", "gauss_legendre"])
@pytest.mark.parametrize("steps", [2, 3, 8, 33])
def test_linear_functions_are_exact(rule, steps):
    value = _integrate(rule, steps, lambda a: 1.5 - 4.0 * a)
    assert abs(value - (1.5 - 2.0)) < 1e-15


@pytest.mark.parametrize(("rule", "sign"), [("riemann_left", 1.0), ("riemann_right", -1.0)])
@pytest.mark.parametrize("steps", [1, 2, 5, 16])
def test_left_and_right_sums_miss_linear_functions_by_slope_over_2n(rule, sign, steps):
    # for g(a) = 1.5 - 4 a, the left sum overshoots by 4 / (2n), the right one undershoots
    value = _integrate(rule, steps, lambda a: 1.5 - 4.0 * a)
    assert value - (-0.5) == pytest.approx(sign * 4.0 / (2 * steps), rel=1e-12)


@pytest.mark.parametrize(
    ("rule", "order"),
    [("riemann_left", 1), ("riemann_right", 1), ("riemann_middle", 2), ("riemann_trapezoid", 2)],
)
def test_convergence_order_on_exp(rule, order):
    # doubling the number of intervals: the trapezoid's n intervals take n + 1 nodes
    exact, extra = math.e - 1.0, _min_steps(rule) - 1
    errors = [abs(_integrate(rule, n + extra, torch.exp) - exact) for n in (16, 32, 64, 128)]
    ratios = [a / b for a, b in zip(errors, errors[1:], strict=False)]
    for ratio in ratios:
        assert ratio == pytest.approx(2.0**order, rel=0.05), ratios


def test_gauss_legendre_converges_geometrically_on_exp():
    exact = math.e - 1.0
    errors = [abs(_integrate("gauss_legendre", n, torch.exp) - exact) for n in (1, 2, 3, 4)]
    assert all(b < a / 20 for a, b in zip(errors, errors[1:], strict=False)), errors
    assert abs(_integrate("gauss_legendre", 8, torch.exp) - exact) < 1e-15


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_other_floating_dtypes(rule, dtype):
    alphas, weights = quadrature(rule, 9, dtype=dtype)
    assert alphas.dtype == weights.dtype == dtype
    reference = quadrature(rule, 9)
    assert torch.equal(alphas, reference[0].to(dtype))
    assert torch.equal(weights, reference[1].to(dtype))


def test_nodes_match_numpy_gauss_legendre():
    nodes, weights = np.polynomial.legendre.leggauss(7)
    alphas, w = quadrature("gauss_legendre", 7)
    np.testing.assert_allclose(alphas.numpy(), (nodes + 1) / 2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w.numpy(), weights / 2, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"rule": "simpson"}, ValueError, "rule"),
        ({"rule": None}, ValueError, "rule"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": -3}, ValueError, "steps"),
        ({"steps": 2.0}, TypeError, "steps"),
        ({"steps": True}, TypeError, "steps"),
        ({"rule": "riemann_trapezoid", "steps": 1}, ValueError, "steps"),
        ({"dtype": torch.int64}, TypeError, "dtype"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, argument):
    with pytest.raises(error, match=rf"\b{argument}\b"):
        quadrature(**kwargs)
