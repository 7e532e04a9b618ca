"""Issue 13: bounded sizes, no silent zeros, NaN not hidden, shapes and options refused clearly.

Every refusal is tested without allocating what it refuses.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest
import torch

import tfx_explain as tx
from tfx_explain import MAX_SAMPLES, MAX_STEPS

W = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
X = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=torch.float64)


def linear(x):
    return x @ W


def detached(x):
    return (x @ W).detach()


def no_grad(x):
    with torch.no_grad():
        return x @ W


def integer_valued(x):
    return (x @ W).round().long()


# ---- 1. unbounded sizes are refused, naming the argument and the limit -----------------


@pytest.mark.parametrize("rule", sorted(tx.RULES))
def test_steps_beyond_the_cap_are_refused_by_every_rule(rule):
    with pytest.raises(ValueError, match=f"steps must be <= {MAX_STEPS}, got 1000000000"):
        tx.quadrature(rule, 10**9)
    with pytest.raises(ValueError, match=f"steps must be <= {MAX_STEPS}"):
        tx.integrated_gradients(linear, X, steps=10**9, rule=rule)


def test_adaptive_max_steps_is_capped():
    with pytest.raises(ValueError, match=f"max_steps must be <= {MAX_STEPS}, got {2**40}"):
        tx.adaptive_integrated_gradients(linear, X, tol=1e-300, max_steps=2**40)
    with pytest.raises(ValueError, match="tol"):
        tx.adaptive_integrated_gradients(linear, X, tol=math.inf)


def test_sample_counts_beyond_the_cap_are_refused():
    with pytest.raises(ValueError, match=f"n_samples must be <= {MAX_SAMPLES}, got 1000000000"):
        tx.smoothgrad(tx.input_gradients, n_samples=10**9)
    with pytest.raises(ValueError, match=f"n_samples must be <= {MAX_SAMPLES}"):
        tx.expected_gradients(linear, X, baselines=torch.zeros_like(X), n_samples=10**9)
    with pytest.raises(ValueError, match=f"n_permutations must be <= {MAX_SAMPLES}"):
        tx.shapley_values(linear, X, n_permutations=10**9)


@pytest.mark.parametrize("steps", [101, 150, 1001])
def test_gauss_legendre_beyond_the_dense_method_matches_numpy(steps):
    # above 100 nodes the rule comes from Newton's method in O(S) memory
    alphas, weights = tx.quadrature("gauss_legendre", steps)
    nodes, reference = np.polynomial.legendre.leggauss(steps)
    np.testing.assert_allclose(alphas.numpy(), (nodes + 1) / 2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights.numpy(), reference / 2, rtol=1e-8, atol=0)
    assert math.fsum(weights.tolist()) == 1.0
    assert bool((alphas[1:] > alphas[:-1]).all())  # ascending, each node once
    # exact up to degree 2S - 1, closer than numpy's own weights (7e-11 at S = 1001)
    for degree in (5, 200, 2 * steps - 1):
        total = math.fsum((weights * alphas**degree).tolist())
        assert total * (degree + 1) == pytest.approx(1.0, abs=5e-12)


def test_gauss_legendre_at_4096_nodes_is_exact_on_high_degree_polynomials(monkeypatch):
    def dense(*args):
        raise AssertionError("leggauss builds an (S, S) matrix")

    monkeypatch.setattr(np.polynomial.legendre, "leggauss", dense)
    alphas, weights = tx.quadrature("gauss_legendre", 4096)
    assert alphas.shape == weights.shape == (4096,)
    for degree in (0, 1, 7, 100, 2001, 8191):
        assert float((weights * alphas**degree).sum()) == pytest.approx(1 / (degree + 1), 1e-12)


# ---- 5. gradients of an fn autograd cannot see: one clear error on every route ----------


@pytest.mark.parametrize("vectorize", ["vmap", "batch"])
@pytest.mark.parametrize("fn", [detached, no_grad], ids=["detached", "no_grad"])
@pytest.mark.parametrize(
    "method",
    [
        tx.input_gradients,
        tx.gradient_x_input,
        tx.integrated_gradients,
        lambda fn, x, **kw: tx.expected_gradients(fn, x, baselines=torch.zeros_like(x), **kw),
        lambda fn, x, **kw: tx.smoothgrad(tx.input_gradients, n_samples=2)(fn, x, **kw),
    ],
    ids=["grad", "gxi", "ig", "eg", "smoothgrad"],
)
def test_gradients_of_a_disconnected_fn_are_refused(method, fn, vectorize):
    with pytest.raises(ValueError, match="fn's output does not depend on its input"):
        method(fn, X, vectorize=vectorize)


@pytest.mark.parametrize("fn", [detached, no_grad], ids=["detached", "no_grad"])
def test_integrated_hessians_of_a_disconnected_fn_are_refused(fn):
    with pytest.raises(ValueError, match="fn's output does not depend on its input"):
        tx.integrated_hessians(fn, X, steps=4)


@pytest.mark.parametrize("vectorize", ["vmap", "batch"])
@pytest.mark.parametrize(
    "method",
    [
        tx.input_gradients,
        tx.integrated_gradients,
        lambda fn, x, **kw: tx.occlusion(fn, x, window=1, **kw),
        lambda fn, x, **kw: tx.feature_ablation(fn, x, groups=None, **kw),
        tx.shapley_values,
    ],
    ids=["grad", "ig", "occlusion", "ablation", "shapley"],
)
def test_an_integer_valued_fn_is_refused_by_every_method(method, vectorize):
    with pytest.raises(TypeError, match="fn must return a floating tensor, got dtype torch.int64"):
        method(integer_valued, X, vectorize=vectorize)


def test_a_connected_fn_still_differentiates_through_the_check():
    # the check is static (requires_grad): grad of IG through it stays exact
    def total(x):
        return tx.integrated_gradients(lambda z: (z**2).sum(-1), x, steps=4).sum()

    grads = torch.func.grad(total)(X)
    torch.testing.assert_close(grads, 2 * X)  # IG of sum z^2 is x^2 exactly


# ---- 6. summaries refuse NaN, empty batches; compute in floating point ----------------


def test_global_importance_refuses_nan_naming_the_sample():
    attr = torch.tensor([[1.0, 2.0], [3.0, math.nan]])
    with pytest.raises(ValueError, match="sample 1 holds nan"):
        tx.global_importance(attr)
    with pytest.raises(ValueError, match="sample 1 holds nan"):
        tx.global_importance(attr, groups={"a": [0], "b": [1]})
    with pytest.raises(ValueError, match=r"B >= 1.*\(0, 3\)"):
        tx.global_importance(torch.zeros(0, 3))


def test_combine_refuses_nan_and_keeps_fractions_of_integer_attributions():
    with pytest.raises(ValueError, match=r"attributions\[0\] must be finite, but sample 0"):
        tx.combine(torch.tensor([[math.nan, 1.0]]), torch.tensor([[1.0, 1.0]]))
    out = tx.combine(torch.tensor([[2, 1]]), torch.tensor([[1, 1]]))
    assert out.is_floating_point()
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.75]]))


# ---- 7. shapes and options ----------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda x: tx.integrated_gradients(lambda z: z * 2, x),
        lambda x: tx.input_gradients(lambda z: z * 2, x),
        lambda x: tx.feature_ablation(lambda z: z * 2, x, groups=None),
        lambda x: tx.shapley_values(lambda z: z * 2, x),
        lambda x: tx.completeness_gap(lambda z: z * 2, x, x),
        lambda x: tx.adaptive_integrated_gradients(lambda z: z * 2, x),
        lambda x: tx.occlusion(lambda z: z * 2, x, window=1),
    ],
    ids=["ig", "grad", "ablation", "shapley", "gap", "adaptive", "occlusion"],
)
def test_x_without_a_feature_dim_is_refused_at_the_boundary(call):
    with pytest.raises(ValueError, match=r"x must have shape \(B, \*F\).*x\[:, None\]"):
        call(torch.ones(4))


def test_occlusion_refuses_strides_that_leave_features_uncovered():
    x = torch.arange(1.0, 6.0)[None]
    with pytest.raises(ValueError, match=r"stride \(2,\) is larger than the window \(1,\)"):
        tx.occlusion(lambda z: z.sum(-1), x, window=1, stride=2)
    # a window spanning the dimension covers every feature whatever the stride
    out = tx.occlusion(lambda z: z.sum(-1), x, window=5, stride=7)
    torch.testing.assert_close(out, torch.full_like(x, 15.0))  # the one drop, f(x) - f(0)


def test_tuple_baselines_accept_python_ints():
    x = (torch.ones(1, 2), torch.ones(1, 2), torch.ones(1, 2))

    def fn(z):
        return z[0].sum(-1) + z[1].sum(-1) + z[2].sum(-1)

    attr = tx.integrated_gradients(fn, x, baseline=(2, 3.0, 4), steps=4)
    for a, b in zip(attr, (2, 3, 4), strict=True):
        torch.testing.assert_close(a, torch.full((1, 2), 1.0 - b))
    with pytest.raises(ValueError, match=r"baseline\[1\] must be finite"):
        tx.integrated_gradients(fn, x, baseline=(2, math.inf, 4))


def test_bad_options_get_clear_errors():
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype.*'float64'"):
        tx.quadrature("gauss_legendre", 5, dtype="float64")
    with pytest.raises(ValueError, match="sigma must be finite, got inf"):
        tx.smoothgrad(tx.input_gradients, sigma=math.inf)
    with pytest.raises(ValueError, match=r"target of shape \(2, 0\) holds no targets"):
        tx.integrated_hessians(
            lambda z: torch.stack([z.sum(-1), z.prod(-1)], -1),
            X,
            target=torch.zeros(2, 0, dtype=torch.long),
        )


# ---- 3. decompression bomb: declared sizes are checked before inflating ---------------


def test_load_params_refuses_a_file_declaring_more_than_max_bytes(tmp_path, monkeypatch):
    from tfx_explain.people import init_transformer_net, load_params, save_params

    good = tmp_path / "net.pt"
    save_params(init_transformer_net(), good)
    assert set(load_params(good)) == set(init_transformer_net())
    # a small DEFLATE entry that inflates to 8 MB: refused from the zip directory alone
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("archive/data/99", b"\0" * 8_000_000, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 100_000
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(ValueError, match=r"declares 8,0\d\d,\d\d\d bytes.*max_bytes = 1,000,000"):
        load_params(bomb, max_bytes=1_000_000)
    assert loads == []  # nothing was inflated


def test_load_params_names_the_feature_count_of_another_architecture(tmp_path):
    from tfx_explain.people import init_transformer_net, load_params, save_params

    path = tmp_path / "five.pt"
    save_params(init_transformer_net(n_features=5), path)
    with pytest.raises(ValueError, match="expected 8 features, the file has 5"):
        load_params(path, n_features=8)
