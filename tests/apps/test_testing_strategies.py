"""Tests of tfx_explain.testing itself: the strategies draw what they promise, the checks
refuse bad arguments, and importing tfx_explain does not import Hypothesis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, vmap

from tfx_explain import input_gradients, integrated_gradients
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
    linear_models,
    linearity_violation,
    load_profile,
    mlps,
    profiles,
    row_sum_violation,
    scaled,
    seeded,
    sensitivity_violation,
    symmetry_violation,
    transformer_nets,
)
from tfx_explain.testing.strategies import _init_mlp, _mlp_model

ROOT = Path(__file__).resolve().parents[2]


def test_importing_tfx_explain_does_not_import_hypothesis():
    code = (
        "import sys, tfx_explain\n"
        "assert 'hypothesis' not in sys.modules, 'tfx_explain imported hypothesis'\n"
        "import tfx_explain.testing.strategies, tfx_explain.testing.axioms\n"
        "assert 'hypothesis' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------- inputs


@settings(max_examples=scaled(1.0))
@given(
    data=st.data(),
    feature_shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
    bounds=st.tuples(st.floats(-5, 5), st.floats(0.1, 5)).map(lambda t: (t[0], t[0] + t[1])),
)
def test_batches_are_finite_bounded_and_shaped(data, feature_shape, dtype, bounds):
    low, high = bounds
    x = data.draw(
        batches(
            feature_shape=feature_shape,
            min_batch=2,
            max_batch=5,
            min_value=low,
            max_value=high,
            dtype=dtype,
        )
    )
    assert x.dtype == dtype and x.shape[1:] == feature_shape and 2 <= x.shape[0] <= 5
    assert bool(torch.isfinite(x).all())
    assert bool((x >= low).all() and (x <= high).all())


@settings(max_examples=scaled(1.0))
@given(x=batches(feature_shape=(2, 3), max_batch=4), data=st.data())
def test_baselines_broadcast_to_their_batch(x, data):
    baseline = data.draw(baselines(feature_shape=(2, 3), batch_size=x.shape[0]))
    if isinstance(baseline, float):
        assert -2.0 <= baseline <= 2.0
    else:
        assert baseline.shape in ((1, 2, 3), x.shape) and baseline.dtype == x.dtype
        assert torch.broadcast_shapes(baseline.shape, x.shape) == x.shape


# ------------------------------------------------------------------- models


@settings(max_examples=scaled(1.0))
@given(
    model=mlps(n_features=5, max_dummies=2, max_symmetric_pairs=1),
    x=batches(feature_shape=(5,), max_batch=4),
    other=batches(feature_shape=(5,), min_batch=4, max_batch=4),
)
def test_mlps_ignore_their_dummies_and_respect_their_pairs(model, x, other):
    assert model.kind == "mlp" and model(x).shape == (x.shape[0],)
    moved = x.clone()
    moved[:, list(model.dummies)] = other[: x.shape[0], list(model.dummies)]
    assert torch.equal(model(moved), model(x))  # exactly: zero first-layer columns
    for i, j in model.symmetric_pairs:
        swapped = x.clone()
        swapped[:, [i, j]] = x[:, [j, i]]
        assert torch.allclose(model(swapped), model(x), rtol=0, atol=1e-13)
    assert set(model.dummies).isdisjoint(p for pair in model.symmetric_pairs for p in pair)


@settings(max_examples=scaled(0.5))
@given(model=mlps(n_features=3, n_outputs=4), x=batches(feature_shape=(3,), max_batch=4))
def test_mlps_are_pure_functions_of_their_seed(model, x):
    assert model(x).shape == (x.shape[0], 4)
    depth = sum(1 for key in model.params if key.startswith("bias") and key != "bias_out")
    widths = [model.params[f"weight{layer}"].shape[0] for layer in range(depth)]
    again = _init_mlp(model.seed, widths, 3, 4, 1.0, (), (), torch.float64)
    assert all(torch.equal(again[key], value) for key, value in model.params.items())
    jac = vmap(torch.func.jacrev(lambda row: model(row[None])[0]))(x)  # composes with torch.func
    assert jac.shape == (x.shape[0], 4, 3)


@settings(max_examples=scaled(1.0))
@given(pair=equivalent_mlps(n_features=4, max_dummies=1), x=batches(feature_shape=(4,)))
def test_equivalent_mlps_compute_one_function_with_other_parameters(pair, x):
    model, twin = pair
    assert torch.allclose(model(x), twin(x), rtol=0, atol=1e-12)
    assert twin.params["weight0"].shape[0] == model.params["weight0"].shape[0] + 1
    assert twin.dummies == model.dummies and twin.activation == model.activation


@settings(max_examples=scaled(1.0))
@given(model=linear_models(n_features=4, max_dummies=2), x=batches(feature_shape=(4,)))
def test_linear_models_expose_their_weights(model, x):
    w = model.params["weight"]
    assert torch.equal(input_gradients(model, x), w.expand_as(x))
    assert torch.allclose(model(x), x @ w + model.params["bias"], rtol=0, atol=0)
    assert model.dummies == tuple(int(i) for i in (w == 0).nonzero().flatten())
    exact = model.exact_attributions(x, torch.zeros_like(x))
    assert torch.equal(exact, x * w)


@settings(max_examples=scaled(1.0))
@given(
    model=additive_models(n_features=4, max_dummies=2, max_symmetric_pairs=1),
    x=batches(feature_shape=(4,)),
)
def test_additive_models_are_sums_of_their_terms(model, x):
    terms = model.terms(x)
    assert torch.equal(model(x), terms.sum(-1))
    assert torch.equal(
        terms[:, list(model.dummies)], torch.zeros_like(terms[:, list(model.dummies)])
    )
    for name, bound in (("a", 2.0), ("b", 2.0), ("c", 1.0)):
        assert bool(model.params[name].abs().max() <= bound)
    for i, j in model.symmetric_pairs:
        for name in ("a", "b", "c"):
            assert model.params[name][i] == model.params[name][j]


@settings(max_examples=scaled(0.3))
@given(net=transformer_nets(n_features=3, max_layers=1), x=batches(feature_shape=(3,)))
def test_transformer_nets_draw_valid_functional_nets(net, x):
    out = net(x)
    assert out.shape == (x.shape[0],) and out.dtype == torch.float64
    assert bool(torch.isfinite(out).all())
    grads = vmap(grad(lambda row: net(row[None])[0]))(x)
    assert grads.shape == x.shape


def test_exact_attributions_are_refused_for_networks():
    params = _init_mlp(0, [3], 2, None, 1.0, (), (), torch.float64)
    model = _mlp_model(params, "tanh", 2, None, 0, (), ())
    with pytest.raises(ValueError, match="exact attributions"):
        model.exact_attributions(torch.zeros(1, 2), torch.zeros(1, 2))
    assert "seed=0" in repr(model) and "tanh" in repr(model)


# ------------------------------------------------------------------- validation

BAD_STRATEGY_ARGUMENTS = [
    (batches, {"feature_shape": (0,)}, ValueError, "feature_shape"),
    (batches, {"feature_shape": 3, "min_batch": 0}, ValueError, "min_batch"),
    (batches, {"feature_shape": 3, "min_batch": 5, "max_batch": 2}, ValueError, "min_batch"),
    (batches, {"feature_shape": 3, "min_value": float("nan")}, ValueError, "min_value"),
    (batches, {"feature_shape": 3, "min_value": 1.0, "max_value": 0.0}, ValueError, "min_value"),
    (batches, {"feature_shape": 3, "max_value": "2"}, TypeError, "max_value"),
    (batches, {"feature_shape": 3, "dtype": torch.int64}, TypeError, "dtype"),
    (baselines, {"feature_shape": 3, "batch_size": 0}, ValueError, "batch_size"),
    (baselines, {"feature_shape": 3, "allow_numbers": 1}, TypeError, "allow_numbers"),
    (mlps, {"n_features": 0}, ValueError, "n_features"),
    (mlps, {"n_features": 2.0}, TypeError, "n_features"),
    (mlps, {"n_features": 3, "n_outputs": 0}, ValueError, "n_outputs"),
    (mlps, {"n_features": 3, "min_depth": 3, "max_depth": 2}, ValueError, "min_depth"),
    (mlps, {"n_features": 3, "activations": ("gelu",)}, ValueError, "activations"),
    (mlps, {"n_features": 3, "activations": "tanh"}, ValueError, "activations"),
    (mlps, {"n_features": 3, "weight_scale": 0.0}, ValueError, "weight_scale"),
    (
        mlps,
        {"n_features": 3, "max_dummies": 2, "max_symmetric_pairs": 1},
        ValueError,
        "max_dummies",
    ),
    (equivalent_mlps, {"n_features": 3, "max_width": 0}, ValueError, "max_width"),
    (linear_models, {"n_features": 3, "max_dummies": -1}, ValueError, "max_dummies"),
    (additive_models, {"n_features": 3, "max_frequency": -1.0}, ValueError, "max_frequency"),
    (additive_models, {"n_features": 3, "max_amplitude": None}, TypeError, "max_amplitude"),
    (transformer_nets, {"n_features": 3, "max_embed": 1}, ValueError, "max_embed"),
    (transformer_nets, {"n_features": 3, "dtype": torch.bfloat16}, TypeError, "dtype"),
]


@pytest.mark.parametrize(
    ("strategy", "kwargs", "error", "argument"),
    BAD_STRATEGY_ARGUMENTS,
    ids=[f"{s.__name__}-{a}" for s, _, _, a in BAD_STRATEGY_ARGUMENTS],
)
def test_strategies_refuse_bad_arguments_by_name(strategy, kwargs, error, argument):
    with pytest.raises(error, match=argument):
        strategy(**kwargs)


def test_strategies_are_keyword_only():
    with pytest.raises(TypeError):
        batches((3,))  # type: ignore[misc]
    with pytest.raises(TypeError):
        mlps(3)  # type: ignore[misc]


X = torch.ones(2, 3, dtype=torch.float64)


def _sum(x):
    return x.sum(-1)


BAD_CHECK_CALLS = [
    (lambda: completeness_violation("ig", _sum, X), TypeError, "method"),
    (lambda: completeness_violation(integrated_gradients, 3, X), TypeError, "fn"),
    (lambda: completeness_violation(integrated_gradients, _sum, [1.0]), TypeError, "x"),
    (lambda: completeness_violation(integrated_gradients, _sum, torch.ones(3)), ValueError, "x"),
    (
        lambda: completeness_violation(integrated_gradients, _sum, X, baseline="zero"),
        TypeError,
        "baseline",
    ),
    (
        lambda: completeness_violation(
            integrated_gradients, _sum, X, baseline=torch.zeros(3, 3, dtype=torch.float64)
        ),
        ValueError,
        "baseline",
    ),
    (
        lambda: sensitivity_violation(integrated_gradients, _sum, X, feature=3),
        ValueError,
        "feature",
    ),
    (lambda: dummy_violation(integrated_gradients, _sum, X, dummies="0"), TypeError, "dummies"),
    (lambda: dummy_violation(integrated_gradients, _sum, X, dummies=[5]), ValueError, "dummies"),
    (lambda: symmetry_violation(input_gradients, _sum, X, pair=(1, 1)), ValueError, "pair"),
    (
        lambda: symmetry_violation(
            input_gradients, _sum, torch.tensor([[1.0, 2.0, 3.0]]), pair=(0, 1)
        ),
        ValueError,
        "equal values",
    ),
    (
        lambda: linearity_violation(input_gradients, _sum, _sum, X, alpha=float("inf")),
        ValueError,
        "alpha",
    ),
    (
        lambda: batch_independence_violation(
            input_gradients, _sum, X, permutation=torch.tensor([0, 0])
        ),
        ValueError,
        "permutation",
    ),
    (
        lambda: convergence_rate(integrated_gradients, _sum, X, steps=(8, 4)),
        ValueError,
        "steps",
    ),
    (
        lambda: convergence_rate(integrated_gradients, _sum, X, floor=-1.0),
        ValueError,
        "floor",
    ),
    (
        lambda: expected_completeness_violation(
            integrated_gradients, _sum, X, baselines=torch.zeros(4, 3), repeats=1
        ),
        ValueError,
        "repeats",
    ),
    (
        lambda: expected_completeness_violation(
            integrated_gradients, _sum, X, baselines=torch.zeros(4, 2)
        ),
        ValueError,
        "baselines",
    ),
    (
        lambda: row_sum_violation(integrated_gradients, integrated_gradients, _sum, X),
        ValueError,
        "interactions",
    ),
    (lambda: seeded(integrated_gradients, seed=-1), ValueError, "seed"),
    (lambda: completeness_violation(lambda fn, x: x[:1], _sum, X), ValueError, "method"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_CHECK_CALLS)
def test_checks_refuse_bad_arguments_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_checks_do_not_mutate_their_inputs():
    x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    baseline = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    before = (x.clone(), baseline.clone())

    def fn(z):
        return torch.sin(z).sum(-1)

    completeness_violation(integrated_gradients, fn, x, baseline=baseline)
    sensitivity_violation(integrated_gradients, fn, x, feature=1, baseline=baseline)
    batch_independence_violation(integrated_gradients, fn, x, baseline=baseline)
    assert torch.equal(x, before[0]) and torch.equal(baseline, before[1])


def test_checks_accept_modules_with_trainable_parameters():
    """Outputs of an nn.Module carry autograd history; the checks detach, never warn."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    net = net.double().eval()

    def fn(z):
        return net(z)[:, 0]

    gap = completeness_violation(integrated_gradients, fn, X, steps=32)
    rate = convergence_rate(integrated_gradients, fn, X, rule="riemann_left")
    assert not gap.requires_grad and float(gap.max()) < 1e-12 and 0.85 < rate < 1.15


