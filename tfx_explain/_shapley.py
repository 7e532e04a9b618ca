"""Shapley values of feature groups: exact enumeration or antithetic permutation sampling."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._engine.batching import prepare
from ._engine.checks import MAX_SAMPLES, check_baseline, check_size
from ._engine.devices import device_of, draw
from ._engine.masks import (
    MAX_EXACT_GROUPS,
    coalitions,
    common_dtype,
    group_matrix,
    unflatten_rows,
)
from ._engine.perturbed import first_sample, perturbed_values
from ._engine.rows import check_vectorize, chunked, compiled

__all__ = ["shapley_values"]


def _exact_design(n_groups: int) -> tuple[torch.Tensor, ...]:
    """Rows and marginal pairs of exact enumeration over all ``K = 2^G`` coalitions.

    For each group ``g`` the ``K / 2`` coalitions ``S`` without it (``lower``) are paired
    with ``S + {g}`` (``upper``) and weighted by ``|S|! (G - |S| - 1)! / G!``.

    Returns:
      ``present (K, G)`` bool, ``upper``/``lower (K/2, G)`` row indices, ``weight (K/2, G)``.
    """
    present = coalitions(n_groups)  # (K, G), row k = bits of k
    m = torch.arange(2 ** (n_groups - 1))[:, None]
    bit = torch.arange(n_groups)
    lower = ((m >> bit) << (bit + 1)) | (m & ((1 << bit) - 1))  # insert a 0 at bit g
    upper = lower | (1 << bit)
    table = torch.tensor(
        [
            math.factorial(s) * math.factorial(n_groups - s - 1) / math.factorial(n_groups)
            for s in range(n_groups)
        ],
        dtype=torch.float64,
    )
    weight = table[present.sum(1)[lower]]  # (K/2, G): weight of |S|
    return present, upper, lower, weight


def _permutation_design(
    n_groups: int, n_permutations: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, ...]:
    """Rows and marginal pairs of antithetic permutation sampling.

    Each permutation ``p`` and its reverse contribute the ``G + 1`` prefix
    coalitions of ``p``; group ``g`` earns ``v(prefix + {g}) - v(prefix)``, where
    ``prefix`` holds the groups before ``g`` in ``p``.

    Returns:
      ``present (P (G + 1), G)`` bool, ``upper``/``lower (P, G)`` row indices and
      ``weight (P, G)`` (all ``1 / P``).
    """
    half = [
        draw(torch.randperm, n_groups, generator=generator, device="cpu")
        for _ in range(n_permutations // 2)
    ]
    perms = torch.stack(half + [p.flip(0) for p in half])  # (P, G)
    rank = perms.argsort(1)  # rank[p, g]: position of group g in permutation p
    steps = torch.arange(n_groups + 1)
    present = rank[:, None, :] < steps[None, :, None]  # (P, G + 1, G): prefixes
    lower = torch.arange(n_permutations)[:, None] * (n_groups + 1) + rank  # (P, G)
    weight = torch.full((n_permutations, n_groups), 1.0 / n_permutations, dtype=torch.float64)
    return present.flatten(0, 1), lower + 1, lower, weight


def _shapley_samples(fn, x, t, b, keep, upper, lower, weight, share, vectorize):
    values = perturbed_values(fn, x, t, b, keep, vectorize=vectorize)  # (n, K[, T])
    # marginals first, so a dummy group gets a sum of exact zeros: (n, R, G[, T])
    marginal = values[:, upper] - values[:, lower]
    phi = torch.einsum("nrg...,rg->n...g", marginal, weight)  # (n[, T], G)
    return unflatten_rows(phi @ share, first_sample(x)), values


def shapley_values(
    fn: Callable,
    x: Any,
    *,
    baseline: Any = None,
    groups: Any = None,
    n_permutations: int | None = None,
    generator: torch.Generator | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    """Shapley values of feature groups, with absent groups set to the baseline.

    .. math::

        \\phi_g(x) = \\sum_{S \\subseteq N \\setminus \\{g\\}}
            \\frac{|S|!\\,(G - |S| - 1)!}{G!}\\,\\big(v(S \\cup \\{g\\}) - v(S)\\big),
        \\qquad v(S) = f_t(x_S, x'_{N \\setminus S})

    over the ``G`` groups ``N``; the value of a group is shared evenly by its
    features. With ``n_permutations=None`` all ``2^G`` coalitions are evaluated in
    one batched call (exact; needs ``G <= 16``), so efficiency
    :math:`\\sum_g \\phi_g = f_t(x) - f_t(x')` holds to rounding. With an even
    ``n_permutations = P``, ``P / 2`` random permutations and their reverses
    (antithetic sampling) give an unbiased estimate that still satisfies
    efficiency exactly; the permutations come from ``generator``.

    Args:
      fn: batched callable taking ``x``'s structure, returning ``(B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      baseline: ``None`` (zeros), a number, or a tensor (pytree) broadcastable to ``x``.
      groups: players, as in :func:`feature_ablation`; ``None``: one per feature.
      n_permutations: ``None`` for exact enumeration, or an even number
        ``2 <= P <= MAX_SAMPLES`` (65536).
      generator: random source for the permutations.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``2^G`` (or ``P (G + 1)``) rows.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> x = torch.tensor([[2.0, 3.0]], dtype=torch.float64)
      >>> shapley_values(lambda x: x[:, 0] * x[:, 1], x)
      tensor([[3., 3.]], dtype=torch.float64)

    References:
      Shapley, "A Value for n-Person Games", 1953; Castro, Gomez and Tejada,
      "Polynomial calculation of the Shapley value based on sampling", 2009.
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    sample = first_sample(x)
    _, members = group_matrix(groups, sample)  # (G, D)
    n_groups = members.shape[0]
    if n_permutations is None:
        if n_groups > MAX_EXACT_GROUPS:
            raise ValueError(
                f"exact Shapley values need 2^G coalitions; G = {n_groups} groups is more "
                f"than {MAX_EXACT_GROUPS}. Pass groups, or n_permutations for sampling"
            )
        present, upper, lower, weight = _exact_design(n_groups)
    else:
        n_permutations = check_size(
            n_permutations, "n_permutations", minimum=2, maximum=MAX_SAMPLES
        )
        if n_permutations % 2:
            raise ValueError(
                f"n_permutations must be even (antithetic pairs), got {n_permutations}"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {generator!r}")
        present, upper, lower, weight = _permutation_design(n_groups, n_permutations, generator)
    dtype, device = common_dtype(x), device_of(x)  # the design is built on the CPU
    keep = (present.to(torch.float64) @ members.to(torch.float64) > 0).to(device)  # (K, D)
    upper, lower = upper.to(device), lower.to(device)
    weight = weight.to(device=device, dtype=dtype)
    share = (members / members.sum(1, keepdim=True, dtype=torch.float64)).to(device, dtype)

    kernel = compiled(_shapley_samples, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, keep, upper, lower, weight, share, vectorize)

    rows = keep.shape[0]
    return chunked(
        evaluate,
        chunk_size,
        x,
        target,
        baseline,
        what="for a coalition input",
        rows_per_sample=rows,
    )
