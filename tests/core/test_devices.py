"""Every public function on the ``meta`` device: no helper tensor may be made on the CPU.

Meta tensors carry shapes and dtypes but no data, and they support ``vmap``,
``torch.func.grad`` and autograd. Any non-0-d CPU tensor mixed into a meta computation
raises ``Tensor on device cpu is not on the expected device meta!``, the very error a
CUDA user gets when a method makes its quadrature nodes, masks, targets or noise on the
CPU. So running every name of ``tfx_explain.__all__`` (and the ``tfx_explain.testing``
checks) on meta inputs and meta models proves, without a GPU, that each one builds its
helpers where the data is. Value checks (NaN, target range) read data, so they are
skipped for meta inputs (``is_transformed`` in ``_engine/checks.py``); outputs must be on
the input's device with its dtype.
"""

from __future__ import annotations

import inspect
import math
import pathlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import torch
from packaging.requirements import Requirement
from torch import nn
from torch.utils import _pytree as pytree

import tfx_explain as tx
from tfx_explain._engine.checks import has_values, is_transformed
from tfx_explain.testing import axioms

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

META = torch.device("meta")
B, F, C = 3, 4, 3  # samples, features, outputs
DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def _cpu_gen() -> torch.Generator:
    """The generator users pass: a CPU one, whatever device the data is on."""
    return torch.Generator().manual_seed(0)


def _net(dtype: torch.dtype, n_out: int | None = C) -> nn.Module:
    """A tanh MLP ``(B, F) -> (B, C)`` (or ``(B,)``) whose parameters live on meta."""
    layers = [nn.Linear(F, 5), nn.Tanh(), nn.Linear(5, n_out or 1)]
    if n_out is None:
        layers.append(nn.Flatten(0))
    return nn.Sequential(*layers).to(device=META, dtype=dtype).eval()


def _tree_fn(dtype: torch.dtype) -> Callable:
    """``{"u": (B, 3), "v": (B, 1)} -> (B, C)`` through meta weights."""
    w = torch.empty(F, C, device=META, dtype=dtype)

    def fn(x: Any) -> torch.Tensor:
        return torch.tanh(torch.cat([leaf.flatten(1) for leaf in pytree.tree_leaves(x)], 1) @ w)

    return fn


def _x(dtype: torch.dtype, batch: int = B) -> torch.Tensor:
    return torch.empty(batch, F, device=META, dtype=dtype)


