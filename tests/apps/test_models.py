"""Tests for tfx_explain.people: the functional TransformerNet and its nn.Module face."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn
from torch.func import grad, vmap

from tfx_explain.people import (
    TransformerNet,
    init_transformer_net,
    transformer_net,
)
from tfx_explain.people._model import _encoder, _positional_encoding

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks._seed_model import seed_module_from_params  # noqa: E402

D, H = 4, 2


def _params(seed=0, dtype=torch.float32, **options):
    return init_transformer_net(
        generator=torch.Generator().manual_seed(seed), dtype=dtype, **options
    )


def _noisy_params(seed=0, dtype=torch.float32):
    """Params with nonzero biases, embeddings and non-unit norm scales: every term matters."""
    gen = torch.Generator().manual_seed(seed + 100)
    params = _params(seed, dtype)
    for key, value in params.items():
        noise = 0.3 * torch.randn(value.shape, generator=gen, dtype=dtype)
        if key.endswith("norm1_weight") or key.endswith("norm2_weight"):
            params[key] = 1 + noise
        elif key.endswith("bias") or key.startswith("embed"):
            params[key] = noise
    return params


_NOISY_DOUBLE = _noisy_params(30, torch.float64)


def _row_fn(params):
    return lambda row: transformer_net(params, row[None])[0]


# --- init -----------------------------------------------------------------------------------


def test_init_keys_and_shapes():
    params = _params(n_features=5, d_embed=6, n_heads=3, d_ff=7, n_layers=3, d_hidden=9)
    assert params["embed_weight"].shape == params["embed_bias"].shape == (5, 6)
    for layer in range(3):
        shapes = {k.removeprefix(f"layer{layer}_"): v.shape for k, v in params.items()}
        assert shapes["qkv_weight"] == (3, 3, 2, 6)
        assert shapes["qkv_bias"] == (3, 3, 2)
        assert shapes["out_weight"] == (6, 6)
        assert shapes["ff1_weight"] == (7, 6) and shapes["ff1_bias"] == (7,)
        assert shapes["ff2_weight"] == (6, 7) and shapes["ff2_bias"] == (6,)
        for key in ("out_bias", "norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias"):
            assert shapes[key] == (6,)
    assert params["hidden_weight"].shape == (9, 30) and params["hidden_bias"].shape == (9,)
    assert params["output_weight"].shape == (1, 9) and params["output_bias"].shape == (1,)
    assert len(params) == 6 + 3 * 12
    assert all("." not in key for key in params)
    assert transformer_net(params, torch.rand(4, 5)).shape == (4,)


def test_init_follows_pytorch_defaults():
    params = _params()
    assert params["embed_weight"].abs().max() <= 0.01
    assert params["embed_weight"].abs().max() > 0.005
    for key in ("embed_bias", "layer0_qkv_bias", "layer1_out_bias", "layer0_norm1_bias"):
        assert torch.equal(params[key], torch.zeros_like(params[key]))
    assert torch.equal(params["layer1_norm2_weight"], torch.ones(D))
    assert params["layer0_qkv_weight"].abs().max() <= math.sqrt(6 / (D + 3 * D))
    for key, fan_in in (("layer0_ff1", D), ("layer0_ff2", 10), ("hidden", 32), ("output", 10)):
        for suffix in ("_weight", "_bias"):
            assert params[key + suffix].abs().max() <= 1 / math.sqrt(fan_in) + 1e-7
    # layers are drawn independently, unlike nn.TransformerEncoder's deep copies
    assert not torch.equal(params["layer0_ff1_weight"], params["layer1_ff1_weight"])


def test_init_is_reproducible_and_pure():
    a, b, c = _params(3), _params(3), _params(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["hidden_weight"], c["hidden_weight"])
    default, again = init_transformer_net(), init_transformer_net()
    assert all(torch.equal(default[k], again[k]) for k in default)
    double = _params(3, torch.float64)
    assert all(v.dtype == torch.float64 for v in double.values())


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"n_features": 0}, ValueError, "n_features must be >= 1, got 0"),
        ({"n_layers": -1}, ValueError, "n_layers must be >= 1, got -1"),
        ({"d_ff": 2.0}, TypeError, "d_ff must be an int, got float"),
        ({"d_hidden": True}, TypeError, "d_hidden must be an int, got bool"),
        ({"d_embed": 6, "n_heads": 4}, ValueError, "d_embed must be divisible by n_heads=4, got 6"),
        ({"d_embed": 3, "n_heads": 1}, ValueError, "d_embed must be even .* got 3"),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
        ({"dtype": torch.int64}, TypeError, "dtype must be a floating torch.dtype"),
    ],
)
def test_init_validates_options(options, error, match):
    with pytest.raises(error, match=match):
        init_transformer_net(**options)


def test_init_is_keyword_only():
    with pytest.raises(TypeError):
        init_transformer_net(8)


# --- forward: correctness against PyTorch ----------------------------------------------------


def test_positional_encoding_formula():
    pe = _positional_encoding(8, 6, dtype=torch.float64, device="cpu")
    for p in range(8):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-15)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-15)


def _torch_encoder_from_params(params, dtype):
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(
            d_model=D, nhead=H, dim_feedforward=10, batch_first=True, dropout=0.0
        ),
        num_layers=2,
        enable_nested_tensor=False,
    ).to(dtype)
    with torch.no_grad():
        for index, layer in enumerate(encoder.layers):
            p = {k.removeprefix(f"layer{index}_"): v for k, v in params.items()}
            layer.self_attn.in_proj_weight.copy_(p["qkv_weight"].reshape(3 * D, D))
            layer.self_attn.in_proj_bias.copy_(p["qkv_bias"].reshape(3 * D))
            layer.self_attn.out_proj.weight.copy_(p["out_weight"])
            layer.self_attn.out_proj.bias.copy_(p["out_bias"])
            for ours, theirs in (
                ("ff1", layer.linear1),
                ("ff2", layer.linear2),
                ("norm1", layer.norm1),
                ("norm2", layer.norm2),
            ):
                theirs.weight.copy_(p[ours + "_weight"])
                theirs.bias.copy_(p[ours + "_bias"])
    return encoder.eval()


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 5e-6), (torch.float64, 1e-13)])
def test_encoder_equals_torch_transformer_encoder(dtype, tol):
    params = _noisy_params(1, dtype)
    encoder = _torch_encoder_from_params(params, dtype)
    z = torch.randn(64, 8, D, generator=torch.Generator().manual_seed(2), dtype=dtype)
    ours = _encoder(params, z, 2)  # (B, F, D)
    torch.testing.assert_close(ours, encoder(z), atol=tol, rtol=tol)
    with torch.no_grad():  # the fused fast path of nn.TransformerEncoderLayer
        torch.testing.assert_close(ours, encoder(z), atol=tol, rtol=tol)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.float64, 1e-14)])
def test_transformer_net_equals_seed_module(dtype, tol):
    params = _noisy_params(2, dtype)
    seed_net = seed_module_from_params(params)
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(3), dtype=dtype)
    out = transformer_net(params, x)
    assert out.shape == (100,) and out.dtype == dtype
    torch.testing.assert_close(out, seed_net(x), atol=tol, rtol=tol)
    # the input gradient, which attribution methods use, agrees too
    x_leaf = x.clone().requires_grad_()
    seed_net(x_leaf).sum().backward()
    torch.testing.assert_close(vmap(grad(_row_fn(params)))(x), x_leaf.grad, atol=tol, rtol=tol)


def test_float64_gradcheck():
    params = _noisy_params(4, torch.float64)
    x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        functools.partial(transformer_net, params), (x,), fast_mode=True
    )


# --- rows are independent --------------------------------------------------------------------


def test_output_is_independent_of_batch_order_and_neighbours():
    params = _noisy_params(5, torch.float64)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    out = transformer_net(params, x)
    perm = torch.randperm(30, generator=gen)
    torch.testing.assert_close(transformer_net(params, x[perm]), out[perm], atol=1e-14, rtol=0)
    alone = torch.cat([transformer_net(params, row[None]) for row in x])
    torch.testing.assert_close(alone, out, atol=1e-14, rtol=0)
    others = torch.randn(50, 8, generator=gen, dtype=torch.float64)
    embedded = transformer_net(params, torch.cat([others[:20], x[:1], others[20:]]))
    torch.testing.assert_close(embedded[20], out[0], atol=1e-14, rtol=0)


@settings(max_examples=15, deadline=None)
@given(
    rows=arrays(np.float64, st.tuples(st.integers(1, 12), st.just(8)), elements=st.floats(-5, 5)),
    data=st.data(),
)
def test_rows_are_independent_property(rows, data):
    params = _NOISY_DOUBLE
    x = torch.from_numpy(rows)
    order = torch.tensor(data.draw(st.permutations(range(len(x)))))
    out = transformer_net(params, x)
    torch.testing.assert_close(transformer_net(params, x[order]), out[order], atol=1e-13, rtol=0)
    torch.testing.assert_close(transformer_net(params, x[-1:]), out[-1:], atol=1e-13, rtol=0)


def test_large_batch():
    params = _params(7)
    x = torch.rand(6000, 8, generator=torch.Generator().manual_seed(8))
    out = transformer_net(params, x)
    assert out.shape == (6000,)
    torch.testing.assert_close(out[5500:5510], transformer_net(params, x[5500:5510]))


def test_empty_batch():
    assert transformer_net(_params(), torch.zeros(0, 8)).shape == (0,)


# --- transforms ------------------------------------------------------------------------------


def test_vmap_grad_matches_loop():
    params = _noisy_params(9)
    x = torch.randn(12, 8, generator=torch.Generator().manual_seed(10))
    per_row = vmap(grad(_row_fn(params)))(x)  # (B, F)
    loop = torch.stack([grad(_row_fn(params))(row) for row in x])
    torch.testing.assert_close(per_row, loop)


def test_nested_vmap_and_higher_order():
    params = _noisy_params(11, torch.float64)
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    nested = vmap(vmap(grad(_row_fn(params))))(x)  # (K, B, F)
    flat = vmap(grad(_row_fn(params)))(x.reshape(15, 8)).reshape(3, 5, 8)
    torch.testing.assert_close(nested, flat, atol=1e-14, rtol=0)
    batched = vmap(functools.partial(transformer_net, params))(x)  # (K, B)
    torch.testing.assert_close(batched, transformer_net(params, x.reshape(15, 8)).reshape(3, 5))
    # reverse-over-reverse (forward AD would import torch's jit-scripted jvp decompositions,
    # which warn on this torch version)
    hessian = vmap(torch.func.jacrev(torch.func.jacrev(_row_fn(params))))(x[0])  # (B, F, F)
    torch.testing.assert_close(hessian, hessian.transpose(-1, -2), atol=1e-10, rtol=0)


def test_grad_with_respect_to_params():
    params = _params(13)
    x, y = torch.rand(10, 8), torch.rand(10)
    grads = grad(lambda p: ((transformer_net(p, x) - y) ** 2).mean())(params)
    assert grads.keys() == params.keys()
    assert all(grads[k].shape == params[k].shape for k in params)
    assert grads["layer0_qkv_weight"].abs().sum() > 0


def test_torch_compile_forward_and_gradient():
    torch._dynamo.reset()
    params = _noisy_params(14)
    model = functools.partial(transformer_net, params)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(15))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    per_row = vmap(grad(_row_fn(params)))
    compiled_grad = torch.compile(per_row, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled_grad(x), per_row(x))


def test_inputs_are_not_mutated():
    params = _noisy_params(16)
    before = {k: v.clone() for k, v in params.items()}
    x = torch.rand(4, 8)
    x_before = x.clone()
    transformer_net(params, x, dropout_generator=torch.Generator().manual_seed(0))
    vmap(grad(_row_fn(params)))(x)
    assert torch.equal(x, x_before) and not x.requires_grad
    assert all(torch.equal(params[k], before[k]) for k in params)


# --- dropout ---------------------------------------------------------------------------------


def test_dropout_only_with_a_generator_and_reproducible():
    params = _noisy_params(17)
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(18))
    plain = transformer_net(params, x)
    torch.testing.assert_close(transformer_net(params, x), plain, atol=0, rtol=0)

    def noisy(seed):
        return transformer_net(params, x, dropout_generator=torch.Generator().manual_seed(seed))

    assert torch.equal(noisy(1), noisy(1))
    assert not torch.allclose(noisy(1), plain)
    assert not torch.allclose(noisy(1), noisy(2))
    # inverted dropout keeps the mean roughly unchanged: 200 masks per row, in one batch
    gen = torch.Generator().manual_seed(3)
    draws = transformer_net(params, x.repeat(200, 1), dropout_generator=gen).view(200, 20)
    assert (draws.mean(0) - plain).abs().mean() < 0.1 * draws.std(0).mean() + 0.05


def test_grad_through_dropout():
    params = _params(19)
    x, y = torch.rand(10, 8), torch.rand(10)

    def loss(p, seed):
        gen = torch.Generator().manual_seed(seed)
        return ((transformer_net(p, x, dropout_generator=gen) - y) ** 2).mean()

    a, b = grad(loss)(params, 5), grad(loss)(params, 5)
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- validation ------------------------------------------------------------------------------


def test_forward_validates_inputs():
    params = _params()
    with pytest.raises(ValueError, match=r"x must have shape \(B, 8\), got \(4, 7\)"):
        transformer_net(params, torch.zeros(4, 7))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 8\), got \(8,\)"):
        transformer_net(params, torch.zeros(8))
    with pytest.raises(TypeError, match="x has dtype torch.float64 but params have dtype"):
        transformer_net(params, torch.zeros(2, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a Tensor, got list"):
        transformer_net(params, [[0.0] * 8])
    with pytest.raises(TypeError, match="dropout_generator must be a torch.Generator"):
        transformer_net(params, torch.zeros(2, 8), dropout_generator=1)
    with pytest.raises(ValueError, match=r"missing keys \['layer1_norm2_bias'\]"):
        transformer_net(
            {k: v for k, v in params.items() if k != "layer1_norm2_bias"}, torch.zeros(1, 8)
        )
    with pytest.raises(ValueError, match=r"unexpected keys \['layer3_qkv_weight'\]"):
        transformer_net(
            {**params, "layer3_qkv_weight": params["layer0_qkv_weight"]}, torch.zeros(1, 8)
        )
    with pytest.raises(TypeError, match="params must be a dict of tensors"):
        transformer_net(list(params.values()), torch.zeros(1, 8))


# --- nn.Module face --------------------------------------------------------------------------


def test_module_agrees_with_function_exactly():
    params = _noisy_params(20)
    net = TransformerNet(params).eval()
    assert [name for name, _ in net.named_parameters()] == list(params)
    x = torch.randn(25, 8, generator=torch.Generator().manual_seed(21))
    assert torch.equal(net(x), transformer_net(params, x))
    # training mode without a dropout generator is deterministic too
    assert torch.equal(net.train()(x), transformer_net(params, x))
    via_functional_call = torch.func.functional_call(net, params, (x,))
    assert torch.equal(via_functional_call, net(x))


def test_module_from_init_options_and_generator():
    net = TransformerNet(generator=torch.Generator().manual_seed(22), n_layers=1, d_hidden=5)
    expected = init_transformer_net(
        generator=torch.Generator().manual_seed(22), n_layers=1, d_hidden=5
    )
    assert net.params().keys() == expected.keys()
    assert all(torch.equal(net.params()[k], expected[k]) for k in expected)
    with pytest.raises(TypeError, match="either params or generator/init options"):
        TransformerNet(expected, n_layers=1)
    with pytest.raises(TypeError, match="dropout_generator must be a torch.Generator"):
        TransformerNet(expected, dropout_generator="seed")


def test_module_never_aliases_the_users_dict():
    params = _params(23)
    before = {k: v.clone() for k, v in params.items()}
    net = TransformerNet(params)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.rand(4, 8)).sum().backward()
    optimizer.step()
    assert all(torch.equal(params[k], before[k]) for k in params)
    assert not torch.equal(net.params()["hidden_weight"], params["hidden_weight"])
    copy = net.params()
    assert not any(v.requires_grad for v in copy.values())
    copy["hidden_weight"].zero_()
    assert net.hidden_weight.abs().sum() > 0


def test_module_dropout_in_training_mode_only():
    params = _params(24)
    net = TransformerNet(params, dropout_generator=torch.Generator().manual_seed(0))
    x = torch.rand(10, 8)
    assert not torch.allclose(net.train()(x), transformer_net(params, x))
    assert torch.equal(net.eval()(x), transformer_net(params, x))
