"""One contract suite that every public attribution method must pass.

Each method enters through one row of ``SPECS``: the function, the options it is
called with (built from ``x``, so trees, windows and baselines fit any input), and
what it supports. The same tests then check shapes and dtypes, batched == loop,
``chunk_size`` invariance, no mutation, differentiability, vmap, multiple targets,
pytree inputs and argument validation for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn
from torch.func import grad, vmap
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

import tfx_explain as tx

B, C = 3, 3  # samples, outputs of the multi-output test functions
F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    """A fresh generator: a stochastic method called twice draws the same noise."""
    return torch.Generator().manual_seed(seed)


def _n_features(x: Any) -> int:
    return sum(math.prod(leaf.shape[1:]) for leaf in pytree.tree_leaves(x))


def _mlp(n_in: int, n_out: int | None = C, *, seed: int = 0, float64_only: bool = False):
    """A smooth tanh MLP ``(B, *F) -> (B, n_out)`` (or ``(B,)`` when ``n_out`` is None).

    Leaves of a dict/tuple input are flattened and concatenated in pytree order.
    ``float64_only`` makes it assert that every input it sees is float64.
    """
    g = _gen(seed)
    w1 = torch.randn(n_in, 5, generator=g, dtype=F64) / math.sqrt(n_in)
    b1 = torch.randn(5, generator=g, dtype=F64) / 4
    w2 = torch.randn(5, n_out or 1, generator=g, dtype=F64)
    b2 = torch.randn(n_out or 1, generator=g, dtype=F64)

    def fn(x: Any) -> torch.Tensor:
        leaves = pytree.tree_leaves(x)
        if float64_only:
            assert all(leaf.dtype == F64 for leaf in leaves), [leaf.dtype for leaf in leaves]
        flat = torch.cat([leaf.flatten(1) for leaf in leaves], dim=1)
        dtype = flat.dtype
        out = torch.tanh(flat @ w1.to(dtype) + b1.to(dtype)) @ w2.to(dtype) + b2.to(dtype)
        return out if n_out is not None else out[:, 0]

    return fn


def _affine(n_in: int, n_out: int = C, *, seed: int = 0):
    """An affine map ``(B, *F) -> (B, n_out)``: every path gradient is the same."""
    g = _gen(seed)
    w = torch.randn(n_in, n_out, generator=g, dtype=F64)
    b = torch.randn(n_out, generator=g, dtype=F64)

    def fn(x: Any) -> torch.Tensor:
        flat = torch.cat([leaf.flatten(1) for leaf in pytree.tree_leaves(x)], dim=1)
        return flat @ w.to(flat.dtype) + b.to(flat.dtype)

    return fn


def _x(feature_shape=(4,), *, batch=B, dtype=F64, seed=1) -> torch.Tensor:
    return torch.randn((batch, *feature_shape), generator=_gen(seed), dtype=dtype)


def _x_tree(*, batch=B, dtype=F64, seed=1) -> dict[str, torch.Tensor]:
    g = _gen(seed)
    return {
        "u": torch.randn(batch, 3, generator=g, dtype=dtype),
        "v": torch.randn(batch, 2, generator=g, dtype=dtype),
    }


def _flat(tree: Any, lead: int = 1) -> torch.Tensor:
    """Leaves flattened after ``lead`` leading dims and concatenated: the tree as one tensor."""
    return torch.cat([leaf.flatten(lead) for leaf in pytree.tree_leaves(tree)], dim=lead)


def _flat_pairs(gamma: Any, x: Any) -> torch.Tensor:
    """Pairwise results ``gamma[i][j] (B, *F_i, *F_j)`` as one ``(B, D, D)`` tensor."""
    if isinstance(gamma, torch.Tensor):
        return gamma.reshape(gamma.shape[0], _n_features(x), -1)
    x_leaves, spec = pytree.tree_flatten(x)
    rows = []
    for i, row in enumerate(spec.flatten_up_to(gamma)):  # row i: a tree like x
        d_i = math.prod(x_leaves[i].shape[1:])
        blocks = [block.reshape(block.shape[0], d_i, -1) for block in spec.flatten_up_to(row)]
        rows.append(torch.cat(blocks, dim=2))
    return torch.cat(rows, dim=1)


def _target(batch=B) -> torch.Tensor:
    return torch.tensor([0, 2, 1, 2, 0, 1, 1])[:batch]


# ---- options built from x --------------------------------------------------------------


def _baseline(x: Any) -> Any:
    """A constant 0.25 baseline of shape ``(1, *F)`` per leaf (broadcast over the batch)."""
    return pytree.tree_map(lambda leaf: torch.full((1, *leaf.shape[1:]), 0.25, dtype=leaf.dtype), x)


def _groups(x: Any) -> dict[str, Any]:
    """Three features in one (unordered, non-contiguous for tensors) group, the rest alone.

    For the ``{"u": (B, 3), "v": (B, 2)}`` tree this is the same partition as for its
    flat ``(B, 5)`` version, written with a leaf key and ``(leaf key, indices)`` pairs.
    """
    if isinstance(x, dict):
        return {"g0": "u", "g1": ("v", [0]), "g2": ("v", [1])}
    if isinstance(x, tuple):
        return {"g0": 0, "g1": (1, [0]), "g2": (1, [1])}
    n = _n_features(x)
    return {"g0": [0, 2, 1], **{f"g{i - 2}": [i] for i in range(3, n)}}


def _window(x: torch.Tensor) -> dict[str, Any]:
    """Overlapping windows: width 2, stride 1 in the last dim."""
    ndim = x.ndim - 1
    return {"window": 2 if ndim == 1 else (1,) * (ndim - 1) + (2,), "stride": 1}


def _baselines(x: Any, rows: int = 5) -> Any:
    """``(M, *F)`` reference rows per leaf, the same numbers for a tree and its flat version."""
    flat = torch.randn(rows, _n_features(x), generator=_gen(7), dtype=F64)
    leaves, spec = pytree.tree_flatten(x)
    sizes = [math.prod(leaf.shape[1:]) for leaf in leaves]
    parts = torch.split(flat, sizes, dim=1)
    shaped = [
        p.reshape(rows, *leaf.shape[1:]).to(leaf.dtype)
        for p, leaf in zip(parts, leaves, strict=True)
    ]
    return pytree.tree_unflatten(shaped, spec)


# ---- the spec table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One public method with the options it is tested with.

    ``run(fn, x, **kw)`` calls the method with ``options(x)`` updated by ``kw``.
    """

    name: str
    method: Callable[..., Any]
    options: Callable[[Any], dict[str, Any]] = lambda x: {}
    pairwise: bool = False  # result (B, *F, *F): integrated Hessians
    tree: bool = True  # accepts a dict/tuple x
    baseline: str | None = "baseline"  # name of the baseline argument, if any
    steps: bool = False  # takes steps and rule
    groups: bool = False  # takes groups
    shapley: bool = False
    occlusion: bool = False
    # A variant whose result does not depend on how noise is drawn, for the tests that
    # compare calls with different batch layouts (batched vs loop, tree vs flat).
    layout_free: Spec | None = None
    layout_fn: str = "mlp"  # "affine": the layout_free variant needs an affine fn
    random: bool = False  # draws from a generator (a fresh, seeded one at every call)
    noise_per_leaf: bool = False  # draws depend on the tree structure of x
    per_sample: bool = False  # result (B,) (or (B, T)): completeness_gap
    transformable: bool = True  # runs under vmap/grad (adaptive IG picks steps from data)
    multi_target: bool = True  # accepts a (B, T) target
    covers: tuple[str, ...] = ()  # public names it exercises (default: the method's name)

    def run(self, fn: Callable, x: Any, **kw: Any) -> Any:
        return self.method(fn, x, **{**self.options(x), **kw})

    def __repr__(self) -> str:
        return self.name


