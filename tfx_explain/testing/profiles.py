"""Hypothesis settings profiles for attribution property tests: fast CI, dev and long runs.

``register_profiles()`` registers three profiles; ``load_profile()`` picks one from the
``TFX_HYPOTHESIS_PROFILE`` environment variable (``ci``, ``dev`` or ``long``):

=========  ============  ===========  ========  ============================================
profile    max_examples  derandomize  deadline  use
=========  ============  ===========  ========  ============================================
``ci``     10            yes          none      every CI run: the same examples every time
``dev``    30            no           none      local runs: new examples, failures replayed
``long``   300           no           none      a soak before a release (minutes, not hours)
=========  ============  ===========  ========  ============================================

Tests that are costly per example can scale their count to the active profile with
``settings(max_examples=scaled(fraction))``.
"""

from __future__ import annotations

import math
import numbers
import os

from hypothesis import HealthCheck, settings

__all__ = ["ENV_VAR", "PROFILES", "load_profile", "register_profiles", "scaled"]

ENV_VAR = "TFX_HYPOTHESIS_PROFILE"
"""Environment variable naming the profile :func:`load_profile` loads."""

PROFILES = {
    "ci": {"max_examples": 10, "derandomize": True, "database": None, "print_blob": True},
    "dev": {"max_examples": 30},
    "long": {"max_examples": 300},
}
"""Profile name (registered as ``tfx-<name>``) -> settings on top of the shared ones."""

_SHARED = {
    "deadline": None,  # the first call of a torch.func transform is slow; no timing here
    "suppress_health_check": (HealthCheck.too_slow, HealthCheck.data_too_large),
}


def register_profiles() -> None:
    """Register the ``tfx-ci``, ``tfx-dev`` and ``tfx-long`` Hypothesis profiles.

    .. math::

        \\text{examples}(\\mathrm{ci}) < \\text{examples}(\\mathrm{dev})
        < \\text{examples}(\\mathrm{long})

    All three have no deadline and tolerate slow data generation; ``tfx-ci`` is
    derandomized and keeps no example database, so CI always runs the same examples.

    Example:
      >>> from hypothesis import settings
      >>> register_profiles()
      >>> settings.get_profile("tfx-ci").derandomize
      True
    """
    for name, options in PROFILES.items():
        settings.register_profile(f"tfx-{name}", **_SHARED, **options)


def load_profile(default: str = "ci") -> str:
    """Register the profiles and load the one named by ``$TFX_HYPOTHESIS_PROFILE``.

    Call it from a ``conftest.py``. The variable (or ``default`` when it is unset)
    holds ``ci``, ``dev`` or ``long``.

    Args:
      default: profile used when the variable is unset or empty.

    Returns:
      The loaded profile's registered name, e.g. ``"tfx-ci"``.

    Example:
      >>> name = load_profile("dev") if not os.environ.get(ENV_VAR) else "tfx-dev"
      >>> name
      'tfx-dev'
    """
    register_profiles()
    name = os.environ.get(ENV_VAR) or default
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR} must be one of {sorted(PROFILES)}, got {name!r}")
    settings.load_profile(f"tfx-{name}")
    return f"tfx-{name}"


def scaled(fraction: float) -> int:
    """A share of the active profile's example count, at least 1.

    .. math::

        n = \\max(1, \\lceil \\mathrm{fraction} \\cdot n_{\\mathrm{profile}} \\rceil)

    Args:
      fraction: share of ``settings.default.max_examples`` (> 0).

    Returns:
      The example count, for ``settings(max_examples=...)``.

    Example:
      >>> scaled(1e-9)
      1
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not fraction > 0:
        raise ValueError(f"fraction must be a positive number, got {fraction!r}")
    return max(1, math.ceil(fraction * settings.default.max_examples))
