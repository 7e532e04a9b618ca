"""Attributions that are known in closed form, asserted to float64 rounding.

Exact identities (linear models, products with a zero baseline, exact Shapley
efficiency) are asserted to ``ATOL``; approximations (IG completeness, Shapley
sampling, integrated Hessians on a smooth net) are asserted by their convergence.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import tfx_explain as tx

F64 = torch.float64
ATOL = 1e-12  # float64 rounding for O(1) inputs and a few dozen operations
B, D, C = 4, 5, 3


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear(seed: int = 0):
    """``f(x) = x W + c``, ``(B, D) -> (B, C)``, and its weights ``W (D, C)``."""
    g = _gen(seed)
    weights = torch.randn(D, C, generator=g, dtype=F64)
    bias = torch.randn(C, generator=g, dtype=F64)
    return (lambda x: x @ weights + bias), weights


def _data(seed: int = 1):
    g = _gen(seed)
    x = torch.randn(B, D, generator=g, dtype=F64)
    baseline = torch.randn(B, D, generator=g, dtype=F64)
    target = torch.randint(C, (B,), generator=g)
    return x, baseline, target


def _mlp(n_in: int = D, seed: int = 3):
    g = _gen(seed)
    w1 = torch.randn(n_in, 6, generator=g, dtype=F64) / math.sqrt(n_in)
    w2 = torch.randn(6, generator=g, dtype=F64)
    return lambda x: torch.tanh(x @ w1) @ w2


def _columns(weights: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``W[:, t_b]`` per sample: ``(B, D)``."""
    return weights.T[target]


def _close(actual, expected, atol=ATOL):
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=atol)


# ---- linear models ------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("rule", sorted(tx.RULES))
def test_integrated_gradients_of_linear_fn(rule, steps):
    if rule == "riemann_trapezoid" and steps == 1:
        steps = 2  # the trapezoid needs both end points
    fn, weights = _linear()
    x, baseline, target = _data()
    attr = tx.integrated_gradients(fn, x, baseline=baseline, target=target, steps=steps, rule=rule)
    _close(attr, _columns(weights, target) * (x - baseline))


def test_local_gradients_of_linear_fn():
    fn, weights = _linear()
    x, _, target = _data()
    _close(tx.input_gradients(fn, x, target=target), _columns(weights, target))
    _close(tx.gradient_x_input(fn, x, target=target), _columns(weights, target) * x)


def test_occlusion_window_one_of_linear_fn():
    fn, weights = _linear()
    x, baseline, target = _data()
    attr = tx.occlusion(fn, x, window=1, baseline=baseline, target=target)
    _close(attr, _columns(weights, target) * (x - baseline))


def test_occlusion_window_one_on_image_shaped_input():
    # (B, 2, 3) features, a per-pixel linear map, windows of one pixel
    weights = torch.randn(2, 3, generator=_gen(4), dtype=F64)
    x = torch.randn(B, 2, 3, generator=_gen(5), dtype=F64)
    attr = tx.occlusion(lambda z: (z * weights).sum((1, 2)), x, window=(1, 1), baseline=0.5)
    _close(attr, weights * (x - 0.5))


@pytest.mark.parametrize("groups", [None, {str(i): [i] for i in reversed(range(D))}])
def test_feature_ablation_singletons_of_linear_fn(groups):
    fn, weights = _linear()
    x, baseline, target = _data()
    attr = tx.feature_ablation(fn, x, groups=groups, baseline=baseline, target=target)
    _close(attr, _columns(weights, target) * (x - baseline))


def test_feature_ablation_group_drop_is_spread_evenly():
    fn, weights = _linear()
    x, baseline, target = _data()
    groups = {"a": [3, 0, 1], "b": [2], "c": [4]}
    attr = tx.feature_ablation(fn, x, groups=groups, baseline=baseline, target=target)
    terms = _columns(weights, target) * (x - baseline)  # each feature's own drop
    expected = terms.clone()
    expected[:, [0, 1, 3]] = terms[:, [0, 1, 3]].sum(1, keepdim=True) / 3
    _close(attr, expected)


