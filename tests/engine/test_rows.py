"""Chunked evaluation: outputs are checked chunk by chunk and assembled once."""

from __future__ import annotations

import functools

import pytest
import torch

import tfx_explain as tx
from tfx_explain._engine.rows import chunked

W = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)


def _blows_up_on_the_last_sample(x):
    # finite everywhere except where x[..., 0] > 0.9, which only the last sample reaches
    return torch.where(x[..., 0] > 0.9, torch.full_like(x[..., 0], float("nan")), x @ W)


@pytest.mark.parametrize(
    ("method", "what"),
    [
        (tx.integrated_gradients, "on the path from baseline to x"),
        (tx.input_gradients, "at x"),
        (functools.partial(tx.occlusion, window=1), "for a perturbed input"),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 2])
def test_a_non_finite_output_in_any_chunk_is_refused(method, what, chunk_size):
    x = torch.tensor([[0.1, 0.2, 0.3], [0.2, 0.1, 0.0], [0.95, 0.5, 0.5]], dtype=torch.float64)
    with pytest.raises(ValueError, match=f"non-finite value \\(nan\\) {what}"):
        method(_blows_up_on_the_last_sample, x, chunk_size=chunk_size)


def test_chunks_are_written_into_one_result():
    calls = []

    def fun(a, b):
        calls.append(a.shape[0])
        return {"sum": a + b, "a": a * 2}, (a * b).sum(-1)

    a = torch.arange(14.0).reshape(7, 2)
    b = torch.ones(7, 2)
    out = chunked(fun, 3, a, b, what="here")
    assert calls == [3, 3, 1]
    torch.testing.assert_close(out["sum"], a + b, rtol=0, atol=0)
    torch.testing.assert_close(out["a"], a * 2, rtol=0, atol=0)
    assert a.equal(torch.arange(14.0).reshape(7, 2))  # inputs untouched


def test_chunked_keeps_autograd_when_the_result_needs_it():
    a = torch.rand(5, 2, requires_grad=True)
    out = chunked(lambda a: (a.sin(), a.sum(-1)), 2, a, what="here")
    out.sum().backward()
    torch.testing.assert_close(a.grad, a.detach().cos())
