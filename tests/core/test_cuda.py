"""The contract's fast subset on a real GPU: float32, float16 and bfloat16, eager and compiled.

Every test here carries the ``cuda`` marker and is skipped when
``torch.cuda.is_available()`` is false (``tests/conftest.py``), so the CPU suite
collects and skips them; ``benchmarks/gpu_check.sh`` runs them with ``-m cuda``.
Each method runs on CUDA inputs and a CUDA model, with the options of the contract
suite: baselines, reference rows and targets made on the CPU (moved inside) and CPU
generators (drawn where they live, then moved). The result must be on the GPU, in
the input's dtype, finite, and equal up to rounding to the same call on the CPU in
the same dtype: one seed gives the same draws on every device.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from test_contract import SPECS, Spec, _expected_shape, _gen, _target

import tfx_explain as tx

pytestmark = [
    pytest.mark.cuda,
    # inductor's hint on GPUs with tensor cores; float32 stays full precision here
    pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning"),
]

CUDA = torch.device("cuda")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Relative to the result's scale: rounding of the dtype, over ~50 accumulated terms
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}

FAST = [
    "input_gradients",
    "gradient_x_input",
    "integrated_gradients[gauss_legendre]",
    "integrated_gradients[gauss_legendre][batch]",
    "occlusion",
    "feature_ablation[batch]",
    "shapley_values[exact]",
    "shapley_values[sampled]",
    "smoothgrad(input_gradients)",
    "expected_gradients",
    "integrated_hessians",
    "adaptive_integrated_gradients",
    "completeness_gap(integrated_gradients)",
]
FAST_SPECS = [s for s in SPECS if s.name in FAST]
# compiling costs ~10-30 s per kernel and dtype: IG in every dtype, Shapley in float32
COMPILED = [("integrated_gradients[gauss_legendre]", dtype) for dtype in DTYPES] + [
    ("shapley_values[exact]", torch.float32)
]


def _mlp_on(device: torch.device, dtype: torch.dtype, n_in: int = 4, n_out: int = 3):
    """A tanh MLP whose weights are made once on ``device`` in ``dtype`` (same numbers)."""
    g = _gen(0)
    shapes = [(n_in, 5), (5,), (5, n_out), (n_out,)]
    w1, b1, w2, b2 = (
        (torch.randn(s, generator=g, dtype=torch.float64) / math.sqrt(s[0])).to(device, dtype)
        for s in shapes
    )

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1) @ w1 + b1) @ w2 + b2

    return fn


def _x(dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(3, 4, generator=_gen(1), dtype=torch.float64).to(dtype)


def _run_on(spec: Spec, device: torch.device, dtype: torch.dtype, **kw) -> torch.Tensor:
    x = _x(dtype).to(device)
    return spec.run(_mlp_on(device, dtype), x, target=_target().to(device), **kw)


def _agree(gpu: torch.Tensor, cpu: torch.Tensor, dtype: torch.dtype) -> None:
    assert gpu.device.type == "cuda" and gpu.dtype == dtype
    assert bool(torch.isfinite(gpu).all())
    scale = max(float(cpu.abs().max()), 1.0)
    torch.testing.assert_close(
        gpu.cpu().double(), cpu.double(), rtol=0.0, atol=TOLERANCE[dtype] * scale
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("spec", FAST_SPECS, ids=repr)
def test_eager_on_cuda_matches_cpu(spec, dtype):
    gpu = _run_on(spec, CUDA, dtype)
    assert gpu.shape == _expected_shape(spec, _x(dtype))
    _agree(gpu, _run_on(spec, torch.device("cpu"), dtype), dtype)


@pytest.mark.parametrize(("name", "dtype"), COMPILED, ids=lambda v: str(v))
def test_compiled_on_cuda_matches_eager(name, dtype):
    spec = next(s for s in SPECS if s.name == name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tx.CompileFallbackWarning)  # a fallback is a failure
        compiled = _run_on(spec, CUDA, dtype, compile=True)
    _agree(compiled, _run_on(spec, torch.device("cpu"), dtype), dtype)


def test_cuda_generator_and_cuda_targets():
    # a generator on the GPU draws there (Shapley moves its permutations to the CPU design)
    fn, x = _mlp_on(CUDA, torch.float32), _x(torch.float32).to(CUDA)
    gen = torch.Generator(device=CUDA).manual_seed(0)
    attr = tx.shapley_values(fn, x, target=1, n_permutations=4, generator=gen)
    assert attr.device.type == "cuda"
    gap = tx.completeness_gap(fn, x, attr, target=1)
    assert float(gap.abs().max()) < 1e-4
    smooth = tx.smoothgrad(tx.input_gradients, n_samples=4, generator=gen)
    assert smooth(fn, x, target=torch.tensor([0, 1, 2], device=CUDA)).device.type == "cuda"
