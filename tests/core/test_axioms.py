"""Property tests of the attribution axioms over every method where each applies.

Exact axioms are asserted with zero tolerance (dummy features) or to float64 rounding
(``ROUNDING`` times the scale of the outputs); approximate ones by their rate of
convergence. Models come from tfx_explain.testing.strategies: MLPs (smooth and ReLU),
additive and linear models with known attributions, and the functional TransformerNet.
"""

from __future__ import annotations

import math

import pytest
import torch
from axiom_cases import (
    ABLATION,
    ALL_METHODS,
    BASELINE_METHODS,
    DETERMINISTIC,
    GRAD_X_INPUT,
    GRADIENTS,
    HESSIANS,
    IG,
    IG_EXACT,
    OCCLUSION,
    ROUNDING,
    RULES,
    SHAPLEY,
    SHAPLEY_SAMPLED,
    name,
    record,
    references,
    scale,
    with_options,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tfx_explain import expected_gradients, integrated_gradients, integrated_hessians
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
    row_sum_violation,
    scaled,
    sensitivity_violation,
    symmetry_violation,
    transformer_nets,
)

F = 4
SMOOTH = ("tanh", "sigmoid", "softplus")
MODELS = {
    "mlp": mlps(n_features=F),
    "smooth_mlp": mlps(n_features=F, activations=SMOOTH),
    "additive": additive_models(n_features=F),
    "linear": linear_models(n_features=F),
    "transformer": transformer_nets(n_features=F, max_layers=1, max_ff=4, max_hidden=4),
}
# every drawn model has what its property needs: at least one dummy, at least one pair
WITH_DUMMIES = {
    "mlp": mlps(n_features=F, min_dummies=1, max_dummies=2),
    "additive": additive_models(n_features=F, min_dummies=1, max_dummies=2),
    "linear": linear_models(n_features=F, min_dummies=1, max_dummies=2),
}
WITH_PAIRS = {
    "mlp": mlps(n_features=F, max_dummies=1, min_symmetric_pairs=1, max_symmetric_pairs=1),
    "additive": additive_models(n_features=F, min_symmetric_pairs=1, max_symmetric_pairs=2),
    "linear": linear_models(n_features=F, min_symmetric_pairs=1, max_symmetric_pairs=2),
}


@st.composite
def inputs(draw, *, min_batch=1):
    """``(x (B, F), baseline)``: the baseline is a number, ``(1, F)`` or ``(B, F)``."""
    x = draw(batches(feature_shape=(F,), min_batch=min_batch, max_batch=4))
    return x, draw(baselines(feature_shape=(F,), batch_size=x.shape[0]))


def full(baseline, x):
    return torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)


def tolerance(model, x, baseline):
    """Float64 rounding for an identity between outputs and attributions of this example."""
    return ROUNDING * scale(model(x), model(full(baseline, x))) * F


PERTURBATION = (OCCLUSION, ABLATION, SHAPLEY, SHAPLEY_SAMPLED)
"""Methods that difference outputs of perturbed rows evaluated in one batch."""


def options_for(method, baseline):
    return {"baseline": baseline} if method in BASELINE_METHODS else {}


# ----------------------------------------------------------------------------- dummy


@pytest.mark.parametrize("kind", sorted(WITH_DUMMIES))
@pytest.mark.parametrize("method", ALL_METHODS, ids=name)
@settings(max_examples=scaled(1.0))
@given(data=st.data())
def test_dummy_features_get_exactly_zero(method, kind, data):
    model = data.draw(WITH_DUMMIES[kind], label="model")
    x, baseline = data.draw(inputs(), label="inputs")
    violation = dummy_violation(
        method, model, x, dummies=model.dummies, **options_for(method, baseline)
    )
    if kind == "mlp" and method in PERTURBATION:
        # Exact only if fn gives equal rows equal outputs wherever they sit in a batch;
        # MKL's batched GEMM does not promise that (a row's rounding may depend on its
        # position), so here the dummy may get a few ulps of f.
        record("dummy (<= 4 ulp of f; batched GEMM)", method, kind, violation)
        assert violation.max() <= 4 * torch.finfo(x.dtype).eps * scale(model(x))
        return
    record("dummy (== 0.0)", method, kind, violation)
    assert torch.equal(violation, torch.zeros_like(violation)), (model, violation)


# ----------------------------------------------------------------------- completeness

EXACT_COMPLETENESS = [
    *[(m, k) for m in (SHAPLEY, SHAPLEY_SAMPLED) for k in sorted(MODELS)],
    *[(m, k) for m in (OCCLUSION, ABLATION) for k in ("additive", "linear")],
    *[(m, "linear") for m in IG.values()],
    (IG_EXACT, "additive"),
    (GRAD_X_INPUT, "linear"),
    (HESSIANS, "linear"),
    (with_options(integrated_hessians, "integrated_hessians_24", steps=24), "additive"),
]


