"""Evaluating explanations: faithfulness, robustness and sanity metrics, per sample.

Each metric is a pure function of ``fn``, ``x`` and attributions (or an attribution
method); every perturbation of every sample goes through the shared row engine in
one chunked, vectorized evaluation on ``x``'s device. See the README section
"Evaluating explanations" for the formulas and references.
"""

from ._curves import Curve as Curve
from ._curves import curve_area as curve_area
from ._curves import deletion_curve as deletion_curve
from ._curves import insertion_curve as insertion_curve
from ._curves import road as road
from ._fidelity import infidelity as infidelity
from ._fidelity import sensitivity_max as sensitivity_max
from ._randomization import parameter_randomization as parameter_randomization
from ._randomization import spearman as spearman
from ._randomization import ssim as ssim

__all__ = [
    "Curve",
    "curve_area",
    "deletion_curve",
    "infidelity",
    "insertion_curve",
    "parameter_randomization",
    "road",
    "sensitivity_max",
    "spearman",
    "ssim",
]
