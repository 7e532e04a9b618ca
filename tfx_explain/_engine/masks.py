"""Masks for perturbation methods: sliding windows, feature groups and coalitions.

Perturbation methods see one sample as a flat vector of ``D`` features: the leaves
of ``x1`` flattened and concatenated in pytree order. Masks are boolean ``(K, D)``
tensors built once per call and shared by every sample.
"""

from __future__ import annotations

import functools
import itertools
import numbers
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils import _pytree as pytree

from . import trees
from .checks import is_plain

__all__ = [
    "SPARSE_REMOVED",
    "common_dtype",
    "masked_rows",
    "unflatten_rows",
    "window_masks",
    "group_matrix",
    "coalitions",
    "MAX_EXACT_GROUPS",
]


def common_dtype(x: Any) -> torch.dtype:
    """The dtype that holds every leaf of ``x`` (the dtype of the flat feature vector)."""
    return functools.reduce(torch.promote_types, [leaf.dtype for leaf in trees.leaves(x)])


SPARSE_REMOVED = 1 / 8
"""Fraction of removed mask entries up to which :func:`masked_rows` copies and patches."""


def masked_rows(keep: torch.Tensor, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Each sample's rows: entry ``(r, d)`` is ``x[i, d]`` where ``keep[r, d]``, else ``b[i, d]``.

    .. math::

        \text{rows}_{iR + r,\, d} = \begin{cases} x_{i d} & \text{keep}_{r d} \\
            b_{i d} & \text{otherwise} \end{cases}

    ``(R, D)`` masks and ``(n, D)`` flat samples and baselines give ``(n R, D)`` rows,
    copies of the inputs' values (no arithmetic, so kept features are exactly ``x``).
    When at most :data:`SPARSE_REMOVED` of the mask entries are removed (ablation of
    single features, small occlusion windows) and the values can be read, the rows
    are a copy of ``x`` with the removed entries written from ``b``: ``torch.where``
    over the broadcast inputs took 1.6-2.6x as long for one chunk of 38 samples, 101
    masks and 100 features (benchmarks/README.md). Otherwise, and under transforms,
    ``torch.where``.
    """
    n, (n_masks, d) = x.shape[0], keep.shape
    if is_plain(keep, x, b):
        sparse = _removed_entries(keep)
        if sparse is not None:
            removed, columns = sparse
            rows = x.unsqueeze(1).expand(n, n_masks, d).reshape(n, n_masks * d)  # a copy
            # index_select/index_copy_ along one dim: 0.7x the time of rows[:, i] = b[:, j]
            rows.index_copy_(1, removed, b.index_select(1, columns))
            return rows.reshape(n * n_masks, d)
    # (n, 1, D) where (R, D) -> (n, R, D) -> (n R, D)
    return torch.where(keep, x.unsqueeze(1), b.unsqueeze(1)).flatten(0, 1)


# id(keep mask) -> (weak ref to it, its version, its removed entries): a method's masks
# are fixed for the whole call and shared by its chunks, so the indices are found once.
# Keyed by id (a tensor's == is elementwise); an entry leaves when its mask dies.
_REMOVED: dict[int, tuple] = {}


def _removed_entries(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(indices into the R D entries, their feature columns)`` of the removed entries.

    ``None`` when more than :data:`SPARSE_REMOVED` of them are removed. Kept per mask
    tensor and its version, so a mask written in place is looked at again (not for
    masks made under ``torch.inference_mode``, which have no version: found anew).
    """
    kept = not keep.is_inference()  # inference tensors have no version counter
    found = _REMOVED.get(id(keep)) if kept else None
    if found is not None and found[0]() is keep and found[1] == keep._version:
        return found[2]
    removed = (~keep).flatten().nonzero().squeeze(1)
    sparse = None
    if removed.numel() <= SPARSE_REMOVED * keep.numel():
        sparse = (removed, removed % keep.shape[1])
    if not kept:
        return sparse
    key = id(keep)
    ref = weakref.ref(keep, lambda _, key=key: _REMOVED.pop(key, None))
    _REMOVED[key] = (ref, keep._version, sparse)
    return sparse


def unflatten_rows(rows: torch.Tensor, like: Any) -> Any:
    """Split ``R`` flat rows into leaves like ``like``: ``(R, D) -> pytree of (R, *F_leaf)``.

    The flat rows have the common dtype of all leaves; each leaf gets its own dtype
    back, so a float32 leaf next to a float64 one stays float32.
    """
    if isinstance(like, torch.Tensor):  # one leaf: no split, no pytree
        if like.ndim == 1 and rows.dtype == like.dtype:  # (R, D) already: as it is
            return rows
        return rows.reshape(rows.shape[:-1] + like.shape).to(like.dtype)
    leaves, spec = pytree.tree_flatten(like)
    sizes = [leaf.numel() for leaf in leaves]
    parts = torch.split(rows, sizes, dim=-1)
    shaped = [
        p.reshape(rows.shape[:-1] + leaf.shape).to(leaf.dtype)
        for p, leaf in zip(parts, leaves, strict=True)
    ]
    return pytree.tree_unflatten(shaped, spec)


def _per_dim(value: Any, name: str, ndim: int) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if ndim != 1 and name == "window":
            raise ValueError(
                f"window must be a tuple of {ndim} ints for features of {ndim} dims, got {value}"
            )
        value = (int(value),) * ndim
    if not isinstance(value, Sequence) or len(value) != ndim:
        raise ValueError(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must hold positive ints, got {value!r}")
    return tuple(int(v) for v in value)


def window_masks(
    feature_shape: tuple[int, ...], window: Any, stride: Any, *, clip: bool = False
) -> torch.Tensor:
    """Boolean masks of every window position: ``(K, *F)``.

    Windows of shape ``window`` slide by ``stride`` over a feature shape ``F``; in
    each dim ``(F_d - window_d)`` must be a multiple of ``stride_d`` so that every
    feature is covered and no window hangs over the edge. With ``clip=True`` the
    windows start at ``0, stride_d, ...`` until one reaches the last feature, and
    the last may run over the edge and is cut there (Captum's placement:
    ``ceil((F_d - window_d) / stride_d) + 1`` positions per dim).
    """
    ndim = len(feature_shape)
    if ndim == 0:
        raise ValueError("occlusion needs x of shape (B, *F) with at least one feature dim")
    window = _per_dim(window, "window", ndim)
    stride = _per_dim(stride, "stride", ndim)
    per_dim = []
    for d, (size, w, s) in enumerate(zip(feature_shape, window, stride, strict=True)):
        if w > size:
            raise ValueError(f"window {window} is larger than the features {feature_shape}")
        if s > w and w < size:  # a window spanning the dim covers it whatever the stride
            raise ValueError(
                f"stride {stride} is larger than the window {window} in dim {d}, so the "
                "features between windows would never be occluded"
            )
        if (size - w) % s and not clip:
            raise ValueError(
                f"window {window} with stride {stride} does not tile the features "
                f"{feature_shape}: in dim {d}, ({size} - {w}) is not a multiple of {s}, "
                "so the last features would never be occluded; clip=True lets the last "
                "window run over the edge"
            )
        starts = torch.arange(0, size - w + s, s)  # the last start is >= size - w
        pos = torch.arange(size)
        # (n_d, F_d): which features of dim d each window position covers
        per_dim.append((pos >= starts[:, None]) & (pos < starts[:, None] + w))
    masks = torch.ones(1, dtype=torch.bool)  # (K=1,) with no feature dims yet
    for m in per_dim:
        # (K, *F_prev) & (n_d, F_d) -> (K, n_d, *F_prev, F_d) -> (K * n_d, *F_prev, F_d)
        grown = masks[:, None, ..., None] & m.reshape(
            (1, m.shape[0]) + (1,) * (masks.ndim - 1) + (m.shape[1],)
        )
        masks = grown.flatten(0, 1)
    return masks


def group_matrix(groups: Any, x1: Any) -> tuple[list[str], torch.Tensor]:
    """Membership of the ``D`` flat features in ``G`` named groups: ``(names, (G, D) bool)``.

    ``groups`` maps a name to the features of the group: a sequence of flat feature
    indices, a leaf key of a dict/tuple ``x`` (the whole leaf), or a pair
    ``(leaf key, indices)`` naming features inside that leaf. ``None`` puts every
    feature in a group of its own. The groups must partition the features.
    """
    leaves_with_path, _ = pytree.tree_flatten_with_path(x1)
    sizes = [leaf.numel() for _, leaf in leaves_with_path]
    offsets = list(itertools.accumulate([0] + sizes))
    total = offsets[-1]
    if groups is None:
        return [str(i) for i in range(total)], torch.eye(total, dtype=torch.bool)
    if not isinstance(groups, Mapping) or not groups:
        raise TypeError(f"groups must be a non-empty mapping of name -> features, got {groups!r}")
    keys = {}
    for i, (path, _) in enumerate(leaves_with_path):
        if len(path) == 1:
            key = getattr(path[0], "key", getattr(path[0], "idx", None))
            keys[key] = i
    seen: set[int] = set()  # features of the groups so far
    entries: list[int] = []  # flat indices g * D + i into the (G, D) matrix
    for g, (name, members) in enumerate(groups.items()):
        if isinstance(members, (str, int)) and not isinstance(members, bool) and members in keys:
            leaf = keys[members]
            members = range(offsets[leaf], offsets[leaf + 1])
        elif (
            isinstance(members, tuple)
            and len(members) == 2
            and isinstance(members[0], str | int)
            and not isinstance(members[0], bool)
            and isinstance(members[1], Sequence | range | torch.Tensor)
            and not isinstance(members[1], str | bytes)
        ):
            # (leaf key, indices into that leaf's flattened features)
            if members[0] not in keys:
                raise TypeError(
                    f"groups[{name!r}] names leaf {members[0]!r}, but x has the leaves "
                    f"{sorted(keys, key=str)}"
                )
            leaf = keys[members[0]]
            inner = _indices(members[1], sizes[leaf], f"groups[{name!r}][1]")
            members = [offsets[leaf] + i for i in inner]
        elif isinstance(members, str):
            raise TypeError(
                f"groups[{name!r}] names leaf {members!r}, but x has the leaves "
                f"{sorted(keys, key=str)}"
            )
        members = _indices(members, total, f"groups[{name!r}]")
        if not members:
            raise ValueError(f"groups[{name!r}] is empty")
        if not seen.isdisjoint(members):
            feature = next(i for i in members if i in seen)
            raise ValueError(f"feature {feature} is in groups[{name!r}] and in an earlier group")
        seen.update(members)
        start = g * total
        entries += [start + i for i in members]
    if len(seen) != total:  # every index is in [0, total) and in one group at most
        missing = [i for i in range(total) if i not in seen]
        raise ValueError(
            f"features {missing[:10]} are in no group; groups must cover every "
            f"one of the {total} features exactly once"
        )
    # set in one op: per-group tensor ops cost ~25 us a group (measured: 121 us for 4);
    # index_fill_ on the flat matrix took 0.6x the time of matrix[rows, cols] = True
    matrix = torch.zeros(len(groups) * total, dtype=torch.bool)
    matrix.index_fill_(0, torch.tensor(entries, dtype=torch.long), True)
    return [str(name) for name in groups], matrix.reshape(len(groups), total)


def _indices(members: Any, size: int, name: str) -> list[int]:
    if isinstance(members, torch.Tensor):
        if members.ndim != 1 or members.is_floating_point() or members.is_complex():
            raise TypeError(
                f"{name} must be a 1-d integer tensor of feature indices, got dtype "
                f"{members.dtype} and shape {tuple(members.shape)}"
            )
        members = members.tolist()
    if type(members) in (tuple, list, range) and all(type(i) is int for i in members):
        # plain ints (the common case), checked without the ABC isinstance calls of
        # the loop below (measured: 618 us for 100 one-feature groups, most of it there)
        out = list(members)
        if not out or 0 <= min(out) and max(out) < size:
            if len(set(out)) != len(out):
                raise ValueError(f"{name} lists a feature twice: {out}")
            return out
    if isinstance(members, (str, bytes)) or not isinstance(members, Sequence | range):
        raise TypeError(
            f"{name} must be a sequence of feature indices or a leaf key, got {members!r}"
        )
    out = []
    for i in members:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < size:
            raise ValueError(f"{name} holds {i!r}, not a feature index in [0, {size})")
        out.append(int(i))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a feature twice: {out}")
    return out


MAX_EXACT_GROUPS = 16
"""Largest group count enumerated exactly (2^16 = 65536 rows per sample)."""


def coalitions(n_groups: int) -> torch.Tensor:
    """Every subset of ``G`` groups as a ``(2^G, G)`` boolean tensor (row k = bits of k)."""
    k = torch.arange(2**n_groups)
    return (k[:, None] >> torch.arange(n_groups)) & 1 == 1
