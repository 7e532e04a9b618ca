"""Evaluating ``fn`` on the rows a method builds: the only place methods call ``fn``.

Every method turns each sample into rows (path points, perturbed copies), asks for
their explained outputs (and gradients), and combines them per sample. The rows of
all samples of a chunk are evaluated together, in one of three ways:

- ``vectorize="vmap"``: ``fn`` sees one row at a time through ``torch.func.vmap``,
  so a row's result cannot depend on any other row, whatever ``fn`` does. Every op
  of ``fn`` needs a vmap batching rule to be fast.
- ``vectorize="batch"``: ``fn`` gets the rows as one batch and, for gradients, one
  backward pass of the summed outputs. This is exactly the plain forward+backward
  cost, and works for ops without batching rules (e.g. the fused attention kernel
  of ``nn.MultiheadAttention``), but it is only correct when ``fn`` treats rows
  independently (true of eval-mode models; check yours with
  ``tfx_explain.testing.batch_independence_violation``).
- ``vectorize="auto"`` (default): ``"batch"`` when a probe shows that ``fn`` treats
  rows independently, ``"vmap"`` otherwise (see :func:`route`).

Rows are evaluated about :func:`row_budget` at a time (``TFX_ROW_BUDGET``; a
remainder under a quarter of the budget joins the last call), and
:func:`chunked` with ``chunk_size=None`` picks the samples per chunk so that a
chunk holds about that many rows: memory stays bounded, and calls stay
cache-sized, however many rows a method builds.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.func import grad, grad_and_value, vmap

from . import trees
from .checks import check_choice, check_depends, check_values, is_transformed
from .routing import (
    DEFAULT_ROW_BUDGET,
    PROBE_ROWS,
    SCOPE,
    assemble,
    budget_setting,
    dry,
    in_pieces,
    pieces,
    route,
    row_budget,
    samples_per_chunk,
    slice_args,
    spans,
)
from .targets import check_output, one_sample, select_batch

__all__ = [
    "DEFAULT_ROW_BUDGET",
    "PROBE_ROWS",
    "VECTORIZE",
    "CompileFallbackWarning",
    "SlowVmapWarning",
    "check_vectorize",
    "chunked",
    "compiled",
    "route",
    "row_budget",
    "row_gradients",
    "row_values",
    "rows_of",
]

VECTORIZE = ("auto", "vmap", "batch")


def check_vectorize(vectorize: Any) -> str:
    return check_choice(vectorize, "vectorize", VECTORIZE)


def rows_of(tree: Any) -> int:
    return trees.n_rows(tree)


def _resolve(fn: Callable, rows: Any, vectorize: str) -> str:
    return route(fn, rows) if vectorize == "auto" else vectorize


def row_values(
    fn: Callable, rows: Any, t_rows: Any, *, vectorize: str, repeat: int = 1
) -> torch.Tensor:
    """Explained outputs of ``N`` rows: ``(N, *F) -> (N,)``, or ``(N, T)`` for (N, T) targets.

    ``t_rows`` is ``None`` or one target per row, ``(N,)`` or ``(N, T)``; with
    ``repeat`` > 1 it is one target per ``repeat`` consecutive rows (the rows a method
    built from one sample), ``(N / repeat,)`` or ``(N / repeat, T)``, and the outputs
    are picked through a ``(N / repeat, repeat, C)`` view (:func:`.targets.select_batch`):
    no per-row copy of the targets.

    The outputs carry a graph wherever a gradient could flow back through the rows:
    under a torch.func transform or compiler tracing (``grad`` over the parameters
    ``fn`` closes over included), or when a leaf of ``rows`` requires grad (``x`` or
    the baseline does). Otherwise ``fn`` runs under ``torch.no_grad()``, as Captum's
    perturbation methods do: recording a graph only for the parameters of a module
    cost 27% of an MLP occlusion (benchmarks/README.md).
    """
    zeros = dry(rows, t_rows)
    if zeros is not None:
        return zeros
    if not torch.is_grad_enabled() or _needs_graph(rows):
        return _row_values(fn, rows, t_rows, vectorize, repeat)
    # torch.no_grad() without its Python context manager: 0.6 us a call against 3 us,
    # on every chunk of a perturbation method
    torch._C._set_grad_enabled(False)
    try:
        return _row_values(fn, rows, t_rows, vectorize, repeat)
    finally:
        torch._C._set_grad_enabled(True)


def _needs_graph(rows: Any) -> bool:
    return is_transformed(rows) or any(
        isinstance(leaf, torch.Tensor) and leaf.requires_grad for leaf in trees.leaves(rows)
    )


def _row_values(fn: Callable, rows: Any, t_rows: Any, vectorize: str, repeat: int) -> torch.Tensor:
    n, how, piece = rows_of(rows), _resolve(fn, rows, vectorize), pieces(rows)
    if how == "batch":
        if piece is None:
            out = check_output(fn(rows), n, t_rows)
        else:
            out = in_pieces(lambda r: check_output(fn(r), rows_of(r), t_rows), piece, rows)
    else:

        def f1(r1: Any) -> torch.Tensor:  # (*F) -> () or (C,)
            r1 = trees.tree_map(lambda leaf: leaf.unsqueeze(0), r1)
            return check_output(fn(r1), 1, t_rows)[0]

        with _fallback_warning(vectorize):
            out = vmap(f1, chunk_size=piece)(rows)
    return select_batch(out, t_rows, repeat)


def row_gradients(
    fn: Callable, rows: Any, t_rows: torch.Tensor | None, *, vectorize: str, owned: bool = False
) -> tuple[Any, torch.Tensor]:
    """Gradients and values of the explained output of each row.

    Args:
      rows: pytree of ``(N, *F)`` rows.
      t_rows: ``None`` or a ``(N,)`` LongTensor (one target per row).
      owned: the rows are fresh tensors the method built (path points) that nobody
        else holds, so ``fn`` may get them without a copy (see :func:`_autograd`).

    Returns:
      ``(grads, values)``: grads shaped like ``rows``, values ``(N,)``.
    """
    zeros = dry(rows, t_rows)
    if zeros is not None:
        return trees.tree_map(torch.zeros_like, rows), zeros
    how, piece = _resolve(fn, rows, vectorize), pieces(rows)
    if how == "batch":
        if piece is None:
            return _batch_gradients(fn, rows, t_rows, owned)
        return in_pieces(lambda r, t: _batch_gradients(fn, r, t, owned), piece, rows, t_rows)
    f1 = one_sample(fn, t_rows)

    def checked(x1: Any, t1: Any) -> torch.Tensor:
        out = f1(x1, t1)
        check_depends(out)
        return out

    with _fallback_warning(vectorize):
        return vmap(
            grad_and_value(checked), in_dims=(0, None if t_rows is None else 0), chunk_size=piece
        )(rows, t_rows)


def _batch_gradients(fn: Callable, rows: Any, t_rows: Any, owned: bool) -> tuple[Any, torch.Tensor]:
    n = rows_of(rows)

    def total(r: Any, copy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        # fn gets a copy: it may write to its argument, which autograd forbids on r
        out = fn(trees.tree_map(torch.clone, r) if copy else r)
        values = select_batch(check_output(out, n, t_rows), t_rows)
        check_depends(values)
        return values.sum(), values

    if is_transformed(rows):  # under vmap/grad/compile: stay composable
        return grad(total, has_aux=True)(rows)
    return _autograd(total, rows, owned)


# what autograd says when fn writes to a leaf it differentiates (or to a view of one)
_WRITES_TO_LEAF = "leaf Variable that requires grad is being used in an in-place operation"


def _autograd(total: Callable, rows: Any, owned: bool = False) -> tuple[Any, torch.Tensor]:
    """``grad(total, has_aux=True)(rows)`` by plain autograd, for untransformed rows.

    torch.func.grad wraps every op of ``fn`` (measured: 1.13x the cost of
    ``torch.autograd.grad`` for input gradients of 2048 rows of the TransformerNet).
    Rows that autograd already tracks keep their graph, and the gradients get one
    (``create_graph``), so derivatives through the result stay exact; other rows are
    detached copies, so the caller's tensors are never touched.

    ``fn`` gets a copy of the rows (it may write to its argument), except for
    ``owned`` rows that autograd does not track: the method's own fresh tensors,
    which ``fn`` gets as they are (the copy cost 3% of an MLP IG). Autograd refuses
    an in-place write to them, since they are the leaves it differentiates; the
    rows are then evaluated again on a copy, as are the later rows of the call.
    """
    leaves, spec = trees.flatten(rows)
    track = torch.is_grad_enabled() and any(leaf.requires_grad for leaf in leaves)
    inputs = [
        leaf if track and leaf.requires_grad else leaf.detach().requires_grad_() for leaf in leaves
    ]
    scope = SCOPE.get()
    copy = track or not owned or scope is None or scope.get("copy", False)
    with torch.enable_grad():
        try:
            summed, values = total(trees.unflatten(inputs, spec), copy)
        except RuntimeError as err:
            if copy or _WRITES_TO_LEAF not in str(err):
                raise
            scope["copy"] = True  # fn writes to its argument: copies from now on
            summed, values = total(trees.unflatten(inputs, spec), True)
        grads = torch.autograd.grad(summed, inputs, create_graph=track, allow_unused=True)
    grads = [
        torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, inputs, strict=True)
    ]
    return trees.unflatten(grads, spec), values if track else values.detach()


class SlowVmapWarning(UserWarning):
    """``fn`` uses ops without vmap batching rules; ``vectorize="batch"`` avoids the slow path."""


@contextlib.contextmanager
def _fallback_warning(vectorize: str) -> Iterator[None]:
    """Turn torch's per-op vmap fallback notices into one actionable warning."""
    toggle = getattr(torch._C._functorch, "_set_vmap_fallback_warning_enabled", None)
    if toggle is None or torch.compiler.is_compiling():
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        toggle(True)
        try:
            yield
        finally:
            toggle(False)
    slow = sorted(
        {
            str(w.message).split("batching rule for ")[1].split(".")[0]
            for w in caught
            if "batching rule for " in str(w.message)
        }
    )
    for w in caught:
        if "batching rule for " not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if slow:
        why = (
            "vectorize='auto' isolated the rows because fn could not be shown to treat "
            "them independently (a row's output changed next to other rows, or fn ran "
            "under a transform); if it does, pass vectorize='batch' for full speed"
            if vectorize == "auto"
            else "if fn treats rows independently (an eval-mode model does), pass "
            "vectorize='batch' (or the default 'auto') for full speed"
        )
        warnings.warn(
            f"fn uses ops without vmap batching rules ({', '.join(slow)}), which run one row "
            f"at a time when rows are isolated by vmap; {why}",
            SlowVmapWarning,
            stacklevel=4,
        )


