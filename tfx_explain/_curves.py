"""Deletion, insertion and ROAD curves: all fractions of all samples in one batched call.

Features (or groups of features) are ranked by attribution once; the perturbed input
of every sample at every fraction is one row, built from a ``(B, K, D)`` mask, and the
rows go through the row engine chunked over samples by ``chunk_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from ._engine.checks import check_baseline, check_choice
from ._engine.devices import draw
from ._engine.rows import check_vectorize, chunked, row_values
from ._fidelity import check_attributions, check_tensor_x

__all__ = ["Curve", "deletion_curve", "insertion_curve", "road", "curve_area"]

ORDERS = ("morf", "lerf")


class Curve(NamedTuple):
    """An evaluation curve: ``values[b, k]`` is the explained output at ``fractions[k]``.

    ``area`` is :func:`curve_area` of ``values``: the trapezoid area over the fractions
    divided by their span, i.e. the mean height of the curve, in ``fn``'s units.
    """

    fractions: torch.Tensor  # (K,)
    values: torch.Tensor  # (B, K)
    area: torch.Tensor  # (B,)


def curve_area(values: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    r"""Normalized area under curves: :math:`\frac{1}{\phi_K - \phi_1}\int_{\phi_1}^{\phi_K} v`.

    Trapezoid rule over ``fractions (K,)`` for ``values (B, K)``; returns ``(B,)``.
    """
    span = fractions[-1] - fractions[0]
    return torch.trapezoid(values, fractions.to(values.dtype), dim=-1) / span


def _check_fractions(fractions: Any, x: torch.Tensor, default: torch.Tensor) -> torch.Tensor:
    if fractions is None:
        return default.to(device=x.device, dtype=x.dtype)
    f = torch.as_tensor(fractions, dtype=torch.float64)
    if f.ndim != 1 or f.numel() < 2:
        raise ValueError(f"fractions must be a 1-d sequence of >= 2 numbers, got {fractions!r}")
    if not bool(torch.isfinite(f).all()) or f.min() < 0 or f.max() > 1 or (f.diff() <= 0).any():
        raise ValueError(f"fractions must increase strictly within [0, 1], got {f.tolist()}")
    return f.to(device=x.device, dtype=x.dtype)


def _unit_ids(x: torch.Tensor, groups: Any, patch: Any) -> tuple[torch.Tensor, int]:
    """Unit (group) of every flat feature, ``(D,)`` LongTensor, and the number of units."""
    shape = tuple(x.shape[1:])
    if groups is not None and patch is not None:
        raise ValueError("pass groups or patch, not both")
    if patch is not None:
        patch = (patch,) if isinstance(patch, int) else tuple(patch)
        if (
            not patch
            or len(patch) > len(shape)
            or not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in patch)
        ):
            raise ValueError(
                f"patch must be a positive int or a tuple of up to {len(shape)} positive ints "
                f"(the last dims of x's features {shape}), got {patch!r}"
            )
        lead, tail = shape[: len(shape) - len(patch)], shape[len(shape) - len(patch) :]
        counts = [math.ceil(s / p) for s, p in zip(tail, patch, strict=True)]
        ids = torch.zeros(tail, dtype=torch.long, device=x.device)
        for d, (s, p, c) in enumerate(zip(tail, patch, counts, strict=True)):
            index = torch.arange(s, device=x.device) // p
            ids = ids * c + index.reshape((s,) + (1,) * (len(tail) - d - 1))
        return ids.expand(lead + tail).reshape(-1), math.prod(counts)
    if groups is None:
        return torch.arange(x[0].numel(), device=x.device), x[0].numel()
    if not isinstance(groups, torch.Tensor) or groups.dtype != torch.long:
        raise TypeError(f"groups must be a LongTensor of group ids per feature, got {groups!r}")
    try:
        ids = groups.to(x.device).expand(shape).reshape(-1)
    except RuntimeError:
        raise ValueError(
            f"groups with shape {tuple(groups.shape)} does not broadcast to x's features {shape}"
        ) from None
    n_units = int(ids.max()) + 1 if ids.numel() else 0
    if ids.min() < 0 or bool((torch.bincount(ids, minlength=n_units) == 0).any()):
        raise ValueError(f"groups must number its groups 0, 1, ..., G - 1, got ids {ids.unique()}")
    return ids, n_units


def _ranks(a: torch.Tensor, ids: torch.Tensor, n_units: int, order: str) -> torch.Tensor:
    """Rank of each unit per sample, 0 first removed: ``(B, *F) -> (B, G)``."""
    relevance = a.new_zeros(a.shape[0], n_units).index_add(1, ids, a.flatten(1))  # (B, G)
    key = -relevance if order == "morf" else relevance
    position = torch.argsort(key, dim=1, stable=True)
    return torch.argsort(position, dim=1)


def _curve_samples(fn, x, t, b, rank, ks, ids, insert, vectorize):
    n, n_fractions = x.shape[0], ks.shape[0]
    chosen = (rank.unsqueeze(1) < ks[:, None])[..., ids]  # (n, K, D)
    start, end = (b, x) if insert else (x, b)
    rows = torch.where(chosen, end.flatten(1).unsqueeze(1), start.flatten(1).unsqueeze(1))
    rows = rows.reshape((-1,) + x.shape[1:])
    values = row_values(fn, rows, t, vectorize=vectorize, repeat=n_fractions)  # t per sample
    return values.reshape(n, n_fractions), values


def _curve(fn, x, attributions, fractions, order, baseline, groups, patch, target, chunk_size,
           vectorize, insert, name):  # fmt: skip
    target, chunk_size = check_tensor_x(fn, x, target, chunk_size, name)
    a = check_attributions(attributions, x)
    fractions = _check_fractions(fractions, x, torch.linspace(0, 1, 11))
    order = check_choice(order, "order", ORDERS)
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    ids, n_units = _unit_ids(x, groups, patch)
    rank = _ranks(a.detach(), ids, n_units, order)
    ks = torch.round(fractions.double() * n_units).long()  # units removed at each fraction

    def evaluate(x, t, b, rank):
        return _curve_samples(fn, x, t, b, rank, ks, ids, insert, vectorize)

    what = f"for a perturbed input of {name}"
    values = chunked(evaluate, chunk_size, x, target, baseline, rank, what=what)
    return Curve(fractions, values, curve_area(values, fractions))


_CURVE_DOC_ARGS = """
    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: inputs ``(B, *F)``.
      attributions: attributions of ``x``, shaped like ``x``; a group is ranked by
        the sum of its attributions, ties in feature order.
      fractions: increasing fractions in ``[0, 1]`` of the ``G`` units; fraction
        :math:`\\phi` moves the first ``round(phi * G)`` units. Default 0, 0.1, ..., 1.
      order: ``"morf"`` (most relevant first, default) or ``"lerf"`` (least relevant first).
      baseline: number (default 0.0) or tensor broadcastable to ``x``.
      groups: ``None`` (each feature a unit) or a LongTensor of group ids ``0..G-1``
        broadcastable to ``x``'s features ``F`` (e.g. ``(1, H, W)`` superpixels shared
        by the channels of ``(C, H, W)`` images).
      patch: an int or tuple over the last feature dims: square patches as the units
        (e.g. ``(2, 2)`` on ``(C, H, W)`` images: every channel of a 2x2 patch together).
      target: ``None``, int or LongTensor ``(B,)``.
      chunk_size: samples evaluated at once; each costs ``K`` rows of ``fn``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`tfx_explain.input_gradients`).

    Returns:
      :class:`Curve` ``(fractions (K,), values (B, K), area (B,))``.
