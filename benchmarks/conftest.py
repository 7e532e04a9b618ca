"""Benchmark session settings: 2 CPU threads, and loud failure instead of silent eager fallback."""

from __future__ import annotations

import os

import captum
import torch
import torch._dynamo

torch.set_num_threads(2)
# The session compiles each kernel for many (fn, shape) pairs; dynamo's default limit of 8
# recompiles per code object would silently run the rest eagerly. A user session with one
# model and one shape compiles once; raise the limit, and make any hit an error, which the
# core turns into a CompileFallbackWarning that the benchmark records.
torch._dynamo.config.recompile_limit = 64
torch._dynamo.config.fail_on_recompile_limit_hit = True


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["captum"] = captum.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["loadavg_at_start"] = os.getloadavg()
