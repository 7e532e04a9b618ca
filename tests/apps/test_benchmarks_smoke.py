"""The benchmark harness still runs: every benchmark once on tiny inputs, then the report.

Speed is never asserted here (it lives in ``benchmarks/``); this only keeps the
harness from rotting: workloads build, ours and Captum agree on every case, the JSON
carries the ratios, and ``benchmarks/report.py`` turns it into the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("captum")
pytest.importorskip("pytest_benchmark")


def test_benchmarks_run_and_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ, TFX_BENCH_SMOKE="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_throughput.py", "-q",
         "-p", "no:cacheprovider", f"--benchmark-json={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    sys.path.insert(0, str(ROOT))
    from benchmarks._workloads import MATRIX, METHODS, WORKLOADS
    from benchmarks.report import load, table, targets

    infos = load(out)
    assert len(infos) == len(json.loads(out.read_text())["benchmarks"]) > len(METHODS)
    assert {i["workload"] for i in infos} == set(WORKLOADS)
    assert {i["method"] for i in infos} == set(METHODS)
    assert {i["variant"] for i in infos} >= {"auto", "auto+compile", "vmap", "batch"}
    # the defaults run on every method x workload of the matrix
    assert {(i["workload"], i["method"]) for i in infos if i["variant"] == "auto"} == {
        (w, m) for w, methods in MATRIX.items() for m in methods
    }
    for info in infos:
        assert info["t_ours"] > 0 and info["t_limit"] > 0 and info["t_captum"] > 0
        assert info["rows"] >= info["samples"] == 3
        assert 1 <= info["limit_batch"] <= info["rows"]
    assert len(table(infos).splitlines()) == 1 + len(infos)
    assert "shapley_values" in targets(infos)
    assert json.loads(out.read_text())["machine_info"]["torch_threads"] == 2


def test_metric_benchmarks_run(tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    env = dict(os.environ, TFX_BENCH_SMOKE="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_metrics.py", "-q",
         "-p", "no:cacheprovider", f"--benchmark-json={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    infos = [b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]]
    assert len(infos) == 6 and all(i["speedup"] > 0 and i["batch"] == 3 for i in infos)