def _tree(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {"u": torch.empty(B, 3, device=META, dtype=dtype), "v": _x(dtype)[:, :1]}


GROUPS = {"a": [0, 2], "b": [1], "c": [3]}
TREE_GROUPS = {"a": ("u", [0, 2]), "b": ("u", [1]), "c": "v"}


# ---- the cases: public name -> calls, each returning (output, expected leaf shapes) ------------

# Targets every method must accept on a meta input: an int (made into a tensor inside),
# a meta LongTensor, and CPU LongTensors (B,) and (B, T) (moved to x's device inside).
TARGETS = {
    "int": lambda: 1,
    "meta(B,)": lambda: torch.empty(B, dtype=torch.long, device=META),
    "cpu(B,)": lambda: torch.tensor([0, 2, 1]),
    "cpu(B,T)": lambda: torch.tensor([[0, 1], [2, 0], [1, 1]]),
}


def _attribution_calls(
    method: Callable, options: dict[str, Any], *, tree: bool = True, like: Callable | None = None
):
    """Calls of an attribution method: every target kind, batch/chunked/tree variants.

    ``like``: the function whose keywords ``method`` takes (the inner one of smoothgrad).
    """
    calls = {}
    for kind, target in TARGETS.items():
        lead = (B, 2) if kind == "cpu(B,T)" else (B,)

        def call(dtype, target=target, lead=lead):
            return method(_net(dtype), _x(dtype), target=target(), **options), lead + (F,)

        calls[f"target={kind}"] = call

    def no_target(dtype):
        return method(_net(dtype, None), _x(dtype), **options), (B, F)

    calls["single-output"] = no_target
    takes = inspect.signature(like or method).parameters
    if "vectorize" in takes:
        calls["vectorize=batch"] = lambda dtype: (
            method(_net(dtype), _x(dtype), target=1, vectorize="batch", **options),
            (B, F),
        )
    if "chunk_size" in takes:
        calls["chunk_size=1"] = lambda dtype: (
            method(_net(dtype), _x(dtype), target=1, chunk_size=1, **options),
            (B, F),
        )
    if tree:
        tree_options = {**options, **({"groups": TREE_GROUPS} if "groups" in options else {})}
        calls["tree"] = lambda dtype: (
            method(_tree_fn(dtype), _tree(dtype), target=1, **tree_options),
            {"u": (B, 3), "v": (B, 1)},
        )
    return calls


def _smoothed(inner: Callable, generator: Callable) -> Callable:
    def method(fn, x, **options):
        smooth = tx.smoothgrad(inner, n_samples=2, sigma=0.1, generator=generator())
        return smooth(fn, x, **options)

    return method


def _adaptive_calls():
    def call(dtype, target=1, fn=_net, x=_x, shapes=(B, F)):
        result = tx.adaptive_integrated_gradients(
            fn(dtype), x(dtype), target=target, start_steps=2, max_steps=8
        )
        assert result.steps.dtype == torch.long and result.steps.device == META
        return (result.attributions, result.gap), (shapes, (B,))

    return {
        "target=int": call,
        "target=cpu(B,)": lambda dtype: call(dtype, torch.tensor([0, 1, 2])),
        "tree": lambda dtype: call(dtype, 1, _tree_fn, _tree, {"u": (B, 3), "v": (B, 1)}),
    }


def _gap_calls():
    def call(dtype, target=1, lead=(B,)):
        x, fn = _x(dtype), _net(dtype)
        attr = torch.empty(lead + (F,), device=META, dtype=dtype)
        return tx.completeness_gap(fn, x, attr, baseline=0.5, target=target), lead

    return {
        "target=int": call,
        "target=cpu(B,T)": lambda dtype: call(dtype, TARGETS["cpu(B,T)"](), (B, 2)),
    }


def _summary_calls():
    attr = _x
    return {
        "group_attributions": {
            "tensor": lambda dtype: (tx.group_attributions(attr(dtype), GROUPS), (B, 3)),
            "tree": lambda dtype: (tx.group_attributions(_tree(dtype), TREE_GROUPS), (B, 3)),
        },
        "global_importance": {
            "features": lambda dtype: (tx.global_importance(attr(dtype)), (F,)),
            "groups": lambda dtype: (tx.global_importance(attr(dtype), groups=GROUPS), (3,)),
        },
        "combine": {
            "tensor": lambda dtype: (tx.combine(attr(dtype), attr(dtype)), (B, F)),
            "tree": lambda dtype: (
                tx.combine(_tree(dtype), _tree(dtype)),
                {"u": (B, 3), "v": (B, 1)},
            ),
        },
    }


def _quadrature_calls():
    return {
        rule: lambda dtype, rule=rule: (
            tx.quadrature(rule, 3, dtype=dtype, device=META),
            ((3,), (3,)),
        )
        for rule in tx.RULES
    }


def _metric_calls():
    """Every metric of ``tx.metrics`` on meta, with a CPU generator where it draws."""

    def attr(dtype):
        return torch.empty(B, F, device=META, dtype=dtype)

    def image(dtype):
        return torch.empty(B, 1, 3, 3, device=META, dtype=dtype)

    def cnn(dtype):
        return nn.Sequential(nn.Flatten(), nn.Linear(9, C)).to(device=META, dtype=dtype).eval()

    def randomized(dtype):
        params = {"w": torch.empty(F, device=META, dtype=dtype)}
        return tx.metrics.parameter_randomization(
            tx.input_gradients, params, lambda p, x: torch.tanh(x @ p["w"]), _x(dtype),
            generator=_cpu_gen(),
        )["w"], (B,)  # fmt: skip

    m = tx.metrics
    return {
        "infidelity gaussian": lambda dtype: (
            m.infidelity(_net(dtype), _x(dtype), attr(dtype), target=1, generator=_cpu_gen()),
            (B,),
        ),
        "infidelity subsets": lambda dtype: (
            m.infidelity(
                _net(dtype),
                _x(dtype),
                attr(dtype),
                target=1,
                generator=_cpu_gen(),
                perturbation="baseline_subsets",
                chunk_size=1,
            ),
            (B,),
        ),  # fmt: skip
        "sensitivity_max": lambda dtype: (
            m.sensitivity_max(
                tx.input_gradients, _net(dtype), _x(dtype), target=1, generator=_cpu_gen()
            ),
            (B,),
        ),
        "deletion_curve": lambda dtype: (
            m.deletion_curve(_net(dtype), _x(dtype), attr(dtype), target=1),
            ((11,), (B, 11), (B,)),
        ),
        "insertion_curve": lambda dtype: (
            m.insertion_curve(_net(dtype), _x(dtype), attr(dtype), target=1, order="lerf"),
            ((11,), (B, 11), (B,)),
        ),
        "road": lambda dtype: (
            m.road(cnn(dtype), image(dtype), image(dtype), target=1, generator=_cpu_gen()),
            ((10,), (B, 10), (B,)),
        ),
        "parameter_randomization": randomized,
    }


CASES: dict[str, dict[str, Callable]] = {
    "input_gradients": _attribution_calls(tx.input_gradients, {}),
    "gradient_x_input": _attribution_calls(tx.gradient_x_input, {}),
    "integrated_gradients": {
        **_attribution_calls(tx.integrated_gradients, {"steps": 3, "baseline": 0.5}),
        **{
            f"rule={rule}": lambda dtype, rule=rule: (
                tx.integrated_gradients(_net(dtype), _x(dtype), target=1, steps=3, rule=rule),
                (B, F),
            )
            for rule in tx.RULES
        },
        "baseline=cpu tensor": lambda dtype: (
            tx.integrated_gradients(_net(dtype), _x(dtype), target=1, baseline=torch.zeros(F)),
            (B, F),
        ),
    },
    "adaptive_integrated_gradients": _adaptive_calls(),
    "completeness_gap": _gap_calls(),
    "occlusion": _attribution_calls(tx.occlusion, {"window": 2}, tree=False),
    "feature_ablation": _attribution_calls(tx.feature_ablation, {"groups": GROUPS}),
    "shapley_values": {
        **_attribution_calls(tx.shapley_values, {"groups": GROUPS}),
        **{
            f"sampled {k}": v
            for k, v in _attribution_calls(
                tx.shapley_values, {"n_permutations": 4, "generator": _cpu_gen()}
            ).items()
        },
    },
    "smoothgrad": {
        **{
            f"{inner.__name__} {k}": v
            for inner in (tx.input_gradients, tx.integrated_gradients, tx.occlusion)
            for k, v in _attribution_calls(
                _smoothed(inner, _cpu_gen),
                {"window": 2} if inner is tx.occlusion else {},
                tree=inner is not tx.occlusion,
                like=inner,
            ).items()
        },
        "global generator": lambda dtype: (
            tx.smoothgrad(tx.input_gradients, n_samples=2)(_net(dtype), _x(dtype), target=1),
            (B, F),
        ),
    },
    "expected_gradients": {
        **_attribution_calls(
            tx.expected_gradients,
            {"baselines": torch.zeros(5, F, dtype=torch.float64), "generator": _cpu_gen()},
            tree=False,
        ),
        "meta baselines, global generator": lambda dtype: (
            tx.expected_gradients(_net(dtype), _x(dtype), target=1, baselines=_x(dtype, 5)),
            (B, F),
        ),
        "tree": lambda dtype: (
            tx.expected_gradients(
                _tree_fn(dtype), _tree(dtype), target=1, baselines=_tree(dtype), n_samples=2
            ),
            {"u": (B, 3), "v": (B, 1)},
        ),
    },
    "integrated_hessians": {
        k: lambda dtype, call=call: (lambda out: (out[0], out[1] + (F,)))(call(dtype))
        for k, call in _attribution_calls(tx.integrated_hessians, {"steps": 2}, tree=False).items()
    },
    "kernel_shap": {
        **_attribution_calls(tx.kernel_shap, {"groups": GROUPS}),
        **{
            f"sampled {k}": v
            for k, v in _attribution_calls(
                tx.kernel_shap, {"groups": GROUPS, "n_samples": 4, "generator": _cpu_gen()}
            ).items()
        },
    },
    "lime": _attribution_calls(
        tx.lime, {"groups": GROUPS, "n_samples": 6, "generator": _cpu_gen()}
    ),
    "expected_hessians": {
        k: lambda dtype, call=call: (lambda out: (out[0], out[1] + (F,)))(call(dtype))
        for k, call in _attribution_calls(
            tx.expected_hessians,
            {
                "baselines": torch.zeros(5, F, dtype=torch.float64),
                "n_samples": 2,
                "generator": _cpu_gen(),
            },
            tree=False,
        ).items()
    },  # fmt: skip
    "quadrature": _quadrature_calls(),
    "metrics": _metric_calls(),
    **_summary_calls(),
}


# Public names that are not run on meta, and why.
EXCLUDED = {
    "RULES": "a dict of rule names (each rule runs through quadrature and integrated_gradients)",
    "MAX_EXACT_GROUPS": "an int constant",
    "MAX_STEPS": "an int constant (the cap on steps)",
    "MAX_SAMPLES": "an int constant (the cap on n_samples)",
    "AdaptiveResult": "the result type of adaptive_integrated_gradients (its fields are checked)",
    "CompileFallbackWarning": "a warning class",
    "SlowVmapWarning": "a warning class",
}


# ---- the tfx_explain.testing checks -----------------------------------------------------------


def _check_calls() -> dict[str, Callable]:
    def net(dtype):
        return _net(dtype, None)

    def ig(fn, x, **kw):
        return tx.integrated_gradients(fn, x, steps=2, **kw)

    return {
        "completeness_violation": lambda d: axioms.completeness_violation(ig, net(d), _x(d)),
        "expected_completeness_violation": lambda d: axioms.expected_completeness_violation(
            tx.expected_gradients,
            _net(d),
            _x(d),
            baselines=_x(d, 5),
            repeats=2,
            target=1,
            n_samples=2,
            generator=_cpu_gen(),
        ),
        "sensitivity_violation": lambda d: axioms.sensitivity_violation(
            tx.shapley_values, net(d), _x(d), feature=1, target=None
        ),
        "dummy_violation": lambda d: axioms.dummy_violation(ig, net(d), _x(d), dummies=[1]),
        "symmetry_violation": lambda d: axioms.symmetry_violation(ig, net(d), _x(d), pair=(0, 1)),
        "implementation_invariance_violation": lambda d: axioms.implementation_invariance_violation(
            ig, net(d), net(d), _x(d)
        ),
        "linearity_violation": lambda d: axioms.linearity_violation(ig, net(d), net(d), _x(d)),
        "batch_independence_violation": lambda d: axioms.batch_independence_violation(
            tx.occlusion, net(d), _x(d), window=1
        ),
        "row_sum_violation": lambda d: axioms.row_sum_violation(
            tx.integrated_hessians, tx.integrated_gradients, net(d), _x(d), steps=2
        ),
        "seeded": lambda d: axioms.completeness_violation(
            axioms.seeded(tx.shapley_values, seed=0), net(d), _x(d), n_permutations=2
        ),
    }


CHECKS = _check_calls()
CHECKS_EXCLUDED = {
    "convergence_rate": "returns a Python float fitted to measured gaps: it must read values",
}


def _on_input_device(out: Any, shapes: Any, dtype: torch.dtype) -> None:
    out_leaves, out_spec = pytree.tree_flatten(out)
    shape_leaves = pytree.tree_leaves(
        shapes, is_leaf=lambda s: isinstance(s, tuple) and all(isinstance(n, int) for n in s)
    )
    assert len(out_leaves) == len(shape_leaves), (out_spec, shapes)
    for leaf, shape in zip(out_leaves, shape_leaves, strict=True):
        assert isinstance(leaf, torch.Tensor)
        assert leaf.device == META, leaf.device
        assert leaf.dtype == dtype, (leaf.dtype, dtype)
        assert tuple(leaf.shape) == shape, (tuple(leaf.shape), shape)


META_CASES = [
    pytest.param(call, id=f"{name}[{variant}]")
    for name, calls in CASES.items()
    for variant, call in calls.items()
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("call", META_CASES)
def test_public_function_runs_on_meta(call, dtype):
    out, shapes = call(dtype)
    _on_input_device(out, shapes, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_testing_check_runs_on_meta(name, dtype):
    violation = CHECKS[name](dtype)
    _on_input_device(violation, (B,), dtype)


def test_every_public_name_is_covered_or_excluded():
    public = set(tx.__all__)
    assert not set(CASES) & set(EXCLUDED)
    assert public - set(CASES) - set(EXCLUDED) == set(), "add a meta case or an exclusion"
    assert set(CASES) | set(EXCLUDED) <= public, "stale entries"
    assert all(len(reason) > 10 for reason in EXCLUDED.values())
    assert all(CASES.values()), "every covered name has at least one call"
    checks = set(axioms.__all__)
    assert checks - set(CHECKS) - set(CHECKS_EXCLUDED) == set()
    assert set(CHECKS) | set(CHECKS_EXCLUDED) <= checks


# ---- the premise and the value-check rule ----------------------------------------------------


def test_a_cpu_helper_in_a_meta_computation_raises():
    # what the suite relies on: the CUDA bug class shows up on meta as an error
    with pytest.raises(RuntimeError, match="is not on the expected device meta"):
        torch.empty(3, device=META) * torch.ones(3)


def test_meta_inputs_have_no_values_to_check():
    x = _x(torch.float32)
    assert not has_values(x) and not has_values({"a": torch.ones(1), "b": x})
    assert has_values(torch.ones(2)) and not is_transformed(x)  # meta: plain compute path
    # adaptive IG still refuses real transforms, not meta inputs
    with pytest.raises(TypeError, match="transforms"):
        torch.func.vmap(
            lambda z: tx.adaptive_integrated_gradients(lambda r: r.sum(-1), z).attributions
        )(torch.ones(2, B, F))


def test_cpu_generator_draws_are_the_same_for_any_data_device():
    # the draw happens where the generator lives: a meta x gets the same numbers moved,
    # so a CPU x and a CUDA x see one seed's noise alike; checked on CPU through the noise
    # smoothgrad adds (input gradients of a sum of squares are 2 (x + sigma eps))
    x = torch.zeros(B, F, dtype=torch.float64)
    smooth = tx.smoothgrad(tx.input_gradients, n_samples=1, sigma=1.0, generator=_cpu_gen())
    eps = torch.randn((1, B, F), generator=_cpu_gen(), dtype=torch.float64)[0]
    got = smooth(lambda z: z.square().sum(-1), x)
    torch.testing.assert_close(got, 2 * eps, rtol=0, atol=0)
    meta = smooth(lambda z: z.square().sum(-1), x.to(META))
    assert meta.device == META and meta.shape == x.shape


RANDOM_CALLS = {
    "smoothgrad": lambda fn, x, g: tx.smoothgrad(tx.input_gradients, n_samples=3, generator=g)(
        fn, x, target=1
    ),
    "expected_gradients": lambda fn, x, g: tx.expected_gradients(
        fn, x, target=1, baselines=torch.zeros(5, F), n_samples=3, generator=g
    ),
    "shapley_values[sampled]": lambda fn, x, g: tx.shapley_values(
        fn, x, target=1, n_permutations=4, generator=g
    ),
}


@pytest.mark.parametrize("name", sorted(RANDOM_CALLS))
def test_a_cpu_generator_draws_the_same_for_meta_data(name):
    # A draw made where the generator lives advances it exactly as on a CPU x; a draw
    # made on the data's device (meta, CUDA) would leave it untouched or refuse it. So
    # equal generator states after a CPU and a meta call mean equal draws, the numbers
    # a CUDA x gets too.
    on_cpu, on_meta = _cpu_gen(), _cpu_gen()
    cpu_net = nn.Sequential(nn.Linear(F, 5), nn.Tanh(), nn.Linear(5, C)).eval()
    RANDOM_CALLS[name](cpu_net, torch.zeros(B, F), on_cpu)
    out = RANDOM_CALLS[name](_net(torch.float32), _x(torch.float32), on_meta)
    assert out.device == META
    assert not torch.equal(on_cpu.get_state(), _cpu_gen().get_state())  # it did draw
    assert torch.equal(on_cpu.get_state(), on_meta.get_state())


def test_quadrature_device_keeps_the_values():
    for rule in tx.RULES:
        a, w = tx.quadrature(rule, 5)
        am, wm = tx.quadrature(rule, 5, device=META)
        assert am.device == wm.device == META and a.device.type == "cpu"
        assert am.shape == a.shape and wm.dtype == w.dtype == torch.float64
    assert math.fsum(tx.quadrature("gauss_legendre", 7, device="cpu")[1].tolist()) == 1.0


# ---- the GPU checks, seen from a CPU machine; the torch range -----------------------------------

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_cuda_marker_is_registered():
    markers = _pyproject()["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("cuda:") for m in markers)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the cuda tests run instead")
def test_cuda_tests_are_skipped_without_a_gpu():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/core/test_cuda.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ skipped in [\d.]+s( \(.*\))?", summary), summary
    assert "torch.cuda.is_available() is False" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the script runs the checks")
def test_gpu_check_script_refuses_a_machine_without_a_gpu():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    with tempfile.TemporaryDirectory() as out:
        run = subprocess.run(
            ["bash", str(script), out], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 2 and "is_available() is False" in run.stderr, run.stderr


def test_torch_requirement_keeps_current_releases():
    # what pip's resolver decides for `pip install -e .` with a torch already installed:
    # the installed version is kept exactly when it satisfies this requirement
    (torch_req,) = [
        Requirement(r) for r in _pyproject()["project"]["dependencies"] if r.startswith("torch")
    ]
    for kept in ("2.3.0", "2.13.0", "2.15.0", "2.15.0+cu128", "2.99.1"):
        assert torch_req.specifier.contains(kept, prereleases=True), kept
    for replaced in ("2.2.2", "3.0.0"):
        assert not torch_req.specifier.contains(replaced), replaced
    assert torch_req.specifier.contains(torch.__version__.split("+")[0])
