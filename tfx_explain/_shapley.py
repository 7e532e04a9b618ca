"""Shapley values of feature groups: exact enumeration or antithetic permutation sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._batching import check_values, prepare
from ._evaluate import check_vectorize, chunked, compiled
from ._masks import coalitions, common_dtype, group_matrix, shapley_weights, unflatten_rows
from ._perturbation import first_sample, perturbed_values
from ._validation import check_baseline, check_positive_int

__all__ = ["shapley_values", "MAX_EXACT_GROUPS"]

MAX_EXACT_GROUPS = 16
"""Largest group count enumerated exactly (2^16 = 65536 rows per sample)."""


def _permutation_design(
    n_groups: int, n_permutations: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and coefficients of antithetic permutation sampling.

    Each permutation ``p`` and its reverse contribute the ``G + 1`` prefix
    coalitions of ``p``; group ``p[j]`` earns ``v(prefix_{j+1}) - v(prefix_j)``.

    Returns:
      ``members (P (G + 1), G)`` bool and ``coef (P (G + 1), G)`` with ``phi = v @ coef``.
    """
    half = [torch.randperm(n_groups, generator=generator) for _ in range(n_permutations // 2)]
    perms = torch.stack(half + [p.flip(0) for p in half])  # (P, G)
    rank = perms.argsort(1)  # rank[p, g]: position of group g in permutation p
    steps = torch.arange(n_groups + 1)
    members = rank[:, None, :] < steps[None, :, None]  # (P, G + 1, G): prefixes
    entered = torch.nn.functional.one_hot(perms, n_groups).to(torch.float64)  # (P, G, G)
    none = entered.new_zeros(n_permutations, 1, n_groups)
    # v(prefix_{j+1}) counts for the group entering at j, v(prefix_j) against it;
    # built out of place so that vmap(randomness="different") can batch the draws
    coef = torch.cat([none, entered], 1) - torch.cat([entered, none], 1)  # (P, G + 1, G)
    return members.flatten(0, 1), coef.flatten(0, 1) / n_permutations


def _shapley_samples(fn, x, t, b, keep, coef, share, vectorize):
    values = perturbed_values(fn, x, t, b, keep, vectorize=vectorize)  # (n, K[, T])
    phi = torch.tensordot(values, coef, dims=([1], [0]))  # (n[, T], G)
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
    vectorize: str = "vmap",
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
      n_permutations: ``None`` for exact enumeration, or an even number >= 2.
      generator: random source for the permutations.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``2^G`` (or ``P (G + 1)``) rows.
      vectorize: ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
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
        present = coalitions(n_groups)  # (K, G)
        coef = shapley_weights(present)
    else:
        n_permutations = check_positive_int(n_permutations, "n_permutations", minimum=2)
        if n_permutations % 2:
            raise ValueError(
                f"n_permutations must be even (antithetic pairs), got {n_permutations}"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {generator!r}")
        present, coef = _permutation_design(n_groups, n_permutations, generator)
    dtype = common_dtype(x)
    keep = present.to(torch.float64) @ members.to(torch.float64) > 0  # (K, D)
    coef = coef.to(dtype)
    share = (members / members.sum(1, keepdim=True, dtype=torch.float64)).to(dtype)  # (G, D)

    kernel = compiled(_shapley_samples, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, keep, coef, share, vectorize)

    attr, values = chunked(evaluate, chunk_size, x, target, baseline)
    check_values(values, "for a coalition input")
    return attr
