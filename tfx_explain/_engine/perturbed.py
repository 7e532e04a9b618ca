"""Explained outputs of perturbed copies of samples: the rows perturbation methods build.

Occlusion, feature ablation, Shapley values and the surrogates (KernelSHAP, LIME) all
see a sample as a flat vector of ``D`` features and evaluate ``fn`` on copies of it
with some features taken from the baseline: :func:`perturbed_values` builds those
rows for every sample of a chunk (:func:`.masks.masked_rows`) and evaluates them in
one call of the row engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from . import trees
from .masks import masked_rows, unflatten_rows
from .rows import row_values, rows_of

__all__ = ["first_sample", "flatten_batch", "perturbed_values"]


def perturbed_values(
    fn: Callable, x: Any, t: Any, b: Any, keep: torch.Tensor, *, vectorize: str
) -> torch.Tensor:
    """Explained outputs of ``n`` samples with features kept where ``keep`` is True.

    Row ``r`` of a sample is the sample where ``keep[r]`` and the baseline elsewhere.

    Args:
      x, b: pytrees of ``(n, *F)`` samples and baselines.
      t: ``None``, ``(n,)`` or ``(n, T)`` targets.
      keep: ``(R, D)`` boolean masks over the ``D`` flat features.

    Returns:
      ``(n, R)``, or ``(n, R, T)`` for ``(n, T)`` targets.
    """
    n, n_rows = rows_of(x), keep.shape[0]
    rows = unflatten_rows(masked_rows(keep, flatten_batch(x), flatten_batch(b)), first_sample(x))
    values = row_values(fn, rows, t, vectorize=vectorize, repeat=n_rows)  # a sample's rows share t
    return values.reshape((n, n_rows) + values.shape[1:])


def flatten_batch(x: Any) -> torch.Tensor:
    """Samples' leaves flattened and concatenated: ``(n, D)``."""
    if isinstance(x, torch.Tensor):
        return x.flatten(1)
    return torch.cat([leaf.flatten(1) for leaf in pytree.tree_leaves(x)], dim=1)


def first_sample(x: Any) -> Any:
    """The first sample of a batch, ``(*F)`` leaves (for shapes and dtypes only)."""
    return trees.tree_map(lambda leaf: leaf[0], x)
