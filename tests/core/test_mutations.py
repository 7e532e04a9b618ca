"""Mutation tests: deliberately wrong attributions that the axiom checks must catch.

Each mutant is a plausible bug (Captum's trapezoid weights, a dropped feature, wrong
Shapley weights, a batch-dependent baseline, ...) written next to a correct control that
differs from it only in the bug. Where the bug shows on every non-degenerate input, the
test is a property (the check reports at least the bug's size); otherwise Hypothesis must
find an input on which the check fails the mutant while the control passes.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from axiom_cases import ROUNDING, SHAPLEY, record, scale
from hypothesis import Phase, assume, find, given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

from tfx_explain import (
    expected_gradients,
    gradient_x_input,
    input_gradients,
    integrated_gradients,
    occlusion,
)
from tfx_explain._engine.masks import coalitions
from tfx_explain.testing import (
    additive_models,
    baselines,
    batch_independence_violation,
    batches,
    completeness_violation,
    convergence_rate,
    dummy_violation,
    equivalent_mlps,
    expected_completeness_violation,
    implementation_invariance_violation,
    linear_models,
    linearity_violation,
    mlps,
    scaled,
    sensitivity_violation,
    symmetry_violation,
)

F = 4
SMOOTH = ("tanh", "sigmoid", "softplus")
SEARCH = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, phases=[Phase.generate]
)
"""Settings of the searches for an input that exposes a mutant: deterministic, and the first
exposing input is kept (shrinking it to a minimal one would only cost time)."""


def full(baseline, x):
    return torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)


def ig_with(fn, x, baseline, alphas, weights):
    """Integrated gradients with explicit nodes and weights, written out for the mutants."""
    b = full(0.0 if baseline is None else baseline, x)
    delta = x - b
    points = b + alphas[:, None, None] * delta  # (S, B, F)
    grads = input_gradients(fn, points.reshape(-1, x.shape[1])).reshape(points.shape)
    return delta * torch.einsum("s,sbf->bf", weights, grads)


def captum_trapezoid(fn, x, *, baseline=None, steps=50):
    """Mutant: trapezoid nodes with weights summing to 1 - 1/S, as Captum 0.9 does."""
    alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
    weights = torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    weights[[0, -1]] = 0.5 / steps
    return ig_with(fn, x, baseline, alphas, weights)


def trapezoid(fn, x, *, baseline=None, steps=50):
    """Control: the trapezoid rule with weights summing to 1."""
    alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
    weights = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
    weights[[0, -1]] = 0.5 / (steps - 1)
    return ig_with(fn, x, baseline, alphas, weights)


def shifted_midpoint(fn, x, *, baseline=None, steps=50):
    """Mutant: midpoint rule with nodes a quarter step off centre (order 1, not 2)."""
    alphas = (torch.arange(steps, dtype=torch.float64) + 0.25) / steps
    return ig_with(fn, x, baseline, alphas, torch.full((steps,), 1.0 / steps, dtype=torch.float64))


def dropping(method, feature):
    """Mutant: ``method`` with one feature's attribution zeroed."""

    def dropped(fn, x, **options):
        attr = method(fn, x, **options).clone()
        attr[:, feature] = 0.0
        return attr

    return dropped


def enumerated_shapley(weight):
    """Exact Shapley-style values by enumerating coalitions, with a given weight of |S|."""

    def values(fn, x, *, baseline=None):
        b = full(0.0 if baseline is None else baseline, x)
        n = x.shape[1]
        attr = torch.zeros_like(x)
        for g in range(n):
            others = [i for i in range(n) if i != g]
            for size in range(n):
                for subset in itertools.combinations(others, size):
                    keep = torch.zeros(n, dtype=torch.bool)
                    keep[list(subset)] = True
                    without = torch.where(keep, x, b)
                    keep[g] = True
                    with_g = torch.where(keep, x, b)
                    attr[:, g] += weight(size, n) * (fn(with_g) - fn(without))
        return attr

    return values


def shapley_weight(size, n):
    return math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)


def off_by_one_weight(size, n):
    """Mutant: |S|! (n - |S|)! / n! instead of |S|! (n - |S| - 1)! / n!."""
    return math.factorial(size) * math.factorial(n - size) / math.factorial(n)