@pytest.mark.parametrize("n_permutations", [None, 2, 6])
def test_shapley_of_linear_fn(n_permutations):
    # every marginal contribution of feature i is w_i (x_i - x'_i): sampling is exact too
    fn, weights = _linear()
    x, baseline, target = _data()
    attr = tx.shapley_values(
        fn, x, baseline=baseline, target=target, n_permutations=n_permutations, generator=_gen(0)
    )
    _close(attr, _columns(weights, target) * (x - baseline))


def test_shapley_groups_of_linear_fn_share_the_group_total():
    fn, weights = _linear()
    x, baseline, target = _data()
    groups = {"a": [1, 4], "b": [0, 2, 3]}
    attr = tx.shapley_values(fn, x, baseline=baseline, groups=groups, target=target)
    terms = _columns(weights, target) * (x - baseline)
    expected = torch.empty_like(terms)
    for members in groups.values():
        expected[:, members] = terms[:, members].sum(1, keepdim=True) / len(members)
    _close(attr, expected)


def test_expected_gradients_of_linear_fn_with_one_reference():
    fn, weights = _linear()
    x, _, target = _data()
    reference = torch.randn(1, D, generator=_gen(6), dtype=F64)
    for n_samples in (1, 3, 20):
        attr = tx.expected_gradients(
            fn,
            x,
            baselines=reference,
            n_samples=n_samples,
            generator=_gen(n_samples),
            target=target,
        )
        _close(attr, _columns(weights, target) * (x - reference))


def test_expected_gradients_converges_to_mean_reference():
    # linear fn, two references: EG = W (x - mean of the drawn rows), error ~ 1/sqrt(N)
    fn, weights = _linear()
    x, _, target = _data()
    refs = torch.tensor([[1.0] * D, [-1.0] * D], dtype=F64)
    expected = _columns(weights, target) * (x - refs.mean(0))

    def rms_error(n_samples):
        errors = [
            tx.expected_gradients(
                fn, x, baselines=refs, n_samples=n_samples, generator=_gen(seed), target=target
            )
            - expected
            for seed in range(20)
        ]
        return float(torch.stack(errors).square().mean().sqrt())

    coarse, fine = rms_error(4), rms_error(256)
    assert 4.0 < coarse / fine < 16.0  # sqrt(256 / 4) = 8


def test_smoothgrad_of_linear_fn():
    # the gradient of a linear fn does not see the noise
    fn, weights = _linear()
    x, _, target = _data()
    smoothed = tx.smoothgrad(tx.input_gradients, n_samples=8, sigma=0.5, generator=_gen(0))
    _close(smoothed(fn, x, target=target), _columns(weights, target))


def test_smoothgrad_noise_has_standard_deviation_sigma():
    # gradient x input of a linear fn averages w (x + sigma eps_n) over N draws, so
    # (a - w x) / (w sigma / sqrt(N)) is standard normal: its mean square is ~1
    fn, weights = _linear()
    x, _, target = _data()
    w, sigma, n = _columns(weights, target), 0.3, 16
    z = torch.stack(
        [
            (
                tx.smoothgrad(tx.gradient_x_input, n_samples=n, sigma=sigma, generator=_gen(s))(
                    fn, x, target=target
                )
                - w * x
            )
            / (w * sigma / math.sqrt(n))
            for s in range(10)
        ]
    )  # 200 standard normals
    assert abs(float(z.mean())) < 0.25 and 0.75 < float(z.square().mean()) < 1.25


def test_target_picks_the_output():
    fn, weights = _linear()
    x, baseline, _ = _data()
    for t in range(C):
        attr = tx.integrated_gradients(fn, x, baseline=baseline, target=t, steps=2)
        _close(attr, weights[:, t] * (x - baseline))


# ---- f = x1 x2, zero baseline -------------------------------------------------------------


def _product(x):
    return x[:, 0] * x[:, 1]


_PAIRS = torch.tensor([[2.0, 3.0], [-1.5, 0.5], [0.0, 4.0], [1e-3, -7.0]], dtype=F64)


