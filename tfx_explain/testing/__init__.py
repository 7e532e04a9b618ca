"""Property testing for attribution methods: Hypothesis strategies and axiom checks.

Importing this package imports Hypothesis (install ``tfx_explain[testing]``);
``import tfx_explain`` alone does not.

- :mod:`tfx_explain.testing.strategies`: input batches, baselines and small models with
  known truth (MLPs, equivalent MLP pairs, linear and additive models, TransformerNets).
- :mod:`tfx_explain.testing.axioms`: checks that return the measured violation of an
  axiom (completeness, sensitivity, dummy, symmetry, implementation invariance,
  linearity, batch independence, quadrature convergence).
- :mod:`tfx_explain.testing.metrics`: checks built on :mod:`tfx_explain.metrics` with the
  same convention (beating random attributions on deletion and insertion by a margin,
  sensitivity to parameter randomization).
- :mod:`tfx_explain.testing.profiles`: Hypothesis profiles for CI and longer runs.
"""

from . import axioms, metrics, profiles, strategies
from .axioms import (
    batch_independence_violation,
    completeness_violation,
    convergence_rate,
    dummy_violation,
    expected_completeness_violation,
    implementation_invariance_violation,
    linearity_violation,
    row_sum_violation,
    seeded,
    sensitivity_violation,
    symmetry_violation,
)
from .metrics import deletion_violation, insertion_violation, randomization_violation
from .profiles import load_profile, register_profiles, scaled
from .strategies import (
    ACTIVATIONS,
    Model,
    additive_models,
    baselines,
    batches,
    equivalent_mlps,
    linear_models,
    mlps,
    transformer_nets,
)

__all__ = [
    "ACTIVATIONS",
    "Model",
    "additive_models",
    "axioms",
    "baselines",
    "batch_independence_violation",
    "batches",
    "completeness_violation",
    "convergence_rate",
    "deletion_violation",
    "dummy_violation",
    "equivalent_mlps",
    "expected_completeness_violation",
    "implementation_invariance_violation",
    "insertion_violation",
    "linear_models",
    "linearity_violation",
    "load_profile",
    "mlps",
    "metrics",
    "profiles",
    "randomization_violation",
    "register_profiles",
    "row_sum_violation",
    "scaled",
    "seeded",
    "sensitivity_violation",
    "strategies",
    "symmetry_violation",
    "transformer_nets",
]
