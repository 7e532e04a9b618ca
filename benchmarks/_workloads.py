"""Workloads, methods and their two references: Captum 0.9 and the plain forward(+backward) limit.

A *trial* is one attribution method on one workload (a function and its inputs). It
knows three ways to get the same numbers, all on the same ``fn`` and the same ``x``:

- ``ours(vectorize, compile)``: the tfx_explain call;
- ``captum``: Captum 0.9's equivalent, with its documented defaults where the issue
  names them (``perturbations_per_eval=1``, ``internal_batch_size=None``);
- ``limit(rows_per_call)``: plain batched passes over the rows the method needs, built
  beforehand, ``rows_per_call`` rows at a time: forward+backward (``torch.autograd.grad``
  of the summed explained outputs) for gradient methods, a ``torch.no_grad`` forward for
  perturbation methods. The benchmark takes the fastest over a range of
  ``rows_per_call`` (``LIMIT_BATCHES``), so that no method evaluating ``fn`` on those
  rows, in whatever pieces (Captum's loop of smaller forwards included), can beat it
  by more than noise.

``agree(ours, captum)`` checks that the first two compute the same attributions, so
that their times compare the same work. ``TFX_BENCH_SMOKE=1`` shrinks every batch to a
handful of rows (used by ``tests/test_benchmarks_smoke.py``). ``TFX_BENCH_DEVICE`` (or
``pytest benchmarks/ --device cuda``) puts every model, input and prebuilt row on that
device; the timers then synchronize it, so the ratios mean the same on a GPU.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import (
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValues,
)
from torch import Tensor, nn
from torch.utils import _pytree as pytree

import tfx_explain as tx
from benchmarks._seed_model import seed_module_from_params
from tfx_explain.people import PEOPLE_FIELDS, init_transformer_net, transformer_net

__all__ = [
    "DEVICE",
    "LIMIT_BATCHES",
    "MATRIX",
    "SMOKE",
    "Trial",
    "WORKLOADS",
    "METHODS",
    "synced",
    "trial",
]

SMOKE = os.environ.get("TFX_BENCH_SMOKE", "") == "1"
DEVICE = torch.device(os.environ.get("TFX_BENCH_DEVICE", "cpu"))
STEPS = 50  # integrated gradients path points (Gauss-Legendre)
NOISE_SAMPLES = 50  # SmoothGrad copies
SIGMA = 0.1  # SmoothGrad noise, in input units (inputs are in [-1, 1])
IMAGE_WINDOW = (1, 4, 4)  # occlusion window and stride on 1x28x28 images: 49 windows
# rows per call tried for the limit (and all rows at once)
LIMIT_BATCHES = (64, 256, 512, 1024, 2048, 4096, 8192, 16384)


@dataclass(frozen=True)
class Workload:
    """A batched ``fn``, its inputs ``x (B, *F)`` and the target explained (``None``: (B,) out)."""

    fn: Callable
    x: Tensor
    target: Tensor | None


@dataclass(frozen=True)
class Trial:
    """One method on one workload, with its references. ``rows`` = rows of ``fn`` it needs.

    ``limit(rows_per_call)`` is the plain pass over those rows in pieces of that size.
    """

    rows: int
    ours: Callable[[str, bool], Callable[[], Any]]
    captum: Callable[[], Any]
    limit: Callable[[int], Callable[[], Any]]
    agree: Callable[[Any, Any], float]


def _people_rows(n: int, seed: int) -> Tensor:
    """Rows shaped like the people data: sex +-1, age/100, state and politics one-hot."""
    gen = torch.Generator().manual_seed(seed)
    sex = torch.randint(0, 2, (n, 1), generator=gen) * 2.0 - 1.0
    age = torch.rand(n, 1, generator=gen) * 0.52 + 0.18
    state = nn.functional.one_hot(torch.randint(0, 3, (n,), generator=gen), 3).float()
    politics = nn.functional.one_hot(torch.randint(0, 3, (n,), generator=gen), 3).float()
    return torch.cat([sex, age, state, politics], dim=1)  # (n, 8)


def _predicted(fn: Callable, x: Tensor) -> Tensor:
    with torch.no_grad():
        return fn(x).argmax(1)


@functools.cache
def _tnet_params() -> dict[str, Tensor]:
    return init_transformer_net(generator=torch.Generator().manual_seed(0))


def _tnet(batch: int) -> Workload:
    """The functional TransformerNet (seed sizes: 8 features, D=4, 2 heads, 2 layers)."""
    fn = functools.partial(transformer_net, _tnet_params())
    return Workload(fn, _people_rows(batch, 1), None)


def _seed(batch: int) -> Workload:
    """The same function as the seed built it: ``nn.TransformerEncoder`` (fused attention)."""
    return Workload(seed_module_from_params(_tnet_params()), _people_rows(batch, 1), None)


def _mlp(batch: int) -> Workload:
    """An MLP classifier on 100 features, explaining each sample's predicted class."""
    torch.manual_seed(0)
    fn = nn.Sequential(
        nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    ).eval()
    x = torch.rand(batch, 100, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return Workload(fn, x, _predicted(fn, x))


def _cnn(batch: int) -> Workload:
    """A small CNN on 1x28x28 images, explaining each sample's predicted class."""
    torch.manual_seed(0)
    fn = nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 10),
    ).eval()
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return Workload(fn, x, _predicted(fn, x))


