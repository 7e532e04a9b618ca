"""Infidelity and max-sensitivity (Yeh et al. 2019): every perturbation in one batched pass.

All ``N`` perturbations of all samples are drawn up front as ``(B, N, *F)`` tensors on
``x``'s device and dtype; the perturbed rows are then evaluated through the row engine,
chunked over samples by ``chunk_size``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch

from ._engine.batching import prepare
from ._engine.checks import check_baseline, check_choice, check_positive_int
from ._engine.devices import draw
from ._engine.rows import check_vectorize, chunked, row_values

__all__ = ["infidelity", "sensitivity_max"]

INFIDELITY_PERTURBATIONS = ("gaussian", "baseline_subsets")


def check_tensor_x(fn: Callable, x: Any, target: Any, chunk_size: Any, name: str) -> tuple:
    """The shared checks of every metric: ``x`` one tensor, ``target`` ``None``/int/``(B,)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} evaluates one tensor x (B, *F), got {type(x).__name__}")
    target, chunk_size = prepare(fn, x, target, chunk_size)
    if target is not None and target.ndim != 1:
        raise ValueError(
            f"target must be None, an int or a LongTensor (B,) for {name}, "
            f"got shape {tuple(target.shape)}"
        )
    return target, chunk_size


def check_attributions(attributions: Any, x: torch.Tensor) -> torch.Tensor:
    """Attributions shaped like ``x``, in ``x``'s dtype (still differentiable)."""
    if not isinstance(attributions, torch.Tensor):
        raise TypeError(f"attributions must be a tensor, got {type(attributions).__name__}")
    if attributions.shape != x.shape:
        raise ValueError(
            f"attributions must be shaped like x {tuple(x.shape)}, got {tuple(attributions.shape)}"
        )
    return attributions.to(x.dtype)


