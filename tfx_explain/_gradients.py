"""Local gradient attributions: input gradients (saliency) and gradient x input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._engine import trees
from ._engine.batching import expand_targets, per_target, prepare
from ._engine.checks import is_transformed
from ._engine.rows import check_vectorize, chunked, compiled, row_gradients

__all__ = ["input_gradients", "gradient_x_input"]


def input_gradients(
    fn: Callable,
    x: Any,
    *,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    """Per-sample gradient of the explained output with respect to the input (signed saliency).

    .. math::

        a_i(x) = \\frac{\\partial f_t(x)}{\\partial x_i}

    where :math:`f_t` is output ``target`` of ``fn`` for one sample ``x``.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``; an ``nn.Module`` in
        eval mode, or ``functools.partial(transformer_net, params)``.
      x: input ``(B, *F)``, or a dict/tuple of such tensors sharing ``B``.
      target: ``None`` for ``(B,)`` outputs, an int, a LongTensor ``(B,)``, or a
        LongTensor ``(B, T)`` for T outputs per sample in one pass.
      chunk_size: samples evaluated at once (bounds memory); ``None``: as many as
        fill the row budget (0.75 MiB of rows, 16 to 8192 of them;
        ``TFX_ROW_BUDGET`` overrides it).
      vectorize: ``"auto"`` (``"batch"`` when a probe of ``fn`` on a few rows of
        ``x`` shows rows treated independently, else ``"vmap"``), ``"vmap"``
        (each row isolated by ``torch.func.vmap``) or ``"batch"`` (one batched
        forward+backward; needs rows that ``fn`` treats independently, works for
        ops without vmap batching rules).
      compile: run the kernel through ``torch.compile`` (compiled once per ``fn``
        and input shape, falling back to eager with a warning on failure; calls
        made inside a ``torch.func`` transform run the eager kernel).

    Returns:
      Gradients shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target), same dtype.

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0, 3.0])
      >>> input_gradients(lambda x: x @ w, torch.ones(2, 3))
      tensor([[ 1., -2.,  3.],
              [ 1., -2.,  3.]])

    References:
      Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional Networks", 2014.
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    targets, (rows,), unexpand = expand_targets(target, x)

    kernel = compiled(_gradient_rows, compile)

    def evaluate(r, t):
        return kernel(fn, r, t, vectorize)

    grads = chunked(evaluate, chunk_size, rows, targets, what="at x", rows_per_sample=1)
    return unexpand(grads)


def _gradient_rows(fn, rows, t, vectorize):
    return row_gradients(fn, rows, t, vectorize=vectorize)


def gradient_x_input(
    fn: Callable,
    x: Any,
    *,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    """Gradient times input: the first-order Taylor contribution of each feature.

    .. math::

        a_i(x) = x_i \\, \\frac{\\partial f_t(x)}{\\partial x_i}

    Arguments and shapes as in :func:`input_gradients`.

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0, 3.0])
      >>> gradient_x_input(lambda x: x @ w, torch.tensor([[2.0, 1.0, 0.0]]))
      tensor([[ 2., -2.,  0.]])

    References:
      Shrikumar et al., "Not Just a Black Box: Learning Important Features
      Through Propagating Activation Differences", 2016.
    """
    grads = input_gradients(
        fn, x, target=target, chunk_size=chunk_size, vectorize=vectorize, compile=compile
    )
    target_axis = isinstance(target, torch.Tensor) and target.ndim == 2
    inputs = per_target(x, target if target_axis else None)
    if _owned(grads, x):  # multiply in place: no second result-sized allocation
        return trees.tree_map(lambda g, leaf: g.mul_(leaf), grads, inputs)
    return trees.tree_map(torch.mul, inputs, grads)


def _owned(grads: Any, x: Any) -> bool:
    """May ``grads`` be overwritten? Fresh, untracked, dense, and sharing no memory.

    Autograd may hand back one tensor for two inputs (``a + b``), or an expanded
    one; neither is written to, and no leaf may share memory with ``x``.
    """
    leaves = trees.leaves(grads)
    if is_transformed(leaves) or any(g.requires_grad or not g.is_contiguous() for g in leaves):
        return False
    grad_memory = [g.untyped_storage().data_ptr() for g in leaves]
    x_memory = {leaf.untyped_storage().data_ptr() for leaf in trees.leaves(x)}
    return len(set(grad_memory)) == len(grad_memory) and not x_memory & set(grad_memory)