@pytest.mark.parametrize(
    ("method", "kind"), EXACT_COMPLETENESS, ids=[f"{name(m)}-{k}" for m, k in EXACT_COMPLETENESS]
)
@settings(max_examples=scaled(1.0))
@given(data=st.data())
def test_completeness_is_exact(method, kind, data):
    """Efficiency of Shapley values on any model; IG, occlusion, ablation where exact."""
    model = data.draw(MODELS[kind], label="model")
    x, baseline = data.draw(inputs(), label="inputs")
    if method is GRAD_X_INPUT:  # gradient x input is complete against zeros only
        baseline = None
    violation = completeness_violation(method, model, x, baseline=baseline)
    record("completeness (exact)", method, kind, violation)
    assert violation.max() <= tolerance(model, x, 0.0 if baseline is None else baseline)


@pytest.mark.parametrize("method", [SHAPLEY, IG_EXACT], ids=name)
@settings(max_examples=scaled(0.5))
@given(
    model=mlps(n_features=F, n_outputs=3, activations=SMOOTH, weight_scale=0.5),
    x=batches(feature_shape=(F,), max_batch=4),
    data=st.data(),
)
def test_completeness_with_targets(method, model, x, data):
    """Multi-output models: completeness of the explained output, per-row targets."""
    target = data.draw(
        st.lists(st.integers(0, 2), min_size=len(x), max_size=len(x)), label="target"
    )
    target = torch.tensor(target)
    violation = completeness_violation(method, model, x, target=target)
    record("completeness (exact)", method, "mlp_3_outputs", violation)
    bound = ROUNDING * scale(model(x)) * F
    if method is IG_EXACT:  # 32-point Gauss-Legendre on a gently curved tanh/sigmoid MLP
        bound = 1e-9
    assert violation.max() <= bound


ORDERS = {
    "riemann_left": 1.0,
    "riemann_right": 1.0,
    "riemann_middle": 2.0,
    "riemann_trapezoid": 2.0,
    "gauss_legendre": 4.0,
}
"""Lower bounds on the observed order: the theory's order for the Newton-Cotes rules, and for
Gauss-Legendre (geometric: the fitted order grows with S) twice theirs, over 4..16 nodes."""
STEPS = {rule: (64, 128, 256, 512) for rule in RULES} | {"gauss_legendre": (4, 8, 12, 16)}
GL_STEPS_ADDITIVE = (2, 4, 6, 8)
"""Additive terms are entire functions: Gauss-Legendre reaches rounding by 8 nodes."""
SLACK = 0.15
"""How far below the asymptotic order a fit over finite step counts may land."""


FEWER_STEPS = ((2, 3, 4, 6), (1, 2, 3, 4))
"""Smaller Gauss-Legendre step counts, tried when a gap has reached rounding already."""


def measured_rate(method, model, x, *, steps, **options) -> float:
    """The fitted order over the first step counts whose gaps lie above rounding.

    ``convergence_rate`` returns ``inf`` when fewer than two gaps are measurable, and a
    rate test that accepted ``inf`` would check nothing. Gauss-Legendre can converge
    that fast, so fewer nodes are tried; an example where even 1 to 4 nodes are exact
    (a path integrand of low polynomial degree) is discarded with ``assume`` and the
    report counts only examples whose rate was measured.
    """
    candidates = (steps,) + (
        FEWER_STEPS if options.get("rule", "gauss_legendre") == "gauss_legendre" else ()
    )
    for candidate in candidates:
        rate = convergence_rate(method, model, x, steps=candidate, **options)
        if math.isfinite(rate):
            return rate
    assume(False)


@st.composite
def distinct_inputs(draw):
    """``(x, baseline)`` with every row at least 0.25 away from its baseline (max-norm)."""
    x, baseline = draw(inputs(min_batch=2))
    assume(bool((x - full(baseline, x)).abs().amax(1).min() >= 0.25))
    return x, baseline


@pytest.mark.parametrize("kind", ["smooth_mlp", "additive"])
@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=scaled(0.5))
@given(data=st.data())
def test_integrated_gradients_completeness_converges_at_the_rule_order(rule, kind, data):
    model = data.draw(MODELS[kind], label="model")
    x, baseline = data.draw(distinct_inputs(), label="inputs")
    steps = GL_STEPS_ADDITIVE if (kind, rule) == ("additive", "gauss_legendre") else STEPS[rule]
    rate = measured_rate(integrated_gradients, model, x, baseline=baseline, rule=rule, steps=steps)
    axiom = f"convergence order (lowest; theory >= {ORDERS[rule]:g})"
    record(axiom, f"ig_{rule}", kind, rate, lowest=True)
    assert rate >= ORDERS[rule] - SLACK