def _sizes(full: int) -> int:
    return 3 if SMOKE else full


# name -> (builder, batch size)
WORKLOADS: dict[str, tuple[Callable[[int], Workload], int]] = {
    "tnet-2048": (_tnet, _sizes(2048)),
    "tnet-240": (_tnet, _sizes(240)),
    "seed-2048": (_seed, _sizes(2048)),
    "mlp-2048": (_mlp, _sizes(2048)),
    "cnn-128": (_cnn, _sizes(128)),
}


@functools.cache
def workload(name: str) -> Workload:
    build, batch = WORKLOADS[name]
    return _on_device(build(batch))


def _on_device(w: Workload) -> Workload:
    """The workload with its model, inputs and target on ``DEVICE``."""
    fn = w.fn
    if isinstance(fn, nn.Module):
        fn = fn.to(DEVICE)
    elif isinstance(fn, functools.partial):  # transformer_net with its params dict
        params = pytree.tree_map(lambda t: t.to(DEVICE), fn.args[0])
        fn = functools.partial(fn.func, params, *fn.args[1:], **fn.keywords)
    target = None if w.target is None else w.target.to(DEVICE)
    return Workload(fn, w.x.to(DEVICE), target)


def synced(run: Callable[[], Any]) -> Callable[[], Any]:
    """``run`` that returns only once the device has finished its work (CUDA is async)."""
    if DEVICE.type != "cuda":
        return run

    def call() -> Any:
        out = run()
        torch.cuda.synchronize(DEVICE)
        return out

    return call


# ---- the limits: one plain pass over prebuilt rows ---------------------------------------


def _explained(out: Tensor, t_rows: Tensor | None) -> Tensor:
    return out if t_rows is None else out.gather(1, t_rows[:, None])[:, 0]


def _repeat(target: Tensor | None, per_sample: int) -> Tensor | None:
    return None if target is None else target.repeat_interleave(per_sample)


def _gradient_limit(fn: Callable, rows: Tensor, t_rows: Tensor | None) -> Callable:
    """Forward+backward over ``rows``, ``size`` at a time: gradients of the explained outputs."""

    def at(size: int) -> Callable[[], Tensor]:
        def run() -> Tensor:
            out = torch.empty_like(rows)
            for start in range(0, rows.shape[0], size):
                r = rows[start : start + size].detach().requires_grad_()
                t = None if t_rows is None else t_rows[start : start + size]
                out[start : start + size] = torch.autograd.grad(_explained(fn(r), t).sum(), r)[0]
            return out

        return run

    return at


def _forward_limit(fn: Callable, rows: Tensor, t_rows: Tensor | None) -> Callable:
    """Forwards over ``rows`` without autograd, ``size`` at a time."""

    def at(size: int) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with torch.no_grad():
                parts = [
                    _explained(
                        fn(rows[start : start + size]),
                        None if t_rows is None else t_rows[start : start + size],
                    )
                    for start in range(0, rows.shape[0], size)
                ]
            return torch.cat(parts)

        return run

    return at


def _perturbed(x: Tensor, keep: Tensor) -> Tensor:
    """Rows of every sample with features kept where ``keep (R, *F)``, zero elsewhere."""
    # (B, 1, *F) where (R, *F) -> (B, R, *F) -> (B R, *F)
    return torch.where(keep.to(x.device), x.unsqueeze(1), torch.zeros(())).flatten(0, 1)


# ---- agreement checks ------------------------------------------------------------------------