@pytest.mark.parametrize("rule", ["gauss_legendre", "riemann_middle", "riemann_trapezoid"])
def test_product_shapley_equals_integrated_gradients(rule):
    # along the straight path the gradient is linear in alpha: these rules are exact
    half = (_PAIRS[:, 0] * _PAIRS[:, 1] / 2)[:, None].expand(-1, 2)
    _close(tx.shapley_values(_product, _PAIRS), half)
    for steps in (2, 5):
        _close(tx.integrated_gradients(_product, _PAIRS, steps=steps, rule=rule), half)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_product_integrated_hessians(steps):
    quarter = (_PAIRS[:, 0] * _PAIRS[:, 1] / 4)[:, None, None].expand(-1, 2, 2)
    _close(tx.integrated_hessians(_product, _PAIRS, steps=steps), quarter)


def test_dummy_feature_gets_zero():
    # f ignores feature 2: exactly 0 for gradients and perturbations, rounding for Shapley
    x, baseline, _ = _data()

    def fn(z):
        return torch.tanh(z[:, 0] * z[:, 1]) + z[:, 3] ** 2 - z[:, 4]

    exact = [
        tx.input_gradients(fn, x),
        tx.gradient_x_input(fn, x),
        tx.integrated_gradients(fn, x, baseline=baseline, steps=5),
        tx.occlusion(fn, x, window=1, baseline=baseline),
        tx.feature_ablation(fn, x, groups=None, baseline=baseline),
        tx.expected_gradients(fn, x, baselines=baseline, n_samples=4, generator=_gen(0)),
        tx.integrated_hessians(fn, x, baseline=baseline, steps=3)[:, 2],
        tx.integrated_hessians(fn, x, baseline=baseline, steps=3)[:, :, 2],
    ]
    for attr in exact:
        assert torch.equal(attr[:, 2], torch.zeros_like(attr[:, 2]))
    for n_permutations in (None, 4):
        attr = tx.shapley_values(fn, x, baseline=baseline, n_permutations=n_permutations)
        _close(attr[:, 2], torch.zeros(B, dtype=F64), atol=1e-15)


# ---- occlusion with overlapping windows ---------------------------------------------------


def test_occlusion_overlapping_windows_by_hand():
    # f = x0 x1 + 2 x2 - x3 at x = (1, 2, 3, 4), zero baseline, windows {0,1}, {1,2}, {2,3}:
    # f(x) = 4; occluded outputs 2, -4, 2; drops 2, 8, 2; mean drop of covering windows:
    # feature 0: 2, feature 1: (2 + 8) / 2, feature 2: (8 + 2) / 2, feature 3: 2
    def fn(z):
        return z[:, 0] * z[:, 1] + 2 * z[:, 2] - z[:, 3]

    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=F64)
    attr = tx.occlusion(fn, x, window=2, stride=1)
    assert attr.tolist() == [[2.0, 5.0, 5.0, 2.0]]


def test_occlusion_overlapping_windows_2d_by_hand():
    # sum over a 2 x 3 image, windows 2 x 2 at columns {0,1} and {1,2}: drops 12 and 16
    x = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]], dtype=F64)
    attr = tx.occlusion(lambda z: z.sum((1, 2)), x, window=(2, 2), stride=1)
    assert attr.tolist() == [[[12.0, 14.0, 16.0], [12.0, 14.0, 16.0]]]


def test_occlusion_strided_tiles_by_hand():
    # non-overlapping windows of 2 (stride 2) on f = (x0 + x1)^2 + x2 x3, baseline 1;
    # every feature of a window gets the window's whole drop (unlike feature_ablation)
    def fn(z):
        return (z[:, 0] + z[:, 1]) ** 2 + z[:, 2] * z[:, 3]

    x = torch.tensor([[2.0, 3.0, 4.0, 5.0]], dtype=F64)
    # f(x) = 25 + 20 = 45; tile {0,1} -> 4 + 20 = 24, drop 21; tile {2,3} -> 25 + 1, drop 19
    attr = tx.occlusion(fn, x, window=2, stride=2, baseline=1.0)
    assert attr.tolist() == [[21.0, 21.0, 19.0, 19.0]]


