"""KernelSHAP and LIME: exact identities in float64, and the sampling error's rate.

Exact: KernelSHAP over all coalitions is the Shapley value; LIME of an additive
``fn`` is each group's own change. Independent checks: the fits are recomputed in
the test from the rows ``fn`` was called on (recorded with ``vectorize="batch"``)
with the formulas of the docstrings, solved by ``numpy.linalg.lstsq``; and
KernelSHAP is compared with the SHAP library's KernelExplainer. Sampling: the
error's log-log slope against ``n_samples`` is fitted and must be about -1/2.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import tfx_explain as tx

F64 = torch.float64
ATOL = 1e-12


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mlp(n_in: int, n_out: int = 3, seed: int = 0):
    g = _gen(seed)
    w1 = torch.randn(n_in, 6, generator=g, dtype=F64) / math.sqrt(n_in)
    w2 = torch.randn(6, n_out, generator=g, dtype=F64)

    def fn(x):
        return torch.tanh(x @ w1 + 0.3) @ w2

    return fn


def _data(batch: int = 4, n: int = 6, seed: int = 1):
    g = _gen(seed)
    x = torch.randn(batch, n, generator=g, dtype=F64)
    baseline = torch.randn(1, n, generator=g, dtype=F64)
    target = torch.randint(3, (batch,), generator=g)
    return x, baseline, target


def _slope(ns, errors) -> float:
    """Least-squares slope of log(error) against log(n)."""
    return float(np.polyfit(np.log(ns), np.log(errors), 1)[0])


# ---- KernelSHAP ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 6, 9])
def test_kernel_shap_over_all_coalitions_is_the_shapley_value(n):
    x, baseline, target = _data(n=n)
    fn = _mlp(n)
    exact = tx.shapley_values(fn, x, baseline=baseline, target=target)
    ks = tx.kernel_shap(fn, x, baseline=baseline, target=target)
    torch.testing.assert_close(ks, exact, rtol=0.0, atol=ATOL)


def test_kernel_shap_with_groups_targets_and_trees_is_the_shapley_value():
    x, baseline, _ = _data(n=7)
    fn = _mlp(7)
    groups = {"a": [0, 4], "b": [1], "c": [2, 3, 5], "d": [6]}
    targets = torch.tensor([[0, 2], [1, 1], [2, 0], [0, 1]])  # (B, T)
    exact = tx.shapley_values(fn, x, baseline=baseline, groups=groups, target=targets)
    ks = tx.kernel_shap(fn, x, baseline=baseline, groups=groups, target=targets)
    assert ks.shape == (4, 2, 7)
    torch.testing.assert_close(ks, exact, rtol=0.0, atol=ATOL)
    tree = {"u": x[:, :4], "v": x[:, 4:]}
    b_tree = {"u": baseline[:, :4], "v": baseline[:, 4:]}

    def fn_tree(t):
        return fn(torch.cat([t["u"], t["v"]], 1))

    tree_groups = {"u": "u", "v0": ("v", [0]), "v12": ("v", [1, 2])}
    flat_groups = {"u": [0, 1, 2, 3], "v0": [4], "v12": [5, 6]}
    got = tx.kernel_shap(fn_tree, tree, baseline=b_tree, groups=tree_groups, target=1)
    want = tx.shapley_values(fn, x, baseline=baseline, groups=flat_groups, target=1)
    torch.testing.assert_close(torch.cat([got["u"], got["v"]], 1), want, rtol=0.0, atol=ATOL)


def test_kernel_shap_sampled_keeps_efficiency_exactly():
    x, baseline, target = _data()
    fn = _mlp(6)
    for n_samples in (2, 6, 40):
        phi = tx.kernel_shap(
            fn, x, baseline=baseline, target=target, n_samples=n_samples, generator=_gen(3)
        )
        gap = tx.completeness_gap(fn, x, phi, baseline=baseline, target=target)
        assert float(gap.abs().max()) < ATOL


def test_kernel_shap_error_shrinks_as_one_over_root_n():
    x, baseline, target = _data(n=6)
    fn = _mlp(6)
    exact = tx.shapley_values(fn, x, baseline=baseline, target=target)
    ns = [64, 256, 1024, 4096]
    errors = []
    for n_samples in ns:
        runs = [
            tx.kernel_shap(
                fn, x, baseline=baseline, target=target, n_samples=n_samples, generator=_gen(s)
            )
            for s in range(12)
        ]
        errors.append(float(torch.stack([(r - exact).square().mean() for r in runs]).mean()))
    rms = np.sqrt(errors)
    slope = _slope(ns, rms)
    assert -0.65 < slope < -0.35, (slope, rms)


def test_kernel_shap_shap_sampling_enumerates_whole_sizes_first():
    x, baseline, target = _data(n=6)
    fn = _mlp(6)
    exact = tx.shapley_values(fn, x, baseline=baseline, target=target)
    # a budget of 2^6 - 2 = 62 enumerates every size: exact
    full = tx.kernel_shap(
        fn, x, baseline=baseline, target=target, n_samples=62, sampling="shap", generator=_gen(0)
    )
    torch.testing.assert_close(full, exact, rtol=0.0, atol=ATOL)

    def rms(n_samples, sampling):
        runs = [
            tx.kernel_shap(
                fn,
                x,
                baseline=baseline,
                target=target,
                n_samples=n_samples,
                sampling=sampling,
                generator=_gen(s),
            )
            for s in range(16)
        ]
        gaps = [tx.completeness_gap(fn, x, r, baseline=baseline, target=target) for r in runs]
        assert float(torch.stack(gaps).abs().max()) < ATOL  # efficiency, any draw
        return float(torch.stack([(r - exact).square().mean() for r in runs]).mean().sqrt())

    # sizes 1 and 5 (12 coalitions) enumerated exactly: less error for the same budget
    for n_samples in (32, 48):
        assert rms(n_samples, "shap") < 0.75 * rms(n_samples, "paired")


def _recorder(fn, seen):
    def record(x):
        seen.append(x.detach().clone())
        return fn(x)

    return record


def test_kernel_shap_sampled_is_the_constrained_regression_of_its_rows():
    # recompute the fit from the rows fn saw: eliminate the last group with the
    # efficiency constraint (as the SHAP library does) and solve by lstsq
    x, baseline, target = _data(batch=2, n=5)
    fn, seen = _mlp(5), []
    phi = tx.kernel_shap(
        _recorder(fn, seen),
        x,
        baseline=baseline,
        target=target,
        n_samples=30,
        generator=_gen(4),
        vectorize="batch",
    )
    rows = seen[-1].reshape(2, -1, 5)  # (B, K + 2, D): full, empty, coalitions
    for b in range(2):
        z = (rows[b] == x[b]).double().numpy()  # features differ from the baseline a.s.
        v = fn(rows[b])[:, target[b]].numpy()
        assert (z[0] == 1).all() and (z[1] == 0).all()
        z, y = z[2:], v[2:] - v[1]
        total = v[0] - v[1]
        design = z[:, :-1] - z[:, -1:]
        coef = np.linalg.lstsq(design, y - z[:, -1] * total, rcond=None)[0]
        want = np.append(coef, total - coef.sum())
        np.testing.assert_allclose(phi[b].numpy(), want, rtol=0, atol=1e-10)


def test_kernel_shap_matches_shap_kernel_explainer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap imports matplotlib and numba: their notices
        shap = pytest.importorskip("shap")
    x, baseline, target = _data(batch=3, n=5)
    fn = _mlp(5)

    def model(a):
        return fn(torch.from_numpy(np.asarray(a, dtype=np.float64))).numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's own deprecation and numba notices
        explainer = shap.KernelExplainer(model, baseline.numpy())
        # 2^5 - 2 = 30 coalitions: SHAP enumerates them all, so both are exact
        values = explainer.shap_values(x.numpy(), nsamples=30, silent=True)
    values = np.asarray(values)  # (B, D, C) in shap >= 0.45
    want = values[np.arange(3), :, target.numpy()]
    got = tx.kernel_shap(fn, x, baseline=baseline, target=target)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-10)


# ---- LIME ---------------------------------------------------------------------------


def test_lime_of_a_linear_fn_is_its_coefficients_times_the_difference():
    x, baseline, _ = _data(n=6)
    w = torch.randn(6, 3, generator=_gen(5), dtype=F64)

    def fn(z):
        return z @ w + 1.5

    targets = torch.tensor([[0, 2], [1, 1], [2, 0], [0, 1]])
    attr = tx.lime(fn, x, baseline=baseline, n_samples=40, generator=_gen(6), target=targets)
    want = (w.T[targets] * (x - baseline)[:, None, :]).to(F64)  # (B, T, D)
    torch.testing.assert_close(attr, want, rtol=0.0, atol=ATOL)


def test_lime_of_an_additive_fn_gives_each_group_its_change():
    # f = sum_g h_g(x_g) is linear in the on/off vector, whatever the kernel weights
    x, baseline, _ = _data(n=6)
    groups = {"a": [0, 3], "b": [1], "c": [2, 4, 5]}

    def h(z):  # (B, D) -> (B, 3): one smooth nonlinear term per group
        return torch.stack(
            [torch.sin(z[:, 0] * z[:, 3]), z[:, 1] ** 3, torch.tanh(z[:, [2, 4, 5]].sum(1))], 1
        )

    def mixed(z):
        return z[:, 0] * z[:, 1] * z[:, 2]

    for width in (0.1, 0.25, 3.0):
        attr = tx.lime(
            lambda z: h(z).sum(1),
            x,
            groups=groups,
            baseline=baseline,
            n_samples=30,
            kernel_width=width,
            generator=_gen(7),
        )
        per_group = torch.stack([attr[:, [0, 3]].sum(1), attr[:, 1], attr[:, [2, 4, 5]].sum(1)], 1)
        torch.testing.assert_close(per_group, h(x) - h(baseline.expand_as(x)), rtol=0, atol=ATOL)
        assert torch.equal(attr[:, 0], attr[:, 3])  # shared evenly within a group
    # an interaction is fitted differently for different kernel widths
    narrow, wide = (
        tx.lime(mixed, x, baseline=baseline, n_samples=30, kernel_width=w, generator=_gen(7))
        for w in (0.1, 3.0)
    )
    assert not torch.allclose(narrow, wide, atol=1e-3)


@pytest.mark.parametrize("ridge", [0.0, 0.7])
def test_lime_is_the_weighted_regression_of_its_rows(ridge):
    # recompute the fit from the rows fn saw, with the documented cosine kernel
    x, baseline, target = _data(batch=2, n=5)
    fn, seen, width = _mlp(5), [], 0.4
    attr = tx.lime(
        _recorder(fn, seen),
        x,
        baseline=baseline,
        target=target,
        n_samples=25,
        kernel_width=width,
        ridge=ridge,
        generator=_gen(8),
        vectorize="batch",
    )
    rows = seen[-1].reshape(2, -1, 5)
    for b in range(2):
        z = (rows[b] == x[b]).double().numpy()
        v = fn(rows[b])[:, target[b]].numpy()
        distance = 1 - np.sqrt(z.sum(1) / 5)
        sw = np.sqrt(np.exp(-(distance**2) / width**2))
        design = np.hstack([np.ones((len(z), 1)), z])
        # ridge on the coefficients, not the intercept, as extra rows of the system
        penalty = np.sqrt(ridge) * np.eye(6)[1:]
        lhs = np.vstack([sw[:, None] * design, penalty])
        rhs = np.concatenate([sw * v, np.zeros(5)])
        beta = np.linalg.lstsq(lhs, rhs, rcond=None)[0][1:]
        np.testing.assert_allclose(attr[b].numpy(), beta, rtol=0, atol=1e-10)


def test_lime_and_kernel_shap_follow_the_generator():
    x, baseline, target = _data()
    fn = _mlp(6)
    for method, kw in ((tx.lime, {"n_samples": 20}), (tx.kernel_shap, {"n_samples": 8})):
        a = method(fn, x, baseline=baseline, target=target, generator=_gen(1), **kw)
        b = method(fn, x, baseline=baseline, target=target, generator=_gen(1), **kw)
        c = method(fn, x, baseline=baseline, target=target, generator=_gen(2), **kw)
        assert torch.equal(a, b) and not torch.equal(a, c)
