"""Under ``torch.inference_mode``: value-only methods run as outside it, gradient ones refuse."""

import pytest
import torch

import tfx_explain as tx

W = torch.tensor([1.0, -2.0, 3.0, 0.5])
X = torch.tensor([[1.0, 2.0, -1.0, 4.0], [0.5, -1.0, 2.0, 1.0]])

METHODS = {
    "occlusion": lambda fn, x: tx.occlusion(fn, x, window=1),
    "feature_ablation": lambda fn, x: tx.feature_ablation(fn, x),
    "shapley_values": lambda fn, x: tx.shapley_values(fn, x),
}


@pytest.mark.parametrize("name", METHODS)
def test_value_only_methods_run_under_inference_mode(name):
    def fn(x):
        return x @ W

    outside = METHODS[name](fn, X)
    with torch.inference_mode():
        inside = METHODS[name](fn, X)
    assert torch.equal(inside, outside)
    torch.testing.assert_close(outside, X * W)  # linear fn: each feature's own term


@pytest.mark.parametrize(
    "method",
    [tx.input_gradients, tx.gradient_x_input, tx.integrated_gradients],
    ids=lambda m: m.__name__,
)
def test_gradient_methods_say_that_inference_mode_has_no_autograd(method):
    with torch.inference_mode(), pytest.raises(ValueError, match="inference_mode"):
        method(lambda x: x @ W, X)
