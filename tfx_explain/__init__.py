"""tfx_explain: functional feature attribution for PyTorch, built on torch.func.

Every method is a pure function ``method(fn, x, *, ...) -> attributions`` shaped
like ``x``; see the README for the shared contract.
"""

from ._gradients import gradient_x_input, input_gradients
from ._integrated import (
    AdaptiveResult,
    adaptive_integrated_gradients,
    completeness_gap,
    integrated_gradients,
)
from ._quadrature import quadrature

__all__ = [
    "AdaptiveResult",
    "adaptive_integrated_gradients",
    "completeness_gap",
    "gradient_x_input",
    "input_gradients",
    "integrated_gradients",
    "quadrature",
]
