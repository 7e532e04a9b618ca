"""compile=True defects found by the benchmarks (issue 5); each test fails until its fix lands.

They are marked ``xfail(strict=True)``: the suite stays green while the bug exists, and
a fix turns the test into an XPASS failure, the signal to drop the marker.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

import tfx_explain as tx
from tfx_explain._evaluate import CompileFallbackWarning


def _calls(run):
    """Run ``run()`` with every warning recorded; return ``(result, warning categories)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run()
    return result, {w.category for w in caught}


# torch 2.13 compiles functorch grad wrongly when module params require grad (all-zero
# input gradients here); the compiled path now calls modules with detached parameters
@pytest.mark.parametrize("vectorize", ["vmap", "batch"])
def test_compiled_gradients_of_a_conv_relu_pool_module_match_eager(vectorize):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)
    ).eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    eager = tx.input_gradients(net, x, target=0, vectorize=vectorize)
    fast, _ = _calls(
        lambda: tx.input_gradients(net, x, target=0, vectorize=vectorize, compile=True)
    )
    assert eager.abs().max() > 0
    torch.testing.assert_close(fast, eager)


@pytest.mark.xfail(
    strict=True,
    reason="a compile=True call under vmap (smoothgrad) makes dynamo skip the kernel's code "
    "for good: later compile=True calls of that method silently run eagerly",
)
def test_compile_still_compiles_after_a_call_under_smoothgrad():
    torch._dynamo.reset()
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    weights = torch.tensor([1.0, -2.0, 3.0, 0.5])

    def first(x):
        return torch.sin(x) @ weights

    def second(x):
        return torch.cos(x) @ weights

    smooth = tx.smoothgrad(tx.input_gradients, n_samples=2, generator=torch.Generator())
    _calls(lambda: smooth(first, x, compile=True))
    compiled_before = counters["frames"]["ok"]
    _calls(lambda: tx.input_gradients(second, x, compile=True))  # new fn: must compile
    assert counters["frames"]["ok"] > compiled_before


@pytest.mark.xfail(
    strict=True,
    reason="after torch.compile fails on a kernel, every later call re-attempts compilation "
    "(and warns again) before falling back to eager",
)
def test_a_failed_compile_is_not_retried_on_every_call():
    torch._dynamo.reset()
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(4, 2, batch_first=True).eval()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = attention

        def forward(self, x):  # fused CPU attention: its backward does not compile
            return self.attention(x, x, x, need_weights=False)[0].sum((1, 2))

    net = Net().eval()
    x = torch.rand(3, 5, 4, generator=torch.Generator().manual_seed(1))
    eager = tx.input_gradients(net, x, vectorize="batch")
    first, warned = _calls(lambda: tx.input_gradients(net, x, vectorize="batch", compile=True))
    assert CompileFallbackWarning in warned
    torch.testing.assert_close(first, eager)
    attempts = counters["frames"]["total"]
    _calls(lambda: tx.input_gradients(net, x, vectorize="batch", compile=True))
    assert counters["frames"]["total"] == attempts