# ---- completeness -------------------------------------------------------------------------


def test_exact_shapley_is_efficient():
    fn = _mlp()
    x, baseline, _ = _data()
    for groups in (None, {"a": [0, 3], "b": [1], "c": [2, 4]}):
        attr = tx.shapley_values(fn, x, baseline=baseline, groups=groups)
        _close(tx.completeness_gap(fn, x, attr, baseline=baseline), torch.zeros(B, dtype=F64))


@pytest.mark.parametrize("n_permutations", [2, 4, 10])
def test_sampled_shapley_is_efficient_for_any_draw(n_permutations):
    fn = _mlp()
    x, baseline, _ = _data()
    attr = tx.shapley_values(
        fn, x, baseline=baseline, n_permutations=n_permutations, generator=_gen(n_permutations)
    )
    _close(tx.completeness_gap(fn, x, attr, baseline=baseline), torch.zeros(B, dtype=F64))


def test_sampled_shapley_of_two_players_is_exact():
    # a permutation of two groups and its reverse are all the permutations there are
    fn = _mlp()
    x, baseline, _ = _data()
    groups = {"a": [0, 2], "b": [1, 3, 4]}
    exact = tx.shapley_values(fn, x, baseline=baseline, groups=groups)
    sampled = tx.shapley_values(
        fn, x, baseline=baseline, groups=groups, n_permutations=2, generator=_gen(0)
    )
    _close(sampled, exact)


def test_sampled_shapley_converges_like_one_over_sqrt_p():
    fn = _mlp()
    x, baseline, _ = _data()
    exact = tx.shapley_values(fn, x, baseline=baseline)

    def rms_error(n_permutations):
        errors = [
            tx.shapley_values(
                fn, x, baseline=baseline, n_permutations=n_permutations, generator=_gen(seed)
            )
            - exact
            for seed in range(24)
        ]
        return float(torch.stack(errors).square().mean().sqrt())

    coarse, fine = rms_error(4), rms_error(64)
    assert 2.5 < coarse / fine < 6.5  # sqrt(64 / 4) = 4 for an unbiased estimator


@pytest.mark.parametrize(
    ("rule", "order"),
    [("riemann_left", 1), ("riemann_right", 1), ("riemann_middle", 2), ("riemann_trapezoid", 2)],
)
def test_integrated_gradients_gap_shrinks_at_the_rule_order(rule, order):
    # the gap is the rule's error on g(a) = d/da f(x' + a (x - x')); with f = exp(x v)
    # g(1) != g(0) and g'(1) != g'(0), so the leading error terms do not vanish
    v = torch.linspace(-0.5, 0.8, D, dtype=F64)

    def fn(z):
        return torch.exp(z @ v)

    x, baseline, _ = _data()

    def gap(steps):
        attr = tx.integrated_gradients(fn, x, baseline=baseline, steps=steps, rule=rule)
        return tx.completeness_gap(fn, x, attr, baseline=baseline).abs()

    ratio = gap(64) / gap(128)
    assert torch.all((ratio > 2**order * 0.85) & (ratio < 2**order * 1.15)), ratio