def banzhaf_weight(size, n):
    """Mutant: every coalition weighted alike (Banzhaf values, not efficient)."""
    return 1.0 / 2 ** (n - 1)


def coalition_weights(present):
    """``C (K, G)`` with ``phi = v @ C`` for coalition values ``v`` (the library's weights
    in one table: ``|S|!(G-|S|-1)!/G!`` for rows without ``g``, with the sign flipped)."""
    n_groups = present.shape[1]
    size = present.sum(1)
    table = torch.tensor(
        [shapley_weight(s, n_groups) for s in range(n_groups)], dtype=torch.float64
    )
    inside = table[(size - 1).clamp(min=0)][:, None].expand(-1, n_groups)
    outside = -table[size.clamp(max=n_groups - 1)][:, None].expand(-1, n_groups)
    return torch.where(present, inside, outside)


def coalition_sum_shapley(fn, x, *, baseline=None):
    """Mutant: exact Shapley values as one weighted sum of coalition values (no marginals)."""
    b = full(0.0 if baseline is None else baseline, x)
    present = coalitions(x.shape[1])  # (K, F)
    rows = torch.where(present[None], x[:, None], b[:, None])  # (B, K, F)
    values = fn(rows.reshape(-1, x.shape[1])).reshape(x.shape[0], -1)  # (B, K)
    return values @ coalition_weights(present).to(x.dtype)


def mean_baseline_ig(fn, x, **options):
    """Mutant: integrated gradients against the batch mean instead of a fixed baseline."""
    return integrated_gradients(fn, x, baseline=x.mean(0, keepdim=True), **options)


def axis_path_ig(fn, x, *, baseline=None):
    """Mutant: a path method moving the features one after another (complete, not symmetric)."""
    b = full(0.0 if baseline is None else baseline, x)
    attr, current = torch.zeros_like(x), b.clone()
    for k in range(x.shape[1]):
        moved = current.clone()
        moved[:, k] = x[:, k]
        attr[:, k] = fn(moved) - fn(current)
        current = moved
    return attr


def weight_norm_x_input(fn, x, **options):
    """Mutant: input times the norm of the first-layer weights (reads parameters)."""
    return x * fn.params["weight0"].norm(dim=0)


def normalized_ig(fn, x, **options):
    """Mutant: integrated gradients scaled to unit total magnitude per row (not linear)."""
    attr = integrated_gradients(fn, x, **options)
    return attr / attr.abs().sum(1, keepdim=True).clamp_min(1e-30)


def endpoint_gradients(fn, x, *, baselines, n_samples=8, generator=None):
    """Mutant: expected gradients with every alpha = 1: (x - x') * grad f(x), no path."""
    index = torch.randint(baselines.shape[0], (x.shape[0], n_samples), generator=generator)
    refs = baselines.to(x.dtype)[index]  # (B, N, F)
    grads = vmap(grad(lambda z: fn(z[None])[0]))(x)  # (B, F)
    return ((x[:, None] - refs) * grads[:, None]).mean(1)


@st.composite
def inputs(draw, *, min_batch=1):
    x = draw(batches(feature_shape=(F,), min_batch=min_batch, max_batch=4))
    return x, draw(baselines(feature_shape=(F,), batch_size=x.shape[0]))


def change(model, x, baseline):
    return model(x) - model(full(baseline, x))


# ------------------------------------------------------------------ completeness


@settings(max_examples=scaled(1.0))
@given(model=linear_models(n_features=F), data=st.data(), steps=st.integers(2, 64))
def test_completeness_catches_captum_trapezoid_weights(model, data, steps):
    """Weights summing to 1 - 1/S leave exactly |f(x) - f(x')| / S uncovered."""
    x, baseline = data.draw(inputs(), label="inputs")
    delta_f = change(model, x, baseline).abs()
    assume(bool(delta_f.min() > 1e-3))
    mutant = completeness_violation(captum_trapezoid, model, x, baseline=baseline, steps=steps)
    control = completeness_violation(trapezoid, model, x, baseline=baseline, steps=steps)
    record("mutant caught (smallest violation)", "captum_trapezoid", "linear", mutant, lowest=True)
    tol = ROUNDING * scale(model(x), delta_f) * F
    assert torch.allclose(mutant, delta_f / steps, rtol=0, atol=tol)
    assert control.max() <= tol


