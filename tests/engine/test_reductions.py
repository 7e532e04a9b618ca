"""path_sum is the weighted sum over the path axis, for any feature shape."""

import pytest
import torch

from tfx_explain._engine.reductions import path_sum


@pytest.mark.parametrize("features", [(3,), (2, 3, 4), (0,), (5, 0)])
def test_path_sum_is_the_weighted_sum_over_the_path(features):
    gen = torch.Generator().manual_seed(0)
    values = torch.randn((4, 7) + features, generator=gen, dtype=torch.float64)
    weights = torch.rand(7, generator=gen, dtype=torch.float64)
    expected = (values * weights.reshape((1, 7) + (1,) * len(features))).sum(1)
    out = path_sum(weights, values)
    assert out.shape == (4,) + features and out.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-13, atol=1e-13)


def test_path_sum_computes_in_the_values_dtype_and_composes_with_vmap():
    values = torch.randn(2, 4, 5, 6)  # vmapped over the 2: each (n=4, S=5, D=6)
    weights = torch.rand(5, dtype=torch.float64)
    assert path_sum(weights, values[0]).dtype == torch.float32
    batched = torch.func.vmap(lambda v: path_sum(weights, v))(values)
    torch.testing.assert_close(batched, torch.stack([path_sum(weights, v) for v in values]))
