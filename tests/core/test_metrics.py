"""tfx_explain.metrics: closed forms, agreement with Captum, and checks that bite."""

from __future__ import annotations

import copy
import functools
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tfx_explain as tx
from tfx_explain.metrics import (
    curve_area,
    deletion_curve,
    infidelity,
    insertion_curve,
    parameter_randomization,
    road,
    sensitivity_max,
    spearman,
    ssim,
)
from tfx_explain.testing import (
    batches,
    deletion_violation,
    insertion_violation,
    linear_models,
    randomization_violation,
    scaled,
)

D64 = torch.float64
W = torch.tensor([1.5, -2.0, 0.5, 3.0, -1.0], dtype=D64)


def _linear(x):
    return x @ W + 0.25


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _x(batch=4, seed=0):
    return torch.randn(batch, 5, generator=_gen(seed), dtype=D64)


@functools.cache
def _mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return net.double().eval().requires_grad_(False)


TARGET = torch.tensor([0, 1, 2, 1])


# ------------------------------------------------------------------ infidelity


def test_infidelity_linear_gradients_gaussian_is_zero():
    x = _x()
    score = infidelity(_linear, x, W.expand_as(x), n_samples=32, sigma=0.5, generator=_gen())
    assert score.shape == (4,) and score.dtype == D64
    assert score.max() < 1e-28


def test_infidelity_linear_global_attributions_baseline_subsets_is_zero():
    x, b = _x(), _x(seed=1)
    a = W * (x - b)  # gradient x (x - baseline): exact for a linear fn
    score = infidelity(
        _linear, x, a, perturbation="baseline_subsets", baseline=b, n_samples=32, generator=_gen()
    )
    assert score.max() < 1e-28


def test_infidelity_full_subset_is_squared_completeness_gap():
    net, x, b = _mlp(), _x(), _x(seed=1)
    a = tx.input_gradients(net, x, target=TARGET) * (x - b)  # not complete: visible gaps
    gap = tx.completeness_gap(net, x, a, baseline=b, target=TARGET)
    assert gap.abs().min() > 1e-3
    score = infidelity(
        net, x, a, perturbation="baseline_subsets", probability=1.0, baseline=b, target=TARGET
    )
    torch.testing.assert_close(score, gap**2, rtol=1e-10, atol=0)


def test_infidelity_bites_on_a_wrong_attribution():
    x = _x()
    wrong = W.expand_as(x).clone()
    wrong[:, 0] += 0.1  # one coefficient off by 0.1
    score = infidelity(_linear, x, wrong, n_samples=64, sigma=1.0, generator=_gen())
    assert score.min() > 1e-4  # E[(0.1 I_0)^2] = 0.01 sigma^2
    torch.testing.assert_close(score.mean(), torch.tensor(0.01, dtype=D64), rtol=0.5, atol=0)


def test_infidelity_normalize_ignores_the_scale_of_the_attributions():
    x = _x()
    scaled = 3.0 * W.expand_as(x)
    assert infidelity(_linear, x, scaled, generator=_gen()).min() > 1e-3
    assert infidelity(_linear, x, scaled, normalize=True, generator=_gen()).max() < 1e-26


def test_infidelity_chunk_size_and_float32():
    net, x = _mlp(), _x(5)
    a = tx.input_gradients(net, x, target=0)
    full = infidelity(net, x, a, target=0, generator=_gen())
    chunks = infidelity(net, x, a, target=0, generator=_gen(), chunk_size=2)
    torch.testing.assert_close(full, chunks, rtol=1e-12, atol=0)
    batch = infidelity(net, x, a, target=0, generator=_gen(), vectorize="batch")
    torch.testing.assert_close(full, batch, rtol=1e-10, atol=1e-20)
    net32 = copy.deepcopy(net).float()
    assert infidelity(net32, x.float(), a.float(), target=0).dtype == torch.float32


