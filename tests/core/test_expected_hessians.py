"""Expected Hessians: exact for linear and quadratic models, converging at 1/sqrt(n) otherwise.

For a quadratic ``f(x) = x^T A x / 2 + w^T x`` with one baseline row the expectation
is known in closed form (``E[alpha beta] = 1/4``); the estimate's error against it
and the error of its row sums against expected gradients (computed exactly over
the baseline rows) must both shrink with a fitted log-log slope of about -1/2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tfx_explain as tx

F64 = torch.float64
ATOL = 1e-12


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _quadratic(n: int = 4, seed: int = 0):
    g = _gen(seed)
    a = torch.randn(n, n, generator=g, dtype=F64)
    a = a + a.T
    w = torch.randn(n, generator=g, dtype=F64)
    return (lambda x: 0.5 * ((x @ a) * x).sum(-1) + x @ w), a, w


def _data(batch: int = 3, n: int = 4, refs: int = 1, seed: int = 1):
    g = _gen(seed)
    return (
        torch.randn(batch, n, generator=g, dtype=F64),
        torch.randn(refs, n, generator=g, dtype=F64),
    )


def _slope(ns, errors) -> float:
    return float(np.polyfit(np.log(ns), np.log(errors), 1)[0])


def test_linear_fn_gives_the_diagonal_of_its_weights_times_the_difference():
    x, refs = _data()
    w = torch.randn(4, 2, generator=_gen(2), dtype=F64)
    gamma = tx.expected_hessians(
        lambda z: z @ w, x, baselines=refs, n_samples=5, generator=_gen(3), target=1
    )
    torch.testing.assert_close(gamma, torch.diag_embed(w[:, 1] * (x - refs)), rtol=0, atol=ATOL)


def test_each_draw_is_symmetric_and_one_baseline_equals_the_closed_form_in_the_limit():
    fn, a, w = _quadratic()
    x, refs = _data()
    one = tx.expected_hessians(fn, x, baselines=refs, n_samples=1, generator=_gen(4))
    torch.testing.assert_close(one, one.transpose(1, 2), rtol=0, atol=ATOL)
    # off the diagonal one draw is alpha beta delta_i delta_j A_ij: the same alpha beta
    delta = x - refs
    ratio = one / (delta[:, :, None] * delta[:, None, :] * a)
    off = ~torch.eye(4, dtype=torch.bool)
    scale = ratio[:, off]
    torch.testing.assert_close(scale, scale[:, :1].expand_as(scale), rtol=1e-10, atol=0)
    assert bool(((scale > 0) & (scale < 1)).all())


def test_quadratic_converges_to_the_closed_form_at_one_over_root_n():
    fn, a, w = _quadratic()
    x, refs = _data()
    delta = x - refs
    exact = delta[:, :, None] * delta[:, None, :] * a / 4 + torch.diag_embed(
        delta * ((refs + delta / 4) @ a + w)
    )
    # integrated Hessians with one baseline is the same expectation, exactly
    ih = tx.integrated_hessians(fn, x, baseline=refs, steps=3)
    torch.testing.assert_close(ih, exact, rtol=0, atol=ATOL)
    ns = [16, 64, 256, 1024]
    errors = []
    for n in ns:
        runs = [
            tx.expected_hessians(fn, x, baselines=refs, n_samples=n, generator=_gen(s))
            for s in range(12)
        ]
        errors.append(
            math.sqrt(float(torch.stack([(r - exact).square().mean() for r in runs]).mean()))
        )
    slope = _slope(ns, errors)
    assert -0.65 < slope < -0.35, (slope, errors)


def test_rows_sum_to_expected_gradients_in_expectation():
    # a smooth net over 6 baseline rows: E[sum_j Gamma_ij] = EG_i, with EG computed
    # exactly as the mean over the rows of (nearly exact) integrated gradients
    g = _gen(5)
    w1 = torch.randn(4, 5, generator=g, dtype=F64)
    w2 = torch.randn(5, generator=g, dtype=F64)

    def fn(z):
        return torch.tanh(z @ w1) @ w2

    x, refs = _data(refs=6)
    eg = torch.stack(
        [tx.integrated_gradients(fn, x, baseline=r[None], steps=64) for r in refs]
    ).mean(0)
    ns = [16, 64, 256, 1024]
    errors = []
    for n in ns:
        runs = [
            tx.expected_hessians(fn, x, baselines=refs, n_samples=n, generator=_gen(s)).sum(-1)
            for s in range(12)
        ]
        errors.append(
            math.sqrt(float(torch.stack([(r - eg).square().mean() for r in runs]).mean()))
        )
    slope = _slope(ns, errors)
    assert -0.65 < slope < -0.35, (slope, errors)


@pytest.mark.parametrize("shape", [(4,), (2, 3)], ids=["F=4", "F=2x3"])
def test_batch_equals_vmap_and_shapes(shape):
    g = _gen(6)
    n = math.prod(shape)
    w1 = torch.randn(n, 3, generator=g, dtype=F64)

    def fn(z):
        return torch.tanh(z.flatten(1) @ w1)

    x = torch.randn((2, *shape), generator=g, dtype=F64)
    refs = torch.randn((3, *shape), generator=g, dtype=F64)
    kw = {"baselines": refs, "n_samples": 4, "target": torch.tensor([0, 2])}
    a = tx.expected_hessians(fn, x, generator=_gen(7), **kw)
    b = tx.expected_hessians(fn, x, generator=_gen(7), vectorize="batch", **kw)
    assert a.shape == (2, *shape, *shape)
    torch.testing.assert_close(a, b, rtol=0, atol=ATOL)
