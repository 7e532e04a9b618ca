"""The README's one-line workaround for an ``fn`` with one value per batch."""

from __future__ import annotations

import torch

import tfx_explain as tx

F64 = torch.float64


def test_a_batch_value_is_explained_as_one_sample_of_the_whole_batch():
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)

    def loss(z):  # (B, F) -> (): one value for the batch
        return ((z @ w) ** 2).mean()

    grads = tx.input_gradients(lambda z: loss(z[0]).reshape(1), x.unsqueeze(0))[0]
    torch.testing.assert_close(grads, torch.func.grad(loss)(x), rtol=0, atol=1e-12)
    ig = tx.integrated_gradients(lambda z: loss(z[0]).reshape(1), x.unsqueeze(0), steps=4)[0]
    assert ig.shape == x.shape
    torch.testing.assert_close(ig.sum(), loss(x) - loss(torch.zeros_like(x)), rtol=0, atol=1e-12)