def _smoothed(inner: Callable, sigma: float) -> Callable:
    def method(fn, x, **options):
        return tx.smoothgrad(inner, n_samples=3, sigma=sigma, generator=_gen(1))(fn, x, **options)

    return method


def _ig_spec(rule: str) -> Spec:
    return Spec(
        f"integrated_gradients[{rule}]",
        tx.integrated_gradients,
        lambda x, rule=rule: {"baseline": _baseline(x), "steps": 4, "rule": rule},
        steps=True,
    )


def _smooth_spec(name: str, inner: Callable, options, **flags) -> Spec:
    # the noise is drawn per leaf and per batch layout; with sigma = 0 it has no effect
    quiet = Spec(name + "[sigma=0]", _smoothed(inner, 0.0), options, **flags)
    return Spec(
        name,
        _smoothed(inner, 0.1),
        options,
        layout_free=quiet,
        random=True,
        noise_per_leaf=True,
        **flags,
    )


_EG_LOOP = Spec(
    "expected_gradients[one baseline row]",
    tx.expected_gradients,
    lambda x: {"baselines": _baselines(x, rows=1), "n_samples": 4, "generator": _gen(2)},
    baseline="baselines",
)


def _adaptive(fn, x, **options):
    return tx.adaptive_integrated_gradients(fn, x, **options).attributions


def _ig_gap(fn, x, *, baseline=None, target=None, **options):
    """The completeness gap of integrated gradients: ``(B,)`` or ``(B, T)``."""
    attr = tx.integrated_gradients(fn, x, baseline=baseline, target=target, **options)
    return tx.completeness_gap(fn, x, attr, baseline=baseline, target=target)


_EH_LOOP = Spec(
    "expected_hessians[one baseline row]",
    tx.expected_hessians,
    lambda x: {"baselines": _baselines(x, rows=1), "n_samples": 3, "generator": _gen(2)},
    baseline="baselines",
    pairwise=True,
    tree=False,
)


def _overhang(x: torch.Tensor) -> dict[str, Any]:
    """Windows whose last position runs over the edge of the last dim (clip=True)."""
    ndim = x.ndim - 1
    width = 3 if ndim == 1 else 2
    return {"window": (1,) * (ndim - 1) + (width,), "stride": (1,) * (ndim - 1) + (2,)}


