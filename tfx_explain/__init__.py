"""tfx_explain: functional feature attribution for PyTorch, built on torch.func.

Every method is a pure function ``method(fn, x, *, ...) -> attributions`` shaped
like ``x``; see the README for the shared contract. This module only re-exports:
the methods live in one private module per family, over the shared row engine in
``tfx_explain._engine``.
"""

__version__ = "0.2.0"

from . import metrics as metrics
from ._engine.checks import MAX_SAMPLES as MAX_SAMPLES
from ._engine.checks import MAX_STEPS as MAX_STEPS
from ._engine.masks import MAX_EXACT_GROUPS as MAX_EXACT_GROUPS
from ._engine.rows import CompileFallbackWarning as CompileFallbackWarning
from ._engine.rows import SlowVmapWarning as SlowVmapWarning
from ._expected_hessians import expected_hessians as expected_hessians
from ._gradients import gradient_x_input as gradient_x_input
from ._gradients import input_gradients as input_gradients
from ._hessians import integrated_hessians as integrated_hessians
from ._integrated import AdaptiveResult as AdaptiveResult
from ._integrated import adaptive_integrated_gradients as adaptive_integrated_gradients
from ._integrated import completeness_gap as completeness_gap
from ._integrated import integrated_gradients as integrated_gradients
from ._perturbation import feature_ablation as feature_ablation
from ._perturbation import occlusion as occlusion
from ._quadrature import RULES as RULES
from ._quadrature import quadrature as quadrature
from ._shapley import shapley_values as shapley_values
from ._smoothing import expected_gradients as expected_gradients
from ._smoothing import smoothgrad as smoothgrad
from ._summaries import combine as combine
from ._summaries import global_importance as global_importance
from ._summaries import group_attributions as group_attributions
from ._surrogates import kernel_shap as kernel_shap
from ._surrogates import lime as lime

__all__ = [
    "MAX_EXACT_GROUPS",
    "MAX_SAMPLES",
    "MAX_STEPS",
    "RULES",
    "AdaptiveResult",
    "CompileFallbackWarning",
    "SlowVmapWarning",
    "adaptive_integrated_gradients",
    "combine",
    "completeness_gap",
    "expected_gradients",
    "expected_hessians",
    "feature_ablation",
    "global_importance",
    "gradient_x_input",
    "group_attributions",
    "input_gradients",
    "integrated_gradients",
    "integrated_hessians",
    "kernel_shap",
    "lime",
    "metrics",
    "occlusion",
    "quadrature",
    "shapley_values",
    "smoothgrad",
]