"""


def deletion_curve(
    fn: Callable,
    x: torch.Tensor,
    attributions: torch.Tensor,
    *,
    fractions: Any = None,
    order: str = "morf",
    baseline: Any = 0.0,
    groups: torch.Tensor | None = None,
    patch: int | tuple[int, ...] | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
) -> Curve:
    return _curve(fn, x, attributions, fractions, order, baseline, groups, patch, target,
                  chunk_size, vectorize, False, "deletion_curve")  # fmt: skip


deletion_curve.__doc__ = (
    r"""Deletion curve (pixel flipping): the output as the top units are set to the baseline.

    .. math::

        v_k = f_t\big(x_{R_k \leftarrow x'}\big), \qquad
        \mathrm{area} = \frac{1}{\phi_K - \phi_1}\int v\, d\phi

    where :math:`R_k` are the first :math:`\mathrm{round}(\phi_k G)` of the ``G``
    units in ``order`` of attribution and :math:`x'` is ``baseline``. With ``"morf"``
    a faithful attribution makes the curve fall fast (low area); with ``"lerf"`` slowly
    (high area). For a linear :math:`f(x) = w^\top x + c` and
    :math:`a = w \odot (x - x')`, :math:`v_k = f(x) - \sum_{i \in R_k} a_i`.
"""
    + _CURVE_DOC_ARGS
    + """
    Example:
      >>> import torch
      >>> from tfx_explain.metrics import deletion_curve
      >>> w = torch.tensor([1.0, 2.0, 4.0])
      >>> curve = deletion_curve(lambda x: x @ w, torch.ones(1, 3), w[None], fractions=[0, 0.5, 1])
      >>> curve.values, curve.area
      (tensor([[7., 1., 0.]]), tensor([2.2500]))

    References:
      Samek et al., "Evaluating the Visualization of What a Deep Neural Network Has
      Learned", IEEE TNNLS 2017; Petsiuk et al., "RISE: Randomized Input Sampling for
      Explanation of Black-box Models", BMVC 2018.
    """
)


def insertion_curve(
    fn: Callable,
    x: torch.Tensor,
    attributions: torch.Tensor,
    *,
    fractions: Any = None,
    order: str = "morf",
    baseline: Any = 0.0,
    groups: torch.Tensor | None = None,
    patch: int | tuple[int, ...] | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
) -> Curve:
    return _curve(fn, x, attributions, fractions, order, baseline, groups, patch, target,
                  chunk_size, vectorize, True, "insertion_curve")  # fmt: skip


insertion_curve.__doc__ = (
    r"""Insertion curve: the output as the top units of ``x`` are put into the baseline.

    .. math::

        v_k = f_t\big(x'_{R_k \leftarrow x}\big), \qquad
        \mathrm{area} = \frac{1}{\phi_K - \phi_1}\int v\, d\phi

    where :math:`R_k` are the first :math:`\mathrm{round}(\phi_k G)` of the ``G``
    units in ``order`` of attribution and :math:`x'` is ``baseline``. With ``"morf"``
    a faithful attribution makes the curve rise fast (high area). For a linear
    :math:`f` and :math:`a = w \odot (x - x')`, :math:`v_k = f(x') + \sum_{i \in R_k} a_i`.
"""
    + _CURVE_DOC_ARGS
    + """
    Example:
      >>> import torch
      >>> from tfx_explain.metrics import insertion_curve
      >>> w = torch.tensor([1.0, 2.0, 4.0])
      >>> curve = insertion_curve(lambda x: x @ w, torch.ones(1, 3), w[None], fractions=[0, 0.5, 1])
      >>> curve.values, curve.area
      (tensor([[0., 6., 7.]]), tensor([4.7500]))

    References:
      Petsiuk et al., "RISE: Randomized Input Sampling for Explanation of Black-box
      Models", BMVC 2018.
    """
)


def _neighbour_weights(height: int, width: int, x: torch.Tensor) -> torch.Tensor:
    """``(P, P)`` weights of the 8 grid neighbours: 1/6 sideways, 1/12 diagonal."""
    rows, cols = torch.meshgrid(
        torch.arange(height, device=x.device), torch.arange(width, device=x.device), indexing="ij"
    )
    dr = (rows.reshape(-1, 1) - rows.reshape(1, -1)).abs()
    dc = (cols.reshape(-1, 1) - cols.reshape(1, -1)).abs()
    side = (dr + dc == 1).to(x.dtype) / 6
    diagonal = ((dr == 1) & (dc == 1)).to(x.dtype) / 12
    return side + diagonal


def _road_samples(fn, x, t, rank, noise, ks, weights, vectorize):
    # x: (n, C, P); rank: (n, P); noise: (n, K, C, P)
    n, n_fractions = x.shape[0], ks.shape[0]
    removed = (rank.unsqueeze(1) < ks[:, None]).to(x.dtype)  # (n, K, P)
    eye = torch.eye(weights.shape[0], dtype=x.dtype, device=x.device)
    laplacian = torch.diag(weights.sum(1)) - weights  # (P, P)
    # removed pixel i: sum_j w_ij (v_i - v_j) = 0; kept pixel: v_i = x_i
    system = eye + removed.unsqueeze(-1) * (laplacian - eye)  # (n, K, P, P)
    rhs = ((1 - removed).unsqueeze(2) * x.unsqueeze(1)).transpose(-1, -2)  # (n, K, P, C)
    imputed = torch.linalg.solve(system, rhs).transpose(-1, -2)  # (n, K, C, P)
    imputed = imputed + removed.unsqueeze(2) * noise
    rows = imputed.reshape((n * n_fractions,) + x.shape[1:])
    values = row_values(fn, rows, t, vectorize=vectorize, repeat=n_fractions)  # t per sample
    return values.reshape(n, n_fractions), values


def road(
    fn: Callable,
    x: torch.Tensor,
    attributions: torch.Tensor,
    *,
    fractions: Any = None,
    order: str = "morf",
    noise: float = 0.01,
    target: Any = None,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
) -> Curve:
    r"""ROAD: remove the top pixels and impute them by noisy linear interpolation.

    .. math::

        v_k = f_t\big(\tilde x^{(k)}\big), \qquad
        \sum_{j \in N(i)} w_{ij}\,(\tilde x^{(k)}_i - \tilde x^{(k)}_j) = 0
        \ \ (i \in R_k), \qquad \tilde x^{(k)}_i = x_i\ \ (i \notin R_k)

    then :math:`\mathcal{N}(0, \sigma^2)` noise (``noise``) is added to the imputed
    pixels :math:`R_k`: the first :math:`\mathrm{round}(\phi_k P)` of the ``P = H W``
    pixels in ``order`` of attribution (summed over channels). :math:`N(i)` are the 8
    grid neighbours, :math:`w = 1/6` sideways and :math:`1/12` diagonally, as in Rong
    et al.'s ``NoisyLinearImputer``. Removed pixels take values their neighbourhood
    predicts, not a fixed baseline, so the score does not favour methods that use the
    same baseline. The linear system is solved densely per row (``P x P``): meant for
    small images and grids (a 32x32 image costs 8 MB per row in float64).

    Args:
      fn: batched callable ``(B, C, H, W) -> (B,)`` or ``(B, C)`` (or on ``(B, H, W)``).
      x: images ``(B, C, H, W)`` or grids ``(B, H, W)``.
      attributions: attributions of ``x``, shaped like ``x``.
      fractions: increasing fractions in ``[0, 1)`` of the pixels; at least one pixel
        must stay. Default 0, 0.1, ..., 0.9.
      order: ``"morf"`` (default) or ``"lerf"``.
      noise: standard deviation of the noise on imputed pixels (0 for none).
      target: ``None``, int or LongTensor ``(B,)``.
      generator: ``torch.Generator`` for the noise (on ``x``'s device).
      chunk_size: samples evaluated at once; each costs ``K`` rows and ``K`` solves.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`tfx_explain.input_gradients`).

    Returns:
      :class:`Curve` ``(fractions (K,), values (B, K), area (B,))``; with ``"morf"``
      a low area is faithful, with ``"lerf"`` a high one.

    Example:
      >>> import torch
      >>> from tfx_explain.metrics import road
      >>> x = torch.rand(2, 1, 5, 5)
      >>> road(lambda x: x.sum((1, 2, 3)), x, x, noise=0.0).values.shape
      torch.Size([2, 10])

    References:
      Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution
      Methods" (ROAD), ICML 2022.
    """
    if isinstance(x, torch.Tensor) and x.ndim not in (3, 4):
        raise ValueError(f"x must be images (B, C, H, W) or grids (B, H, W), got {tuple(x.shape)}")
    target, chunk_size = check_tensor_x(fn, x, target, chunk_size, "road")
    a = check_attributions(attributions, x)
    # the counts are static: computed on the CPU, so they can be checked on any device
    cpu = _check_fractions(
        fractions, torch.empty(0, dtype=torch.float64), torch.linspace(0, 0.9, 10)
    )
    fractions = cpu.to(device=x.device, dtype=x.dtype)
    order = check_choice(order, "order", ORDERS)
    vectorize = check_vectorize(vectorize)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    images = x if x.ndim == 4 else x.unsqueeze(1)  # (B, C, H, W)
    (batch, channels, height, width), n_pixels = images.shape, x.shape[-1] * x.shape[-2]
    ks = torch.round(cpu * n_pixels).long()
    if int(ks[-1]) >= n_pixels:
        raise ValueError(
            f"fractions must keep at least one of the {n_pixels} pixels for road, "
            f"got {cpu[-1].item()}"
        )
    ids = torch.arange(n_pixels, device=x.device).repeat(channels)  # pixel of each feature
    rank = _ranks(a.detach().reshape(batch, -1), ids, n_pixels, order)  # (B, P)
    ks = ks.to(x.device)
    shape = (batch, ks.shape[0], channels, n_pixels)
    draws = noise * draw(torch.randn, shape, generator=generator, device=x.device, dtype=x.dtype)
    weights = _neighbour_weights(height, width, x)

    def evaluate(x, t, rank, draws):
        flat = x.reshape(x.shape[0], channels, n_pixels)  # (n, C, P)
        return _road_samples(
            lambda rows: fn(rows.reshape((-1,) + tuple(x.shape[1:]))),
            flat, t, rank, draws, ks, weights, vectorize,
        )  # fmt: skip

    values = chunked(evaluate, chunk_size, x, target, rank, draws, what="for an imputed input")
    return Curve(fractions, values, curve_area(values, fractions))