SPECS = [
    Spec("input_gradients", tx.input_gradients, baseline=None),
    Spec("gradient_x_input", tx.gradient_x_input, baseline=None),
    *[_ig_spec(rule) for rule in tx.RULES],
    Spec(
        "occlusion",
        tx.occlusion,
        lambda x: {**_window(x), "baseline": _baseline(x)},
        tree=False,
        occlusion=True,
    ),
    Spec(
        "occlusion[clip]",
        tx.occlusion,
        lambda x: {**_overhang(x), "clip": True, "baseline": _baseline(x)},
        tree=False,
        occlusion=True,
    ),
    # one window set per leaf: with width-1 windows a tree is its flat concatenation
    Spec(
        "occlusion[window=1]",
        tx.occlusion,
        lambda x: (
            {"window": 1 if x.ndim == 2 else (1,) * (x.ndim - 1), "baseline": _baseline(x)}
            if isinstance(x, torch.Tensor)
            else {"window": 1, "baseline": _baseline(x)}
        ),
    ),
    Spec(
        "feature_ablation",
        tx.feature_ablation,
        lambda x: {"groups": _groups(x), "baseline": _baseline(x)},
        groups=True,
    ),
    Spec(
        "shapley_values[exact]",
        tx.shapley_values,
        lambda x: {"baseline": _baseline(x)},
        groups=True,
        shapley=True,
    ),
    # the permutations are drawn once per call, independently of B: layout free as is
    Spec(
        "shapley_values[sampled]",
        tx.shapley_values,
        lambda x: {"baseline": _baseline(x), "n_permutations": 4, "generator": _gen(3)},
        groups=True,
        shapley=True,
        random=True,
    ),
    Spec(
        "kernel_shap[exact]",
        tx.kernel_shap,
        lambda x: {"groups": _groups(x), "baseline": _baseline(x)},
        groups=True,
    ),
    # the coalitions are drawn once per call, independently of B: layout free as is
    Spec(
        "kernel_shap[sampled]",
        tx.kernel_shap,
        lambda x: {"baseline": _baseline(x), "n_samples": 8, "generator": _gen(4)},
        groups=True,
        random=True,
    ),
    Spec(
        "kernel_shap[shap sampling]",
        tx.kernel_shap,
        lambda x: {
            "baseline": _baseline(x),
            "n_samples": 12,  # F=4: sizes 1 and 3 enumerated, 2 pairs of size 2 drawn
            "sampling": "shap",
            "generator": _gen(4),
        },
        groups=True,
        random=True,
    ),
    Spec(
        "lime",
        tx.lime,
        lambda x: {
            "groups": _groups(x),
            "baseline": _baseline(x),
            "n_samples": 12,
            "kernel_width": 0.5,
            "generator": _gen(5),
        },
        groups=True,
        random=True,
    ),
    _smooth_spec("smoothgrad(input_gradients)", tx.input_gradients, lambda x: {}, baseline=None),
    _smooth_spec(
        "smoothgrad(integrated_gradients)",
        tx.integrated_gradients,
        lambda x: {"baseline": _baseline(x), "steps": 3},
        steps=True,
    ),
    Spec(
        "expected_gradients",
        tx.expected_gradients,
        lambda x: {"baselines": _baselines(x), "n_samples": 4, "generator": _gen(2)},
        baseline="baselines",
        layout_free=_EG_LOOP,
        layout_fn="affine",
        random=True,
    ),
    Spec(
        "expected_hessians",
        tx.expected_hessians,
        lambda x: {"baselines": _baselines(x), "n_samples": 3, "generator": _gen(2)},
        baseline="baselines",
        pairwise=True,
        tree=False,
        layout_free=_EH_LOOP,
        layout_fn="affine",
        random=True,
    ),
    Spec(
        "integrated_hessians",
        tx.integrated_hessians,
        lambda x: {"baseline": _baseline(x), "steps": 3},
        pairwise=True,
        steps=True,
    ),
    Spec(
        "adaptive_integrated_gradients",
        _adaptive,
        lambda x: {"baseline": _baseline(x), "start_steps": 2, "max_steps": 8, "tol": 1e-6},
        transformable=False,
        multi_target=False,
        covers=("adaptive_integrated_gradients", "AdaptiveResult"),
    ),
    # the gap is (B,), not shaped like x: it has no tree of attributions to compare
    Spec(
        "completeness_gap(integrated_gradients)",
        _ig_gap,
        lambda x: {"baseline": _baseline(x), "steps": 4},
        tree=False,
        steps=True,
        per_sample=True,
        covers=("completeness_gap", "integrated_gradients"),
    ),
]
# vectorize="batch": one batched call (plain autograd outside transforms), and "vmap"
# (rows isolated; the default "auto" takes the batch route on these row-independent
# functions outside transforms): same contract
SPECS += [
    Spec(f"{s.name}[{v}]", s.method, lambda x, s=s, v=v: {**s.options(x), "vectorize": v},
         **{k: getattr(s, k) for k in ("tree", "baseline", "steps", "groups", "occlusion",
                                       "pairwise")})
    for v in ("batch", "vmap")
    for s in SPECS
    if s.name in ("input_gradients", "gradient_x_input", "integrated_gradients[gauss_legendre]",
                  "occlusion", "feature_ablation", "kernel_shap[exact]", "lime",
                  "integrated_hessians")
]  # fmt: skip