def test_infidelity_is_differentiable_in_the_attributions():
    net, x, n = _mlp(), _x(), 8
    draws = 0.3 * torch.randn(4, n, 5, generator=_gen(5), dtype=D64)
    a = tx.input_gradients(net, x, target=TARGET).requires_grad_()
    score = infidelity(
        net, x, a, perturbation=lambda x, b: (draws, x - draws), n_samples=n, target=TARGET,
        chunk_size=3,
    )  # fmt: skip
    (grad,) = torch.autograd.grad(score.sum(), a)
    with torch.no_grad():  # d/da mean_n (I_n.a - drop_n)^2 = 2 mean_n (I_n.a - drop_n) I_n
        out = net(x).gather(1, TARGET[:, None])
        moved = net((x[:, None] - draws).reshape(-1, 5)).reshape(4, n, 3)
        drop = out - moved.gather(2, TARGET[:, None, None].expand(4, n, 1))[..., 0]
        residual = (draws * a[:, None]).sum(-1) - drop
        expected = 2 * (residual[..., None] * draws).mean(1)
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kind", ["gaussian", "baseline_subsets"])
def test_infidelity_agrees_with_captum_on_the_same_draws(kind, normalize):
    captum_metrics = pytest.importorskip("captum.metrics")
    net, x, b, n = _mlp(), _x(), _x(seed=1), 7
    if kind == "gaussian":
        a = tx.input_gradients(net, x, target=TARGET)
        draws = 0.3 * torch.randn(4, n, 5, generator=_gen(2), dtype=D64)
        perturbed = x[:, None] - draws
    else:
        a = tx.integrated_gradients(net, x, baseline=b, target=TARGET, steps=8)
        draws = (torch.rand(4, n, 5, generator=_gen(2)) < 0.5).to(D64)
        perturbed = torch.where(draws.bool(), b[:, None], x[:, None])

    def captum_draws(inputs):  # Captum repeats each sample n times (repeat_interleave)
        return draws.reshape(-1, 5), perturbed.reshape(-1, 5)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum_metrics.infidelity(
            net, captum_draws, x, a, target=TARGET, n_perturb_samples=n, normalize=normalize
        )
    ours = infidelity(
        net, x, a, perturbation=lambda x, b: (draws, perturbed), n_samples=n, target=TARGET,
        normalize=normalize,
    )  # fmt: skip
    torch.testing.assert_close(ours, theirs.to(D64), rtol=1e-9, atol=1e-18)


