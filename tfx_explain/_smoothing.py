"""Noise-averaged attributions: SmoothGrad as a function transform, and expected gradients."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch.func import vmap
from torch.utils import _pytree as pytree

from ._engine.batching import check_values, expand_targets, prepare
from ._engine.checks import (
    MAX_SAMPLES,
    check_inputs,
    check_size,
    check_structure,
    is_transformed,
    leaf_names,
)
from ._engine.rows import check_vectorize, chunked, row_gradients

__all__ = ["smoothgrad", "expected_gradients"]


def _check_generator(generator: Any) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")


def smoothgrad(
    method: Callable, *, n_samples: int = 50, sigma: float = 0.1, generator=None
) -> Callable:
    """Turn an attribution method into its noise-averaged version (SmoothGrad, NoiseTunnel).

    .. math::

        \\hat a(x) = \\frac{1}{N} \\sum_{n=1}^{N} a(x + \\sigma \\varepsilon_n),
        \\qquad \\varepsilon_n \\sim \\mathcal{N}(0, I)

    with :math:`a` = ``method``, :math:`N` = ``n_samples`` and :math:`\\sigma` =
    ``sigma`` in the units of ``x`` (scale it to your inputs' range). The returned
    function has ``method``'s signature; all ``N`` noisy copies are one vmapped call.
    The noise is drawn from ``generator`` at each call.

    Args:
      method: an attribution function ``method(fn, x, **options)`` returning
        tensors of ``x``'s structure, e.g. :func:`input_gradients`.
      n_samples: number of noisy copies ``1 <= N <= MAX_SAMPLES`` (65536).
      sigma: noise standard deviation (finite, ``>= 0``).
      generator: ``torch.Generator`` for the noise (``None``: the global one).

    Returns:
      ``smoothed(fn, x, **options)`` with ``method``'s result shape.

    Example:
      >>> import torch
      >>> from tfx_explain import input_gradients
      >>> smooth = smoothgrad(input_gradients, n_samples=4, sigma=0.1)
      >>> smooth(lambda x: x.sum(-1), torch.zeros(2, 3))
      tensor([[1., 1., 1.],
              [1., 1., 1.]])

    References:
      Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017.
    """
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    n_samples = check_size(n_samples, "n_samples", maximum=MAX_SAMPLES)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 <= sigma < math.inf:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    _check_generator(generator)

    @functools.wraps(method)
    def smoothed(fn: Callable, x: Any, **options: Any) -> Any:
        check_inputs(x, "x")

        def noisy(leaf: torch.Tensor) -> torch.Tensor:
            # (B, *F) -> (N, B, *F)
            eps = torch.randn((n_samples,) + leaf.shape, generator=generator, dtype=leaf.dtype)
            return leaf + sigma * eps

        copies = pytree.tree_map(noisy, x)
        attr = vmap(lambda xn: method(fn, xn, **options))(copies)
        if not is_transformed(x):
            # under this vmap the method skips its checks of fn's values: redo them on
            # the noisy copies (one extra forward pass) and on the attributions
            rows = pytree.tree_map(lambda c: c.flatten(0, 1), copies)  # (N B, *F)
            check_values(fn(rows), "at a noisy copy of x")
            for a in pytree.tree_leaves(attr):
                check_values(a, "in the attributions of a noisy copy of x")
        return pytree.tree_map(lambda a: a.mean(0), attr)

    smoothed.__name__ = f"smoothgrad_{getattr(method, '__name__', 'method')}"
    return smoothed


def _eg_samples(fn, x, t, refs, alphas, vectorize):
    """Expected gradients of ``n`` samples; ``refs (n, N, *F)``, ``alphas (n, N)``."""
    n_draws = alphas.shape[1]

    # (n, 1, *F) - (n, N, *F) -> (n, N, *F)
    delta = pytree.tree_map(lambda leaf_x, leaf_r: leaf_x.unsqueeze(1) - leaf_r, x, refs)

    def points(leaf_r, leaf_d):
        # (n, N, *F) -> (n N, *F)
        a = alphas.to(leaf_d.dtype).reshape(alphas.shape + (1,) * (leaf_d.ndim - 2))
        return (leaf_r + a * leaf_d).flatten(0, 1)

    rows = pytree.tree_map(points, refs, delta)
    t_rows = None if t is None else t.repeat_interleave(n_draws)
    grads, values = row_gradients(fn, rows, t_rows, vectorize=vectorize)
    attr = pytree.tree_map(lambda d, g: (d * g.reshape(d.shape)).mean(1), delta, grads)
    return attr, values


def expected_gradients(
    fn: Callable,
    x: Any,
    *,
    baselines: Any,
    n_samples: int = 50,
    generator: torch.Generator | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "vmap",
) -> Any:
    """Expected gradients: integrated gradients averaged over a baseline distribution.

    .. math::

        \\mathrm{EG}_i(x) = \\mathbb{E}_{x' \\sim D,\\ \\alpha \\sim U(0, 1)}
            \\Big[(x_i - x'_i)\\, \\frac{\\partial f_t(x' + \\alpha (x - x'))}{\\partial x_i}\\Big]
        \\approx \\frac{1}{N} \\sum_{n=1}^{N} (x_i - x'^{(n)}_i)\\,
            \\frac{\\partial f_t(x'^{(n)} + \\alpha_n (x - x'^{(n)}))}{\\partial x_i}

    with :math:`x'^{(n)}` drawn uniformly from the rows of ``baselines`` and
    :math:`\\alpha_n` uniform, independently for each sample, from ``generator``.
    Completeness holds in expectation: :math:`\\mathbb{E}[\\sum_i \\mathrm{EG}_i]
    = f_t(x) - \\mathbb{E}_{x'}[f_t(x')]`. This is GradientSHAP without input noise.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      baselines: reference rows ``(M, *F)`` (a pytree like ``x``), e.g. training data.
      n_samples: draws ``1 <= N <= MAX_SAMPLES`` (65536) per sample.
      generator: ``torch.Generator`` for the draws.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``N`` rows of ``fn``.
      vectorize: ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0])
      >>> refs = torch.zeros(5, 2)
      >>> expected_gradients(lambda x: x @ w, torch.ones(1, 2), baselines=refs, n_samples=3)
      tensor([[ 1., -2.]])

    References:
      Erion et al., "Improving performance of deep learning models with axiomatic
      attribution priors and expected gradients", 2021; Lundberg and Lee, 2017.
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    n_samples = check_size(n_samples, "n_samples", maximum=MAX_SAMPLES)
    _check_generator(generator)
    n_refs = check_inputs(baselines, "baselines")
    check_structure(baselines, x, "baselines")
    x_leaves, b_leaves = pytree.tree_leaves(x), pytree.tree_leaves(baselines)
    for name, b, leaf in zip(leaf_names(baselines, "baselines"), b_leaves, x_leaves, strict=True):
        if b.shape[1:] != leaf.shape[1:]:
            raise ValueError(
                f"{name} must have shape (M, *F) = (M, {', '.join(map(str, leaf.shape[1:]))}), "
                f"got {tuple(b.shape)}"
            )
    batch = x_leaves[0].shape[0]
    index = torch.randint(n_refs, (batch, n_samples), generator=generator)  # (B, N)
    alphas = torch.rand((batch, n_samples), generator=generator, dtype=torch.float64)
    refs = pytree.tree_map(lambda b, leaf: b.to(leaf.dtype)[index], baselines, x)  # (B, N, *F)

    targets, (x, refs, alphas), unexpand = expand_targets(target, x, refs, alphas)

    def evaluate(x, t, refs, alphas):
        return _eg_samples(fn, x, t, refs, alphas, vectorize)

    attr = chunked(evaluate, chunk_size, x, targets, refs, alphas, what="between a baseline and x")
    return unexpand(attr)