def _batch(spec: Spec) -> Spec:
    return Spec(
        f"{spec.name}[batch]",
        spec.method,
        lambda x: {**spec.options(x), "vectorize": "batch"},
        baseline=spec.baseline,
        pairwise=spec.pairwise,
        tree=spec.tree,
    )


_EH = next(s for s in SPECS if s.name == "expected_hessians")
SPECS.append(
    Spec(
        "expected_hessians[batch]",
        tx.expected_hessians,
        lambda x: {**_EH.options(x), "vectorize": "batch"},
        baseline="baselines",
        pairwise=True,
        tree=False,
        layout_free=_batch(_EH_LOOP),
        layout_fn="affine",
        random=True,
    )
)
TREE_SPECS = [s for s in SPECS if s.tree]
RANDOM_SPECS = [s for s in SPECS if s.random and s.transformable]
TRANSFORMABLE_SPECS = [s for s in SPECS if s.transformable]
MULTI_TARGET_SPECS = [s for s in SPECS if s.multi_target]


def _expected_shape(spec: Spec, x: torch.Tensor, n_targets: int | None = None) -> tuple:
    lead = (x.shape[0],) if n_targets is None else (x.shape[0], n_targets)
    if spec.per_sample:
        return lead
    features = tuple(x.shape[1:])
    return lead + features + (features if spec.pairwise else ())


def _close(actual: Any, expected: Any, atol: float) -> None:
    """Same tree structure and values within ``atol`` (float64 rounding when atol ~1e-12)."""
    a_leaves, a_spec = pytree.tree_flatten(actual)
    e_leaves, e_spec = pytree.tree_flatten(expected)
    assert a_spec == e_spec
    for a, e in zip(a_leaves, e_leaves, strict=True):
        torch.testing.assert_close(a, e, rtol=0.0, atol=atol)


# ---- shapes and dtypes ---------------------------------------------------------------


@pytest.mark.parametrize("feature_shape", [(4,), (2, 3)], ids=["F=4", "F=2x3"])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_shape_and_dtype(spec, dtype, feature_shape):
    x = _x(feature_shape, dtype=dtype)
    attr = spec.run(_mlp(math.prod(feature_shape)), x, target=_target())
    assert attr.shape == _expected_shape(spec, x)
    assert attr.dtype == dtype
    assert bool(torch.isfinite(attr).all())


class _Float32Watch(TorchFunctionMode):
    """Records every torch function that produced a tensor of less than float64 precision."""

    def __init__(self) -> None:
        super().__init__()
        self.low: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.dtype in (
                torch.float32,
                torch.float16,
                torch.bfloat16,
            ):
                self.low.add(getattr(func, "__name__", repr(func)))
        return out


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_float64_has_no_float32_step(spec):
    # fn asserts float64 inputs; the watch sees every tensor the method creates
    x = _x()
    watch = _Float32Watch()
    with watch:
        attr = spec.run(_mlp(4, float64_only=True), x, target=_target())
    assert attr.dtype == F64
    assert not watch.low, f"float32 tensors made by {sorted(watch.low)}"


# ---- batched == loop, chunk_size -----------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_batched_equals_loop(spec):
    run = spec.layout_free or spec
    x = _x(batch=5)
    fn = _affine(4) if spec.layout_fn == "affine" else _mlp(4)
    target = _target(5)
    batched = run.run(fn, x, target=target)
    loop = torch.cat([run.run(fn, x[b : b + 1], target=target[b : b + 1]) for b in range(5)])
    _close(batched, loop, atol=1e-12)


# Measured: chunked vmap changes the BLAS call shapes, so a few entries move by one
# ulp (relative 2.4e-16 in float64, 1.2e-7 in float32); results are otherwise equal.
CHUNK_ULPS = 4


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_chunk_size_invariance(spec, dtype):
    x = _x(batch=5, dtype=dtype)
    fn, target = _mlp(4), _target(5)
    reference = spec.run(fn, x, target=target)
    # a gap is a difference of outputs, so it rounds on the outputs' scale, not its own
    scale = fn(x).abs().max() if spec.per_sample else reference.abs().max()
    atol = CHUNK_ULPS * torch.finfo(dtype).eps * float(scale)
    for chunk_size in (None, 1, 2, 3, 5):
        attr = spec.run(fn, x, target=target, chunk_size=chunk_size)
        torch.testing.assert_close(attr, reference, rtol=0.0, atol=atol)


# ---- no mutation ---------------------------------------------------------------------------


def _module() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, C))
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.double().eval()


def _state(net: nn.Module) -> dict[str, Any]:
    return {
        "params": {k: v.detach().clone() for k, v in net.named_parameters()},
        "buffers": {k: v.clone() for k, v in net.named_buffers()},
        "training": [m.training for m in net.modules()],
        "requires_grad": [p.requires_grad for p in net.parameters()],
    }


@pytest.mark.parametrize("requires_grad", [False, True], ids=["plain", "requires_grad"])
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_no_mutation(spec, requires_grad):
    net = _module()
    before = _state(net)
    x = _x().requires_grad_(requires_grad)
    x_before = x.detach().clone()
    attr = spec.run(net, x, target=_target())
    assert attr.shape == _expected_shape(spec, x)
    assert torch.equal(x.detach(), x_before)
    assert x.requires_grad is requires_grad and x.grad is None
    after = _state(net)
    assert after["training"] == before["training"] and not any(after["training"])
    assert after["requires_grad"] == before["requires_grad"]
    for kind in ("params", "buffers"):
        assert after[kind].keys() == before[kind].keys()
        for k in before[kind]:
            assert torch.equal(after[kind][k], before[kind][k]), (kind, k)
    assert all(p.grad is None for p in net.parameters())


