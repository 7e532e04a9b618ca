r"""Surrogate models of feature groups: KernelSHAP and LIME, fitted as weighted least squares.

Both methods evaluate ``fn`` on coalition rows (the groups in ``S`` kept, the others
set to the baseline) and fit a linear model of the coalition values in the group
on/off space. The coalitions are drawn once per call and shared by every sample,
so the weighted least squares problem has one design matrix: it is solved once,
giving coefficients ``C (K, G)`` with ``phi = v @ C`` for the coalition values
``v (K,)`` of any sample. All rows of a chunk of samples are one engine call.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ._engine.batching import prepare
from ._engine.checks import check_baseline, check_choice, check_positive_int
from ._engine.masks import (
    MAX_EXACT_GROUPS,
    coalitions,
    common_dtype,
    group_matrix,
    unflatten_rows,
)
from ._engine.perturbed import first_sample, perturbed_values
from ._engine.rows import check_vectorize, chunked, compiled

__all__ = ["kernel_shap", "lime"]

F64 = torch.float64


def _check_generator(generator: Any) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")


def _solve(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``lhs^+ rhs`` for the symmetric normal (or KKT) matrix shared by all samples.

    The pseudo-inverse (through ``eigh``) is the exact inverse when the drawn
    coalitions determine every coefficient, and gives the minimum-norm fit when
    too few were drawn, as a least squares solver would.
    """
    return torch.linalg.pinv(lhs, hermitian=True) @ rhs