def chunked(
    fun: Callable,
    chunk_size: int | None,
    *args: Any,
    what: str,
    rows_per_sample: int | None = None,
) -> Any:
    """Apply ``fun`` to consecutive chunks of ``chunk_size`` samples; return its attributions.

    ``args`` are pytrees of tensors with a leading sample dimension, or ``None``.
    ``fun`` returns ``(attributions, values)``: the values ``fn`` returned on the
    chunk's rows are checked for finiteness chunk by chunk (the error says ``what``
    rows they were) and then dropped, and the attributions are written into
    tensors allocated once for all samples. A ``fun`` whose attributions are the
    values themselves (ablation and occlusion return each sample's ``K + 1`` outputs
    and reduce them after) returns ``(values, None)`` and checks the assembled
    result itself. Memory therefore stays bounded by one
    chunk's rows plus the result, however many samples there are. Under a
    transform, or when autograd tracks the result, chunks are concatenated instead
    so that the result stays differentiable.

    ``chunk_size=None`` means about :func:`row_budget` rows per chunk: a dry run of
    ``fun`` on the first sample (every call of ``fn`` through :func:`row_values` or
    :func:`row_gradients` returns zeros and counts its rows) measures the rows per
    sample ``R``, and chunks hold ``max(1, budget // R)`` samples (all of them when
    they fit; a remainder under a quarter of a chunk joins the last one, see
    :func:`.routing.spans`, so a chunk holds less than 1.25x the budget). A
    ``chunk_size`` the caller gives is never exceeded. The dry run costs the
    method's own tensor work for one sample, without ``fn``. A method that knows
    ``R`` without building rows passes it as ``rows_per_sample`` and skips the dry
    run (tests check it against the dry run's count). The call is also the scope
    in which ``vectorize="auto"`` probes ``fn`` once for all chunks.
    """
    token = None
    if SCOPE.get() is None:
        token = SCOPE.set({"routes": {}, "rows": 0, "dry": False, "budget": budget_setting()})
    try:
        return _chunked(fun, chunk_size, args, what, rows_per_sample)
    finally:
        if token is not None:
            SCOPE.reset(token)


