"""Per-sample reductions over the rows a method built for each sample."""

from __future__ import annotations

import math

import torch

__all__ = ["path_sum"]


def path_sum(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    r"""The quadrature sum over a path axis: ``(n, S, *F) -> (n, *F)``.

    .. math::

        \text{out}_{i} = \sum_{s=1}^{S} w_s \, \text{values}_{i s}

    One batched vector-matrix product over ``(n, S, prod F)``: ``tensordot`` over
    the middle axis copies ``values`` into ``(n, *F, S)`` order first, measured 10x
    slower for the MLP benchmark's 78 x 50 x 100 gradients (309 against 29 us).
    """
    n, steps, features = values.shape[0], values.shape[1], values.shape[2:]
    flat = values.reshape(n, steps, math.prod(features))
    return torch.matmul(weights.to(values.dtype), flat).reshape((n,) + features)
