"""One public API: the same keywords with the same defaults wherever they apply."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch

import tfx_explain as tx

# every public function of the form method(fn, x, ...) that evaluates fn
METHODS = [
    tx.input_gradients,
    tx.gradient_x_input,
    tx.integrated_gradients,
    tx.adaptive_integrated_gradients,
    tx.completeness_gap,
    tx.occlusion,
    tx.feature_ablation,
    tx.shapley_values,
    tx.expected_gradients,
    tx.integrated_hessians,
    tx.kernel_shap,
    tx.lime,
]
SHARED = {"target": None, "chunk_size": None, "vectorize": "auto", "compile": False}
WITH_BASELINE = {
    tx.integrated_gradients,
    tx.adaptive_integrated_gradients,
    tx.completeness_gap,
    tx.occlusion,
    tx.feature_ablation,
    tx.shapley_values,
    tx.integrated_hessians,
    tx.kernel_shap,
    tx.lime,
}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.__name__)
def test_every_method_takes_the_shared_keywords_with_the_same_defaults(method):
    params = inspect.signature(method).parameters
    assert list(params)[:2] == ["fn", "x"]
    for name, default in SHARED.items():
        assert name in params, f"{method.__name__} lacks {name}"
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default == default, (method.__name__, name)
    if method in WITH_BASELINE:
        assert params["baseline"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["baseline"].default is None  # zeros, everywhere


def test_feature_ablation_without_groups_ablates_every_feature_alone():
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    x = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(tx.feature_ablation(lambda z: z @ w, x), w * x, rtol=0, atol=0)


def test_rules_are_names():
    assert isinstance(tx.RULES, tuple) and all(isinstance(r, str) for r in tx.RULES)
    for rule in tx.RULES:
        alphas, weights = tx.quadrature(rule, 4)
        assert alphas.shape == weights.shape == (4,)


def _private_modules():
    """The core's private modules: ``tfx_explain._x`` and ``tfx_explain._engine.x``."""
    for info in pkgutil.iter_modules(tx.__path__, "tfx_explain."):
        if info.name.split(".")[1].startswith("_") and not info.name.endswith("__main__"):
            yield info.name
    for info in pkgutil.iter_modules(importlib.import_module("tfx_explain._engine").__path__):
        yield "tfx_explain._engine." + info.name


@pytest.mark.parametrize("name", list(_private_modules()))
def test_private_modules_export_only_what_they_define(name):
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", [])
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item}, which does not exist"
    # a core method module exports exactly what a public face (tfx_explain, or
    # tfx_explain.metrics for the metrics) re-exports from it
    if name.count(".") == 1 and name != "tfx_explain._engine":
        public = set(tx.__all__) | set(tx.metrics.__all__)

        def face(item):
            return getattr(tx, item, None) or getattr(tx.metrics, item)

        from_here = {item for item in public if getattr(face(item), "__module__", None) == name}
        assert from_here <= set(exported), (name, from_here - set(exported))
        functions = {item for item in exported if inspect.isfunction(getattr(module, item))}
        assert functions <= public, (name, functions - public)
