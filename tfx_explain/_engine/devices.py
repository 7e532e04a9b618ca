"""Where the tensors a method makes live: on the device (and in the dtype) of its input.

Every helper tensor (quadrature nodes, masks, coalitions, targets, noise) is made
with :func:`like` or moved there before it meets the data, so a method runs
unchanged on CPU, CUDA or the shapes-only ``meta`` device.

A ``torch.Generator`` draws only on its own device, so a CPU generator (the usual
``torch.Generator().manual_seed(0)``) cannot fill a CUDA tensor directly.
:func:`draw` samples where the generator lives and moves the result, which keeps a
seed's numbers the same whatever device the data sits on. Without a generator the
draw uses the global generator of the data's device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import trees
from .masks import common_dtype

__all__ = ["device_of", "like", "draw"]


def device_of(tree: Any) -> torch.device:
    """The device of a pytree's tensors (its first leaf's)."""
    return trees.leaves(tree)[0].device


def like(tree: Any) -> dict[str, Any]:
    """``device=`` and ``dtype=`` keywords for tensors that meet ``tree``'s leaves."""
    return {"device": device_of(tree), "dtype": common_dtype(tree)}


def draw(
    sampler: Callable, *args: Any, generator: torch.Generator | None, device: Any, **kwargs: Any
) -> torch.Tensor:
    """``sampler(*args, generator=generator, **kwargs)`` drawn on the generator's device.

    The sample is then moved to ``device``; without a generator it is drawn there.
    """
    where = device if generator is None else generator.device
    return sampler(*args, generator=generator, device=where, **kwargs).to(device)