def test_integrated_gradients_gauss_legendre_gap_vanishes():
    fn = _mlp()
    x, baseline, _ = _data()
    gaps = []
    for steps in (4, 8, 16, 32):
        attr = tx.integrated_gradients(fn, x, baseline=baseline, steps=steps)
        gaps.append(float(tx.completeness_gap(fn, x, attr, baseline=baseline).abs().max()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[3] < 1e-12, gaps


# ---- adaptive integrated gradients --------------------------------------------------------


def test_adaptive_integrated_gradients_meets_tol_and_reports_steps():
    def fn(z):
        return torch.sin(3.0 * z).sum(-1)

    # an almost linear sample and a strongly curved one
    x = torch.tensor([[0.01, 0.02], [2.0, 3.0], [1.0, -1.5]], dtype=F64)
    result = tx.adaptive_integrated_gradients(fn, x, tol=1e-9, start_steps=4, max_steps=256)
    assert result.steps.dtype == torch.long and result.steps.shape == (3,)
    assert float(result.gap.abs().max()) <= 1e-9
    assert result.steps[0] == 4 and result.steps[1] > 4
    for b, steps in enumerate(result.steps.tolist()):
        assert steps in (4, 8, 16, 32, 64, 128, 256)
        alone = tx.integrated_gradients(fn, x[b : b + 1], steps=steps)
        _close(result.attributions[b : b + 1], alone, atol=1e-15)
        if steps > 4:  # half as many steps would not have met tol
            fewer = tx.integrated_gradients(fn, x[b : b + 1], steps=steps // 2)
            assert float(tx.completeness_gap(fn, x[b : b + 1], fewer).abs()) > 1e-9
    _close(result.gap, tx.completeness_gap(fn, x, result.attributions), atol=1e-15)


def test_adaptive_integrated_gradients_stops_at_max_steps():
    def fn(z):
        return torch.sin(3.0 * z).sum(-1)

    x = torch.tensor([[2.0, 3.0]], dtype=F64)
    result = tx.adaptive_integrated_gradients(
        fn, x, tol=1e-12, rule="riemann_left", start_steps=8, max_steps=64
    )
    assert result.steps.tolist() == [64] and float(result.gap.abs()) > 1e-12


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"tol": 0.0}, "tol"),
        ({"tol": -1e-3}, "tol"),
        ({"start_steps": 0}, "start_steps"),
        ({"start_steps": 16, "max_steps": 8}, "max_steps"),
        ({"rule": "simpson"}, "rule"),
        ({"target": torch.zeros(2, 2, dtype=torch.long)}, "target"),
    ],
)
def test_adaptive_integrated_gradients_validates(options, argument):
    fn, _ = _linear()
    x = torch.ones(2, D, dtype=F64)
    options = {"target": 0, **options}
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        tx.adaptive_integrated_gradients(fn, x, **options)


# ---- integrated Hessians ------------------------------------------------------------------


def test_integrated_hessian_rows_sum_to_integrated_gradients_for_a_cubic():
    # f cubic: IG_i along beta is a cubic, its derivative a quadratic: 2-point Gauss exact
    coef = torch.randn(D, D, D, generator=_gen(8), dtype=F64)

    def fn(z):
        return torch.einsum("bi,bj,bk,ijk->b", z, z, z, coef) + z.sum(-1)

    x, baseline, _ = _data()
    gamma = tx.integrated_hessians(fn, x, baseline=baseline, steps=2)
    ig = tx.integrated_gradients(fn, x, baseline=baseline, steps=2)
    _close(gamma.sum(-1), ig, atol=1e-11)
    # symmetric, since the Hessian is
    _close(gamma, gamma.transpose(1, 2), atol=1e-11)


def test_integrated_hessian_rows_sum_to_integrated_gradients_in_the_limit():
    fn = _mlp()
    x, baseline, _ = _data()
    errors = []
    for steps in (2, 4, 8, 16):
        gamma = tx.integrated_hessians(fn, x, baseline=baseline, steps=steps)
        ig = tx.integrated_gradients(fn, x, baseline=baseline, steps=steps)
        errors.append(float((gamma.sum(-1) - ig).abs().max()))
    assert errors[0] > errors[1] > errors[2] and errors[3] < 1e-9, errors


# ---- NoiseTunnel variants and multiply_by_inputs ------------------------------------------


def test_vargrad_of_a_linear_fn_is_zero_and_smoothgrad_sq_is_w_squared():
    # the gradient of a linear fn is the same at every noisy copy
    fn, weights = _linear()
    x, _, target = _data()
    w = _columns(weights, target)
    for noise in ({"sigma": 0.5}, {"noise_level": 0.2}):
        var = tx.smoothgrad(
            tx.input_gradients, n_samples=8, reduction="variance", generator=_gen(0), **noise
        )
        square = tx.smoothgrad(
            tx.input_gradients, n_samples=8, reduction="mean_square", generator=_gen(0), **noise
        )
        _close(var(fn, x, target=target), torch.zeros_like(x))
        _close(square(fn, x, target=target), w.square())


