"""Each claim of docs/captum.md, checked against Captum 0.9 on the same function."""

import functools

import pytest
import torch

import tfx_explain as tx

attr = pytest.importorskip("captum.attr")

G = {"a": [0, 1], "b": [2, 3, 4]}  # our groups
MASK = torch.tensor([[0, 0, 1, 1, 1]])  # the same groups as Captum's feature_mask


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net = net.double().eval().requires_grad_(False)
    return lambda x: net(x).squeeze(-1)  # (B, 5) -> (B,)


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_n_steps_is_steps_and_both_default_to_50_gauss_legendre(model, x):
    ours = tx.integrated_gradients(model, x, steps=20)  # rule="gauss_legendre" by default
    theirs = attr.IntegratedGradients(model).attribute(x, n_steps=20)  # method="gausslegendre"
    # the same rule; Captum's nodes are not float64-exact, so float64 results agree to ~1e-8
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-9)
    assert not torch.allclose(ours, theirs, rtol=1e-12, atol=0.0)
    default = tx.integrated_gradients(model, x)
    torch.testing.assert_close(
        default, attr.IntegratedGradients(model).attribute(x), rtol=1e-7, atol=1e-9
    )


def test_internal_batch_size_counts_rows_chunk_size_counts_samples(model, x):
    seen = []

    def counting(z):
        seen.append(z.shape[0])
        return model(z)

    attr.IntegratedGradients(counting).attribute(x, n_steps=10, internal_batch_size=10)
    # Captum: at most 10 rows per pass, made of whole steps of the batch (3 steps x 3 samples)
    assert seen == [9, 9, 9, 3]
    seen.clear()
    tx.integrated_gradients(counting, x, steps=10, chunk_size=1, vectorize="batch")
    assert max(seen) == 10  # chunk_size=1 sample x 10 steps: the same 10 rows


def test_feature_mask_is_groups_and_a_group_value_is_shared_not_repeated(model, x):
    ours = tx.feature_ablation(model, x, groups=G)
    theirs = attr.FeatureAblation(model).attribute(x, feature_mask=MASK)
    sizes = torch.tensor([2.0, 2.0, 3.0, 3.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(ours * sizes, theirs)  # Captum repeats the group's value
    shap = tx.shapley_values(model, x, groups=G, baseline=0.0)
    exact = attr.ShapleyValues(model).attribute(x, feature_mask=MASK)
    assert shap.dtype == torch.float64 and exact.dtype == torch.float32  # Captum 0.9 downcasts
    torch.testing.assert_close(shap * sizes, exact.double(), rtol=1e-5, atol=1e-6)
    # ours sum over a group to its value, so a group's features add up to the prediction
    gap = tx.group_attributions(shap, G).sum(-1) - (model(x) - model(torch.zeros_like(x)))
    assert gap.abs().max() < 1e-12


def test_saliency_takes_the_absolute_value_by_default(model, x):
    theirs = attr.Saliency(model).attribute(x.clone().requires_grad_())
    ours = tx.input_gradients(model, x)
    assert (ours < 0).any()  # ours keep the sign
    torch.testing.assert_close(ours.abs(), theirs)
    signed = attr.Saliency(model).attribute(x.clone().requires_grad_(), abs=False)
    torch.testing.assert_close(ours, signed)


def test_noise_tunnel_smoothgrad_is_smoothgrad_of_a_method(model, x):
    ig = functools.partial(tx.integrated_gradients, steps=8)
    smooth = tx.smoothgrad(ig, n_samples=4, sigma=0.0)  # no noise: the mean of equal copies
    torch.testing.assert_close(smooth(model, x), ig(model, x))
    tunnel = attr.NoiseTunnel(attr.IntegratedGradients(model))
    theirs = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=4, stdevs=0.0, n_steps=8)
    torch.testing.assert_close(smooth(model, x), theirs, rtol=1e-7, atol=1e-9)


def test_layer_integrated_gradients_is_ig_of_the_rest_at_the_layer(x):
    torch.manual_seed(2)
    first = torch.nn.Linear(5, 4).double().eval().requires_grad_(False)
    rest = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    rest = rest.double().eval().requires_grad_(False)
    whole = torch.nn.Sequential(first, rest)
    with torch.no_grad():
        e, e0 = first(x), first(torch.zeros_like(x))
    ours = tx.integrated_gradients(rest, e, baseline=e0, steps=16)
    theirs = attr.LayerIntegratedGradients(whole, first).attribute(x, n_steps=16)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
