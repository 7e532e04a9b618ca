"""How rows reach ``fn``: the ``vectorize="auto"`` probe and the row budget.

:func:`route` decides what ``vectorize="auto"`` means for a ``fn`` on its real rows;
:func:`row_budget` caps the rows of one call of ``fn``; :data:`SCOPE` is one method
call's state shared by its chunks (the route chosen per ``fn``, and the row count of a
dry run, see ``rows.chunked``).
"""

from __future__ import annotations

import contextvars
import math
import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from . import trees
from .checks import is_transformed
from .fingerprints import alive, reach, weak

__all__ = [
    "DEFAULT_ROW_BUDGET",
    "assemble",
    "budget_setting",
    "DEFAULT_ROW_BYTES",
    "MAX_ROWS",
    "MIN_ROWS",
    "PROBE_ROWS",
    "SCOPE",
    "dry",
    "in_pieces",
    "one_piece",
    "pieces",
    "route",
    "row_budget",
    "samples_per_chunk",
    "slice_args",
    "spans",
]

DEFAULT_ROW_BYTES = 3 << 18  # 0.75 MiB of input rows per call of fn, unless TFX_ROW_BUDGET
MIN_ROWS, MAX_ROWS = 16, 8192  # bounds of the default budget, in rows
DEFAULT_ROW_BUDGET = MAX_ROWS  # rows per call of fn for rows of at most 96 bytes
PROBE_ROWS = 4  # rows of the real input that vectorize="auto" compares


