"""tfx_explain: functional feature attribution for PyTorch, built on torch.func.

Every method is a pure function ``method(fn, x, *, ...) -> attributions`` shaped
like ``x``; see the README for the shared contract.
"""

from ._aggregation import combine, global_importance, group_attributions
from ._gradients import gradient_x_input, input_gradients
from ._integrated import (
    AdaptiveResult,
    adaptive_integrated_gradients,
    completeness_gap,
    integrated_gradients,
)
from ._interactions import integrated_hessians
from ._perturbation import feature_ablation, occlusion
from ._quadrature import RULES, quadrature
from ._shapley import MAX_EXACT_GROUPS, shapley_values
from ._smoothing import expected_gradients, smoothgrad

__all__ = [
    "MAX_EXACT_GROUPS",
    "RULES",
    "AdaptiveResult",
    "adaptive_integrated_gradients",
    "combine",
    "completeness_gap",
    "expected_gradients",
    "feature_ablation",
    "global_importance",
    "gradient_x_input",
    "group_attributions",
    "input_gradients",
    "integrated_gradients",
    "integrated_hessians",
    "occlusion",
    "quadrature",
    "shapley_values",
    "smoothgrad",
]
