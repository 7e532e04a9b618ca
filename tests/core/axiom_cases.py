"""Shared cases of the axiom tests: methods with their options, tolerances, a violation log.

Set ``TFX_AXIOM_REPORT=path.json`` to write, at exit, the number of examples and the worst
violation seen per (axiom, method, model kind): the table of the README's testing section.
"""

from __future__ import annotations

import atexit
import json
import math
import os

import torch

from tfx_explain import (
    expected_gradients,
    feature_ablation,
    gradient_x_input,
    input_gradients,
    integrated_gradients,
    integrated_hessians,
    occlusion,
    shapley_values,
    smoothgrad,
)
from tfx_explain.testing import seeded

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gauss_legendre")

ROUNDING = 1e-12
"""Float64 rounding tolerance, relative to the scale of the outputs and attributions (~4500 eps)."""


def with_options(method, name, **fixed):
    """``method`` with some options bound, named for test ids and the violation log."""

    def bound(fn, x, **options):
        return method(fn, x, **fixed, **options)

    bound.__name__ = name
    return bound


def _smoothgrad(fn, x, *, generator, **options):
    smoothed = smoothgrad(input_gradients, n_samples=4, sigma=0.1, generator=generator)
    return smoothed(fn, x, **options)


def references(n_features: int, dtype=torch.float64) -> torch.Tensor:
    """A fixed reference set ``(5, F)`` for expected gradients."""
    gen = torch.Generator().manual_seed(1234)
    return torch.randn(5, n_features, generator=gen, dtype=dtype)


def _expected_gradients(fn, x, *, generator, **options):
    refs = references(x.shape[1], x.dtype)
    return expected_gradients(fn, x, baselines=refs, n_samples=6, generator=generator, **options)


IG = {rule: with_options(integrated_gradients, f"ig_{rule}", rule=rule, steps=16) for rule in RULES}
IG_EXACT = with_options(integrated_gradients, "ig_gauss_legendre_32", steps=32)
OCCLUSION = with_options(occlusion, "occlusion", window=1)
ABLATION = with_options(feature_ablation, "feature_ablation", groups=None)
SHAPLEY = with_options(shapley_values, "shapley_exact")
SHAPLEY_SAMPLED = with_options(seeded(shapley_values, seed=7), "shapley_sampled", n_permutations=4)
EXPECTED = with_options(seeded(_expected_gradients, seed=7), "expected_gradients")
SMOOTHGRAD = with_options(seeded(_smoothgrad, seed=7), "smoothgrad")
HESSIANS = with_options(integrated_hessians, "integrated_hessians", steps=6)
GRADIENTS = with_options(input_gradients, "input_gradients")
GRAD_X_INPUT = with_options(gradient_x_input, "gradient_x_input")

BASELINE_METHODS = [*IG.values(), OCCLUSION, ABLATION, SHAPLEY, SHAPLEY_SAMPLED, HESSIANS]
"""Methods taking a ``baseline``."""
DETERMINISTIC = [GRADIENTS, GRAD_X_INPUT, *IG.values(), OCCLUSION, ABLATION, SHAPLEY, HESSIANS]
ALL_METHODS = [*DETERMINISTIC, SHAPLEY_SAMPLED, EXPECTED, SMOOTHGRAD]


def name(method) -> str:
    return method.__name__


def scale(*tensors) -> float:
    """Largest magnitude among tensors, at least 1: the unit of a rounding tolerance."""
    return max([1.0] + [float(t.abs().max()) for t in tensors if t.numel()])


# ------------------------------------------------------------------ violation log

_LOG: dict[str, dict] = {}


def record(axiom: str, method, kind: str, violation, *, lowest: bool = False) -> None:
    """Count one example and keep the worst violation of (axiom, method, model kind).

    The worst is the largest value, or the smallest with ``lowest=True`` (rates).
    """
    if isinstance(violation, torch.Tensor):
        value = float(violation.min() if lowest else violation.max())
    else:
        value = float(violation)
    key = f"{axiom} | {method if isinstance(method, str) else name(method)} | {kind}"
    entry = _LOG.setdefault(key, {"examples": 0, "worst": math.inf if lowest else -math.inf})
    entry["examples"] += 1
    entry["worst"] = min(entry["worst"], value) if lowest else max(entry["worst"], value)


def _write_log() -> None:
    path = os.environ.get("TFX_AXIOM_REPORT")
    if path and _LOG:
        with open(path, "w") as f:
            json.dump(dict(sorted(_LOG.items())), f, indent=1)


atexit.register(_write_log)