# ------------------------------------------------------------------- profiles


def test_profiles_are_registered_with_their_budgets(monkeypatch):
    profiles.register_profiles()
    ci = settings.get_profile("tfx-ci")
    assert ci.derandomize and ci.deadline is None and ci.database is None
    assert (
        settings.get_profile("tfx-long").max_examples > settings.get_profile("tfx-dev").max_examples
    )
    monkeypatch.setenv(profiles.ENV_VAR, "forever")
    with pytest.raises(ValueError, match=profiles.ENV_VAR):
        load_profile()


def test_scaled_follows_the_active_profile():
    n = settings.default.max_examples
    assert scaled(1.0) == n and scaled(0.5) == max(1, -(-n // 2)) and scaled(1e-9) == 1
    with pytest.raises(ValueError, match="fraction"):
        scaled(0)


@pytest.mark.parametrize(
    "strategy", [mlps, additive_models, linear_models], ids=lambda s: s.__name__
)
@settings(max_examples=20)
@given(data=st.data())
def test_min_roles_are_guaranteed(strategy, data):
    """A property that needs a dummy (or a pair) gets one on every example."""
    model = data.draw(
        strategy(
            n_features=5, min_dummies=1, max_dummies=2, min_symmetric_pairs=1, max_symmetric_pairs=1
        )
    )
    assert len(model.dummies) >= 1
    if strategy is mlps:  # linear and additive models also report terms drawn as zero
        assert len(model.dummies) <= 2
    assert len(model.symmetric_pairs) == 1
    assert not set(model.dummies) & set(model.symmetric_pairs[0])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"min_dummies": 2, "max_dummies": 1}, "min_dummies must be <= max_dummies, got 2 > 1"),
        ({"min_symmetric_pairs": -1}, "min_symmetric_pairs must be >= 0"),
    ],
)
def test_min_roles_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        mlps(n_features=4, **options)