def _kernel_coalitions(
    n_groups: int, n_samples: int | None, sampling: str, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Coalitions ``Z (K, G)`` strictly between empty and full, and their weights ``(K,)``.

    Exact: all ``2^G - 2`` of them with the Shapley kernel
    :math:`\pi(S) = (G - 1) / (\binom{G}{|S|} |S| (G - |S|))`. ``"paired"``:
    ``n_samples / 2`` coalitions drawn from :math:`\pi` (a size ``s`` with probability
    :math:`\propto 1 / (s (G - s))`, then a uniform subset of that size) and their
    complements, each of weight 1 (the sampling already follows the kernel).
    ``"shap"``: the SHAP library's design, see :func:`_shap_coalitions`.
    """
    if n_samples is None:
        present = coalitions(n_groups)[1:-1]  # (2^G - 2, G): drop empty and full
        size = present.sum(1)
        binom = torch.tensor([math.comb(n_groups, s) for s in range(n_groups + 1)], dtype=F64)
        weight = (n_groups - 1) / (binom[size] * size * (n_groups - size))
        return present, weight
    if n_groups < 2:  # nothing lies strictly between empty and full
        return torch.zeros(0, n_groups, dtype=torch.bool), torch.zeros(0, dtype=F64)
    if sampling == "shap":
        return _shap_coalitions(n_groups, n_samples, generator)
    present = _draw_pairs(n_groups, n_samples // 2, 1, n_groups - 1, generator)
    return present, torch.ones(present.shape[0], dtype=F64)


def _size_mass(n_groups: int, sizes: torch.Tensor) -> torch.Tensor:
    """Kernel mass of all coalitions of each size: ``C(G, s) pi(s) = (G - 1) / (s (G - s))``."""
    return (n_groups - 1) / (sizes * (n_groups - sizes))


def _draw_pairs(n_groups, n_pairs, low, high, generator) -> torch.Tensor:
    """``n_pairs`` coalitions of sizes in ``[low, high]`` drawn from the kernel, and complements."""
    sizes = torch.arange(low, high + 1, dtype=F64)
    size = low + torch.multinomial(_size_mass(n_groups, sizes), n_pairs, True, generator=generator)
    rank = torch.rand(n_pairs, n_groups, generator=generator, dtype=F64).argsort(1)
    drawn = rank < size[:, None]  # (K/2, G): a uniform subset of each drawn size
    return torch.cat([drawn, ~drawn])  # (K, G): every coalition and its complement


def _shap_coalitions(n_groups, n_samples, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """SHAP's KernelExplainer design: whole sizes first, paired draws for the rest.

    Sizes ``s`` and ``G - s`` are enumerated in full, from ``s = 1`` up, while the
    budget left would give every coalition of the pair at least one draw in
    expectation (``left * share / count >= 1``, ``share`` the pair's part of the
    kernel mass not yet enumerated); they get their exact kernel weight. The
    remaining budget is drawn in pairs from the sizes not enumerated, sharing
    their kernel mass evenly.
    """
    left, parts, weights = n_samples, [], []
    masses = _size_mass(n_groups, torch.arange(1, n_groups, dtype=F64))
    mass_left = float(masses.sum())
    low = 1
    for s in range(1, n_groups // 2 + 1):
        sizes = [s] if 2 * s == n_groups else [s, n_groups - s]
        count = len(sizes) * math.comb(n_groups, s)
        pair_mass = float(masses[s - 1]) * len(sizes)
        if left * (pair_mass / mass_left) / count < 1.0 - 1e-8:
            break
        for size in sizes:
            # (C(G, s), s); torch.combinations builds all G^s tuples first
            index = torch.tensor(list(itertools.combinations(range(n_groups), size)))
            parts.append(
                torch.zeros(len(index), n_groups, dtype=torch.bool).scatter(1, index, True)
            )
            weights.append(
                torch.full((len(index),), float(masses[s - 1]) / math.comb(n_groups, s), dtype=F64)
            )
        left, mass_left, low = left - count, mass_left - pair_mass, s + 1
    if left >= 2 and low <= n_groups - low:
        drawn = _draw_pairs(n_groups, left // 2, low, n_groups - low, generator)
        parts.append(drawn)
        weights.append(torch.full((len(drawn),), mass_left / len(drawn), dtype=F64))
    if not parts:
        return torch.zeros(0, n_groups, dtype=torch.bool), torch.zeros(0, dtype=F64)
    return torch.cat(parts), torch.cat(weights)


def _kernel_shap_coefficients(present: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""``C (K + 2, G)`` with ``phi = v @ C`` over the rows ``[full, empty, *present]``.

    Solves :math:`\min_\phi \sum_k w_k (v_k - v_\emptyset - z_k^\top \phi)^2` subject
    to :math:`\mathbf 1^\top \phi = v_N - v_\emptyset` through its KKT system
    ``[[Z^T W Z, 1], [1^T, 0]]``, once for all samples (the solution is linear in ``v``).
    """
    n_groups = present.shape[1]
    z = present.to(F64)  # (K, G)
    ones = torch.ones(n_groups, 1, dtype=F64)
    kkt = torch.cat(
        [torch.cat([z.T @ (weight[:, None] * z), ones], 1), torch.cat([ones.T, ones[:1] * 0], 1)]
    )  # (G + 1, G + 1)
    # right-hand sides: one column per coalition value y_k, one for the total v_N - v_0
    n_rows = present.shape[0]
    rhs = torch.cat(
        [
            torch.cat([(weight[:, None] * z).T, torch.zeros(n_groups, 1, dtype=F64)], 1),
            torch.cat([torch.zeros(1, n_rows, dtype=F64), torch.ones(1, 1, dtype=F64)], 1),
        ]
    )  # (G + 1, K + 1)
    solution = _solve(kkt, rhs)[:n_groups]  # (G, K + 1)
    on_y, on_total = solution[:, :-1], solution[:, -1]
    # y_k = v_k - v_0 and total = v_N - v_0: collect the coefficient of v_0
    on_empty = -on_y.sum(1) - on_total
    return torch.cat([on_total[None], on_empty[None], on_y.T])


def _surrogate_samples(fn, x, t, b, keep, coef, share, vectorize):
    values = perturbed_values(fn, x, t, b, keep, vectorize=vectorize)  # (n, K[, T])
    phi = torch.einsum("nk...,kg->n...g", values, coef)  # (n[, T], G)
    return unflatten_rows(phi @ share, first_sample(x)), values


def _fit(fn, x, target, baseline, members, present, coef, chunk_size, vectorize, compile):
    """Evaluate the coalition rows ``present (K, G)`` of every sample and apply ``coef``."""
    device, dtype = pytree.tree_leaves(x)[0].device, common_dtype(x)
    keep = (present.to(F64) @ members.to(F64) > 0).to(device)  # (K, D)
    share = (members / members.sum(1, keepdim=True, dtype=F64)).to(device, dtype)  # (G, D)
    coef = coef.to(device, dtype)
    kernel = compiled(_surrogate_samples, compile)

    def evaluate(x, t, b):
        return kernel(fn, x, t, b, keep, coef, share, vectorize)

    return chunked(evaluate, chunk_size, x, target, baseline, what="for a coalition input")


def kernel_shap(
    fn: Callable,
    x: Any,
    *,
    groups: Any = None,
    n_samples: int | None = None,
    sampling: str = "paired",
    baseline: Any = None,
    generator: torch.Generator | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    r"""KernelSHAP: Shapley values as a Shapley-kernel-weighted linear regression.

    .. math::

        \phi = \arg\min_{\phi:\ \mathbf 1^\top \phi = v(N) - v(\emptyset)}
            \sum_{\emptyset \ne S \subsetneq N} \pi(S)\,
            \big(v(S) - v(\emptyset) - \textstyle\sum_{g \in S} \phi_g\big)^2,
        \qquad \pi(S) = \frac{G - 1}{\binom{G}{|S|}\,|S|\,(G - |S|)}

    with :math:`v(S) = f_t(x_S, x'_{N \setminus S})`: the groups in ``S`` from ``x``,
    the others from ``baseline``. Over all ``2^G - 2`` coalitions
    (``n_samples=None``) the solution is exactly :func:`shapley_values` (Lundberg
    and Lee, Theorem 2). With ``n_samples = K``, ``K / 2`` coalitions are drawn from
    :math:`\pi` and paired with their complements (Covert and Lee 2021), all with
    weight 1; efficiency :math:`\sum_g \phi_g = f_t(x) - f_t(x')` holds exactly for
    any draw, and the error shrinks as :math:`1/\sqrt{K}`. ``sampling="shap"`` uses
    the SHAP library's design instead: coalition sizes ``s`` and ``G - s`` are
    enumerated in full, smallest first, while the budget covers them, with their
    exact kernel weights, and the rest of the budget is drawn in pairs from the
    other sizes, sharing their kernel mass; with ``K >= 2^G - 2`` it is exact. The
    coalitions are drawn once per call from ``generator`` and shared by all samples,
    so the constrained least squares problem is solved once (minimum-norm when too
    few coalitions are drawn to determine it); the value of a group is shared evenly
    by its features.

    Args:
      fn: batched callable taking ``x``'s structure, returning ``(B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      groups: players, as in :func:`feature_ablation`; ``None``: one per feature.
      n_samples: ``None`` for all ``2^G - 2`` coalitions (``G <= 16``), or an even
        number ``K >= 2`` of sampled coalitions.
      sampling: ``"paired"`` (draws from the kernel) or ``"shap"`` (whole sizes
        first, as SHAP's KernelExplainer); used when ``n_samples`` is given.
      baseline: ``None`` (zeros), a number, or a tensor (pytree) broadcastable to ``x``.
      generator: random source for the sampled coalitions.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``K + 2`` rows of ``fn``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> x = torch.tensor([[2.0, 3.0]], dtype=torch.float64)
      >>> kernel_shap(lambda x: x[:, 0] * x[:, 1], x).round(decimals=12)
      tensor([[3., 3.]], dtype=torch.float64)

    References:
      Lundberg and Lee, "A Unified Approach to Interpreting Model Predictions",
      NeurIPS 2017; Covert and Lee, "Improving KernelSHAP: Practical Shapley Value
      Estimation via Linear Regression", AISTATS 2021.
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    _check_generator(generator)
    _, members = group_matrix(groups, first_sample(x))  # (G, D)
    n_groups = members.shape[0]
    if n_samples is None:
        if n_groups > MAX_EXACT_GROUPS:
            raise ValueError(
                f"n_samples=None enumerates all 2^G coalitions; G = {n_groups} groups is "
                f"more than {MAX_EXACT_GROUPS}. Pass groups, or an even n_samples"
            )
    else:
        n_samples = check_positive_int(n_samples, "n_samples", minimum=2)
        if n_samples % 2:
            raise ValueError(f"n_samples must be even (paired coalitions), got {n_samples}")
    sampling = check_choice(sampling, "sampling", ("paired", "shap"))
    present, weight = _kernel_coalitions(n_groups, n_samples, sampling, generator)
    coef = _kernel_shap_coefficients(present, weight)  # (K + 2, G)
    ends = torch.stack([torch.ones(n_groups, dtype=torch.bool), torch.zeros_like(members[:, 0])])
    rows = torch.cat([ends, present])  # (K + 2, G): full, empty, then the coalitions
    return _fit(fn, x, target, baseline, members, rows, coef, chunk_size, vectorize, compile)


def _lime_coefficients(present: torch.Tensor, kernel_width: float, ridge: float) -> torch.Tensor:
    r"""``C (K, G)`` with ``beta = v @ C``: weighted ridge regression with an intercept."""
    n_rows, n_groups = present.shape
    z = present.to(F64)
    on = z.sum(1)
    # cosine distance to the all-on vector: 1 - |z| / sqrt(|z| G); 1 when nothing is on
    distance = 1.0 - (on / n_groups).sqrt()
    weight = torch.exp(-(distance**2) / kernel_width**2)  # (K,)
    design = torch.cat([torch.ones(n_rows, 1, dtype=F64), z], 1)  # (K, 1 + G)
    penalty = torch.diag(torch.cat([torch.zeros(1, dtype=F64), torch.ones(n_groups, dtype=F64)]))
    normal = design.T @ (weight[:, None] * design) + ridge * penalty
    solution = _solve(normal, (weight[:, None] * design).T)  # (1 + G, K)
    return solution[1:].T


def lime(
    fn: Callable,
    x: Any,
    *,
    groups: Any = None,
    n_samples: int = 500,
    kernel_width: float = 0.25,
    ridge: float = 0.0,
    baseline: Any = None,
    generator: torch.Generator | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
    compile: bool = False,
) -> Any:
    r"""LIME: a locally weighted linear surrogate in the interpretable (group on/off) space.

    .. math::

        (\beta_0, \beta) = \arg\min \sum_{k} \pi(z_k)
            \big(f_t(h(z_k)) - \beta_0 - z_k^\top \beta\big)^2 + \lambda \|\beta\|^2,
        \qquad \pi(z) = \exp\!\big(-d(z, \mathbf 1)^2 / w^2\big)

    over the original :math:`z = \mathbf 1` and ``n_samples`` draws
    :math:`z_k \in \{0, 1\}^G`, each group on with probability 1/2, where
    :math:`h(z)` keeps the groups that are on and sets the others to ``baseline``,
    :math:`d` is the cosine distance (:math:`1 - \sqrt{|z| / G}`), :math:`w` =
    ``kernel_width`` and :math:`\lambda` = ``ridge``. The draws come once per call
    from ``generator`` and are shared by all samples, so the regression is solved
    once; if the draws do not determine every coefficient, the minimum-norm fit is
    used. :math:`\beta_g` is shared evenly by the features of group ``g``: for a
    linear ``fn`` :math:`w^\top x + c`, :math:`\beta_g = \sum_{i \in g} w_i (x_i - x'_i)`
    exactly for any draw that determines the fit (and ``ridge=0``).

    Args:
      fn: batched callable taking ``x``'s structure, returning ``(B,)`` or ``(B, C)``.
      x: input ``(B, *F)`` or a dict/tuple of such tensors.
      groups: interpretable features, as in :func:`feature_ablation`; ``None``: one
        per feature.
      n_samples: random coalitions ``K >= 1`` besides the original.
      kernel_width: width ``w > 0`` of the exponential kernel on the cosine distance.
      ridge: penalty ``lambda >= 0`` on the coefficients (not the intercept).
      baseline: ``None`` (zeros), a number, or a tensor (pytree) broadcastable to ``x``.
      generator: random source for the coalitions.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``K + 1`` rows of ``fn``.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).
      compile: run the kernel through ``torch.compile`` (see :func:`input_gradients`).

    Returns:
      Attributions shaped like ``x`` (``(B, T, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
      >>> x = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
      >>> g = torch.Generator().manual_seed(0)
      >>> lime(lambda x: x @ w + 1.0, x, n_samples=50, generator=g).round(decimals=12)
      tensor([[ 1., -4.,  9.]], dtype=torch.float64)

    References:
      Ribeiro, Singh and Guestrin, "Why Should I Trust You?: Explaining the
      Predictions of Any Classifier", KDD 2016.
    """
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    baseline = check_baseline(baseline, x)
    _check_generator(generator)
    n_samples = check_positive_int(n_samples, "n_samples")
    for name, value, bound in (("kernel_width", kernel_width, "> 0"), ("ridge", ridge, ">= 0")):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
        if not math.isfinite(value) or value < 0 or (bound == "> 0" and value == 0):
            raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    _, members = group_matrix(groups, first_sample(x))  # (G, D)
    n_groups = members.shape[0]
    drawn = torch.rand(n_samples, n_groups, generator=generator, dtype=F64) < 0.5
    present = torch.cat([torch.ones(1, n_groups, dtype=torch.bool), drawn])  # (K + 1, G)
    coef = _lime_coefficients(present, float(kernel_width), float(ridge))
    return _fit(fn, x, target, baseline, members, present, coef, chunk_size, vectorize, compile)
