"""KernelSHAP and LIME against Captum 0.9 and SHAP's KernelExplainer: same workload, one run.

The workload is the people TransformerNet (8 features, each its own player, zero
baseline) on ``SAMPLES`` rows. Every method evaluates the same number of
coalitions per sample:

- ``kernel_shap``: all ``2^8 - 2 = 254`` coalitions (exact). SHAP's KernelExplainer
  with ``nsamples=254`` enumerates the same coalitions, so the two must agree to
  float32 rounding (checked before timing); Captum's KernelShap draws 254 with
  replacement (same rows, different numbers: only shapes are compared).
- ``lime``: 254 random coalitions, cosine kernel of width 0.25, plain weighted
  least squares; Captum's Lime gets the same kernel as ``similarity_func`` and
  ``SkLearnLinearRegression`` as its model (random draws: shapes compared).

Captum runs with ``perturbations_per_eval=254`` (all coalitions of a sample in one
forward call, its fastest setting), SHAP with ``silent=True``. Each benchmark times
ours with ``benchmark.pedantic``; the references are timed in its ``setup`` in
alternating order, so every round is a back-to-back triple. Ratios of medians go to
``extra_info`` (``vs_captum``, ``vs_shap``: their time over ours).

Run on a quiet machine::

    python -m pytest benchmarks/test_surrogates.py -p no:cacheprovider --benchmark-json=s.json
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from captum.attr import KernelShap, Lime

import tfx_explain as tx
from benchmarks._workloads import SMOKE
from tfx_explain.people import init_transformer_net, transformer_net

SAMPLES = 3 if SMOKE else int(os.environ.get("TFX_BENCH_SURROGATE_SAMPLES", "64"))
COALITIONS = 254  # 2^8 - 2: every coalition strictly between empty and full
WIDTH = 0.25
ROUNDS = 1 if SMOKE else int(os.environ.get("TFX_BENCH_MIN_ROUNDS", "3"))


def _workload() -> tuple[Callable, torch.Tensor]:
    params = init_transformer_net(generator=torch.Generator().manual_seed(0))
    fn = functools.partial(transformer_net, params)
    g = torch.Generator().manual_seed(1)
    sex = torch.randint(0, 2, (SAMPLES, 1), generator=g) * 2.0 - 1.0
    age = torch.rand(SAMPLES, 1, generator=g) * 0.52 + 0.18
    state = torch.nn.functional.one_hot(torch.randint(0, 3, (SAMPLES,), generator=g), 3)
    politics = torch.nn.functional.one_hot(torch.randint(0, 3, (SAMPLES,), generator=g), 3)
    return fn, torch.cat([sex, age, state.float(), politics.float()], dim=1)


def _cosine_kernel(_original, _perturbed, interpretable, **_kwargs) -> float:
    """tfx_explain.lime's kernel, for Captum: exp(-d^2 / w^2), d = 1 - sqrt(|z| / G)."""
    z = interpretable.double()
    distance = 1.0 - (z.sum() / z.numel()).sqrt()
    return float(torch.exp(-(distance**2) / WIDTH**2))


def _shap_kernel(fn: Callable, x: torch.Tensor) -> Callable[[], np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap imports matplotlib and numba: their notices
        import shap

    def model(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return fn(torch.from_numpy(np.asarray(a, dtype=np.float32))).numpy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.KernelExplainer(model, np.zeros((1, x.shape[1]), dtype=np.float32))

    def run() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(
                explainer.shap_values(x.numpy(), nsamples=COALITIONS, silent=True, l1_reg=False)
            )

    return run


def _cases() -> dict[str, dict[str, Callable]]:
    fn, x = _workload()
    return {
        "kernel_shap": {
            "ours": lambda: tx.kernel_shap(fn, x, vectorize="batch"),
            "captum": _quiet(
                lambda: KernelShap(fn).attribute(
                    x.clone(),
                    baselines=0.0,
                    n_samples=COALITIONS,
                    perturbations_per_eval=COALITIONS,
                )
            ),
            "shap": _shap_kernel(fn, x),
        },
        "lime": {
            "ours": lambda: tx.lime(
                fn,
                x,
                n_samples=COALITIONS,
                kernel_width=WIDTH,
                generator=torch.Generator().manual_seed(3),
                vectorize="batch",
            ),
            "captum": _quiet(lambda: _captum_lime(fn)(x)),
        },
    }


def _quiet(run: Callable) -> Callable:
    """Captum warns that a batch trains one surrogate per sample (it loops): we know."""

    def quiet():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "You are providing multiple inputs")
            return run()

    return quiet


def _captum_lime(fn: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    from captum._utils.models.linear_model import SkLearnLinearRegression

    lime = Lime(fn, interpretable_model=SkLearnLinearRegression(), similarity_func=_cosine_kernel)

    def run(x: torch.Tensor) -> torch.Tensor:
        return lime.attribute(
            x.clone(), baselines=0.0, n_samples=COALITIONS, perturbations_per_eval=COALITIONS
        )

    return run


def _seconds(run: Callable) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@pytest.mark.parametrize("method", ["kernel_shap", "lime"])
def test_surrogate_throughput(benchmark, method: str) -> None:
    pytest.importorskip("sklearn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("shap")
    refs = _cases()[method]
    ours = refs.pop("ours")
    result = ours()
    theirs = {name: run() for name, run in refs.items()}
    assert theirs["captum"].shape == result.shape
    if "shap" in theirs:  # both enumerate every coalition: the same numbers
        np.testing.assert_allclose(theirs["shap"], result.numpy(), rtol=0, atol=1e-4)

    times: dict[str, list[float]] = {name: [] for name in refs}
    orders = itertools.cycle([list(refs), list(refs)[::-1]])

    def setup() -> None:
        for name in next(orders):
            times[name].append(_seconds(refs[name]))

    benchmark.group = f"surrogates {method}"
    benchmark.pedantic(ours, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    if benchmark.stats is None:
        return
    t_ours = benchmark.stats.stats.median
    medians = {name: float(np.median(t)) for name, t in times.items()}
    benchmark.extra_info.update(
        method=method,
        samples=SAMPLES,
        coalitions=COALITIONS,
        rows=SAMPLES * (COALITIONS + 2),
        t_ours=t_ours,
        **{f"t_{name}": t for name, t in medians.items()},
        **{f"vs_{name}": t / t_ours for name, t in medians.items()},
        load=os.getloadavg()[0],
        threads=torch.get_num_threads(),
        finite=bool(math.isfinite(t_ours)),
    )
