"""Readable summaries of attributions: per-group sums, global importance, method combination."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._masks import group_matrix

__all__ = ["group_attributions", "global_importance", "combine"]


def _flat(attr: Any) -> torch.Tensor:
    """Attributions ``(B, *F)`` (or a pytree of them) as one ``(B, D)`` tensor."""
    leaves = pytree.tree_leaves(attr)
    if not leaves or not all(isinstance(a, torch.Tensor) and a.ndim >= 1 for a in leaves):
        raise TypeError(f"attributions must be tensors (B, *F) or a pytree of them, got {attr!r}")
    return torch.cat([a.flatten(1) for a in leaves], dim=1)


def group_attributions(attr: Any, groups: Any) -> torch.Tensor:
    """Sum of attributions per group (e.g. per field of a one-hot encoded record).

    .. math::

        A_{b,g} = \\sum_{i \\in g} a_{b,i}

    Args:
      attr: attributions ``(B, *F)`` or a pytree of them, as returned by a method.
      groups: mapping from group name to features, as in :func:`feature_ablation`;
        must cover every feature exactly once.

    Returns:
      ``(B, G)`` sums, columns in the order of ``groups``.

    Example:
      >>> import torch
      >>> attr = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
      >>> group_attributions(attr, {"a": [0], "rest": [1, 2, 3]})
      tensor([[0.1000, 0.9000]])
    """
    flat = _flat(attr)
    sample = pytree.tree_map(lambda a: a.new_zeros(a.shape[1:]), attr)  # shapes only
    _, members = group_matrix(groups, sample)  # (G, D)
    return flat @ members.to(flat.dtype).T


def global_importance(attr: Any, *, groups: Any = None) -> torch.Tensor:
    """Global importance: mean absolute attribution over samples, normalized to sum 1.

    .. math::

        I_g = \\frac{\\frac{1}{B}\\sum_b |A_{b,g}|}{\\sum_h \\frac{1}{B}\\sum_b |A_{b,h}|}

    where :math:`A_{b,g}` is the attribution of feature ``g`` (or the summed
    attribution of group ``g``, see :func:`group_attributions`) for sample ``b``.

    Args:
      attr: attributions ``(B, *F)`` or a pytree of them.
      groups: optional mapping from group name to features.

    Returns:
      ``(D,)`` per flat feature, or ``(G,)`` per group; zeros if every attribution is 0.

    Example:
      >>> import torch
      >>> global_importance(torch.tensor([[1.0, -3.0], [-1.0, 3.0]]))
      tensor([0.2500, 0.7500])
    """
    values = _flat(attr) if groups is None else group_attributions(attr, groups)
    mean = values.abs().mean(0)
    total = mean.sum()
    return torch.where(total > 0, mean / torch.where(total > 0, total, 1.0), 0.0)


def combine(*attributions: torch.Tensor) -> torch.Tensor:
    """Average of several attributions after scaling each sample to a maximum magnitude of 1.

    .. math::

        c_{b,i} = \\frac{1}{M} \\sum_{m=1}^{M} \\frac{a^{(m)}_{b,i}}{\\max_j |a^{(m)}_{b,j}|}

    The combined score of occlusion (non-local) and gradient x input (local) that
    the seed on occlusion uses; a sample whose attributions are all 0 keeps 0.

    Args:
      *attributions: two or more tensors ``(B, *F)`` of the same shape.

    Returns:
      ``(B, *F)`` combined scores in ``[-1, 1]``.

    Example:
      >>> import torch
      >>> combine(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
      tensor([[1.0000, 0.7500]])
    """
    if len(attributions) < 2:
        raise ValueError(f"combine needs at least two attributions, got {len(attributions)}")
    shape = attributions[0].shape
    for i, a in enumerate(attributions):
        if not isinstance(a, torch.Tensor) or a.shape != shape or a.ndim < 1:
            raise ValueError(
                f"attributions[{i}] must be a tensor of shape {tuple(shape)}, "
                f"got {getattr(a, 'shape', a)}"
            )
    scaled = []
    for a in attributions:
        peak = a.flatten(1).abs().amax(1).reshape((-1,) + (1,) * (a.ndim - 1))
        scaled.append(torch.where(peak > 0, a / torch.where(peak > 0, peak, 1.0), 0.0))
    return torch.stack(scaled).mean(0)