@settings(max_examples=scaled(1.0))
@given(model=linear_models(n_features=F), data=st.data())
def test_completeness_and_sensitivity_catch_a_dropped_feature(model, data):
    x, baseline = data.draw(inputs(), label="inputs")
    k = data.draw(st.integers(0, F - 1), label="feature")
    lost = (model.params["weight"][k] * (x[:, k] - full(baseline, x)[:, k])).abs()
    assume(bool(lost.min() > 1e-3))
    mutant = dropping(integrated_gradients, k)
    tol = ROUNDING * scale(model(x), lost) * F
    gap = completeness_violation(mutant, model, x, baseline=baseline, steps=4)
    assert torch.allclose(gap, lost, rtol=0, atol=tol)
    sens = sensitivity_violation(mutant, model, x, feature=k, baseline=baseline, steps=4)
    assert torch.allclose(sens, lost, rtol=0, atol=tol)
    for check in (completeness_violation, sensitivity_violation):
        extra = {"feature": k} if check is sensitivity_violation else {}
        assert (
            check(integrated_gradients, model, x, baseline=baseline, steps=4, **extra).max() <= tol
        )


@settings(max_examples=scaled(1.0))
@given(model=linear_models(n_features=F), x=batches(feature_shape=(F,), max_batch=4))
def test_completeness_catches_gradient_x_input_with_a_zeroed_gradient(model, x):
    k = 0
    lost = (model.params["weight"][k] * x[:, k]).abs()
    assume(bool(lost.min() > 1e-3))
    gap = completeness_violation(dropping(gradient_x_input, k), model, x)
    tol = ROUNDING * scale(model(x)) * F
    assert torch.allclose(gap, lost, rtol=0, atol=tol)
    assert completeness_violation(gradient_x_input, model, x).max() <= tol


@settings(max_examples=scaled(0.5))
@given(model=linear_models(n_features=F), data=st.data())
def test_efficiency_catches_off_by_one_shapley_weights(model, data):
    """On a linear model the off-by-one weights give (F + 1) / 2 times the output change."""
    x, baseline = data.draw(inputs(), label="inputs")
    delta_f = change(model, x, baseline).abs()
    assume(bool(delta_f.min() > 1e-3))
    mutant = completeness_violation(
        enumerated_shapley(off_by_one_weight), model, x, baseline=baseline
    )
    control = completeness_violation(
        enumerated_shapley(shapley_weight), model, x, baseline=baseline
    )
    tol = ROUNDING * scale(model(x), delta_f) * F
    assert torch.allclose(mutant, (F + 1) / 2 * delta_f - delta_f, rtol=1e-12, atol=tol)
    assert control.max() <= tol