@settings(max_examples=scaled(0.3))
@given(model=MODELS["smooth_mlp"], data=st.data())
def test_integrated_hessians_completeness_converges_geometrically(model, data):
    x, baseline = data.draw(distinct_inputs(), label="inputs")
    rate = measured_rate(
        integrated_hessians, model, x, baseline=baseline, steps=STEPS["gauss_legendre"]
    )
    axiom = "convergence order (lowest; theory >= 4)"
    record(axiom, "integrated_hessians", "smooth_mlp", rate, lowest=True)
    assert rate >= ORDERS["gauss_legendre"] - SLACK


@pytest.mark.parametrize("kind", ["mlp", "smooth_mlp", "additive", "transformer"])
@settings(max_examples=scaled(0.5))
@given(data=st.data())
def test_expected_gradients_complete_in_expectation(kind, data):
    """The mean completeness gap over repeated draws is within 6 standard errors of 0."""
    model = data.draw(MODELS[kind], label="model")
    x = data.draw(batches(feature_shape=(F,), max_batch=3), label="x")
    z = expected_completeness_violation(
        expected_gradients,
        model,
        x,
        baselines=references(F),
        repeats=64,
        n_samples=4,
        generator=torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed")),
    )
    record("completeness in expectation (z-score)", "expected_gradients", kind, z)
    assert z.max() <= 6.0


@pytest.mark.parametrize("kind", ["linear", "additive"])
@settings(max_examples=scaled(0.5))
@given(data=st.data())
def test_integrated_hessians_rows_sum_to_integrated_gradients(kind, data):
    model = data.draw(MODELS[kind], label="model")
    x, baseline = data.draw(inputs(), label="inputs")
    violation = row_sum_violation(
        integrated_hessians, integrated_gradients, model, x, baseline=baseline, steps=24
    )
    record("IH rows sum to IG", "integrated_hessians_24", kind, violation)
    assert violation.max() <= tolerance(model, x, baseline)


# ------------------------------------------------------------------------ sensitivity

SENSITIVITY = [
    *[(m, k) for m in (SHAPLEY, SHAPLEY_SAMPLED, OCCLUSION, ABLATION) for k in sorted(MODELS)],
    *[(m, "linear") for m in IG.values()],
    (IG_EXACT, "additive"),
]


@pytest.mark.parametrize(
    ("method", "kind"), SENSITIVITY, ids=[f"{name(m)}-{k}" for m, k in SENSITIVITY]
)
@settings(max_examples=scaled(1.0))
@given(data=st.data())
def test_sensitivity_one_differing_feature_gets_the_whole_change(method, kind, data):
    model = data.draw(MODELS[kind], label="model")
    x, baseline = data.draw(inputs(), label="inputs")
    feature = data.draw(st.integers(0, F - 1), label="feature")
    violation = sensitivity_violation(method, model, x, feature=feature, baseline=baseline)
    record("sensitivity(a)", method, kind, violation)
    assert violation.max() <= tolerance(model, x, baseline)


# --------------------------------------------------------------------------- symmetry

SYMMETRIC_METHODS = [GRADIENTS, GRAD_X_INPUT, *IG.values(), OCCLUSION, ABLATION, SHAPLEY]


@pytest.mark.parametrize("kind", sorted(WITH_PAIRS))
@pytest.mark.parametrize("method", SYMMETRIC_METHODS, ids=name)
@settings(max_examples=scaled(1.0))
@given(data=st.data())
def test_symmetric_features_with_equal_values_get_equal_attributions(method, kind, data):
    model = data.draw(WITH_PAIRS[kind], label="model")
    assume(model.symmetric_pairs)
    x, baseline = data.draw(inputs(), label="inputs")
    i, j = model.symmetric_pairs[0]
    x = x.clone()
    x[:, j] = x[:, i]
    if isinstance(baseline, torch.Tensor):
        baseline = baseline.clone()
        baseline[:, j] = baseline[:, i]
    violation = symmetry_violation(method, model, x, pair=(i, j), **options_for(method, baseline))
    record("symmetry", method, kind, violation)
    assert violation.max() <= tolerance(model, x, baseline)


# ----------------------------------------------------------- implementation invariance