def _relative_error(a: Tensor, b: Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def _same(tol: float) -> Callable[[Tensor, Tensor], float]:
    def agree(ours: Tensor, theirs: Tensor) -> float:
        err = _relative_error(ours, theirs)
        if not err <= tol:
            raise AssertionError(f"ours and Captum's attributions differ: {err:.2e} > {tol}")
        return err

    return agree


def _same_groups(groups: dict[str, tuple[int, ...]], tol: float) -> Callable:
    """Captum gives every feature of a group the group's whole value; we share it evenly."""
    first = [members[0] for members in groups.values()]

    def agree(ours: Tensor, theirs: Tensor) -> float:
        return _same(tol)(tx.group_attributions(ours, groups), theirs[:, first])

    return agree


def _same_shape(ours: Tensor, theirs: Tensor) -> float:
    """SmoothGrad draws its own noise: only shape and finiteness can be compared."""
    if ours.shape != theirs.shape or not bool(torch.isfinite(ours).all()):
        raise AssertionError(f"shapes {tuple(ours.shape)} vs {tuple(theirs.shape)} or non-finite")
    return float("nan")


def _leaf(x: Tensor) -> Tensor:
    """A copy of ``x`` requiring grad, as Captum's gradient methods expect (else they warn)."""
    return x.clone().requires_grad_()


def _feature_mask(groups: dict[str, tuple[int, ...]], n_features: int) -> Tensor:
    mask = torch.empty(1, n_features, dtype=torch.long)
    for g, members in enumerate(groups.values()):
        mask[0, list(members)] = g
    return mask.to(DEVICE)


# ---- the methods -------------------------------------------------------------------------------


def _input_gradients(w: Workload) -> Trial:
    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        return functools.partial(
            tx.input_gradients, w.fn, w.x, target=w.target, vectorize=vectorize, compile=compile
        )

    def captum() -> Tensor:
        return Saliency(w.fn).attribute(_leaf(w.x), target=w.target, abs=False)

    rows = w.x.shape[0]
    return Trial(rows, ours, captum, _gradient_limit(w.fn, w.x, w.target), _same(1e-5))


def _gradient_x_input(w: Workload) -> Trial:
    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        return functools.partial(
            tx.gradient_x_input, w.fn, w.x, target=w.target, vectorize=vectorize, compile=compile
        )

    def captum() -> Tensor:
        return InputXGradient(w.fn).attribute(_leaf(w.x), target=w.target)

    rows = w.x.shape[0]
    return Trial(rows, ours, captum, _gradient_limit(w.fn, w.x, w.target), _same(1e-5))


def _integrated_gradients(w: Workload) -> Trial:
    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        return functools.partial(
            tx.integrated_gradients,
            w.fn,
            w.x,
            target=w.target,
            steps=STEPS,
            rule="gauss_legendre",
            vectorize=vectorize,
            compile=compile,
        )

    def captum() -> Tensor:
        return IntegratedGradients(w.fn).attribute(
            w.x.clone(),
            baselines=torch.zeros_like(w.x),
            target=w.target,
            n_steps=STEPS,
            method="gausslegendre",
            internal_batch_size=None,
        )

    alphas, _ = tx.quadrature("gauss_legendre", STEPS, dtype=w.x.dtype, device=w.x.device)
    shape = (1, STEPS) + (1,) * (w.x.ndim - 1)
    path = (alphas.reshape(shape) * w.x.unsqueeze(1)).flatten(0, 1)  # (B S, *F), baseline 0
    limit = _gradient_limit(w.fn, path, _repeat(w.target, STEPS))
    return Trial(path.shape[0], ours, captum, limit, _same(1e-3))


def _window_ids(feature_shape: tuple[int, ...], window: tuple[int, ...]) -> Tensor:
    """Index of the (non-overlapping) window holding each feature: ``(*F)`` longs."""
    ids = torch.zeros(feature_shape, dtype=torch.long)
    for d, (size, width) in enumerate(zip(feature_shape, window, strict=True)):
        shape = [1] * len(feature_shape)
        shape[d] = size
        ids = ids * (size // width) + (torch.arange(size) // width).reshape(shape)
    return ids


def _occlusion(w: Workload) -> Trial:
    """Windows of one feature on tabular rows; ``IMAGE_WINDOW`` windows and strides on images."""
    feature_shape = tuple(w.x.shape[1:])
    image = len(feature_shape) == 3
    window = IMAGE_WINDOW if image else (1,)
    ids = _window_ids(feature_shape, window)
    n_windows = int(ids.max()) + 1
    # (K, 1, ...) == (*F) -> (K, *F): window k removes its features
    removed = torch.arange(n_windows).reshape((-1,) + (1,) * len(feature_shape)) == ids
    keep = torch.cat([torch.ones_like(removed[:1]), ~removed])  # (K + 1, *F)

    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        return functools.partial(
            tx.occlusion,
            w.fn,
            w.x,
            window=window if image else 1,
            stride=window if image else 1,
            target=w.target,
            vectorize=vectorize,
            compile=compile,
        )

    def captum() -> Tensor:
        return Occlusion(w.fn).attribute(
            w.x.clone(),
            sliding_window_shapes=window,
            strides=window,
            baselines=0.0,
            target=w.target,
            perturbations_per_eval=1,
        )

    rows = _perturbed(w.x, keep)
    limit = _forward_limit(w.fn, rows, _repeat(w.target, keep.shape[0]))
    return Trial(rows.shape[0], ours, captum, limit, _same(1e-4))


def _groups(w: Workload) -> dict[str, tuple[int, ...]]:
    n_features = w.x[0].numel()
    return PEOPLE_FIELDS if n_features == 8 else {str(i): (i,) for i in range(n_features)}


def _feature_ablation(w: Workload) -> Trial:
    """The people fields on TransformerNet rows; one group per feature otherwise."""
    groups = _groups(w)
    n_features = w.x.shape[1]
    mask = _feature_mask(groups, n_features)

    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        return functools.partial(
            tx.feature_ablation,
            w.fn,
            w.x,
            groups=groups,
            target=w.target,
            vectorize=vectorize,
            compile=compile,
        )

    def captum() -> Tensor:
        return FeatureAblation(w.fn).attribute(
            w.x.clone(), baselines=0.0, target=w.target, feature_mask=mask, perturbations_per_eval=1
        )

    removed = mask.cpu() == torch.arange(len(groups))[:, None]  # (G, F)
    keep = torch.cat([torch.ones_like(removed[:1]), ~removed])
    rows = _perturbed(w.x, keep)
    limit = _forward_limit(w.fn, rows, _repeat(w.target, keep.shape[0]))
    return Trial(rows.shape[0], ours, captum, limit, _same_groups(groups, 1e-4))


def _shapley_values(w: Workload) -> Trial:
    """Exact Shapley values of the 4 people fields: 2^4 = 16 coalitions per sample."""
    groups = PEOPLE_FIELDS
    mask = _feature_mask(groups, w.x.shape[1])

    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        return functools.partial(
            tx.shapley_values,
            w.fn,
            w.x,
            groups=groups,
            target=w.target,
            vectorize=vectorize,
            compile=compile,
        )

    def captum() -> Tensor:
        return ShapleyValues(w.fn).attribute(
            w.x.clone(),
            baselines=torch.zeros_like(w.x[:1]),
            target=w.target,
            feature_mask=mask,
            perturbations_per_eval=1,
        )

    n_groups = len(groups)
    present = (torch.arange(2**n_groups)[:, None] >> torch.arange(n_groups)) & 1 == 1  # (K, G)
    keep = present[:, mask[0].cpu()]  # (K, G) -> (K, F)
    rows = _perturbed(w.x, keep)
    limit = _forward_limit(w.fn, rows, _repeat(w.target, keep.shape[0]))
    return Trial(rows.shape[0], ours, captum, limit, _same_groups(groups, 1e-4))


def _smoothgrad(w: Workload) -> Trial:
    def ours(vectorize: str, compile: bool) -> Callable[[], Tensor]:
        smooth = tx.smoothgrad(
            tx.input_gradients,
            n_samples=NOISE_SAMPLES,
            sigma=SIGMA,
            generator=torch.Generator().manual_seed(2),
        )
        return functools.partial(
            smooth, w.fn, w.x, target=w.target, vectorize=vectorize, compile=compile
        )

    def captum() -> Tensor:
        return NoiseTunnel(Saliency(w.fn)).attribute(
            w.x.clone(),
            nt_type="smoothgrad",
            nt_samples=NOISE_SAMPLES,
            nt_samples_batch_size=None,
            stdevs=SIGMA,
            target=w.target,
            abs=False,
        )

    gen = torch.Generator().manual_seed(3)
    noisy = w.x.unsqueeze(1) + SIGMA * torch.randn(
        (w.x.shape[0], NOISE_SAMPLES) + w.x.shape[1:], generator=gen
    ).to(w.x.device)
    rows = noisy.flatten(0, 1)  # (B N, *F)
    limit = _gradient_limit(w.fn, rows, _repeat(w.target, NOISE_SAMPLES))
    return Trial(rows.shape[0], ours, captum, limit, _same_shape)


METHODS: dict[str, Callable[[Workload], Trial]] = {
    "input_gradients": _input_gradients,
    "gradient_x_input": _gradient_x_input,
    "integrated_gradients": _integrated_gradients,
    "occlusion": _occlusion,
    "feature_ablation": _feature_ablation,
    "shapley_values": _shapley_values,
    "smoothgrad": _smoothgrad,
}


# every method on every workload it is defined for: Shapley values need the 4 people
# fields (8-feature rows); feature ablation needs flat rows
MATRIX: dict[str, tuple[str, ...]] = {
    "tnet-2048": tuple(METHODS),
    "tnet-240": tuple(METHODS),
    "seed-2048": tuple(METHODS),
    "mlp-2048": tuple(m for m in METHODS if m != "shapley_values"),
    "cnn-128": tuple(m for m in METHODS if m not in ("shapley_values", "feature_ablation")),
}


def trial(workload_name: str, method: str) -> Trial:
    return METHODS[method](workload(workload_name))