def _writes_to_its_argument(fn: Callable) -> Callable:
    """``fn`` of its argument doubled in place: a careless preprocessing step."""

    def careless(z: Any) -> torch.Tensor:
        for leaf in pytree.tree_leaves(z):
            leaf.mul_(2.0)
        return fn(z)

    return careless


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_fn_writing_to_its_argument_does_not_change_x(spec):
    # the engine hands fn rows it owns (autograd forbids writing to a differentiated
    # input, so gradient rows are copies): x is untouched and fn sees what it expects
    fn, x, target = _mlp(4), _x(), _target()
    x_before = x.clone()
    attr = spec.run(_writes_to_its_argument(fn), x, target=target)
    assert torch.equal(x, x_before)
    _close(attr, spec.run(lambda z: fn(2.0 * z), x, target=target), atol=1e-12)


@pytest.mark.parametrize("vectorize", ["vmap", "batch"])
def test_completeness_gap_and_adaptive_ig_never_pass_x_itself_to_fn(vectorize):
    fn, x, target = _mlp(4), _x(), _target()
    x_before = x.clone()
    twin = lambda z: fn(2.0 * z)  # noqa: E731 - what the careless fn computes
    attr = torch.ones_like(x)
    gap = tx.completeness_gap(
        _writes_to_its_argument(fn), x, attr, target=target, vectorize=vectorize
    )
    assert torch.equal(x, x_before)
    _close(gap, tx.completeness_gap(twin, x, attr, target=target), atol=1e-12)
    result = tx.adaptive_integrated_gradients(
        _writes_to_its_argument(lambda z: fn(z)[:, 0]), x, vectorize=vectorize, tol=1e-3
    )
    assert torch.equal(x, x_before)
    assert float(result.gap.abs().max()) <= 1e-3


# ---- differentiability, vmap, compile -------------------------------------------------------


def _loss(attr: torch.Tensor) -> torch.Tensor:
    """A smooth scalar of the attributions with no symmetry to hide errors."""
    weights = torch.linspace(-1.0, 1.5, attr.numel(), dtype=attr.dtype).reshape(attr.shape)
    return (torch.sin(attr) * weights).sum()