def test_infidelity_builtin_draws_are_the_documented_ones():
    net, x, n = _mlp(), _x(), 6
    a = tx.input_gradients(net, x, target=TARGET)
    draws = 0.2 * torch.randn(4, n, 5, generator=_gen(3), dtype=D64)
    ours = infidelity(net, x, a, sigma=0.2, n_samples=n, target=TARGET, generator=_gen(3))
    given = infidelity(
        net, x, a, perturbation=lambda x, b: (draws, x - draws), n_samples=n, target=TARGET
    )
    torch.testing.assert_close(ours, given, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "options, argument",
    [
        ({"perturbation": "uniform"}, "perturbation"),
        ({"n_samples": 0}, "n_samples"),
        ({"sigma": -1.0}, "sigma"),
        ({"probability": 1.5}, "probability"),
        ({"normalize": 1}, "normalize"),
        ({"target": torch.zeros(4, 2, dtype=torch.long)}, "target"),
        ({"perturbation": lambda x, b: x}, "perturbation"),
    ],
)
def test_infidelity_refuses_bad_options_naming_them(options, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        infidelity(_linear, _x(), W.expand(4, 5), **options)


def test_infidelity_refuses_misshaped_attributions():
    with pytest.raises(ValueError, match="attributions"):
        infidelity(_linear, _x(), W)


# ------------------------------------------------------------------ sensitivity


def test_sensitivity_max_of_gradients_of_a_linear_fn_is_exactly_zero():
    x = _x()
    score = sensitivity_max(tx.input_gradients, _linear, x, radius=0.5, generator=_gen())
    assert torch.equal(score, torch.zeros(4, dtype=D64))


def test_sensitivity_max_bites_and_scales_with_the_radius():
    # gradient x input of a linear fn moves by w * delta: |w * delta| <= r |w|
    x = _x()
    small = sensitivity_max(tx.gradient_x_input, _linear, x, radius=0.01, relative=False)
    big = sensitivity_max(tx.gradient_x_input, _linear, x, radius=0.1, relative=False)
    assert (small > 0).all() and (small <= 0.01 * W.norm()).all()
    assert (big > 5 * small).all()


def test_sensitivity_max_agrees_with_captum_on_the_same_draws():
    captum_metrics = pytest.importorskip("captum.metrics")
    from captum.attr import Saliency

    net, x, n = _mlp(), _x(), 5
    perturbed = x[:, None] + 0.05 * (2 * torch.rand(4, n, 5, generator=_gen(4), dtype=D64) - 1)
    saliency = Saliency(net.requires_grad_(True))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Captum warns that it sets requires_grad on x
            theirs = captum_metrics.sensitivity_max(
                lambda inputs, target: saliency.attribute(inputs, target=target, abs=False),
                x, perturb_func=lambda inputs: perturbed.reshape(-1, 5), n_perturb_samples=n,
                target=TARGET,
            )  # fmt: skip
    finally:
        net.requires_grad_(False)
    ours = sensitivity_max(
        tx.input_gradients, net, x, perturbation=lambda x: perturbed, n_samples=n, target=TARGET
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
    chunks = sensitivity_max(
        tx.input_gradients, net, x, perturbation=lambda x: perturbed, n_samples=n, target=TARGET,
        chunk_size=3,
    )  # fmt: skip
    torch.testing.assert_close(ours, chunks, rtol=1e-12, atol=0)


def test_sensitivity_max_builtin_draws_are_uniform_in_the_ball():
    net, x, n = _mlp(), _x(), 6
    u = torch.rand(4, n, 5, generator=_gen(3), dtype=D64)
    given = sensitivity_max(
        tx.input_gradients, net, x, perturbation=lambda x: x + 0.1 * (2 * u - 1), n_samples=n,
        target=TARGET,
    )  # fmt: skip
    ours = sensitivity_max(
        tx.input_gradients, net, x, radius=0.1, n_samples=n, target=TARGET, generator=_gen(3)
    )
    torch.testing.assert_close(ours, given, rtol=1e-12, atol=0)


def test_sensitivity_max_passes_per_sample_baselines():
    net, x, b = _mlp(), _x(), _x(seed=1)
    ig = functools.partial(tx.integrated_gradients, steps=4)
    score = sensitivity_max(ig, net, x, baseline=b, target=TARGET, generator=_gen(), n_samples=3)
    # radius -> 0: the attributions at x itself, so the score vanishes
    tiny = sensitivity_max(ig, net, x, baseline=b, target=TARGET, radius=1e-12, n_samples=3)
    assert (score > 0).all() and (tiny < 1e-9).all()


@pytest.mark.parametrize(
    "options, argument",
    [({"radius": 0}, "radius"), ({"norm": 0}, "norm"), ({"perturbation": 3}, "perturbation")],
)
def test_sensitivity_max_refuses_bad_options(options, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        sensitivity_max(tx.input_gradients, _linear, _x(), **options)


# ------------------------------------------------------------------ deletion / insertion


def _expected_linear_curve(x, b, a, ks, order, insert):
    """The closed form: f(start) +- sum of the first k attributions in order."""
    key = -a if order == "morf" else a
    ranked = a.gather(1, torch.argsort(key, dim=1, stable=True))
    cum = torch.cat([torch.zeros_like(ranked[:, :1]), ranked.cumsum(1)], 1)[:, ks]
    return _linear(b)[:, None] + cum if insert else _linear(x)[:, None] - cum


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("insert", [False, True])
def test_linear_curves_have_their_closed_form(order, insert):
    x, b = _x(), _x(seed=1)
    a = W * (x - b)
    fractions = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    curve_fn = insertion_curve if insert else deletion_curve
    curve = curve_fn(_linear, x, a, fractions=fractions, order=order, baseline=b)
    expected = _expected_linear_curve(x, b, a, [0, 1, 2, 3, 4, 5], order, insert)
    torch.testing.assert_close(curve.values, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(curve.area, curve_area(expected, fractions.to(D64)))
    assert curve.values.dtype == D64 and curve.fractions.dtype == D64


def test_morf_deletion_of_exact_attributions_is_the_best_order():
    # for a linear fn, deleting by exact attributions falls fastest: it lower-bounds any ranking
    x, b = _x(8), _x(8, seed=1)
    exact = deletion_curve(_linear, x, W * (x - b), baseline=b).area
    for seed in range(5):
        rand = torch.randn(x.shape, generator=_gen(seed), dtype=D64)
        assert (deletion_curve(_linear, x, rand, baseline=b).area >= exact - 1e-12).all()
    wrong = W * (x - b) * torch.tensor([1, 1, 1, -1, 1], dtype=D64)  # one sign flipped
    assert (deletion_curve(_linear, x, wrong, baseline=b).area > exact + 1e-3).any()


def test_curves_groups_and_patches():
    x = torch.rand(3, 2, 4, 4, generator=_gen(), dtype=D64)  # images (B, C, H, W)
    a = torch.rand(x.shape, generator=_gen(1), dtype=D64)

    def fn(images):
        return images.flatten(1).sum(1)

    patch = deletion_curve(fn, x, a, patch=(2, 2), fractions=[0, 0.25, 0.5, 1])
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    ids = ((rows // 2) * 2 + cols // 2)[None]  # (1, H, W): 4 patches shared by the channels
    grouped = deletion_curve(fn, x, a, groups=ids, fractions=[0, 0.25, 0.5, 1])
    torch.testing.assert_close(patch.values, grouped.values)
    # one fraction step removes one whole 2x2x2 patch: the sum drops by its total
    totals = x.reshape(3, 2, 2, 2, 2, 2).sum((1, 3, 5)).flatten(1)  # (B, 4 patches)
    relevance = a.reshape(3, 2, 2, 2, 2, 2).sum((1, 3, 5)).flatten(1)
    top = totals.gather(1, relevance.argmax(1, keepdim=True))[:, 0]
    torch.testing.assert_close(patch.values[:, 0] - patch.values[:, 1], top)
    assert torch.equal(patch.values[:, -1], torch.zeros(3, dtype=D64))


def test_curves_are_chunk_invariant_and_refuse_bad_options():
    net, x = _mlp(), _x(5)
    a = tx.input_gradients(net, x, target=1)
    full = insertion_curve(net, x, a, target=1).values
    torch.testing.assert_close(insertion_curve(net, x, a, target=1, chunk_size=2).values, full)
    batch = insertion_curve(net, x, a, target=1, vectorize="batch").values
    torch.testing.assert_close(batch, full, rtol=1e-12, atol=1e-12)
    for options, argument in [
        ({"fractions": [0.5, 0.2]}, "fractions"),
        ({"fractions": [0, 1.5]}, "fractions"),
        ({"order": "random"}, "order"),
        ({"patch": 0}, "patch"),
        ({"groups": torch.tensor([0, 0, 2, 2, 2])}, "groups"),
        ({"groups": torch.zeros(5, dtype=torch.long), "patch": 1}, "groups"),
    ]:
        with pytest.raises((ValueError, TypeError), match=argument):
            deletion_curve(net, x, a, target=1, **options)


@functools.cache
def _people_model():
    from tfx_explain.people import (
        default_people_paths,
        init_transformer_net,
        load_people,
        train_transformer_net,
        transformer_net,
    )

    train_path, test_path = default_people_paths()
    x, y = load_people(train_path)
    x_test, _ = load_people(test_path)
    g = _gen()
    run = train_transformer_net(
        init_transformer_net(generator=g), x, y, epochs=3, generator=g, importance_checkpoints=1
    )
    fn = functools.partial(transformer_net, run.params)
    return fn, x_test[:24], x.mean(0, keepdim=True).expand(24, -1)


def test_random_attributions_score_worse_on_the_people_transformer():
    fn, x, b = _people_model()
    ig = tx.integrated_gradients(fn, x, baseline=b, steps=16)
    fractions = torch.linspace(0, 1, 9)
    rand = torch.rand((8,) + x.shape, generator=_gen(5)).flatten(0, 1)
    xs, bs = x.repeat(8, 1), b.repeat(8, 1)

    def areas(curve, a, xs=x, bs=b):
        return curve(fn, xs, a, baseline=bs, fractions=fractions).area.mean()

    for curve, sign in [(deletion_curve, 1), (insertion_curve, -1)]:
        own, random, reverse = areas(curve, ig), areas(curve, rand, xs, bs), areas(curve, -ig)
        span = sign * (reverse - own)  # best order vs worst order
        assert span > 0
        assert sign * (random - own) > 0.25 * span, (curve.__name__, own, random, reverse)
    exact = infidelity(fn, x, ig, perturbation="baseline_subsets", baseline=b, generator=_gen())
    noise = infidelity(
        fn, x, rand[:24], perturbation="baseline_subsets", baseline=b, generator=_gen()
    )
    assert exact.mean() < 1e-3 * noise.mean()


# ------------------------------------------------------------------ ROAD


def test_road_imputes_a_removed_pixel_by_its_neighbours():
    x = torch.rand(2, 1, 5, 5, generator=_gen(), dtype=D64)
    a = torch.zeros_like(x)
    a[:, 0, 2, 2] = 1.0  # the centre is removed first

    def centre(images):
        return images[:, 0, 2, 2]

    curve = road(centre, x, a, fractions=[0, 1 / 25], noise=0.0)
    patch = x[:, 0, 1:4, 1:4]
    weights = torch.tensor([[1, 2, 1], [2, 0, 2], [1, 2, 1]], dtype=D64) / 12
    expected = (patch * weights).sum((1, 2)) / weights.sum()
    torch.testing.assert_close(curve.values[:, 0], x[:, 0, 2, 2])
    torch.testing.assert_close(curve.values[:, 1], expected, rtol=1e-12, atol=1e-12)


def test_road_keeps_constant_images_and_draws_reproducible_noise():
    x = torch.full((2, 3, 4, 4), 0.7, dtype=D64)
    a = torch.rand(x.shape, generator=_gen(), dtype=D64)

    def mean(images):
        return images.mean((1, 2, 3))

    flat = road(mean, x, a, noise=0.0)
    torch.testing.assert_close(flat.values, torch.full((2, 10), 0.7, dtype=D64))
    noisy = road(mean, x, a, noise=0.05, generator=_gen(1))
    again = road(mean, x, a, noise=0.05, generator=_gen(1), chunk_size=1)
    torch.testing.assert_close(noisy.values, again.values)
    assert (noisy.values[:, 1:] != 0.7).all() and torch.equal(noisy.values[:, 0], flat.values[:, 0])


def test_road_ranks_pixels_and_refuses_bad_inputs():
    # fn reads one pixel: MoRF by an attribution that marks it drops it early, LeRF late
    x = torch.rand(1, 6, 6, generator=_gen(), dtype=D64) + 1.0
    a = torch.zeros_like(x)
    a[0, 0, 0] = 1.0

    def corner(grids):
        return grids[:, 0, 0] ** 2

    morf = road(corner, x, a, noise=0.0).values
    lerf = road(corner, x, a, order="lerf", noise=0.0).values
    assert (morf[0, 1:] != morf[0, 0]).all() and torch.equal(lerf[0, :-1], lerf[0, :1].expand(9))
    with pytest.raises(ValueError, match="fractions"):
        road(corner, x, a, fractions=[0, 1])
    with pytest.raises(ValueError, match="x must be images"):
        road(_linear, _x(), W.expand(4, 5))


# ------------------------------------------------------------------ randomization


def _two_layer(params, x):
    return torch.tanh(x @ params["hidden"]) @ params["out"] + params["bias"]


def _two_layer_params():
    g = _gen(7)
    return {
        "hidden": torch.randn(5, 6, generator=g, dtype=D64),
        "out": torch.randn(6, generator=g, dtype=D64),
        "bias": torch.tensor(0.3, dtype=D64),
    }


def test_parameter_randomization_layer_by_layer():
    params, x = _two_layer_params(), _x(6)
    before = {k: v.clone() for k, v in params.items()}
    scores = parameter_randomization(tx.input_gradients, params, _two_layer, x, generator=_gen())
    assert list(scores) == ["bias", "out", "hidden"]  # last leaf first
    # the bias does not change input gradients: the same ranks
    torch.testing.assert_close(scores["bias"], torch.ones(6, dtype=D64), rtol=1e-14, atol=0)
    assert scores["hidden"].abs().mean() < 0.6
    assert all(torch.equal(params[k], before[k]) for k in params)  # nothing mutated
    single = parameter_randomization(
        tx.input_gradients, params, _two_layer, x, layers=["hidden", "bias"], cascading=False,
        generator=_gen(),
    )  # fmt: skip
    assert list(single) == ["hidden", "bias"]
    torch.testing.assert_close(single["bias"], scores["bias"], rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="layers"):
        parameter_randomization(tx.input_gradients, params, _two_layer, x, layers=["nope"])
    with pytest.raises(ValueError, match="similarity"):
        parameter_randomization(tx.input_gradients, params, _two_layer, x, similarity="l2")


def test_parameter_randomization_cascades():
    params, x = _two_layer_params(), _x(6)
    options = {"layers": ["out", "bias"], "generator": _gen()}
    # the bias leaves input gradients alone: cascading keeps out randomized, one at a time not
    cascade = parameter_randomization(tx.input_gradients, params, _two_layer, x, **options)
    torch.testing.assert_close(cascade["bias"], cascade["out"], rtol=1e-14, atol=0)
    assert (cascade["out"] < 0.99).any()
    options["generator"] = _gen()
    alone = parameter_randomization(
        tx.input_gradients, params, _two_layer, x, cascading=False, **options
    )
    torch.testing.assert_close(alone["out"], cascade["out"], rtol=1e-14, atol=0)
    torch.testing.assert_close(alone["bias"], torch.ones(6, dtype=D64), rtol=1e-14, atol=0)


def test_parameter_randomization_bites_on_a_model_independent_method():
    params, x = _two_layer_params(), _x(6)

    def edges(fn, x, **_):  # ignores the model: the failure Adebayo et al. test for
        return x.abs()

    scores = parameter_randomization(edges, params, _two_layer, x, generator=_gen())
    for s in scores.values():
        torch.testing.assert_close(s, torch.ones(6, dtype=D64), rtol=1e-14, atol=0)
    violation = randomization_violation(edges, params, _two_layer, x, max_similarity=0.5)
    torch.testing.assert_close(violation, torch.full((6,), 0.5, dtype=D64))
    honest = randomization_violation(
        tx.input_gradients, params, _two_layer, x, layers=["hidden"], max_similarity=0.9,
        generator=_gen(),
    )  # fmt: skip
    assert (honest == 0).all()


def _ssim_loop(a, b, size=7):
    """SSIM by the definition: every window, sample (co)variances, L = range of a."""
    out = []
    for ai, bi in zip(a, b, strict=True):
        span = float(ai.max() - ai.min())
        c1, c2, values = (0.01 * span) ** 2, (0.03 * span) ** 2, []
        for r in range(ai.shape[0] - size + 1):
            for c in range(ai.shape[1] - size + 1):
                p, q = (
                    ai[r : r + size, c : c + size].flatten(),
                    bi[r : r + size, c : c + size].flatten(),
                )
                cov = torch.cov(torch.stack([p, q]))  # unbiased, as scikit-image's default
                mp, mq = p.mean(), q.mean()
                num = (2 * mp * mq + c1) * (2 * cov[0, 1] + c2)
                values.append(num / ((mp**2 + mq**2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
        out.append(torch.stack(values).mean())
    return torch.stack(out)


def test_spearman_and_ssim_closed_forms():
    scipy_stats = pytest.importorskip("scipy.stats")
    a = torch.tensor([[3.0, 1.0, 1.0, 2.0, 5.0], [0.0, 0.0, 1.0, 1.0, 2.0]], dtype=D64)
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 1.0, 1.0, 0.0, 2.0]], dtype=D64)
    expected = [scipy_stats.spearmanr(a[i], b[i]).statistic for i in range(2)]
    torch.testing.assert_close(spearman(a, b), torch.tensor(expected, dtype=D64))
    torch.testing.assert_close(spearman(a, 2 * a + 1), torch.ones(2, dtype=D64))
    assert torch.equal(spearman(a, torch.ones_like(a)), torch.zeros(2, dtype=D64))
    maps = torch.rand(3, 8, 8, generator=_gen(), dtype=D64)
    torch.testing.assert_close(ssim(maps, maps), torch.ones(3, dtype=D64))
    other = torch.rand(3, 8, 8, generator=_gen(1), dtype=D64)
    assert (ssim(maps, other) < 0.5).all() and (ssim(maps, other) > -1).all()
    torch.testing.assert_close(ssim(maps, other), _ssim_loop(maps, other), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ testing.metrics checks


def test_deletion_and_insertion_violations_bite():
    x = _x(6).abs() + 0.5
    w = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0], dtype=D64)

    def fn(x):
        return x @ w

    for check in (deletion_violation, insertion_violation):
        good = check(tx.gradient_x_input, fn, x, margin=0.5, generator=_gen())
        assert torch.equal(good, torch.zeros(6, dtype=D64)), check.__name__
        bad = check(
            lambda fn, x, **kw: -tx.gradient_x_input(fn, x, **kw), fn, x, generator=_gen()
        )  # least relevant first: worse than random
        assert (bad > 0).all(), check.__name__


# ------------------------------------------------------------------ properties (Hypothesis)


@settings(max_examples=scaled(1.0), deadline=None)
@given(model=linear_models(n_features=4), x=batches(feature_shape=4, max_batch=4), data=st.data())
def test_linear_models_exact_attributions_are_faithful(model, x, data):
    seed = data.draw(st.integers(0, 2**16))
    scale = 1 + x.abs().max() * model.params["weight"].abs().sum()
    w = model.params["weight"].expand_as(x)
    local = infidelity(model, x, w, generator=_gen(seed))
    exact = tx.gradient_x_input(model, x)  # exact against the zero baseline
    subsets = infidelity(model, x, exact, perturbation="baseline_subsets", generator=_gen(seed))
    assert local.max() <= 1e-24 * scale**2 and subsets.max() <= 1e-24 * scale**2
    # deleting by exact contributions removes the k largest: no ranking falls faster
    v = deletion_violation(tx.gradient_x_input, model, x, n_random=4, generator=_gen(seed))
    assert v.max() <= 1e-12 * scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_metric_keeps_dtype_and_mutates_nothing(dtype):
    x = torch.rand(3, 1, 4, 4, generator=_gen(), dtype=dtype).requires_grad_()
    a = torch.rand(3, 1, 4, 4, generator=_gen(1), dtype=dtype)
    before_x, before_a = x.detach().clone(), a.clone()

    def fn(images):
        return torch.tanh(images.flatten(1)).sum(1)

    scores = {
        "infidelity": infidelity(fn, x, a, generator=_gen()),
        "subsets": infidelity(fn, x, a, perturbation="baseline_subsets", generator=_gen()),
        "sensitivity": sensitivity_max(tx.input_gradients, fn, x, generator=_gen()),
        "deletion": deletion_curve(fn, x, a, patch=2).area,
        "insertion": insertion_curve(fn, x, a).values,
        "road": road(fn, x, a, generator=_gen()).values,
    }
    for name, score in scores.items():
        assert score.dtype == dtype and score.shape[0] == 3, name
        assert bool(torch.isfinite(score).all()), name
    assert torch.equal(x.detach(), before_x) and torch.equal(a, before_a) and x.requires_grad