@pytest.mark.parametrize("activation", ["smooth", "relu"])
@pytest.mark.parametrize("method", ALL_METHODS, ids=name)
@settings(max_examples=scaled(1.0))
@given(data=st.data())
def test_equivalent_networks_get_equal_attributions(method, activation, data):
    activations = SMOOTH if activation == "smooth" else ("relu",)
    model, twin = data.draw(
        equivalent_mlps(n_features=F, max_depth=2, activations=activations), label="pair"
    )
    x, baseline = data.draw(inputs(), label="inputs")
    assert torch.allclose(model(x), twin(x), rtol=0, atol=tolerance(model, x, baseline))
    violation = implementation_invariance_violation(
        method, model, twin, x, **options_for(method, baseline)
    )
    record("implementation invariance", method, f"{activation}_mlp", violation)
    assert violation.max() <= tolerance(model, x, baseline)


# -------------------------------------------------------------------------- linearity


@pytest.mark.parametrize("method", ALL_METHODS, ids=name)
@settings(max_examples=scaled(1.0))
@given(
    f=MODELS["mlp"],
    g=st.one_of(MODELS["additive"], MODELS["linear"]),
    alpha=st.floats(-3, 3),
    beta=st.floats(-3, 3),
    data=st.data(),
)
def test_attributions_are_linear_in_the_model(method, f, g, alpha, beta, data):
    x, baseline = data.draw(inputs(), label="inputs")
    violation = linearity_violation(
        method, f, g, x, alpha=alpha, beta=beta, **options_for(method, baseline)
    )
    record("linearity", method, "mlp+additive|linear", violation)
    bound = ROUNDING * (1 + abs(alpha) + abs(beta)) * scale(f(x), g(x), f(full(baseline, x)))
    assert violation.max() <= bound * F


@pytest.mark.parametrize("method", [SHAPLEY, IG_EXACT, OCCLUSION], ids=name)
@settings(max_examples=scaled(0.3))
@given(f=MODELS["transformer"], g=MODELS["transformer"], x=batches(feature_shape=(F,), max_batch=3))
def test_linearity_on_transformers(method, f, g, x):
    violation = linearity_violation(method, f, g, x)
    record("linearity", method, "transformer+transformer", violation)
    assert violation.max() <= ROUNDING * scale(f(x), g(x)) * F


# --------------------------------------------------------------- batch independence

BATCH_METHODS = [*DETERMINISTIC, SHAPLEY_SAMPLED]


@pytest.mark.parametrize("kind", ["mlp", "additive", "transformer"])
@pytest.mark.parametrize("method", BATCH_METHODS, ids=name)
@settings(max_examples=scaled(0.5))
@given(data=st.data())
def test_a_rows_attribution_ignores_the_rest_of_the_batch(method, kind, data):
    if kind == "transformer" and method is HESSIANS:
        pytest.skip("second derivatives through the transformer: covered on MLPs")
    model = data.draw(MODELS[kind], label="model")
    x, baseline = data.draw(inputs(min_batch=2), label="inputs")
    violation = batch_independence_violation(method, model, x, **options_for(method, baseline))
    record("batch independence", method, kind, violation)
    assert violation.max() <= tolerance(model, x, baseline)


# ------------------------------------------------------------------- closed forms

CLOSED_FORMS = [
    *[(m, k) for m in (SHAPLEY, OCCLUSION, ABLATION, IG_EXACT) for k in ("additive", "linear")],
    *[(m, "linear") for m in IG.values()],
]


@pytest.mark.parametrize(
    ("method", "kind"), CLOSED_FORMS, ids=[f"{name(m)}-{k}" for m, k in CLOSED_FORMS]
)
@settings(max_examples=scaled(1.0))
@given(data=st.data())
def test_known_attributions_of_linear_and_additive_models(method, kind, data):
    """phi_i = g_i(x_i) - g_i(x'_i): Shapley, occlusion, ablation and IG all reach it."""
    model = data.draw(MODELS[kind], label="model")
    x, baseline = data.draw(inputs(), label="inputs")
    attr = method(model, x, baseline=baseline)
    error = (attr - model.exact_attributions(x, full(baseline, x))).abs().amax(1)
    record("closed form", method, kind, error)
    assert error.max() <= tolerance(model, x, baseline)


def test_rates_are_finite_on_a_generic_example():
    """Guard against a vacuous rate test: these gaps lie well above the rounding floor."""
    x = torch.tensor([[1.5, -1.0, 0.5, 2.0], [0.3, 0.7, -1.2, 1.1]], dtype=torch.float64)

    def fn(z):
        return torch.tanh(z @ torch.tensor([0.7, -0.4, 1.1, 0.5], dtype=torch.float64))

    for rule in RULES:
        rate = convergence_rate(integrated_gradients, fn, x, rule=rule, steps=STEPS[rule])
        assert ORDERS[rule] - SLACK <= rate < math.inf, (rule, rate)