@pytest.mark.parametrize("chunk_size", [None, 1], ids=["whole", "chunked"])
@pytest.mark.parametrize("spec", TRANSFORMABLE_SPECS, ids=repr)
def test_differentiable(spec, chunk_size):
    # grad through the method (torch.func and plain autograd) vs central differences;
    # chunked results are assembled differently, so both ways are checked
    fn, target = _mlp(4), _target(2)
    x = _x(batch=2, seed=5)

    def objective(z):
        return _loss(spec.run(fn, z, target=target, chunk_size=chunk_size))

    g_func = grad(objective)(x)
    leaf = x.clone().requires_grad_()
    objective(leaf).backward()
    g_autograd = leaf.grad

    h = 1e-5
    g_fd = torch.zeros_like(x)
    for i in range(x.numel()):
        step = torch.zeros(x.numel(), dtype=F64)
        step[i] = h
        step = step.reshape(x.shape)
        g_fd.view(-1)[i] = (objective(x + step) - objective(x - step)) / (2 * h)
    torch.testing.assert_close(g_func, g_fd, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(g_autograd, g_func, rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("spec", TRANSFORMABLE_SPECS, ids=repr)
def test_vmap_over_extra_leading_dim(spec):
    # randomness="same": a stochastic method draws exactly what an unbatched call draws
    fn, target = _mlp(4), _target()
    xs = torch.randn(2, B, 4, generator=_gen(9), dtype=F64)

    def one(z):
        return spec.run(fn, z, target=target)

    mapped = vmap(one, randomness="same")(xs)
    loop = torch.stack([one(z) for z in xs])
    _close(mapped, loop, atol=1e-12)


@pytest.mark.parametrize("spec", RANDOM_SPECS, ids=repr)
def test_vmap_with_different_randomness(spec):
    # randomness="different": independent draws per slice; each slice is still valid
    fn, target = _mlp(4), _target()
    x = _x()
    xs = torch.stack([x, x])

    mapped = vmap(lambda z: spec.run(fn, z, target=target), randomness="different")(xs)
    assert mapped.shape == (2, *_expected_shape(spec, x))
    assert not torch.equal(mapped[0], mapped[1])
    if spec.shapley or spec.method is tx.kernel_shap:  # efficiency is exact for any draw
        gap = torch.stack(
            [tx.completeness_gap(fn, x, a, baseline=0.25, target=target) for a in mapped]
        )
        assert float(gap.abs().max()) < 1e-12


def test_compile_integrated_gradients():
    # smoke: dynamo traces through the checks, vmap and grad; "aot_eager" also traces
    # the joint graph with AOTAutograd but skips C++ code generation (~3 s, not ~25 s)
    fn, target, x = _mlp(4), _target(), _x()

    @torch.compile(backend="aot_eager")
    def compiled(z):
        return tx.integrated_gradients(fn, z, target=target, steps=8)

    eager = tx.integrated_gradients(fn, x, target=target, steps=8)
    torch.testing.assert_close(compiled(x), eager, rtol=0.0, atol=1e-12)
    torch.testing.assert_close(
        compiled(2 * x),
        tx.integrated_gradients(fn, 2 * x, target=target, steps=8),
        rtol=0.0,
        atol=1e-12,
    )


# ---- targets and pytrees -----------------------------------------------------------------


@pytest.mark.parametrize("spec", MULTI_TARGET_SPECS, ids=repr)
def test_multi_target_equals_single_targets(spec):
    fn, x = _mlp(4), _x()
    targets = torch.tensor([[0, 2], [1, 1], [2, 0]])  # (B, T)
    multi = spec.run(fn, x, target=targets)
    assert multi.shape == _expected_shape(spec, x, n_targets=2)
    for t in range(targets.shape[1]):
        single = spec.run(fn, x, target=targets[:, t])
        _close(multi[:, t], single, atol=1e-12)
    # an int target is the same as a (B,) tensor of it
    _close(spec.run(fn, x, target=1), spec.run(fn, x, target=torch.ones(B, dtype=torch.long)), 0)


@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_single_output_fn_without_target(spec):
    fn1, fn3, x = _mlp(4, None), _mlp(4), _x()
    assert spec.run(fn1, x).shape == _expected_shape(spec, x)
    # a (B,) fn is the (B, 1) fn at target 0
    wide = spec.run(lambda z: fn1(z)[:, None], x, target=0)
    _close(spec.run(fn1, x), wide, atol=1e-12)
    assert spec.run(fn3, x, target=0).shape == _expected_shape(spec, x)


@pytest.mark.parametrize("spec", TREE_SPECS, ids=repr)
def test_pytree_input(spec):
    fn, target = _mlp(5), _target()
    x = _x_tree()
    attr = spec.run(fn, x, target=target)
    assert isinstance(attr, dict) and attr.keys() == x.keys()
    for key in x:
        if spec.pairwise:  # attr[i][j]: (B, *F_i, *F_j), nested like x twice
            assert isinstance(attr[key], dict) and attr[key].keys() == x.keys()
            for other in x:
                assert attr[key][other].shape == x[key].shape + x[other].shape[1:]
                assert attr[key][other].dtype == x[key].dtype
        else:
            assert attr[key].shape == x[key].shape and attr[key].dtype == x[key].dtype
    # the tree is its flat (B, 5) concatenation split back into leaves
    # (smoothgrad draws its noise leaf by leaf, so it is compared at sigma = 0)
    run = spec.layout_free if spec.noise_per_leaf else spec
    flat_x = _flat(x)
    if spec.pairwise:
        flat = run.run(fn, flat_x, target=target)
        _close(_flat_pairs(run.run(fn, x, target=target), x), flat, atol=1e-12)
        as_tuple = run.run(fn, (x["u"], x["v"]), target=target)
        assert isinstance(as_tuple, tuple) and all(isinstance(row, tuple) for row in as_tuple)
        _close(_flat_pairs(as_tuple, (x["u"], x["v"])), flat, atol=1e-12)
        return
    flat = run.run(fn, flat_x, target=target)
    _close(_flat(run.run(fn, x, target=target)), flat, atol=1e-12)
    # a tuple tree works the same way
    as_tuple = run.run(fn, (x["u"], x["v"]), target=target)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    _close(_flat(as_tuple), flat, atol=1e-12)


def test_pytree_refused_where_unsupported():
    with pytest.raises(TypeError, match=r"\bx\b|dict"):
        tx.expected_hessians(_mlp(5), _x_tree(), target=0, baselines=_x_tree())


# ---- argument validation -------------------------------------------------------------------


def _nan_at(x: torch.Tensor, value: float) -> torch.Tensor:
    bad = x.clone()
    bad[1, 2] = value
    return bad


@dataclass(frozen=True)
class Bad:
    """One bad input: ``call(spec)`` must raise ValueError/TypeError naming ``argument``."""

    name: str
    argument: str
    call: Callable[[Spec], Any]
    applies: Callable[[Spec], bool] = lambda spec: True


_MLP3, _MLP1 = _mlp(4), _mlp(4, None)  # built once: _mlp draws weights, not allowed in vmap


def _run(spec: Spec, *, fn=None, x=None, **kw):
    return spec.run(fn or _mlp(4), _x() if x is None else x, **kw)


def _training_bn() -> nn.Module:
    net = _module()
    net[1].train()  # parent in eval mode, one BatchNorm left in training mode
    return net


def _with_baseline(spec: Spec, value: Any) -> dict[str, Any]:
    if spec.baseline == "baselines":  # expected gradients: reference rows (M, *F)
        rows = _baselines(_x())
        if isinstance(value, torch.Tensor):
            return {"baselines": value}
        rows[1, 2] = value
        return {"baselines": rows}
    if isinstance(value, torch.Tensor):
        return {"baseline": value}
    return {"baseline": _nan_at(torch.zeros(B, 4, dtype=F64), value)}


BAD = [
    Bad(
        "baseline_shape",
        "baseline",
        lambda s: _run(s, target=0, **_with_baseline(s, torch.zeros(2, 5, dtype=F64))),
        lambda s: s.baseline is not None,
    ),
    Bad(
        "baseline_number_nan",
        "baseline",
        lambda s: _run(s, target=0, baseline=float("nan")),
        lambda s: s.baseline == "baseline",
    ),
    *[
        Bad(
            f"baseline_{label}",
            "baseline",
            lambda s, v=value: _run(s, target=0, **_with_baseline(s, v)),
            lambda s: s.baseline is not None,
        )
        for label, value in (("nan", float("nan")), ("inf", float("inf")))
    ],
    Bad("steps_zero", "steps", lambda s: _run(s, target=0, steps=0), lambda s: s.steps),
    Bad("steps_float", "steps", lambda s: _run(s, target=0, steps=2.5), lambda s: s.steps),
    Bad(
        "rule_unknown",
        "rule",
        lambda s: _run(s, target=0, rule="simpson"),
        lambda s: s.steps,
    ),
    Bad(
        "trapezoid_one_step",
        "steps",
        lambda s: _run(s, target=0, rule="riemann_trapezoid", steps=1),
        lambda s: s.steps,
    ),
    Bad("window_too_large", "window", lambda s: _run(s, target=0, window=5), lambda s: s.occlusion),
    Bad(
        "window_not_tiling",
        "window",
        lambda s: _run(s, target=0, window=2, stride=3),
        lambda s: s.occlusion,
    ),
    Bad(
        "window_wrong_ndim",
        "window",
        lambda s: _run(s, x=_x((2, 3)), fn=_mlp(6), target=0, window=2),
        lambda s: s.occlusion,
    ),
    Bad("target_missing", "target", lambda s: _run(s)),
    Bad("target_int_too_large", "target", lambda s: _run(s, target=C)),
    Bad("target_int_negative", "target", lambda s: _run(s, target=-1)),
    Bad("target_tensor_too_large", "target", lambda s: _run(s, target=torch.tensor([0, C, 1]))),
    Bad("target_tensor_negative", "target", lambda s: _run(s, target=torch.tensor([0, -1, 1]))),
    Bad("target_tensor_float", "target", lambda s: _run(s, target=torch.tensor([0.0, 1.0, 1.0]))),
    Bad("target_tensor_batch", "target", lambda s: _run(s, target=torch.tensor([0, 1]))),
    Bad("target_for_single_output", "target", lambda s: _run(s, fn=_mlp(4, None), target=0)),
    Bad("x_integer", "x", lambda s: _run(s, x=torch.ones(B, 4, dtype=torch.long), target=0)),
    Bad("x_nan", "x", lambda s: _run(s, x=_nan_at(_x(), float("nan")), target=0)),
    Bad("x_inf", "x", lambda s: _run(s, x=_nan_at(_x(), -float("inf")), target=0)),
    Bad(
        "fn_wrong_batch",
        "fn",
        lambda s: _run(s, fn=lambda z: torch.cat([_MLP3(z), _MLP3(z)]), target=0),
    ),
    Bad("fn_drops_batch", "fn", lambda s: _run(s, fn=lambda z: z.sum(), target=None)),
    Bad(
        "fn_nan",
        "fn",
        # NaN everywhere (log of a negative number): only the check of fn's values catches it
        lambda s: _run(s, fn=lambda z: torch.log(-1.0 - z.square().sum(-1))),
    ),
    Bad(
        "fn_inf",
        "fn",
        # +inf values with finite gradients, so only a check of the values catches it
        lambda s: _run(s, fn=lambda z: _MLP1(z) + math.inf),
    ),
    Bad("module_training", "fn", lambda s: _run(s, fn=_module().train(), target=0)),
    Bad("batchnorm_training_in_eval_parent", "fn", lambda s: _run(s, fn=_training_bn(), target=0)),
    Bad("chunk_size_zero", "chunk_size", lambda s: _run(s, target=0, chunk_size=0)),
    Bad("chunk_size_negative", "chunk_size", lambda s: _run(s, target=0, chunk_size=-2)),
    Bad("chunk_size_float", "chunk_size", lambda s: _run(s, target=0, chunk_size=1.5)),
    Bad("chunk_size_bool", "chunk_size", lambda s: _run(s, target=0, chunk_size=True)),
    Bad(
        "groups_overlap",
        "groups",
        lambda s: _run(s, target=0, groups={"a": [0, 1], "b": [1, 2, 3]}),
        lambda s: s.groups,
    ),
    Bad(
        "groups_missing_feature",
        "groups",
        lambda s: _run(s, target=0, groups={"a": [0, 1], "b": [2]}),
        lambda s: s.groups,
    ),
    Bad(
        "groups_out_of_range",
        "groups",
        lambda s: _run(s, target=0, groups={"a": [0, 1], "b": [2, 3, 4]}),
        lambda s: s.groups,
    ),
    Bad(
        "groups_negative",
        "groups",
        lambda s: _run(s, target=0, groups={"a": [-1, 0, 1], "b": [2, 3]}),
        lambda s: s.groups,
    ),
    Bad(
        "groups_empty",
        "groups",
        lambda s: _run(s, target=0, groups={"a": [0, 1, 2, 3], "b": []}),
        lambda s: s.groups,
    ),
    Bad(
        "groups_not_mapping",
        "groups",
        lambda s: _run(s, target=0, groups=[[0, 1], [2, 3]]),
        lambda s: s.groups,
    ),
    Bad(
        "n_permutations_odd",
        "n_permutations",
        lambda s: _run(s, target=0, n_permutations=3),
        lambda s: s.shapley,
    ),
    Bad(
        "n_permutations_zero",
        "n_permutations",
        lambda s: _run(s, target=0, n_permutations=0),
        lambda s: s.shapley,
    ),
    Bad(
        "too_many_groups_for_exact",
        "n_permutations",
        lambda s: _run(s, fn=lambda z: z.sum(-1), x=_x((17,)), n_permutations=None),
        lambda s: s.shapley,
    ),
    Bad(
        "generator_not_generator",
        "generator",
        lambda s: _run(s, target=0, generator=0),
        lambda s: "generator" in s.options(_x()),
    ),
    Bad(
        "n_samples_zero",
        "n_samples",
        lambda s: _run(s, target=0, n_samples=0),
        lambda s: s.baseline == "baselines" or s.method in (tx.kernel_shap, tx.lime),
    ),
    Bad(
        "n_samples_odd",
        "n_samples",
        lambda s: _run(s, target=0, n_samples=5),
        lambda s: s.method is tx.kernel_shap,
    ),
    Bad(
        "sampling_unknown",
        "sampling",
        lambda s: _run(s, target=0, sampling="uniform"),
        lambda s: s.method is tx.kernel_shap,
    ),
    Bad(
        "too_many_groups_for_all_coalitions",
        "n_samples",
        lambda s: _run(s, fn=lambda z: z.sum(-1), x=_x((17,)), groups=None, n_samples=None),
        lambda s: s.method is tx.kernel_shap,
    ),
    *[
        Bad(
            f"{name}_{label}",
            name,
            lambda s, n=name, v=value: _run(s, target=0, **{n: v}),
            lambda s: s.method is tx.lime,
        )
        for name, label, value in (
            ("kernel_width", "zero", 0.0),
            ("kernel_width", "nan", float("nan")),
            ("kernel_width", "str", "wide"),
            ("ridge", "negative", -1.0),
            ("ridge", "bool", True),
        )
    ],
    Bad(
        "clip_not_bool",
        "clip",
        lambda s: _run(s, target=0, window=2, clip=1),
        lambda s: s.occlusion,
    ),
]
BAD_CASES = [
    pytest.param(spec, bad, id=f"{spec.name}-{bad.name}")
    for spec in SPECS
    for bad in BAD
    if bad.applies(spec)
]


@pytest.mark.parametrize(("spec", "bad"), BAD_CASES)
def test_bad_input_is_refused_naming_the_argument(spec, bad):
    argument = spec.baseline if bad.argument == "baseline" else bad.argument
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        bad.call(spec)


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.0}, "n_samples"),
        ({"sigma": -0.1}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"generator": 1}, "generator"),
    ],
)
def test_smoothgrad_options_are_checked_when_built(options, argument):
    with pytest.raises((ValueError, TypeError), match=rf"\b{argument}\b"):
        tx.smoothgrad(tx.input_gradients, **options)


