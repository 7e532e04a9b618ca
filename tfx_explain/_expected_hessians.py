r"""Expected Hessians: integrated Hessians averaged over a baseline distribution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import jacrev

from ._engine.batching import expand_targets, prepare
from ._engine.checks import check_inputs, check_positive_int
from ._engine.rows import check_vectorize, chunked, row_gradients

__all__ = ["expected_hessians"]


def _eh_samples(fn, x, t, refs, alphas, betas, vectorize):
    """Expected Hessians of ``n`` samples; ``refs (n, N, *F)``, ``alphas``/``betas (n, N)``."""
    n, n_draws = alphas.shape
    shape = x.shape[1:]
    lift = (n, n_draws) + (1,) * len(shape)
    delta = (x.unsqueeze(1) - refs).flatten(0, 1)  # (n, 1, *F) - (n, N, *F) -> (n N, *F)
    scale = (alphas * betas).to(x.dtype).reshape(lift).flatten(0, 1)  # (n N, 1...)
    point = refs.flatten(0, 1) + scale * delta  # x' + alpha beta (x - x')
    t_rows = None if t is None else t.repeat_interleave(n_draws)

    def summed(rows: torch.Tensor) -> tuple[torch.Tensor, Any]:
        # rows are independent, so d/d rows[r] of sum_r delta_i g_i(rows[r]) is row r's
        grads, values = row_gradients(fn, rows, t_rows, vectorize=vectorize)
        return (delta * grads).flatten(1).sum(0), (delta * grads, values)

    # (D, n N, *F): delta_i H_ij of every row, one vector-Jacobian product per feature i
    jac, (first, values) = jacrev(summed, has_aux=True)(point)
    jac = jac.flatten(2).movedim(0, 1)  # (n N, D_i, D_j)
    gamma = jac * (scale * delta).flatten(1)[:, None, :] + torch.diag_embed(first.flatten(1))
    return gamma.reshape((n, n_draws) + shape + shape).mean(1), values


def expected_hessians(
    fn: Callable,
    x: torch.Tensor,
    *,
    baselines: torch.Tensor,
    n_samples: int = 50,
    generator: torch.Generator | None = None,
    target: Any = None,
    chunk_size: int | None = None,
    vectorize: str = "auto",
) -> torch.Tensor:
    r"""Expected Hessians: feature interactions averaged over baselines and path points.

    .. math::

        \Gamma_{ij}(x) = \mathbb{E}_{x' \sim D,\ \alpha, \beta \sim U(0, 1)}
            \Big[(x_i - x'_i)(x_j - x'_j)\, \alpha\beta\,
            \frac{\partial^2 f_t(p)}{\partial x_i \partial x_j}
            + [i = j]\,(x_i - x'_i) \frac{\partial f_t(p)}{\partial x_i}\Big],
        \qquad p = x' + \alpha\beta (x - x')

    estimated from ``n_samples`` draws per sample: :math:`x'` uniformly from the rows
    of ``baselines``, :math:`\alpha, \beta` uniform, independently per sample, from
    ``generator``. For one fixed baseline the expectation over
    :math:`\alpha, \beta` is :func:`integrated_hessians`; each draw's matrix is
    symmetric, and its rows sum to that draw's expected-gradients term, so
    :math:`\mathbb{E}[\sum_j \Gamma_{ij}] = \mathrm{EG}_i(x)` (see
    :func:`expected_gradients`). Every draw of a chunk of samples is one row of a
    single engine call, differentiated once more per feature (reverse mode).

    Args:
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``, twice differentiable.
      x: input tensor ``(B, *F)``.
      baselines: reference rows ``(M, *F)``, e.g. training data.
      n_samples: draws ``N >= 1`` per sample.
      generator: ``torch.Generator`` for the draws.
      target: ``None``, int, LongTensor ``(B,)`` or ``(B, T)``.
      chunk_size: samples evaluated at once; each costs ``N`` gradient rows times
        ``D`` forward-mode directions.
      vectorize: ``"auto"``, ``"vmap"`` or ``"batch"`` (see :func:`input_gradients`).

    Returns:
      Interactions ``(B, *F, *F)`` (``(B, T, *F, *F)`` for a ``(B, T)`` target).

    Example:
      >>> import torch
      >>> x = torch.tensor([[2.0, 3.0]], dtype=torch.float64)
      >>> refs = torch.zeros(4, 2, dtype=torch.float64)
      >>> g = torch.Generator().manual_seed(0)
      >>> expected_hessians(lambda x: x @ torch.tensor([1.0, -2.0], dtype=torch.float64), x,
      ...                   baselines=refs, n_samples=3, generator=g)
      tensor([[[ 2.,  0.],
               [ 0., -6.]]], dtype=torch.float64)

    References:
      Janizek, Sturmfels and Lee, "Explaining Explanations: Axiomatic Feature
      Interactions for Deep Networks", JMLR 2021 (arXiv 2020).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be one tensor (B, *F) here, got {type(x).__name__}")
    target, chunk_size = prepare(fn, x, target, chunk_size)
    vectorize = check_vectorize(vectorize)
    n_samples = check_positive_int(n_samples, "n_samples")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if not isinstance(baselines, torch.Tensor):
        raise TypeError(f"baselines must be a tensor (M, *F), got {type(baselines).__name__}")
    n_refs = check_inputs(baselines, "baselines")
    if baselines.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"baselines must have shape (M, *F) = (M, {', '.join(map(str, x.shape[1:]))}), "
            f"got {tuple(baselines.shape)}"
        )
    batch = x.shape[0]
    index = torch.randint(n_refs, (batch, n_samples), generator=generator)  # (B, N)
    alphas = torch.rand((batch, n_samples), generator=generator, dtype=torch.float64)
    betas = torch.rand((batch, n_samples), generator=generator, dtype=torch.float64)
    alphas, betas = alphas.to(x.device), betas.to(x.device)
    refs = baselines.to(x.device, x.dtype)[index.to(x.device)]  # (B, N, *F)

    targets, (x, refs, alphas, betas), unexpand = expand_targets(target, x, refs, alphas, betas)

    def evaluate(x, t, refs, alphas, betas):
        return _eh_samples(fn, x, t, refs, alphas, betas, vectorize)

    gamma = chunked(
        evaluate, chunk_size, x, targets, refs, alphas, betas, what="between a baseline and x"
    )
    return unexpand(gamma)
