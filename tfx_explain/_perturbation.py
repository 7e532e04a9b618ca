"""Perturbation attributions: occlusion with sliding windows and feature-group ablation.

Every perturbed row of every sample is built from one ``(K, D)`` mask tensor and
evaluated in one batched call (chunked over samples by ``chunk_size``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._engine.batching import prepare
from ._engine.checks import check_baseline, check_values
from ._engine.devices import device_of
from ._engine.masks import common_dtype, group_matrix, unflatten_rows, window_masks
from ._engine.perturbed import first_sample, perturbed_values
from ._engine.rows import check_vectorize, chunked, compiled

__all__ = ["occlusion", "feature_ablation"]


def _ablation_values(fn, x, t, b, keep, vectorize):
    # the values are the result: chunked assembles them, _ablate checks them once
    return perturbed_values(fn, x, t, b, keep, vectorize=vectorize), None  # (n, K + 1[, T])


def _ablate(fn, x, target, baseline, removed, share, chunk_size, vectorize, compile):
    """Drops of ``removed (K, D)`` masks, spread onto features by ``share (K, D)``.

    Each chunk only evaluates its rows; the drops and their spread onto features are
    taken once, over all samples (per chunk they were a handful of small ops after
    every forward, each on cold caches). The values hold ``K + 1 <= D + 1`` numbers a
    sample, about the result's size; they are dropped once the drops are taken, so
    at most two such tensors exist at a time.
    """
    removed = removed.to(device_of(x))  # masks are built on the CPU
    keep = torch.cat([torch.ones_like(removed[:1]), ~removed])  # (K + 1, D)
    share = share.to(device=removed.device, dtype=common_dtype(x))
    kernel = compiled(_ablation_values, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, keep, vectorize)

    what = "for a perturbed input"
    values = chunked(
        evaluate, chunk_size, x, target, baseline, what=what, rows_per_sample=keep.shape[0]
    )  # (B, K + 1[, T])
    check_values(values, what)
    drop = values[:, :1] - values[:, 1:]  # (B, K[, T])
    del values  # before the result is allocated
    attr = torch.tensordot(drop, share, dims=([1], [0]))  # (B[, T], D)
    return unflatten_rows(attr, first_sample(x))


def _per_leaf(value: Any, x: Any, name: str) -> list[Any]:
    """``window`` or ``stride`` for each leaf of ``x``, in pytree order.

    A tensor ``x`` takes ``value`` as is. For a dict ``x``, a dict ``value`` gives
    each key its own; for a tuple or list ``x``, so does a tuple or list ``value``
    of ``len(x)`` (Captum's one shape per input). Anything else (an int, a tuple of
    ints for a dict ``x``) applies to every leaf.
    """
    if isinstance(x, torch.Tensor):
        return [value]
    leaves = pytree.tree_leaves(x)
    if isinstance(x, Mapping) and isinstance(value, Mapping):
        if set(value) != set(x) or len(leaves) != len(x):
            raise ValueError(
                f"{name} must have one entry per key of x {sorted(x, key=str)}, got {value!r}"
            )
        return [value[k] for k in x]
    if isinstance(x, tuple | list) and isinstance(value, tuple | list):
        if len(value) != len(x) or len(leaves) != len(x):
            raise ValueError(
                f"{name} must hold one window shape per leaf of x ({len(x)}), got {value!r}"
            )
        return list(value)
    return [value] * len(leaves)


def occlusion(
    fn: Callable,
    x: Any,
    *,
    window: Any,
    stride: Any = 1,
    clip: bool = False,
    baseline: Any = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    """Occlusion: the output drop when a sliding window of features is set to the baseline.

    .. math::

        a_i(x) = \\frac{1}{|\\{k : i \\in W_k\\}|} \\sum_{k : i \\in W_k}
            \\big(f_t(x) - f_t(x_{W_k \\leftarrow x'})\\big)

    where :math:`W_k` are the windows of shape ``window`` placed every ``stride``
    features, :math:`x_{W \\leftarrow x'}` is ``x`` with the features in ``W``
    replaced by ``baseline``, and a feature covered by several windows gets the
    mean of their drops. With ``window=1`` and a linear ``fn``,
    :math:`a_i = w_i (x_i - x'_i)`. For a dict/tuple ``x`` each leaf has its own
    windows, and one window occludes features of one leaf only (Captum's
    multi-input occlusion); all windows of all leaves are one batched call.

    Args:
      fn: batched callable taking ``x``'s structure, returning ``(B,)`` or ``(B, C)``.
      x: input ``(B, *F)``: tabular ``(B, F)``, sequences, images ``(B, C, H, W)``;
        or a dict/tuple of such tensors.
      window: window shape, an int for 1-d features or a tuple of ``len(F)`` ints.
        For a dict ``x``, a dict of them per key; for a tuple ``x``, a tuple with
        one per leaf; otherwise the same window for every leaf.
      stride: step between windows, an int or a tuple (per leaf as ``window``), at
        most the window in every dim; unless ``clip``, ``F_d - window_d`` must be a
        multiple of ``stride_d``.
      clip: let the last window of a dim run over the edge, cut to the features
        that exist (Captum's placement). The mean over covering windows stays exact.
      baseline: replacement value: ``None`` (zeros), a number, or a tensor (pytree)
        broadcastable to ``x``.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``K + 1`` rows of ``fn``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0, 3.0])
      >>> occlusion(lambda x: x @ w, torch.tensor([[1.0, 1.0, 2.0]]), window=1)
      tensor([[ 1., -2.,  6.]])
      >>> occlusion(lambda x: x @ w, torch.tensor([[1.0, 1.0, 2.0]]), window=2, stride=2,
      ...           clip=True)
      tensor([[-1., -1.,  6.]])

    References:
      Zeiler and Fergus, "Visualizing and Understanding Convolutional Networks", 2014.
    """
    if not isinstance(clip, bool):
        raise TypeError(f"clip must be True or False, got {clip!r}")
    target, chunk_size = prepare(fn, x, target, chunk_size)
    baseline = check_baseline(baseline, x)
    leaves = pytree.tree_leaves(x)
    windows, strides = _per_leaf(window, x, "window"), _per_leaf(stride, x, "stride")
    # (K_l, D_l) per leaf -> (K, D): a window occludes features of its own leaf only
    masks = torch.block_diag(
        *[
            window_masks(tuple(leaf.shape[1:]), w, s, clip=clip).flatten(1).to(torch.uint8)
            for leaf, w, s in zip(leaves, windows, strides, strict=True)
        ]
    ).bool()
    share = masks / masks.sum(0, dtype=torch.float64)  # mean over the windows covering i
    return _ablate(
        fn, x, target, baseline, masks, share, chunk_size, check_vectorize(vectorize), compile
    )


def feature_ablation(
    fn: Callable,
    x: Any,
    *,
    groups: Any = None,
    baseline: Any = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    """Feature ablation: the output drop when one group of features is set to the baseline.

    .. math::

        a_i(x) = \\frac{1}{|g(i)|}\\big(f_t(x) - f_t(x_{g(i) \\leftarrow x'})\\big)

    where :math:`g(i)` is the group holding feature ``i``. The drop of a group is
    shared evenly by its features, so summing a group's attributions (see
    :func:`group_attributions`) gives back the group's drop.

    Args:
      fn: batched callable taking ``x``'s structure, returning ``(B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      groups: mapping from group name to its features: flat feature indices (into
        ``*F`` flattened, leaves concatenated in order), a leaf key of a dict/tuple
        ``x`` for a whole leaf, or ``(leaf key, indices)``. The groups must cover
        every feature exactly once. ``None``: one group per feature.
      baseline: ``None`` (zeros), a number, or a tensor (pytree) broadcastable to ``x``.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``G + 1`` rows of ``fn``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, 2.0, 3.0])
      >>> feature_ablation(lambda x: x @ w, torch.ones(1, 3), groups={"a": [0], "bc": [1, 2]})
      tensor([[1.0000, 2.5000, 2.5000]])
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    baseline = check_baseline(baseline, x)
    _, members = group_matrix(groups, first_sample(x))  # (G, D)
    share = members / members.sum(1, keepdim=True, dtype=torch.float64)
    return _ablate(
        fn, x, target, baseline, members, share, chunk_size, check_vectorize(vectorize), compile
    )
