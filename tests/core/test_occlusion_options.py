"""Occlusion options: windows clipped at the edge, and one window set per leaf of a pytree.

Captum's own test values (``captum/tests/attr/test_occlusion.py``, models from
``captum.testing.helpers.basic_models``) are reproduced exactly, and the clipped
averaging is checked against its closed form for a linear ``fn``.
"""

from __future__ import annotations

import pytest
import torch

import tfx_explain as tx

F64 = torch.float64
ATOL = 1e-12

models = pytest.importorskip("captum.testing.helpers.basic_models")


def _eval(net: torch.nn.Module) -> torch.nn.Module:
    return net.eval()


def test_captum_overhanging_windows_on_basic_multilayer():
    # test_simple_input_shape_with_stride: window 2, stride 2 on 3 features
    net = _eval(models.BasicModel_MultiLayer())
    x = torch.tensor([[20.0, 50.0, 30.0]])
    attr = tx.occlusion(net, x, window=2, stride=2, clip=True, target=0)
    torch.testing.assert_close(attr, torch.tensor([[280.0, 280.0, 120.0]]), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\bclip=True\b"):
        tx.occlusion(net, x, window=2, stride=2, target=0)


def test_captum_multi_input_with_baselines_and_strides():
    # test_multi_input_ablation_with_baselines: a tuple x, one window and stride per leaf
    net = _eval(models.BasicModel_MultiLayer_MultiInput())
    x = (
        torch.tensor([[23.0, 100.0, 0.0], [20.0, 50.0, 30.0]]),
        torch.tensor([[20.0, 50.0, 30.0], [0.0, 100.0, 0.0]]),
        torch.tensor([[0.0, 100.0, 10.0], [2.0, 10.0, 3.0]]),
    )
    baseline = (torch.tensor([[1.0, 4, 7], [3.0, 6, 9]]), 3.0, torch.tensor([[4.0], [6]]))
    baseline = tuple(torch.as_tensor(b) for b in baseline)
    attr = tx.occlusion(
        lambda z: net(*z, 1),
        x,
        window=(3, 1, 2),
        stride=(2, 1, 2),
        clip=True,
        baseline=baseline,
        target=0,
    )
    expected = (
        [[444.0, 444.0, 444.0], [328.0, 328.0, 328.0]],
        [[68.0, 188.0, 108.0], [-12.0, 388.0, -12.0]],
        [[368.0, 368.0, 24.0], [0.0, 0.0, -12.0]],
    )
    assert isinstance(attr, tuple) and len(attr) == 3
    for a, e in zip(attr, expected, strict=True):
        torch.testing.assert_close(a, torch.tensor(e), rtol=0, atol=0)


def test_captum_multi_input_conv():
    # test_simple_multi_input_conv: 2-d windows per leaf, with and without overhang
    net = _eval(models.BasicModel_ConvNet_One_Conv())
    x = (torch.arange(16.0).view(1, 1, 4, 4), torch.ones(1, 1, 4, 4))

    def fn(z):
        return net(*z)

    whole = tx.occlusion(fn, x, window=((1, 4, 4), (1, 4, 4)), target=0)
    torch.testing.assert_close(whole[0], 67 * torch.ones(1, 1, 4, 4), rtol=0, atol=0)
    torch.testing.assert_close(whole[1], 13 * torch.ones(1, 1, 4, 4), rtol=0, atol=0)
    parts = tx.occlusion(
        fn, x, window=((1, 2, 3), (1, 1, 2)), stride=((1, 2, 1), (1, 1, 2)), target=0
    )
    row = [17.0] * 4
    first = torch.tensor([[[row, row, [64.0, 65.5, 65.5, 67.0], [64.0, 65.5, 65.5, 67.0]]]])
    second = torch.tensor([[[[3.0] * 4] * 3 + [[0.0] * 4]]])
    torch.testing.assert_close(parts[0], first, rtol=0, atol=1e-5)
    torch.testing.assert_close(parts[1], second, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "window", "stride"), [(3, 2, 2), (7, 3, 2), (5, 4, 3), (6, 3, 3), (4, 4, 1)]
)
def test_clipped_windows_average_exactly(size, window, stride):
    # linear fn: a window's drop is sum_{j in W} w_j (x_j - x'_j); feature i gets the mean
    g = torch.Generator().manual_seed(size * 10 + window)
    w = torch.randn(size, generator=g, dtype=F64)
    x = torch.randn(3, size, generator=g, dtype=F64)
    baseline = torch.randn(1, size, generator=g, dtype=F64)
    attr = tx.occlusion(
        lambda z: z @ w, x, window=window, stride=stride, clip=True, baseline=baseline
    )
    contrib = w * (x - baseline)
    # Captum's placement: ceil((F - w) / s) + 1 windows, the last one cut at the edge
    n_windows = -(-(size - window) // stride) + 1
    windows = [range(k * stride, min(k * stride + window, size)) for k in range(n_windows)]
    want = torch.zeros_like(x)
    for i in range(size):
        covering = [win for win in windows if i in win]
        want[:, i] = sum(contrib[:, list(win)].sum(1) for win in covering) / len(covering)
    torch.testing.assert_close(attr, want, rtol=0, atol=ATOL)


def test_tree_windows_are_per_leaf_and_match_occluding_each_leaf_alone():
    g = torch.Generator().manual_seed(3)
    w1, w2 = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(2, 3, 2, generator=g, dtype=F64)
    x = {
        "a": torch.randn(2, 6, generator=g, dtype=F64),
        "b": torch.randn(2, 2, 3, generator=g, dtype=F64),
    }

    def fn(t):
        return torch.tanh(t["a"] @ w1 + torch.einsum("bij,ijc->bc", t["b"], w2))

    window, stride = {"a": 3, "b": (1, 2)}, {"a": 2, "b": (1, 2)}
    attr = tx.occlusion(fn, x, window=window, stride=stride, clip=True, baseline=0.5, target=1)
    for n in range(2):  # leaf by leaf, one sample at a time, the other leaf held fixed
        a, b = x["a"][n : n + 1], x["b"][n : n + 1]
        alone_a = tx.occlusion(
            lambda z, b=b: fn({"a": z, "b": b.expand(len(z), -1, -1)}), a, window=3, stride=2,
            clip=True, baseline=0.5, target=1,
        )  # fmt: skip
        alone_b = tx.occlusion(
            lambda z, a=a: fn({"a": a.expand(len(z), -1), "b": z}), b, window=(1, 2),
            stride=(1, 2), clip=True, baseline=0.5, target=1,
        )  # fmt: skip
        torch.testing.assert_close(attr["a"][n : n + 1], alone_a, rtol=0, atol=ATOL)
        torch.testing.assert_close(attr["b"][n : n + 1], alone_b, rtol=0, atol=ATOL)


def test_window_options_are_checked():
    fn, x = (lambda z: z.sum(-1)), torch.ones(2, 5)
    with pytest.raises(ValueError, match=r"\bstride\b"):
        tx.occlusion(fn, x, window=1, stride=2)  # features 1 and 3 would be skipped
    with pytest.raises(TypeError, match=r"\bclip\b"):
        tx.occlusion(fn, x, window=1, clip="yes")
    tree = {"a": torch.ones(2, 3), "b": torch.ones(2, 2)}
    with pytest.raises(ValueError, match=r"\bwindow\b"):
        tx.occlusion(lambda t: t["a"].sum(-1), tree, window={"a": 1})
    with pytest.raises(ValueError, match=r"\bwindow\b"):
        tx.occlusion(lambda t: t[0].sum(-1), (tree["a"], tree["b"]), window=(1, 1, 1))
