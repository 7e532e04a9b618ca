"""compile=True defects found by the benchmarks (issue 5), each kept as a regression test."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

import tfx_explain as tx
from tfx_explain._engine import rows as _evaluate
from tfx_explain._engine.rows import CompileFallbackWarning
from tfx_explain._gradients import _gradient_rows


def _calls(run):
    """Run ``run()`` with every warning recorded; return ``(result, warning categories)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run()
    return result, {w.category for w in caught}


# torch 2.13 compiles functorch grad wrongly when module params require grad (all-zero
# input gradients here); the compiled path now calls modules with detached parameters
@pytest.mark.parametrize("vectorize", ["auto", "vmap", "batch"])
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


# a compile=True call under vmap (smoothgrad used to vmap its method) made dynamo skip the
# kernel's code for good; transformed calls now run the eager kernel and leave it alone
def test_compile_still_compiles_after_a_call_under_vmap():
    torch._dynamo.reset()
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    weights = torch.tensor([1.0, -2.0, 3.0, 0.5])

    def first(x):
        return torch.sin(x) @ weights

    def second(x):
        return torch.cos(x) @ weights

    _calls(lambda: torch.func.vmap(lambda z: tx.input_gradients(first, z, compile=True))(x[None]))
    compiled_before = counters["frames"]["ok"]
    _calls(lambda: tx.input_gradients(second, x, compile=True))  # new fn: must compile
    assert counters["frames"]["ok"] > compiled_before


def test_a_failed_compile_is_not_retried_for_the_same_fn(monkeypatch):
    # a backend that always fails: the first call warns and runs eagerly, later calls
    # with the same fn go straight to eager (no new attempt, no new warning)
    attempts = []

    def broken(fn, *args):
        attempts.append(fn)
        raise RuntimeError("backend exploded")

    monkeypatch.setitem(_evaluate._COMPILED, _gradient_rows, broken)
    monkeypatch.setattr(_evaluate, "_FAILED", {})
    weights = torch.tensor([1.0, -2.0, 3.0])
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(0))

    def fn(x):
        return torch.sin(x) @ weights

    eager = tx.input_gradients(fn, x)
    with pytest.warns(CompileFallbackWarning, match="backend exploded"):
        first = tx.input_gradients(fn, x, compile=True)
    second, warned = _calls(lambda: tx.input_gradients(fn, x, compile=True))
    assert len(attempts) == 1 and not warned
    torch.testing.assert_close(first, eager, rtol=0, atol=0)
    torch.testing.assert_close(second, eager, rtol=0, atol=0)
    tx.input_gradients(lambda x: torch.cos(x) @ weights, x, compile=False)
    assert len(attempts) == 1  # compile=False never touches the compiled kernel
