"""Evaluating ``fn`` on the rows a method builds: the only place methods call ``fn``.

Every method turns each sample into rows (path points, perturbed copies), asks for
their explained outputs (and gradients), and combines them per sample. The rows of
all samples of a chunk are evaluated together, in one of two ways:

- ``vectorize="vmap"`` (default): ``fn`` sees one row at a time through
  ``torch.func.vmap``, so a row's result cannot depend on any other row, whatever
  ``fn`` does. Every op of ``fn`` needs a vmap batching rule to be fast.
- ``vectorize="batch"``: ``fn`` gets all rows as one batch and, for gradients, one
  backward pass of the summed outputs. This is exactly the plain forward+backward
  cost, and works for ops without batching rules (e.g. the fused attention kernel
  of ``nn.MultiheadAttention``), but it is only correct when ``fn`` treats rows
  independently (true of eval-mode models; check yours with
  ``tfx_explain.testing.axioms.batch_dependence``).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.func import grad, grad_and_value, vmap
from torch.utils import _pytree as pytree

from .batching import check_values
from .checks import check_choice, check_depends, is_transformed
from .targets import check_output, one_sample, select_batch

__all__ = [
    "VECTORIZE",
    "CompileFallbackWarning",
    "SlowVmapWarning",
    "check_vectorize",
    "chunked",
    "compiled",
    "row_gradients",
    "row_values",
    "rows_of",
]

VECTORIZE = ("vmap", "batch")


def check_vectorize(vectorize: Any) -> str:
    return check_choice(vectorize, "vectorize", VECTORIZE)


def rows_of(tree: Any) -> int:
    return pytree.tree_leaves(tree)[0].shape[0]


def row_values(fn: Callable, rows: Any, t_rows: Any, *, vectorize: str) -> torch.Tensor:
    """Explained outputs of ``N`` rows: ``(N, *F) -> (N,)``, or ``(N, T)`` for (N, T) targets."""
    n = rows_of(rows)
    if vectorize == "batch":
        out = check_output(fn(rows), n)
    else:

        def f1(r1: Any) -> torch.Tensor:  # (*F) -> () or (C,)
            return check_output(fn(pytree.tree_map(lambda leaf: leaf.unsqueeze(0), r1)), 1)[0]

        with _fallback_warning():
            out = vmap(f1)(rows)
    return select_batch(out, t_rows)


def row_gradients(
    fn: Callable, rows: Any, t_rows: torch.Tensor | None, *, vectorize: str
) -> tuple[Any, torch.Tensor]:
    """Gradients and values of the explained output of each row.

    Args:
      rows: pytree of ``(N, *F)`` rows.
      t_rows: ``None`` or a ``(N,)`` LongTensor (one target per row).

    Returns:
      ``(grads, values)``: grads shaped like ``rows``, values ``(N,)``.
    """
    if vectorize == "batch":
        n = rows_of(rows)

        def total(r: Any) -> tuple[torch.Tensor, torch.Tensor]:
            values = select_batch(check_output(fn(r), n), t_rows)
            check_depends(values)
            return values.sum(), values

        if is_transformed(rows):  # under vmap/grad/compile: stay composable
            return grad(total, has_aux=True)(rows)
        return _autograd(total, rows)
    f1 = one_sample(fn)

    def checked(x1: Any, t1: Any) -> torch.Tensor:
        out = f1(x1, t1)
        check_depends(out)
        return out

    with _fallback_warning():
        return vmap(grad_and_value(checked), in_dims=(0, None if t_rows is None else 0))(
            rows, t_rows
        )


def _autograd(total: Callable, rows: Any) -> tuple[Any, torch.Tensor]:
    """``grad(total, has_aux=True)(rows)`` by plain autograd, for untransformed rows.

    torch.func.grad wraps every op of ``fn`` (measured: 1.13x the cost of
    ``torch.autograd.grad`` for input gradients of 2048 rows of the TransformerNet).
    Rows that autograd already tracks keep their graph, and the gradients get one
    (``create_graph``), so derivatives through the result stay exact; other rows are
    detached copies, so the caller's tensors are never touched.
    """
    leaves, spec = pytree.tree_flatten(rows)
    track = torch.is_grad_enabled() and any(leaf.requires_grad for leaf in leaves)
    inputs = [
        leaf if track and leaf.requires_grad else leaf.detach().requires_grad_() for leaf in leaves
    ]
    with torch.enable_grad():
        summed, values = total(pytree.tree_unflatten(inputs, spec))
        grads = torch.autograd.grad(summed, inputs, create_graph=track, allow_unused=True)
    grads = [
        torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, inputs, strict=True)
    ]
    return pytree.tree_unflatten(grads, spec), values if track else values.detach()


class SlowVmapWarning(UserWarning):
    """``fn`` uses ops without vmap batching rules; ``vectorize="batch"`` avoids the slow path."""


@contextlib.contextmanager
def _fallback_warning() -> Iterator[None]:
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
        warnings.warn(
            f"fn uses ops without vmap batching rules ({', '.join(slow)}), which run one row "
            "at a time under vectorize='vmap'; if fn treats rows independently (an eval-mode "
            "model does), pass vectorize='batch' for full speed",
            SlowVmapWarning,
            stacklevel=4,
        )


def chunked(fun: Callable, chunk_size: int | None, *args: Any, what: str) -> Any:
    """Apply ``fun`` to consecutive chunks of ``chunk_size`` samples; return its attributions.

    ``args`` are pytrees of tensors with a leading sample dimension, or ``None``.
    ``fun`` returns ``(attributions, values)``: the values ``fn`` returned on the
    chunk's rows are checked for finiteness chunk by chunk (the error says ``what``
    rows they were) and then dropped, and the attributions are written into
    tensors allocated once for all samples. Memory therefore stays bounded by one
    chunk's rows plus the result, however many samples there are. Under a
    transform, or when autograd tracks the result, chunks are concatenated instead
    so that the result stays differentiable.
    """
    n = rows_of([a for a in args if a is not None])
    if chunk_size is None or chunk_size >= n:
        attr, values = fun(*args)
        check_values(values, what)
        return attr
    out = None
    for start in range(0, n, chunk_size):
        part, values = fun(
            *(
                None if a is None else pytree.tree_map(lambda t, s=start: t[s : s + chunk_size], a)
                for a in args
            )
        )
        check_values(values, what)
        del values
        leaves, spec = pytree.tree_flatten(part)
        if out is None:
            keep = is_transformed(part) or any(leaf.requires_grad for leaf in leaves)
            out = [[] if keep else leaf.new_empty((n,) + leaf.shape[1:]) for leaf in leaves]
        for buffer, leaf in zip(out, leaves, strict=True):
            if isinstance(buffer, list):
                buffer.append(leaf)
            else:
                buffer[start : start + leaf.shape[0]] = leaf
    return pytree.tree_unflatten([torch.cat(b) if isinstance(b, list) else b for b in out], spec)


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
        if (impl, id(fn)) in _FAILED or is_transformed(args):
            return impl(fn, *args)
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
