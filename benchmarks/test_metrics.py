"""Speed of every metric of ``tfx_explain.metrics`` against its reference, ratios in one run.

References on the same workload and the same perturbation draws (checked to agree
before timing):

- ``infidelity``, ``sensitivity_max``: Captum 0.9's ``captum.metrics`` functions, given
  our draws through their ``perturb_func``.
- ``deletion_curve``, ``insertion_curve``, ``road``, ``parameter_randomization``: a
  Quantus-style Python loop (Quantus itself needs OpenCV, scikit-image and pandas, so it
  is not installed here): one ``fn`` call per sample and fraction, one dense solve per
  imputed image, per-sample ``scipy.stats.spearmanr``, a deep-copied module per layer.

As in ``test_throughput.py``, every round times the reference in the untimed ``setup``
and ours in the timed call, so the ratio is of medians over the same rounds. Targets
(issue 15): at B=256 on the TransformerNet, infidelity >= 3x faster than Captum and the
deletion curve >= 10x faster than the loop. ``TFX_BENCH_SMOKE=1`` runs every case once at
B=3. Run on a quiet machine::

    python -m pytest benchmarks/test_metrics.py -p no:cacheprovider --benchmark-json=m.json
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import time
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

from benchmarks._workloads import SMOKE, _people_rows, _tnet_params
from tfx_explain import input_gradients, integrated_gradients
from tfx_explain.metrics import (
    deletion_curve,
    infidelity,
    insertion_curve,
    parameter_randomization,
    road,
    sensitivity_max,
)
from tfx_explain.people import transformer_net

ROUNDS = 1 if SMOKE else int(os.environ.get("TFX_BENCH_MIN_ROUNDS", "5"))
BATCH = 3 if SMOKE else 256
N = 3 if SMOKE else 32  # perturbations per sample
FRACTIONS = torch.linspace(0, 1, 11)


def _tnet():
    """The functional TransformerNet at the seed sizes on BATCH people-like rows."""
    return functools.partial(transformer_net, _tnet_params()), _people_rows(BATCH, 1)


def _images():
    """A small CNN on 1x12x12 grids (ROAD solves one 144x144 system per row)."""
    torch.manual_seed(0)
    fn = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 10 * 10, 1), nn.Flatten(0)
    ).eval()
    x = torch.rand(BATCH if SMOKE else 64, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    return fn.requires_grad_(False), x


# ---------------------------------------------------------------- cases: (ours, reference)


def _infidelity_case():
    fn, x = _tnet()
    a = integrated_gradients(fn, x, steps=16)
    draws = (torch.rand(BATCH, N, 8, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    perturbed = torch.where(draws.bool(), 0.0, x[:, None])

    def ours():
        return infidelity(fn, x, a, perturbation=lambda x, b: (draws, perturbed), n_samples=N)

    def captum():
        from captum.metrics import infidelity as captum_infidelity

        flat = (draws.reshape(-1, 8), perturbed.reshape(-1, 8))
        return captum_infidelity(fn, lambda inputs: flat, x, a, n_perturb_samples=N)

    return ours, captum


def _sensitivity_case():
    fn, x = _tnet()
    noise = torch.rand(BATCH, N, 8, generator=torch.Generator().manual_seed(3)) * 0.04 - 0.02
    perturbed = x[:, None] + noise

    def ours():
        return sensitivity_max(
            input_gradients, fn, x, perturbation=lambda x: perturbed, n_samples=N
        )

    def captum():
        from captum.attr import Saliency
        from captum.metrics import sensitivity_max as captum_sensitivity

        module = _Wrap(fn)
        saliency = Saliency(module)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return captum_sensitivity(
                lambda inputs: saliency.attribute(inputs, abs=False), x,
                perturb_func=lambda inputs: perturbed.reshape(-1, 8), n_perturb_samples=N,
            )  # fmt: skip

    return ours, captum


class _Wrap(nn.Module):
    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _loop_curve(fn, x, a, baseline, insert):
    """One ``fn`` call per sample and fraction, as a Quantus-style loop does."""
    values = torch.empty(x.shape[0], len(FRACTIONS))
    for b in range(x.shape[0]):
        order = torch.argsort(-a[b].flatten(), stable=True)
        for k, fraction in enumerate(FRACTIONS):
            chosen = order[: int(torch.round(fraction.double() * order.numel()))]
            row = (baseline[b] if insert else x[b]).flatten().clone()
            row[chosen] = (x[b] if insert else baseline[b]).flatten()[chosen]
            with torch.no_grad():
                values[b, k] = fn(row.reshape((1,) + x.shape[1:]))[0]
    return values


def _curve_case(insert):
    fn, x = _tnet()
    a = integrated_gradients(fn, x, steps=16)
    zeros = torch.zeros_like(x)
    curve = insertion_curve if insert else deletion_curve

    def ours():
        with torch.no_grad():
            return curve(fn, x, a, fractions=FRACTIONS).values

    return ours, lambda: _loop_curve(fn, x, a, zeros, insert)


def _road_case():
    fn, x = _images()
    a = input_gradients(fn, x)
    fractions = torch.linspace(0, 0.9, 10)
    noise = 0.0  # deterministic, so the loop must give the same numbers

    def ours():
        with torch.no_grad():
            return road(fn, x, a, fractions=fractions, noise=noise).values

    h, w = x.shape[-2:]
    weights = torch.zeros(h, w, h, w)  # 8 neighbours: 1/6 sideways, 1/12 diagonally
    for r, c, dr, dc in itertools.product(range(h), range(w), (-1, 0, 1), (-1, 0, 1)):
        if (dr or dc) and 0 <= r + dr < h and 0 <= c + dc < w:
            weights[r, c, r + dr, c + dc] = 1 / 12 if dr and dc else 1 / 6
    weights = weights.reshape(h * w, h * w)
    laplacian = torch.diag(weights.sum(1)) - weights

    def loop():
        values = torch.empty(x.shape[0], len(fractions))
        for b in range(x.shape[0]):
            order = torch.argsort(-a[b].sum(0).flatten(), stable=True)
            for k, fraction in enumerate(fractions):
                removed = torch.zeros(h * w)
                removed[order[: int(torch.round(fraction.double() * h * w))]] = 1
                system = torch.eye(h * w) + removed[:, None] * (laplacian - torch.eye(h * w))
                rhs = ((1 - removed) * x[b, 0].flatten())[:, None]
                image = torch.linalg.solve(system, rhs).reshape(1, 1, h, w)
                with torch.no_grad():
                    values[b, k] = fn(image)[0]
        return values

    return ours, loop


def _randomization_case():
    fn, x = _images()
    params = {k: v.detach() for k, v in fn.named_parameters()}
    layers = ["3.", "0."]  # the linear layer, then the convolution (top first)

    def ours():
        return parameter_randomization(
            input_gradients, params, lambda p, x: torch.func.functional_call(fn, p, (x,)), x,
            layers=layers, generator=torch.Generator().manual_seed(4),
        )["0."]  # fmt: skip

    def loop():  # deep-copied module, in-place randomization, scipy per sample
        from scipy.stats import spearmanr

        generator = torch.Generator().manual_seed(4)
        original = input_gradients(fn, x)
        model = copy.deepcopy(fn)
        for layer in layers:
            for name, p in model.named_parameters():
                if name.startswith(layer):
                    rms = p.detach().pow(2).mean().sqrt()
                    with torch.no_grad():
                        p.copy_(torch.randn(p.shape, generator=generator) * rms)
            randomized = input_gradients(model, x)
        pairs = zip(original, randomized, strict=True)
        return torch.tensor([spearmanr(o.flatten(), r.flatten()).statistic for o, r in pairs])

    return ours, loop


CASES = {
    "infidelity/captum": _infidelity_case,
    "sensitivity_max/captum": _sensitivity_case,
    "deletion_curve/loop": functools.partial(_curve_case, False),
    "insertion_curve/loop": functools.partial(_curve_case, True),
    "road/loop": _road_case,
    "parameter_randomization/loop": _randomization_case,
}


@pytest.mark.parametrize("case", list(CASES))
def test_metric_speed(benchmark, case: str) -> None:
    ours, reference = CASES[case]()
    torch.testing.assert_close(
        ours().float(), reference().float().reshape(ours().shape), rtol=1e-4, atol=1e-5
    )
    reference_times: list[float] = []

    def setup():
        start = time.perf_counter()
        reference()
        reference_times.append(time.perf_counter() - start)

    benchmark.pedantic(ours, setup=setup, rounds=ROUNDS, iterations=1)
    t_ref = sorted(reference_times)[len(reference_times) // 2]
    t_ours = benchmark.stats.stats.median
    benchmark.extra_info.update(
        {"case": case, "batch": BATCH, "t_reference": t_ref, "speedup": t_ref / t_ours}
    )
