"""Noise-averaged attributions: SmoothGrad as a function transform, and expected gradients."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._engine.batching import expand_targets, prepare
from ._engine.checks import (
    MAX_SAMPLES,
    check_baseline,
    check_choice,
    check_chunk_size,
    check_flag,
    check_inputs,
    check_size,
    check_structure,
    is_transformed,
    leaf_names,
)
from ._engine.devices import draw
from ._engine.routing import assemble
from ._engine.rows import check_vectorize, chunked, compiled, row_gradients
from ._engine.targets import check_target

__all__ = ["smoothgrad", "expected_gradients"]

REDUCTIONS = ("mean", "mean_square", "variance")
BLOCK = 1024  # samples smoothed together (noise drawn, copies attributed, reduced)


def _check_generator(generator: Any) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")


def _check_scale(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def smoothgrad(
    method: Callable,
    *,
    n_samples: int = 50,
    sigma: float | None = None,
    noise_level: float | None = None,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> Callable:
    """Turn an attribution method into its noise-averaged version (SmoothGrad, NoiseTunnel).

    .. math::

        a_n = a(x + \\sigma \\varepsilon_n), \\quad \\varepsilon_n \\sim \\mathcal{N}(0, I):
        \\qquad \\frac{1}{N} \\sum_n a_n \\;(\\texttt{"mean"}), \\quad
        \\frac{1}{N} \\sum_n a_n^2 \\;(\\texttt{"mean_square"}), \\quad
        \\frac{1}{N} \\sum_n \\Big(a_n - \\frac{1}{N} \\sum_m a_m\\Big)^2
        \\;(\\texttt{"variance"})

    with :math:`a` = ``method`` and :math:`N` = ``n_samples``: SmoothGrad,
    SmoothGrad-squared and VarGrad (Captum's NoiseTunnel ``smoothgrad``,
    ``smoothgrad_sq`` and ``vargrad``; the variance divides by ``N``). The noise
    scale is either ``sigma``, in the units of ``x``, or ``noise_level`` relative
    to each sample's range: :math:`\\sigma_b = \\texttt{noise\\_level} \\cdot
    (\\max_i x_{b,i} - \\min_i x_{b,i})`, the max and min taken over the features
    of sample ``b`` in each leaf of ``x`` separately (Smilkov et al.'s noise
    level). Pass at most one of them; with neither, ``sigma = 0.1``.

    The ``N`` noisy copies of every sample are ``N`` samples of one call of
    ``method``, so they are evaluated by the same batched row engine as the
    method itself: a per-sample ``target`` or ``baseline`` is repeated for each
    copy, ``fn``'s outputs are checked on the rows it evaluates anyway, and a
    random ``method`` (expected gradients, sampled Shapley values) draws for every
    copy. ``chunk_size`` counts samples of ``x``: ``chunk_size * N`` copies are
    evaluated at once, so memory for ``fn`` grows with ``chunk_size x N x``
    ``method``'s rows per sample; the noisy copies themselves (``N`` times the
    size of ``x``) are drawn at once, so that the noise does not depend on the
    chunk size. The noise is drawn from ``generator`` at each call.

    Args:
      method: an attribution function ``method(fn, x, **options)`` returning
        tensors of ``x``'s structure with a leading batch dimension, e.g.
        :func:`input_gradients`.
      n_samples: number of noisy copies ``1 <= N <= MAX_SAMPLES`` (65536).
      sigma: noise standard deviation (finite, ``>= 0``) in the units of ``x``.
      noise_level: noise standard deviation (``>= 0``) relative to each sample's
        range (see above).
      reduction: ``"mean"`` (SmoothGrad), ``"mean_square"`` (SmoothGrad-squared) or
        ``"variance"`` (VarGrad).
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
      Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017;
      Adebayo et al., "Local Explanation Methods for Deep Neural Networks Lack
      Sensitivity to Parameter Values", 2018 (VarGrad).
    """
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    n_samples = check_size(n_samples, "n_samples", maximum=MAX_SAMPLES)
    sigma = _check_scale(sigma, "sigma")
    noise_level = _check_scale(noise_level, "noise_level")
    if sigma is not None and noise_level is not None:
        raise ValueError(
            f"pass sigma or noise_level, not both (got sigma={sigma}, noise_level={noise_level})"
        )
    if sigma is None and noise_level is None:
        sigma = 0.1
    reduction = check_choice(reduction, "reduction", REDUCTIONS)
    _check_generator(generator)

    @functools.wraps(method)
    def smoothed(fn: Callable, x: Any, **options: Any) -> Any:
        batch = check_inputs(x, "x")
        if options.get("chunk_size") is not None:
            options["chunk_size"] = check_chunk_size(options["chunk_size"]) * n_samples
        options = _per_sample(options, x, batch)

        def noisy(leaf: torch.Tensor) -> torch.Tensor:
            # (b, *F) -> (b, N, *F) -> (b N, *F): the copies of sample i are rows i N + n
            shape = (leaf.shape[0], n_samples) + leaf.shape[1:]
            eps = draw(
                torch.randn, shape, generator=generator, device=leaf.device, dtype=leaf.dtype
            )
            lead = (leaf.shape[0], 1) + (1,) * (leaf.ndim - 1)
            if noise_level is None:
                scale = sigma
            else:  # (b, *F) -> (b,) -> (b, 1, ...): each sample's range in this leaf
                flat = leaf.flatten(1)
                scale = noise_level * (flat.amax(1) - flat.amin(1)).reshape(lead)
            if leaf.requires_grad or is_transformed(leaf):  # tracked or batched: no writes
                return (leaf.unsqueeze(1) + scale * eps).flatten(0, 1)
            # the same numbers, without two more B x N x F tensors: scale * eps + x
            return eps.mul_(scale).add_(leaf.unsqueeze(1)).flatten(0, 1)

        def reduce(a: torch.Tensor) -> torch.Tensor:
            a = a.reshape((-1, n_samples) + a.shape[1:])  # (b N, ...) -> (b, N, ...)
            if reduction == "mean":
                return a.mean(1)
            if reduction == "mean_square":
                return a.square().mean(1)
            return (a - a.mean(1, keepdim=True)).square().mean(1)

        # BLOCK samples at a time: their noise, copies and attributions are all that
        # exist at once, so memory does not grow with B x N; the block size is fixed,
        # so the draws do not depend on chunk_size
        def blocks():
            for start in range(0, batch, BLOCK):
                block = slice(start, min(start + BLOCK, batch))
                x_block = pytree.tree_map(lambda leaf, b=block: leaf[b], x)
                noisy_x = pytree.tree_map(noisy, x_block)
                attr = method(fn, noisy_x, **_tile(options, block, n_samples))
                yield start, pytree.tree_map(reduce, attr)

        if batch <= BLOCK:
            return next(blocks())[1]
        # written into one result allocated at the first block: a small result kept per
        # block, above the freed blocks' memory, stopped the heap from reusing it (peak
        # RSS over 1M rows with N = 5: 1,156 MB kept per block, 383 MB written into one)
        return assemble(blocks(), batch)

    smoothed.__name__ = f"smoothgrad_{getattr(method, '__name__', 'method')}"
    return smoothed


def _per_sample(options: dict[str, Any], x: Any, batch: int) -> dict[str, Any]:
    """Check a per-sample ``target`` and ``baseline`` against the caller's ``x``.

    Errors speak of the caller's shapes; ``None``, an int target and a number
    baseline pass unchanged. Tensors come back with a leading ``B``.
    """
    options = dict(options)
    target = options.get("target")
    if target is not None and not isinstance(target, numbers.Integral):
        options["target"] = check_target(target, batch)  # (B,) or (B, T)
    baseline = options.get("baseline")
    if baseline is not None and not isinstance(baseline, numbers.Real):
        options["baseline"] = check_baseline(baseline, x)  # leaves (B, *F)
    return options


def _tile(options: dict[str, Any], block: slice, n_samples: int) -> dict[str, Any]:
    """The block's per-sample ``target`` and ``baseline``, repeated for its ``N`` copies."""
    options = dict(options)
    for key in ("target", "baseline"):
        value = options.get(key)
        if value is not None and not isinstance(value, numbers.Real):
            options[key] = pytree.tree_map(
                lambda v: v[block].repeat_interleave(n_samples, dim=0), value
            )
    return options


def _eg_samples(fn, x, t, index, alphas, baselines, vectorize, multiply):
    """Expected gradients of ``n`` samples; ``index``, ``alphas (n, N)``, ``baselines (M, *F)``.

    The ``(n, N, *F)`` references are gathered here, one chunk at a time.
    """
    n_draws = alphas.shape[1]
    refs = pytree.tree_map(lambda b, leaf: b.to(leaf.dtype)[index], baselines, x)  # (n, N, *F)

    # (n, 1, *F) - (n, N, *F) -> (n, N, *F)
    delta = pytree.tree_map(lambda leaf_x, leaf_r: leaf_x.unsqueeze(1) - leaf_r, x, refs)

    def points(leaf_r, leaf_d):
        # (n, N, *F) -> (n N, *F)
        a = alphas.to(leaf_d.dtype).reshape(alphas.shape + (1,) * (leaf_d.ndim - 2))
        return (leaf_r + a * leaf_d).flatten(0, 1)

    rows = pytree.tree_map(points, refs, delta)
    t_rows = None if t is None else t.repeat_interleave(n_draws)
    grads, values = row_gradients(fn, rows, t_rows, vectorize=vectorize, owned=True)
    if multiply:
        attr = pytree.tree_map(lambda d, g: (d * g.reshape(d.shape)).mean(1), delta, grads)
    else:  # (n N, *F) -> (n, N, *F) -> (n, *F)
        attr = pytree.tree_map(lambda d, g: g.reshape(d.shape).mean(1), delta, grads)
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
    vectorize: str = "auto",
    compile: bool = False,
    multiply_by_inputs: bool = True,
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
    = f_t(x) - \\mathbb{E}_{x'}[f_t(x')]`. This is GradientSHAP without input noise
    (``smoothgrad(expected_gradients, ...)`` adds it). With
    ``multiply_by_inputs=False`` the factor :math:`(x_i - x'^{(n)}_i)` is left out:
    the mean gradient at the drawn path points (Captum's ``multiply_by_inputs``).

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      baselines: reference rows ``(M, *F)`` (a pytree like ``x``), e.g. training data.
      n_samples: draws ``1 <= N <= MAX_SAMPLES`` (65536) per sample.
      generator: ``torch.Generator`` for the draws.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``N`` rows of ``fn``, and
        only those samples' ``(N, *F)`` references are gathered at once.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).
      multiply_by_inputs: multiply each gradient by ``x - x'`` (``True``) or not.

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
    multiply_by_inputs = check_flag(multiply_by_inputs, "multiply_by_inputs")
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
    batch, device = x_leaves[0].shape[0], x_leaves[0].device
    draws = {"generator": generator, "device": device}
    index = draw(torch.randint, n_refs, (batch, n_samples), **draws)  # (B, N)
    alphas = draw(torch.rand, (batch, n_samples), dtype=torch.float64, **draws)
    # (M, *F): the baselines move to x's device once; each chunk gathers its own rows
    baselines = pytree.tree_map(lambda b, leaf: b.to(leaf.device), baselines, x)

    targets, (x, index, alphas), unexpand = expand_targets(target, x, index, alphas)
    kernel = compiled(_eg_samples, compile)

    def evaluate(x, t, index, alphas):
        return kernel(fn, x, t, index, alphas, baselines, vectorize, multiply_by_inputs)

    what = "between a baseline and x"
    return unexpand(chunked(evaluate, chunk_size, x, targets, index, alphas, what=what))