def test_smoothgrad_refuses_a_non_callable_method():
    with pytest.raises(TypeError, match=r"\bmethod\b"):
        tx.smoothgrad("input_gradients")


# Public names the contract does not apply to, and why; everything else in
# tfx_explain.__all__ must be exercised by a row of SPECS.
NOT_METHODS = {
    "RULES": "the rule names; every rule has an integrated_gradients row",
    "MAX_EXACT_GROUPS": "a constant (its limit is a bad-input case)",
    "MAX_STEPS": "a constant (its limit is tested in tests/core/test_hardening.py)",
    "MAX_SAMPLES": "a constant (its limit is tested in tests/core/test_hardening.py)",
    "CompileFallbackWarning": "a warning class",
    "SlowVmapWarning": "a warning class",
    "quadrature": "returns (alphas, weights), not attributions: tests/core/test_quadrature.py",
    "group_attributions": "summarizes attributions, takes no fn: tests/core/test_summaries.py",
    "global_importance": "summarizes attributions, takes no fn: tests/core/test_summaries.py",
    "combine": "summarizes attributions, takes no fn: tests/core/test_summaries.py",
    "metrics": "scores attributions, not a method: tests/core/test_metrics.py",
}


def test_spec_table_covers_every_public_method():
    covered = set()
    for s in SPECS:
        covered |= set(s.covers) or {getattr(s.method, "__name__", "")}
    covered |= {"smoothgrad"} if any(s.name.startswith("smoothgrad(") for s in SPECS) else set()
    public = set(tx.__all__)
    assert public - set(NOT_METHODS) <= covered, "add a SPECS row or a NOT_METHODS reason"
    assert set(NOT_METHODS) <= public and not set(NOT_METHODS) & covered
    assert {r for s in SPECS for r in [s.options(_x()).get("rule")] if r} == set(tx.RULES)
    assert len([s for s in SPECS if s.name.startswith("smoothgrad")]) == 2