def row_budget(rows: Any = None) -> int:
    r"""Most rows given to ``fn`` in one call: ``TFX_ROW_BUDGET``, else from the row size.

    .. math::

        \text{budget} = \operatorname{clip}\big(\lfloor 0.75\,\text{MiB} / b \rfloor,
            16, 8192\big)

    where :math:`b` is the bytes of one row of ``rows`` (all leaves; ``rows=None``
    counts as a small row, so the budget is 8192). Very small calls pay the per-call
    overhead on every piece, and large ones run slower per row: measured on a 2-core
    Xeon (2 MiB L2 per core), plain passes of a 100-feature MLP (400-byte rows) cost
    the same per row from 1024 to about 3000 rows and up to 1.6-2x as much at 4096,
    and 28x28 images (3136 bytes) the same from 128 to 512 and 1.5x at 1024. Past
    that size a call's activations are several MB, which glibc gives back to the
    system after each call and faults in again at the next (MLP ablation at a 1.5 MiB
    budget: about 100k minor page faults a call; at 0.75 MiB about 1k). This rule
    gives 1966 MLP rows, 250 images, and the upper bound for small rows: 8192 rows
    of the people Transformer (16-byte rows, many small ops per row) ran at 1.00-1.17x
    its fastest size in six measurements (four at most 1.04x), 16384 rows at
    1.04-1.25x (tnet-2048 occlusion: 1.20x the limit at 16384 rows a call, 1.02x at
    8192; benchmarks/README.md). ``TFX_ROW_BUDGET`` (a positive int, read once per
    method call, see :func:`budget_setting`) sets the rows for every size instead.
    """
    scope = SCOPE.get()
    text = budget_setting() if scope is None else scope["budget"]
    if text is None or not text.strip():
        if rows is None:
            return DEFAULT_ROW_BUDGET
        leaves = trees.leaves(rows)  # a lone tensor without a pytree walk
        size = sum(math.prod(leaf.shape[1:]) * leaf.element_size() for leaf in leaves)
        return min(MAX_ROWS, max(MIN_ROWS, DEFAULT_ROW_BYTES // max(size, 1)))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"TFX_ROW_BUDGET must be a positive int (rows per call), got {text!r}")
    return value


def budget_setting() -> str | None:
    """``TFX_ROW_BUDGET`` as set now; a method call reads it once, into its :data:`SCOPE`."""
    return os.environ.get("TFX_ROW_BUDGET")


# One method call's state, shared by its chunks: the route chosen for each fn (so the
# probe runs once per call), the rows that a dry run of one sample asked for, and the
# TFX_ROW_BUDGET setting read at the start of the call.
SCOPE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("tfx_rows", default=None)
# fn -> {(input signature, what fn reaches): (route, weak refs to what the key names by id)};
# weak, so fns can die
_ROUTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
KEPT_ROUTES = 8  # answers kept per fn (the newest): a fn whose state keeps changing


def route(fn: Callable, rows: Any) -> str:
    """What ``vectorize="auto"`` does for ``fn`` on ``rows``: ``"batch"`` or ``"vmap"``.

    ``"batch"`` when ``fn`` evaluated on up to :data:`PROBE_ROWS` rows of the real
    input as one batch (no grad) matches ``fn`` on each of them alone, to
    ``100 eps`` of the output scale; ``"vmap"`` when it does not (batch
    statistics, a positional encoding indexed by batch row, dependence on the batch
    size, randomness) or when the probe raises. The probe costs one forward of
    ``PROBE_ROWS`` rows and ``PROBE_ROWS`` forwards of one row. It runs once per
    method call, and the answer is kept (weakly, per ``fn``) under the input
    signature and what ``fn`` reaches (:func:`.fingerprints.reach`: a module's
    training flags, the tensors, modules and settings of a partial, closure or the
    globals its code names), so a later call on the same ``fn`` in the same state
    skips the probe; a ``fn`` reaching an object whose state cannot be seen is
    probed on every call. Modules in training mode are refused earlier by
    ``check_fn``. Under a transform or compiler tracing, or on meta tensors, no
    value can be read: the route is the one the enclosing call chose on plain
    tensors, else ``"vmap"`` (rows isolated, always correct). One row is always
    ``"batch"``: both evaluate ``fn`` on that row alone.
    """
    scope = SCOPE.get()
    if scope is not None and id(fn) in scope["routes"]:
        return scope["routes"][id(fn)][1]
    leaves = trees.leaves(rows)
    if is_transformed(rows) or any(leaf.is_meta for leaf in leaves):
        return "vmap"
    if _n_rows(rows) < 2:
        return "batch"
    kept, key, held = _kept(fn, leaves)
    entry = None if kept is None else kept.get(key)
    if entry is not None and alive(entry[1]):
        chosen = entry[0]
    else:
        chosen = "batch" if _rows_independent(fn, rows) else "vmap"
        if kept is not None:
            kept.pop(key, None)  # re-inserted as the newest
            kept[key] = (chosen, weak(held))
            while len(kept) > KEPT_ROUTES:
                del kept[next(iter(kept))]
    if scope is not None:
        scope["routes"][id(fn)] = (fn, chosen)  # keeps fn alive, so its id stays unique
    return chosen


def _kept(fn: Callable, leaves: list) -> tuple[dict | None, tuple | None, list]:
    """The answers kept for ``fn``, the key of this call and the objects it names by id."""
    found = reach(fn)
    if found is None:
        return None, None, []
    try:
        kept = _ROUTES.setdefault(fn, {})
    except TypeError:  # fn cannot be weakly referenced: nothing is kept
        return None, None, []
    state, held = found
    return kept, (tuple((leaf.shape[1:], leaf.dtype, leaf.device) for leaf in leaves), state), held


def _rows_independent(fn: Callable, rows: Any) -> bool:
    """Does ``fn`` give each of a few rows, batched together, what it gives the row alone?"""
    n = _n_rows(rows)
    # spread over the rows: the first and last path point, the unperturbed row and a mask
    k = min(n, PROBE_ROWS)
    pick = sorted({(i * (n - 1)) // (k - 1) for i in range(k)})
    head = pytree.tree_map(lambda leaf: leaf.detach()[pick], rows)
    try:
        with torch.no_grad():
            together = fn(head)
            alone = [
                fn(pytree.tree_map(lambda leaf, i=i: leaf[i : i + 1], head))
                for i in range(len(pick))
            ]
            alone = torch.cat(alone)
    except Exception:  # noqa: BLE001 - fn cannot be probed: isolate rows, vmap reports errors
        return False
    if not isinstance(together, torch.Tensor) or together.shape != alone.shape:
        return False
    if not together.is_floating_point():
        return bool(together.equal(alone))
    tol = 100 * torch.finfo(together.dtype).eps
    scale = float(alone.abs().nan_to_num(0.0, 0.0, 0.0).max()) if alone.numel() else 0.0
    return bool(torch.allclose(together, alone, rtol=tol, atol=tol * scale, equal_nan=True))


def dry(rows: Any, t_rows: Any) -> torch.Tensor | None:
    """In a dry run (see :func:`chunked`): count the rows, return zero values, call no fn."""
    if torch.compiler.is_compiling():  # dry runs are eager; a ContextVar breaks the graph
        return None
    scope = SCOPE.get()
    if scope is None or not scope["dry"]:
        return None
    n = _n_rows(rows)
    scope["rows"] += n
    shape = (n,) if t_rows is None or t_rows.ndim == 1 else (n, t_rows.shape[1])
    return trees.leaves(rows)[0].new_zeros(shape)


def one_piece(n: int, size: int) -> bool:
    """Is ``spans(n, size, slack=True)`` one piece? (Without building the list: it is
    asked once per call of ``fn``.) Up to ``size`` rows are; more are when the rest,
    ``n - size``, is under ``size // 4`` (it joins the first piece)."""
    return n <= size or n - size < size // 4


def spans(n: int, size: int, *, slack: bool = False) -> list[tuple[int, int]]:
    """``(start, length)`` of consecutive pieces of ``size`` out of ``n``.

    ``slack``: a last piece shorter than ``size // 4`` joins the one before, so that
    a remainder does not cost a call of its own (2048 MLP rows with a budget of 1966
    are one call, not 1966 + 82); a piece then holds less than ``1.25 size``.
    """
    starts = list(range(0, n, size))
    if slack and len(starts) > 1 and n - starts[-1] < size // 4:
        starts.pop()
    return [(s, (starts[i + 1] if i + 1 < len(starts) else n) - s) for i, s in enumerate(starts)]


def pieces(rows: Any) -> int | None:
    """Rows per call of ``fn`` when ``rows`` exceed the budget and its slack (not compiling)."""
    if torch.compiler.is_compiling():  # the compiled kernel is one graph over its chunk
        return None
    budget = row_budget(rows)
    return None if one_piece(_n_rows(rows), budget) else budget


def in_pieces(f: Callable, piece: int, *args: Any) -> Any:
    """``f(*args)`` evaluated on consecutive pieces of ``piece`` rows, assembled once.

    The last piece takes a remainder under ``piece // 4`` (see :func:`spans`). The
    pieces' results are written into tensors allocated once for all rows, or
    concatenated when autograd or a transform tracks them.
    """
    n = _n_rows(next(a for a in args if a is not None))
    return assemble(((s, f(*slice_args(args, s, k))) for s, k in spans(n, piece, slack=True)), n)


def assemble(parts: Iterable[tuple[int, Any]], n: int) -> Any:
    """One pytree of ``n`` rows from ``(start, part)`` pieces, allocated once.

    Each piece's leaves are written into tensors allocated at the first piece, or
    concatenated when autograd or a transform tracks them (writes would cut the
    graph). A piece is dropped as soon as it is written.
    """
    out = spec = None
    for start, part in parts:
        leaves, spec = trees.flatten(part)
        if out is None:
            keep = is_transformed(part) or any(leaf.requires_grad for leaf in leaves)
            out = [[] if keep else leaf.new_empty((n,) + leaf.shape[1:]) for leaf in leaves]
        for buffer, leaf in zip(out, leaves, strict=True):
            if isinstance(buffer, list):
                buffer.append(leaf)
            else:
                buffer[start : start + leaf.shape[0]] = leaf
    return trees.unflatten([torch.cat(b) if isinstance(b, list) else b for b in out], spec)


def slice_args(args: tuple, start: int, size: int) -> tuple:
    return tuple(
        None if a is None else trees.tree_map(lambda t: t[start : start + size], a) for a in args
    )


def samples_per_chunk(
    fun: Callable, args: tuple, n: int, per_sample: int | None = None
) -> int | None:
    """Samples per chunk for about ``row_budget()`` rows, from a dry run of one sample.

    ``None`` (one chunk) when all samples fit, with the slack of :func:`spans`.

    ``per_sample``: the rows ``fun`` evaluates per sample, when the method knows them
    without building any (one for input gradients, ``K + 1`` masks for ablation); the
    dry run is then skipped.
    """
    scope = SCOPE.get()
    if scope["dry"]:  # inside an enclosing dry run: it counts all of our rows
        return None
    if per_sample is None:
        before = scope["rows"]
        scope["dry"] = True
        try:
            fun(*slice_args(args, 0, 1))
        finally:
            scope["dry"] = False
            per_sample, scope["rows"] = scope["rows"] - before, before
    budget = row_budget(args[0])  # a row is shaped like a sample (a path point, a mask)
    if per_sample == 0:
        return None
    size = max(1, budget // per_sample)
    return None if one_piece(n, size) else size


def _n_rows(tree: Any) -> int:
    return trees.n_rows(tree)