def _check_scale(value: Any, name: str, *, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    if not 0 < value <= upper or math.isinf(value):
        bound = "" if math.isinf(upper) else f" and <= {upper}"
        raise ValueError(f"{name} must be finite, > 0{bound}, got {value}")
    return float(value)


def _repeat(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.unsqueeze(1).expand((x.shape[0], n) + x.shape[1:])  # (B, *F) -> (B, N, *F)


def _draws(perturbation, x, baseline, n_samples, sigma, probability, generator):
    """Perturbations ``I`` and perturbed inputs, both ``(B, N, *F)``."""
    x_n, b_n = _repeat(x, n_samples), _repeat(baseline, n_samples)
    if callable(perturbation):
        out = perturbation(x_n, b_n)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("perturbation must return a pair (perturbations, perturbed inputs)")
        draws, perturbed = out
        for what, t in (("perturbations", draws), ("perturbed inputs", perturbed)):
            if not isinstance(t, torch.Tensor) or t.shape != x_n.shape:
                raise ValueError(
                    f"perturbation must return {what} of shape (B, N, *F) = "
                    f"{tuple(x_n.shape)}, got {getattr(t, 'shape', type(t).__name__)}"
                )
        return draws.to(x.dtype), perturbed.to(x.dtype)
    check_choice(perturbation, "perturbation", INFIDELITY_PERTURBATIONS)
    if perturbation == "gaussian":
        noise = draw(torch.randn, x_n.shape, generator=generator, device=x.device, dtype=x.dtype)
        draws = sigma * noise
        return draws, x_n - draws
    subset = draw(torch.rand, x_n.shape, generator=generator, device=x.device) < probability
    return subset.to(x.dtype), torch.where(subset, b_n, x_n)


def _infidelity_samples(fn, x, t, a, draws, perturbed, normalize, vectorize):
    n, n_samples = draws.shape[:2]
    rows = torch.cat([x, perturbed.flatten(0, 1)])  # (n + n N, *F)
    t_rows = None if t is None else torch.cat([t, t.repeat_interleave(n_samples)])
    values = row_values(fn, rows, t_rows, vectorize=vectorize)
    drop = values[:n, None] - values[n:].reshape(n, n_samples)  # f(x) - f(x - I): (n, N)
    dot = (draws * a.unsqueeze(1)).flatten(2).sum(-1)  # I^T a: (n, N)
    if normalize:
        num, den = (dot * drop).mean(1), (dot * dot).mean(1)
        beta = torch.where(den > 0, num / torch.where(den > 0, den, 1), 0)  # (n,)
        dot = beta[:, None] * dot
    return ((dot - drop) ** 2).mean(1), values


def infidelity(
    fn: Callable,
    x: torch.Tensor,
    attributions: torch.Tensor,
    *,
    perturbation: str | Callable = "gaussian",
    n_samples: int = 10,
    sigma: float = 0.1,
    probability: float = 0.5,
    baseline: Any = 0.0,
    normalize: bool = False,
    target: Any = None,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
) -> torch.Tensor:
    r"""Infidelity: how badly attributions predict the output change under perturbations.

    .. math::

        \mathrm{INFD}(a, f, x) = \frac{1}{N} \sum_{n=1}^{N}
            \Big(\beta\, I_n^\top a - \big(f_t(x) - f_t(x - I_n)\big)\Big)^2

    over ``n_samples`` draws :math:`I_n` of the ``perturbation``, with :math:`a` the
    ``attributions`` and :math:`\beta = 1`, or with ``normalize=True`` Captum's
    :math:`\beta = \sum_n I_n^\top a\,(f_t(x) - f_t(x - I_n)) / \sum_n (I_n^\top a)^2`
    (the best rescaling of :math:`a`, so the score ignores the attributions' scale; 0
    when every :math:`I_n^\top a = 0`). Perturbations:

    - ``"gaussian"``: :math:`I_n \sim \mathcal{N}(0, \sigma^2)` per feature, for *local*
      attributions (gradients): a linear :math:`f(x) = w^\top x` with :math:`a = w`
      scores exactly 0 for any draw.
    - ``"baseline_subsets"``: a random subset :math:`S_n` (each feature with probability
      ``probability``) is set to ``baseline`` and :math:`I_n = 1_{S_n}`, for *global*
      attributions (gradient x (x - baseline), integrated gradients, Shapley), whose
      :math:`I_n^\top a = \sum_{i \in S_n} a_i`. A linear :math:`f` with
      :math:`a = w \odot (x - x')` scores exactly 0; with ``probability=1`` the score is
      the squared completeness gap :math:`(\sum_i a_i - (f_t(x) - f_t(x')))^2`.
    - a callable ``perturbation(x, baseline) -> (I, x_perturbed)`` of ``(B, N, *F)``
      tensors (``x`` and ``baseline`` repeated ``N`` times along dim 1), exactly as
      Captum's ``perturb_func``: with the same draws the two agree to float rounding.

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: inputs ``(B, *F)``.
      attributions: attributions of ``x``, shaped like ``x``.
      perturbation: ``"gaussian"`` (default), ``"baseline_subsets"`` or a callable.
      n_samples: perturbations per sample (``N``).
      sigma: standard deviation of ``"gaussian"``.
      probability: chance that ``"baseline_subsets"`` removes a feature.
      baseline: number or tensor broadcastable to ``x`` (``"baseline_subsets"``, and
        passed to a callable ``perturbation``).
      normalize: rescale the attributions by the best :math:`\beta` (Captum's meaning).
      target: ``None``, int or LongTensor ``(B,)``.
      generator: ``torch.Generator`` for the built-in perturbations (on ``x``'s device).
      chunk_size: samples evaluated at once; each costs ``N + 1`` rows of ``fn``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`tfx_explain.input_gradients`).

    Returns:
      ``(B,)`` infidelity per sample (lower is better).

    Example:
      >>> import torch
      >>> from tfx_explain.metrics import infidelity
      >>> w = torch.tensor([1.0, -2.0, 3.0])
      >>> x = torch.randn(4, 3)
      >>> infidelity(lambda x: x @ w, x, w.expand(4, 3)).abs().max() < 1e-10
      tensor(True)

    References:
      Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019.
    """
    target, chunk_size = check_tensor_x(fn, x, target, chunk_size, "infidelity")
    a = check_attributions(attributions, x)
    n_samples = check_positive_int(n_samples, "n_samples")
    sigma = _check_scale(sigma, "sigma")
    probability = _check_scale(probability, "probability", upper=1.0)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    draws, perturbed = _draws(perturbation, x, baseline, n_samples, sigma, probability, generator)

    def evaluate(x, t, a, draws, perturbed):
        return _infidelity_samples(fn, x, t, a, draws, perturbed, normalize, vectorize)

    return chunked(
        evaluate, chunk_size, x, target, a, draws, perturbed, what="for a perturbed input"
    )


def _check_norm(norm: Any) -> float:
    if isinstance(norm, bool) or not isinstance(norm, numbers.Real) or not norm > 0:
        raise ValueError(f"norm must be a number > 0 (2, 1, math.inf), got {norm!r}")
    return float(norm)


def sensitivity_max(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    radius: float = 0.02,
    n_samples: int = 10,
    norm: float = 2.0,
    perturbation: Callable | None = None,
    relative: bool = True,
    baseline: Any = None,
    target: Any = None,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Max-sensitivity: the largest change of the attributions within a small ball.

    .. math::

        \mathrm{SENS}_{\max}(\Phi, f, x, r) = \max_{n \le N}
            \frac{\|\Phi(f, x + \delta_n) - \Phi(f, x)\|_p}{\|\Phi(f, x)\|_p},
        \qquad \delta_n \sim U([-r, r]^D)

    where :math:`\Phi` is ``method`` and :math:`p` is ``norm``; the denominator is 1
    with ``relative=False`` (Yeh et al.'s definition) and, with ``relative=True``
    (Captum's ``sensitivity_max``, the default), also 1 where :math:`\Phi(f, x) = 0`.
    A gradient method on a linear ``fn`` scores exactly 0. All ``N`` perturbed copies
    of the samples of a chunk go through ``method`` in one call.

    Args:
      method: attribution function ``method(fn, x, *, target=..., baseline=...)``; bind
        other options with ``functools.partial``.
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: inputs ``(B, *F)``.
      radius: half-width of the :math:`L_\infty` ball of the uniform draws.
      n_samples: perturbations per sample (``N``).
      norm: ``p`` of the vector norm over the flattened attributions (2, 1, ``math.inf``).
      perturbation: ``None`` (uniform in the ball) or a callable ``(B, N, *F) -> (B, N, *F)``
        returning perturbed copies of the repeated ``x`` (Captum's ``perturb_func``).
      relative: divide by :math:`\|\Phi(f, x)\|_p`, as Captum does.
      baseline: passed to ``method`` when not ``None`` (a per-sample tensor is repeated).
      target: ``None``, int or LongTensor ``(B,)``; passed to ``method`` when not ``None``.
      generator: ``torch.Generator`` for the uniform draws (on ``x``'s device).
      chunk_size: samples whose ``N`` perturbed copies go through ``method`` together.

    Returns:
      ``(B,)`` max-sensitivity per sample (lower is more robust).

    Example:
      >>> import torch
      >>> from tfx_explain import input_gradients
      >>> from tfx_explain.metrics import sensitivity_max
      >>> w = torch.tensor([1.0, -2.0, 3.0])
      >>> sensitivity_max(input_gradients, lambda x: x @ w, torch.randn(4, 3))
      tensor([0., 0., 0., 0.])

    References:
      Yeh et al., "On the (In)fidelity and Sensitivity of Explanations", NeurIPS 2019.
    """
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    target, chunk_size = check_tensor_x(fn, x, target, chunk_size, "sensitivity_max")
    radius = _check_scale(radius, "radius")
    n_samples = check_positive_int(n_samples, "n_samples")
    norm = _check_norm(norm)
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be True or False, got {relative!r}")
    x_n = _repeat(x, n_samples)
    if perturbation is None:
        noise = draw(torch.rand, x_n.shape, generator=generator, device=x.device, dtype=x.dtype)
        perturbed = x_n + (2 * noise - 1) * radius
    elif callable(perturbation):
        perturbed = perturbation(x_n)
        if not isinstance(perturbed, torch.Tensor) or perturbed.shape != x_n.shape:
            raise ValueError(
                f"perturbation must return perturbed inputs (B, N, *F) = {tuple(x_n.shape)}, "
                f"got {getattr(perturbed, 'shape', type(perturbed).__name__)}"
            )
    else:
        raise TypeError(f"perturbation must be None or a callable, got {perturbation!r}")
    per_sample_baseline = isinstance(baseline, torch.Tensor) and baseline.shape == x.shape

    def attribute(x, t, b):
        options = {"target": t, "baseline": b if per_sample_baseline else baseline}
        return method(fn, x, **{k: v for k, v in options.items() if v is not None})

    with torch.no_grad():
        reference = attribute(x, target, baseline)  # (B, *F)

    def evaluate(perturbed, reference, t, b):
        n = perturbed.shape[0]
        rows = perturbed.flatten(0, 1)  # (n N, *F)
        t_rows = None if t is None else t.repeat_interleave(n_samples)
        b_rows = None if b is None else b.repeat_interleave(n_samples, dim=0)
        with torch.no_grad():
            attr = attribute(rows, t_rows, b_rows).reshape((n, n_samples) + x.shape[1:])
        change = torch.linalg.vector_norm((attr - reference.unsqueeze(1)).flatten(2), norm, -1)
        if relative:
            scale = torch.linalg.vector_norm(reference.flatten(1), norm, -1)  # (n,)
            change = change / torch.where(scale == 0, 1, scale)[:, None]
        return change.amax(1), change

    b = baseline if per_sample_baseline else None
    return chunked(evaluate, chunk_size, perturbed, reference, target, b, what="(a sensitivity)")