def test_smoothgrad_sq_and_vargrad_of_gradient_x_input_have_their_closed_forms():
    # a_n = w (x + sigma eps_n): the mean square is w^2 (x^2 + 2 x sigma mean(eps) +
    # sigma^2 mean(eps^2)) and the variance w^2 sigma^2 var(eps), for the same draws
    fn, weights = _linear()
    x, _, target = _data()
    w, sigma, n = _columns(weights, target), 0.3, 6

    def run(reduction):
        smooth = tx.smoothgrad(
            tx.gradient_x_input, n_samples=n, sigma=sigma, reduction=reduction, generator=_gen(4)
        )
        return smooth(fn, x, target=target)

    eps = (run("mean") / w - x) / sigma  # the mean of the draws, per feature
    mean_square, variance = run("mean_square"), run("variance")
    # mean square - variance = square of the mean, for any draws
    _close(mean_square - variance, (w * (x + sigma * eps)).square(), atol=1e-10)
    assert bool((variance > 0).all())
    z = variance / (w * sigma).square()  # var of 6 standard normals: E = 5/6
    assert 0.5 < float(z.mean()) < 1.2


def test_noise_level_is_relative_to_each_samples_range():
    # noise_level scales the noise with max - min of each sample, so a scaled input gets
    # exactly scaled attributions of a linear fn; an absolute sigma does not
    fn, weights = _linear()
    x, _, target = _data()
    for noise, equivariant in (({"noise_level": 0.1}, True), ({"sigma": 0.1}, False)):
        smooth = tx.smoothgrad(tx.gradient_x_input, n_samples=4, **noise, generator=_gen(3))
        small = smooth(fn, x, target=target)
        smooth = tx.smoothgrad(tx.gradient_x_input, n_samples=4, **noise, generator=_gen(3))
        large = smooth(fn, 100.0 * x, target=target)
        assert torch.allclose(large, 100.0 * small, rtol=1e-12, atol=1e-10) is equivariant
    # per sample: VarGrad of w (x + sigma_b eps) is w^2 sigma_b^2 var(eps), sigma_b from b's range
    scale = torch.tensor([[1.0], [10.0], [0.1], [3.0]], dtype=F64)
    spread = x * scale
    ranges = spread.amax(1, keepdim=True) - spread.amin(1, keepdim=True)
    var = tx.smoothgrad(
        tx.gradient_x_input, n_samples=400, noise_level=0.2, reduction="variance", generator=_gen(5)
    )
    z = var(fn, spread, target=target) / (_columns(weights, target) * 0.2 * ranges).square()
    assert bool(((z > 0.8) & (z < 1.2)).all()), z


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"reduction": "median"}, "reduction"),
        ({"sigma": 0.1, "noise_level": 0.1}, "noise_level"),
        ({"noise_level": -1.0}, "noise_level"),
        ({"noise_level": float("inf")}, "noise_level"),
    ],
)
def test_smoothgrad_noise_options_are_checked(options, argument):
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        tx.smoothgrad(tx.input_gradients, **options)


def test_smoothgrad_of_random_methods_draws_for_every_copy():
    # a random inner method is called once on all N noisy copies: no vmap randomness error.
    # With sigma = 0 the copies are x itself, so the closed forms of the inner method hold.
    fn, weights = _linear()
    x, baseline, target = _data()
    w = _columns(weights, target)
    reference = torch.randn(1, D, generator=_gen(6), dtype=F64)
    eg = tx.smoothgrad(tx.expected_gradients, n_samples=3, sigma=0.0, generator=_gen(1))
    _close(eg(fn, x, baselines=reference, n_samples=4, target=target), w * (x - reference))
    shapley = tx.smoothgrad(tx.shapley_values, n_samples=3, sigma=0.0, generator=_gen(1))
    attr = shapley(fn, x, baseline=baseline, n_permutations=4, target=target)
    _close(attr, w * (x - baseline))  # per-sample baselines are repeated for each copy
    # with noise: GradientSHAP, complete in expectation; here just finite and shaped
    noisy = tx.smoothgrad(tx.expected_gradients, n_samples=3, sigma=0.1, generator=_gen(1))
    attr = noisy(fn, x, baselines=reference, n_samples=4, generator=_gen(2), target=target)
    assert attr.shape == x.shape and bool(torch.isfinite(attr).all())


