"""Benchmark session settings: 2 CPU threads, and loud failure instead of silent eager fallback."""

from __future__ import annotations

import os

import captum
import pytest
import torch
import torch._dynamo

torch.set_num_threads(2)
# The session compiles each kernel for many (fn, shape) pairs; dynamo's default limit of 8
# recompiles per code object would silently run the rest eagerly. A user session with one
# model and one shape compiles once; raise the limit, and make any hit an error, which the
# core turns into a CompileFallbackWarning that the benchmark records.
torch._dynamo.config.recompile_limit = 64
torch._dynamo.config.fail_on_recompile_limit_hit = True


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default=None,
        help="device of the benchmark workloads (cpu, cuda, cuda:1); sets TFX_BENCH_DEVICE",
    )


def pytest_configure(config):
    # before the benchmark modules are imported: benchmarks._workloads reads it once
    device = config.getoption("--device", default=None)
    if device:
        os.environ["TFX_BENCH_DEVICE"] = device


def pytest_collection_modifyitems(config, items):
    # inductor's hint on GPUs with tensor cores; the benchmarks keep full float32 matmuls
    hint = pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")
    for item in items:
        item.add_marker(hint)


def pytest_benchmark_update_machine_info(config, machine_info):
    device = torch.device(os.environ.get("TFX_BENCH_DEVICE", "cpu"))
    machine_info["device"] = str(device)
    if device.type == "cuda":
        machine_info["gpu"] = torch.cuda.get_device_name(device)
    machine_info["torch"] = torch.__version__
    machine_info["captum"] = captum.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["loadavg_at_start"] = os.getloadavg()