def test_efficiency_catches_banzhaf_weights_on_a_network():
    """Banzhaf values agree with Shapley on additive models; a network with interactions
    exposes them. Hypothesis must find such a network and input."""
    strategy = st.tuples(mlps(n_features=F, activations=SMOOTH), inputs())

    def exposed(example):
        model, (x, baseline) = example
        return bool(
            completeness_violation(
                enumerated_shapley(banzhaf_weight), model, x, baseline=baseline
            ).max()
            > 1e-3
        )

    model, (x, baseline) = find(strategy, exposed, settings=SEARCH)
    control = completeness_violation(
        enumerated_shapley(shapley_weight), model, x, baseline=baseline
    )
    assert control.max() <= ROUNDING * scale(model(x)) * F
    # and the independent enumeration agrees with the library's exact Shapley values
    ours = enumerated_shapley(shapley_weight)(model, x, baseline=baseline)
    assert torch.allclose(ours, SHAPLEY(model, x, baseline=baseline), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ convergence


@pytest.mark.parametrize(
    ("mutant", "control", "order"),
    [(captum_trapezoid, trapezoid, 2.0), (shifted_midpoint, "riemann_middle", 2.0)],
    ids=["captum_trapezoid", "shifted_midpoint"],
)
def test_convergence_rate_catches_a_first_order_rule(mutant, control, order):
    """The mutants converge at order 1; their correct versions at order 2."""
    strategy = st.tuples(mlps(n_features=F, activations=SMOOTH), inputs(min_batch=2))
    steps = (64, 128, 256, 512)

    def exposed(example):
        model, (x, baseline) = example
        return convergence_rate(mutant, model, x, baseline=baseline, steps=steps) < 1.5

    model, (x, baseline) = find(strategy, exposed, settings=SEARCH)
    if isinstance(control, str):
        rate = convergence_rate(
            integrated_gradients, model, x, baseline=baseline, steps=steps, rule=control
        )
    else:
        rate = convergence_rate(control, model, x, baseline=baseline, steps=steps)
    assert rate >= order - 0.15


@settings(max_examples=scaled(0.5))
@given(model=additive_models(n_features=F), data=st.data())
def test_convergence_rate_of_captum_trapezoid_is_one(model, data):
    """Whenever the output changes, the Captum weights' gap is |f(x) - f(x')| / S + O(1/S^2)."""
    x, baseline = data.draw(inputs(min_batch=2), label="inputs")
    assume(bool(change(model, x, baseline).abs().sum() > 0.1))
    steps = (64, 128, 256, 512)
    mutant = convergence_rate(captum_trapezoid, model, x, baseline=baseline, steps=steps)
    control = convergence_rate(trapezoid, model, x, baseline=baseline, steps=steps)
    record("mutant caught: convergence order", "captum_trapezoid", "additive", mutant)
    assert abs(mutant - 1.0) < 0.15
    assert control >= 2.0 - 0.15


# ------------------------------------------------------------------ dummy


def test_dummy_catches_a_rounding_leak_of_coalition_sum_shapley():
    """Summing weighted coalition values lets a dummy pick up rounding (the bug fixed in
    shapley_values); the zero-tolerance dummy check sees it. Additive models give equal
    rows equal outputs, so the marginal form is exactly 0 there."""
    with_dummies = additive_models(n_features=F, max_dummies=2).filter(lambda m: m.dummies)
    strategy = st.tuples(with_dummies, inputs())

    def exposed(example):
        model, (x, baseline) = example
        return bool(
            dummy_violation(
                coalition_sum_shapley, model, x, dummies=model.dummies, baseline=baseline
            ).max()
            > 0
        )

    model, (x, baseline) = find(strategy, exposed, settings=SEARCH)
    fixed = dummy_violation(SHAPLEY, model, x, dummies=model.dummies, baseline=baseline)
    assert torch.equal(fixed, torch.zeros_like(fixed))


@settings(max_examples=scaled(1.0))
@given(model=linear_models(n_features=F, max_dummies=2), data=st.data())
def test_dummy_and_sensitivity_catch_occlusion_windows_wider_than_one(model, data):
    """A window of 2 shares a neighbour's drop with a dummy feature."""
    x, baseline = data.draw(inputs(), label="inputs")
    b = full(baseline, x)
    w = model.params["weight"]
    leaky = [
        d
        for d in model.dummies
        if any(
            0 <= n < F
            and n not in model.dummies
            and bool((w[n] * (x[:, n] - b[:, n])).abs().min() > 1e-3)
            for n in (d - 1, d + 1)
        )
    ]
    assume(leaky)
    mutant = dummy_violation(occlusion, model, x, dummies=leaky, baseline=baseline, window=2)
    control = dummy_violation(occlusion, model, x, dummies=leaky, baseline=baseline, window=1)
    assert bool((mutant > 0).all())
    assert torch.equal(control, torch.zeros_like(control))


# ------------------------------------------------------------------ symmetry


@settings(max_examples=scaled(1.0))
@given(
    model=mlps(n_features=F, max_symmetric_pairs=1, activations=SMOOTH),
    x=batches(feature_shape=(F,), max_batch=4),
)
def test_symmetry_catches_gradients_with_one_member_of_a_pair_zeroed(model, x):
    assume(model.symmetric_pairs)
    i, j = model.symmetric_pairs[0]
    x = x.clone()
    x[:, j] = x[:, i]
    grads = input_gradients(model, x)
    assume(bool(grads[:, j].abs().min() > 1e-6))
    mutant = symmetry_violation(dropping(input_gradients, i), model, x, pair=(i, j))
    control = symmetry_violation(input_gradients, model, x, pair=(i, j))
    assert torch.allclose(mutant, grads[:, j].abs(), rtol=0, atol=1e-15)
    assert control.max() <= ROUNDING


def test_symmetry_catches_a_path_along_the_axes():
    """Moving features one at a time is complete but not symmetric: Hypothesis must find a
    symmetric network and input where the check sees the difference."""
    models = mlps(n_features=F, max_symmetric_pairs=2, activations=SMOOTH)
    strategy = st.tuples(models.filter(lambda m: m.symmetric_pairs), inputs())

    def prepared(example):
        model, (x, baseline) = example
        i, j = model.symmetric_pairs[0]
        x = x.clone()
        x[:, j] = x[:, i]
        baseline = 0.0 if isinstance(baseline, torch.Tensor) else baseline
        return model, x, baseline, (i, j)

    def exposed(example):
        model, x, baseline, pair = prepared(example)
        v = symmetry_violation(axis_path_ig, model, x, pair=pair, baseline=baseline)
        return bool(v.max() > 1e-3)

    model, x, baseline, pair = prepared(find(strategy, exposed, settings=SEARCH))
    tol = ROUNDING * scale(model(x)) * F
    assert completeness_violation(axis_path_ig, model, x, baseline=baseline).max() <= tol
    straight = symmetry_violation(integrated_gradients, model, x, pair=pair, baseline=baseline)
    assert straight.max() <= tol


# ------------------------------------------------------- implementation invariance


@settings(max_examples=scaled(1.0))
@given(pair=equivalent_mlps(n_features=F), x=batches(feature_shape=(F,), max_batch=4))
def test_implementation_invariance_catches_a_parameter_dependent_attribution(pair, x):
    """The twin's dead unit changes every first-layer column norm (dummies aside)."""
    model, twin = pair
    live = [i for i in range(F) if i not in model.dummies]
    assume(bool(x[:, live].abs().amax(1).min() > 1e-3))
    mutant = implementation_invariance_violation(weight_norm_x_input, model, twin, x)
    control = implementation_invariance_violation(gradient_x_input, model, twin, x)
    assert bool((mutant > 1e-9).all())
    assert control.max() <= ROUNDING * scale(model(x)) * F


# ------------------------------------------------------------------ linearity


def test_linearity_catches_normalized_attributions():
    strategy = st.tuples(
        mlps(n_features=F), additive_models(n_features=F), inputs(), st.floats(-3, 3)
    )

    def exposed(example):
        f, g, (x, baseline), alpha = example
        v = linearity_violation(normalized_ig, f, g, x, alpha=alpha, baseline=baseline)
        return bool(v.max() > 1e-3)

    f, g, (x, baseline), alpha = find(strategy, exposed, settings=SEARCH)
    control = linearity_violation(integrated_gradients, f, g, x, alpha=alpha, baseline=baseline)
    assert control.max() <= ROUNDING * (1 + abs(alpha)) * scale(f(x), g(x)) * F


# ------------------------------------------------------------ batch independence


@settings(max_examples=scaled(1.0))
@given(model=linear_models(n_features=F), x=batches(feature_shape=(F,), min_batch=2, max_batch=4))
def test_batch_independence_catches_a_batch_mean_baseline(model, x):
    """Alone, a row is its own mean (attribution 0); in the batch it is w * (x_b - mean)."""
    in_batch = model.params["weight"] * (x - x.mean(0, keepdim=True))
    assume(bool(in_batch.abs().amax(1).min() > 1e-3))
    mutant = batch_independence_violation(mean_baseline_ig, model, x, steps=4)
    control = batch_independence_violation(integrated_gradients, model, x, steps=4)
    tol = ROUNDING * scale(model(x)) * F
    assert bool((mutant >= in_batch.abs().amax(1) - tol).all())
    assert control.max() <= tol


# ------------------------------------------------------ completeness in expectation


@pytest.mark.parametrize("kind", ["smooth_mlp", "additive"])
def test_expected_completeness_catches_gradients_without_a_path(kind):
    models = (
        mlps(n_features=F, activations=SMOOTH)
        if kind == "smooth_mlp"
        else additive_models(n_features=F)
    )
    refs = torch.randn(6, F, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    strategy = st.tuples(models, batches(feature_shape=(F,), max_batch=2))

    def z_score(method, model, x):
        return expected_completeness_violation(
            method,
            model,
            x,
            baselines=refs,
            n_samples=4,
            repeats=64,
            generator=torch.Generator().manual_seed(1),
        )

    model, x = find(
        strategy, lambda ex: bool(z_score(endpoint_gradients, *ex).max() > 20), settings=SEARCH
    )
    assert z_score(expected_gradients, model, x).max() <= 6