def test_multiply_by_inputs_false_gives_the_path_averaged_gradient():
    fn, weights = _linear()
    x, baseline, target = _data()
    w = _columns(weights, target)
    ig = tx.integrated_gradients(
        fn, x, baseline=baseline, target=target, steps=3, multiply_by_inputs=False
    )
    eg = tx.expected_gradients(
        fn, x, baselines=baseline, target=target, generator=_gen(0), multiply_by_inputs=False
    )
    _close(ig, w)
    _close(eg, w)
    # on a curved fn: IG = (x - x') times the path-averaged gradient, same nodes
    net = _mlp()
    mean = tx.integrated_gradients(net, x, baseline=baseline, steps=5, multiply_by_inputs=False)
    _close(tx.integrated_gradients(net, x, baseline=baseline, steps=5), (x - baseline) * mean)
    with pytest.raises(TypeError, match=r"\bmultiply_by_inputs\b"):
        tx.integrated_gradients(net, x, multiply_by_inputs=1)


@pytest.mark.parametrize(
    "nt_type, reduction",
    [("smoothgrad", "mean"), ("smoothgrad_sq", "mean_square"), ("vargrad", "variance")],
)
def test_smoothgrad_reductions_equal_captums_noise_tunnel_on_the_same_draws(nt_type, reduction):
    """Captum's NoiseTunnel types, on its own draws: both take them from the global RNG.

    Captum draws its noise in float32 (its stdev tensor is float32) with copies of a
    sample in consecutive rows, as ours; so in float32, with the same seed, the two
    see the same noisy copies and must agree to rounding.
    """
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).eval()
    x = torch.randn(3, 4)
    torch.manual_seed(5)
    theirs = captum.NoiseTunnel(captum.InputXGradient(net)).attribute(
        x, nt_type=nt_type, nt_samples=7, stdevs=0.3, target=1
    )
    torch.manual_seed(5)
    smooth = tx.smoothgrad(tx.gradient_x_input, n_samples=7, sigma=0.3, reduction=reduction)
    ours = smooth(net, x, target=1)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    # a wrong reduction does not pass: the mean square is not the variance
    if reduction != "mean":
        other = "variance" if reduction == "mean_square" else "mean_square"
        torch.manual_seed(5)
        wrong = tx.smoothgrad(tx.gradient_x_input, n_samples=7, sigma=0.3, reduction=other)
        assert not torch.allclose(wrong(net, x, target=1), theirs, rtol=1e-5, atol=1e-7)


def test_smoothgrad_works_in_blocks_of_samples(monkeypatch):
    """Memory does not grow with B x N: BLOCK samples (N copies each) at a time.

    With sigma=0 every copy is x itself, so the blocked result must equal the method's
    own, per-sample targets and baselines included (a wrong slice would show).
    """
    import tfx_explain._smoothing as smoothing

    monkeypatch.setattr(smoothing, "BLOCK", 2)
    fn, _ = _linear()
    x, _, target = _data()
    x, target = torch.cat([x, x + 1.0])[:5], torch.cat([target, target])[:5]
    baseline = torch.linspace(-1.0, 1.0, x.numel(), dtype=x.dtype).reshape(x.shape)
    seen = []

    def method(fn, x, **options):
        seen.append(x.shape[0])
        return tx.integrated_gradients(fn, x, steps=4, **options)

    smooth = tx.smoothgrad(method, n_samples=3, sigma=0.0, generator=_gen(0))
    out = smooth(fn, x, target=target, baseline=baseline)
    assert seen == [6, 6, 3]  # (2 + 2 + 1 samples) x 3 copies, never all 15 at once
    expected = tx.integrated_gradients(fn, x, target=target, baseline=baseline, steps=4)
    _close(out, expected, atol=1e-12)
