"""Test setup shared by every test file: the Hypothesis profile.

``TFX_HYPOTHESIS_PROFILE=ci`` (the default: derandomized, 10 examples per property),
``dev`` (30, random) or ``long`` (300, random) selects it; see tfx_explain.testing.profiles.
"""

import os
import warnings

import pytest
import torch

from tfx_explain.testing import load_profile

load_profile()

# Hypothesis' pytest plugin imports libcst (when installed) to suggest a patch after a
# failing example; libcst's import warns (mypy_extensions.TypedDict is deprecated), and
# under filterwarnings=error that turns a plain test failure into an INTERNALERROR.
# Import it once here with that one warning silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "mypy_extensions.TypedDict", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass


def pytest_collection_modifyitems(config, items):
    """Skip ``cuda`` tests without a CUDA device; ``TFX_REVERSE_ORDER=1`` reverses the order.

    The reversed run checks that no test depends on another having run first.
    """
    if os.environ.get("TFX_REVERSE_ORDER") == "1":
        items.reverse()
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="cuda: torch.cuda.is_available() is False")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
