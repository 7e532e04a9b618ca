"""Readable summaries of attributions: per-group sums, global importance, method combination."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._engine.checks import check_structure, has_values
from ._engine.masks import group_matrix

__all__ = ["group_attributions", "global_importance", "combine"]


def _flat(attr: Any, name: str = "attributions", *, allow_empty: bool = False) -> torch.Tensor:
    """Attributions ``(B, *F)`` (or a pytree of them) as one floating ``(B, D)`` tensor.

    Refuses an empty batch, a leaf without feature dims and NaN/Inf (naming the first
    sample holding one): a mean over them would hide the problem as zeros.
    """
    leaves = pytree.tree_leaves(attr)
    if not leaves or not all(isinstance(a, torch.Tensor) and a.ndim >= 1 for a in leaves):
        raise TypeError(f"{name} must be tensors (B, *F) or a pytree of them, got {attr!r}")
    for a in leaves:
        if a.ndim < 2 or a.shape[0] == 0 and not allow_empty:
            raise ValueError(
                f"{name} must have shape (B, *F) with B >= 1 and a feature dim, "
                f"got {tuple(a.shape)}"
            )
    flat = torch.cat([a.flatten(1) for a in leaves], dim=1)
    if not flat.is_floating_point():
        flat = flat.to(torch.get_default_dtype())
    if has_values(flat):  # a value check: skipped under transforms and on meta
        bad = ~torch.isfinite(flat)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{name} must be finite, but sample {row} holds {flat[row, col].item()} "
                f"(flat feature {col})"
            )
    return flat


def _check_rows(attr: Any) -> Any:
    _flat(attr)  # refuses an empty batch and NaN before they are summed away
    return attr


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
    flat = _flat(attr, allow_empty=True)
    sample = pytree.tree_map(lambda a: a.new_zeros(a.shape[1:]), attr)  # shapes only
    _, members = group_matrix(groups, sample)  # (G, D)
    return flat @ members.to(device=flat.device, dtype=flat.dtype).T


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
      An empty batch, or NaN/Inf in ``attr`` (the error names the sample), is refused.

    Example:
      >>> import torch
      >>> global_importance(torch.tensor([[1.0, -3.0], [-1.0, 3.0]]))
      tensor([0.2500, 0.7500])
    """
    values = _flat(attr) if groups is None else group_attributions(_check_rows(attr), groups)
    mean = values.abs().mean(0)
    total = mean.sum()
    return torch.where(total > 0, mean / torch.where(total > 0, total, 1.0), 0.0)


def combine(*attributions: Any) -> Any:
    """Average of several attributions after scaling each sample to a maximum magnitude of 1.

    .. math::

        c_{b,i} = \\frac{1}{M} \\sum_{m=1}^{M} \\frac{a^{(m)}_{b,i}}{\\max_j |a^{(m)}_{b,j}|}

    The combined score of occlusion (non-local) and gradient x input (local) that
    the seed on occlusion uses; a sample whose attributions are all 0 keeps 0. For
    a dict/tuple of tensors the maximum runs over every leaf of the sample.

    Args:
      *attributions: two or more tensors ``(B, *F)`` of the same shape, or pytrees
        of them with the same structure and shapes.

    Returns:
      ``(B, *F)`` combined scores in ``[-1, 1]`` (a pytree like the inputs; integer
      attributions give floating scores). NaN or Inf in any input is refused, naming
      the sample.

    Example:
      >>> import torch
      >>> combine(torch.tensor([[2.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
      tensor([[1.0000, 0.7500]])
    """
    if len(attributions) < 2:
        raise ValueError(f"combine needs at least two attributions, got {len(attributions)}")
    first = attributions[0]
    shapes = [getattr(a, "shape", a) for a in pytree.tree_leaves(first)]
    for i, a in enumerate(attributions):
        if i:
            check_structure(a, first, f"attributions[{i}]", "attributions[0]")
        leaves = pytree.tree_leaves(a)
        if not leaves or any(
            not isinstance(leaf, torch.Tensor) or leaf.ndim < 1 or leaf.shape != shape
            for leaf, shape in zip(leaves, shapes, strict=True)
        ):
            raise ValueError(
                f"attributions[{i}] must be a tensor (or pytree) of shape "
                f"{[tuple(s) if isinstance(s, torch.Size) else s for s in shapes]}, "
                f"got {[tuple(getattr(leaf, 'shape', ())) for leaf in leaves]}"
            )
    leaves, spec = pytree.tree_flatten(first)
    scaled = []
    for i, a in enumerate(attributions):
        flat = _flat(a, f"attributions[{i}]")  # (B, D)
        peak = flat.abs().amax(1, keepdim=True)  # (B, 1)
        scaled.append(torch.where(peak > 0, flat / torch.where(peak > 0, peak, 1.0), 0.0))
    mean = torch.stack(scaled).mean(0)  # (M, B, D) -> (B, D)
    parts = torch.split(mean, [leaf[0].numel() for leaf in leaves], dim=1)
    shaped = [
        p.reshape(leaf.shape).to(leaf.dtype if leaf.is_floating_point() else p.dtype)
        for p, leaf in zip(parts, leaves, strict=True)
    ]
    return pytree.tree_unflatten(shaped, spec)