def _chunked(
    fun: Callable, chunk_size: int | None, args: tuple, what: str, per_sample: int | None
) -> Any:
    n = rows_of(next(a for a in args if a is not None))
    chosen = chunk_size is None  # ours, not the caller's: a small remainder joins the last
    if chunk_size is None and n > 1:
        chunk_size = samples_per_chunk(fun, args, n, per_sample)
    if chunk_size is None or chunk_size >= n:
        attr, values = fun(*args)
        if values is not None:
            check_values(values, what)
        return attr

    def parts() -> Iterator[tuple[int, Any]]:
        for start, size in spans(n, chunk_size, slack=chosen):
            part, values = fun(*slice_args(args, start, size))
            if values is not None:
                check_values(values, what)
            del values  # dropped before the next chunk: only the attributions are kept
            yield start, part

    return assemble(parts(), n)


class CompileFallbackWarning(UserWarning):
    """``torch.compile`` failed on a method's kernel; the method ran eagerly instead."""


_COMPILED: dict[Callable, Callable] = {}
_FAILED: dict[tuple[Callable, int], Any] = {}  # (kernel, id(fn)) -> fn, kept alive


def compiled(impl: Callable, compile: bool) -> Callable:
    """``impl`` itself, or its ``torch.compile`` version with a fallback to eager.

    One compiled wrapper exists per kernel; torch.compile caches its graphs per
    ``fn`` and input shape (guards) and recompiles for a new one. If compiling or
    running the compiled kernel fails, the call is repeated eagerly: a genuine
    error of ``fn`` or the inputs is then raised from the eager run, and otherwise
    a :class:`CompileFallbackWarning` says why compilation was abandoned. Calls
    whose arguments are transformed (the method runs under ``vmap`` or ``grad``)
    use ``impl`` directly.
    """
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}")
    if not compile:
        return impl
    if impl not in _COMPILED:
        _COMPILED[impl] = torch.compile(impl, dynamic=False)
    fast = _COMPILED[impl]

    def run(fn: Any, *args: Any) -> Any:
        # compiling this fn failed before: do not retry. Under a transform (smoothgrad
        # lifts a method with vmap) dynamo would mark the kernel's code as skipped for
        # the rest of the process, so transformed calls run eagerly.
        scope = SCOPE.get()
        if (impl, id(fn)) in _FAILED or is_transformed(args) or scope and scope["dry"]:
            return impl(fn, *args)
        # vectorize="auto" is settled here, on plain tensors: the traced kernel cannot
        # read values (args[0] is always the samples x)
        args = tuple(route(fn, args[0]) if isinstance(a, str) and a == "auto" else a for a in args)
        try:
            return fast(_frozen(fn), *args)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back to eager
            result = impl(fn, *args)
            _FAILED[(impl, id(fn))] = fn
            warnings.warn(
                f"torch.compile failed on {impl.__name__} ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); ran eagerly instead",
                CompileFallbackWarning,
                stacklevel=3,
            )
            return result

    return run


def _frozen(fn: Any) -> Any:
    """An ``nn.Module`` called with detached parameters, for the compiled kernels.

    torch 2.13 compiles functorch gradients wrongly when a module's parameters
    require grad (a Conv -> ReLU -> MaxPool net gave all-zero input gradients), so
    the compiled path calls modules through ``functional_call`` with detached
    parameters. Attributions never need gradients with respect to parameters.
    """
    if not isinstance(fn, torch.nn.Module):
        return fn
    state = {k: v.detach() for k, v in fn.state_dict(keep_vars=True).items()}

    def call(x: Any) -> Any:
        return torch.func.functional_call(fn, state, (x,))

    return call
