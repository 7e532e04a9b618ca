"""Print the throughput table and the issue's targets from a pytest-benchmark JSON file.

Usage::

    python -m benchmarks.report bench.json [--markdown]

Columns: ``ours`` is the median seconds of tfx_explain, ``limit`` and ``Captum`` the
medians of the references timed in the same rounds; ``limit B`` the rows per call at
which the plain forward(+backward) was fastest (the limit is the best over a range of
batch sizes); ``x limit`` = ours / limit (1.0 is the floor) and ``Captum/ours`` = how
many times faster than Captum, each the median over the rounds of that round's ratio
(files written before 2026-12-01's third run hold ratios of the medians); ``first``
is the first call (the compile time for ``+compile`` variants), excluded from the
medians; ``n`` the rounds; ``load`` the 1-minute load average after the benchmark
(2 cores: above ~2 means other processes competed for the CPU).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["load", "table", "targets", "main"]

COLUMNS = (
    "workload",
    "method",
    "variant",
    "B",
    "rows",
    "ours s",
    "rows/s",
    "limit s",
    "limit B",
    "Captum s",
    "x limit",
    "Captum/ours",
    "first s",
    "n",
    "load",
    "notes",
)


def load(path: str | Path) -> list[dict]:
    """The ``extra_info`` of every benchmark in a ``--benchmark-json`` file, in run order."""
    data = json.loads(Path(path).read_text())
    rows = [b["extra_info"] for b in data["benchmarks"] if "vs_limit" in b.get("extra_info", {})]
    if not rows:
        raise SystemExit(f"{path}: no tfx_explain throughput benchmarks with results")
    return rows


def _wrong(info: dict) -> bool:
    return isinstance(info["agreement"], str)


def _notes(info: dict) -> str:
    notes = list(info["warnings"])
    if _wrong(info):
        notes.append("WRONG RESULT (differs from Captum)")
    if "+compile" in info["variant"]:
        if "CompileFallbackWarning" in notes:
            notes.append("ran EAGER")
        elif not info["compiled_frames"]:
            notes.append("no frame compiled")
        if info["graph_breaks"]:
            notes.append(f"{info['graph_breaks']} graph breaks")
        if info.get("dynamo_unsupported"):
            notes.append(f"dynamo gave up {info['dynamo_unsupported']}x (partly eager)")
    if info["recompiles_in_rounds"]:
        notes.append(f"{info['recompiles_in_rounds']} compile attempts in rounds")
    return ", ".join(notes)


def _format(info: dict) -> list[str]:
    return [
        info["workload"],
        info["method"],
        info["variant"],
        str(info["samples"]),
        str(info["rows"]),
        f"{info['t_ours']:.4f}",
        f"{info['rows_per_s']:,.0f}",
        f"{info['t_limit']:.4f}",
        str(info.get("limit_batch", "all")),
        f"{info['t_captum']:.4f}",
        f"{info['vs_limit']:.2f}",
        f"{info['vs_captum']:.2f}",
        f"{info['first_call_s']:.1f}",
        str(info["rounds"]),
        f"{info['load']:.1f}",
        _notes(info),
    ]


def _render(header: Iterable[str], body: list[list[str]], markdown: bool) -> str:
    header = list(header)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(line.rstrip() for line in lines)


def table(infos: list[dict], *, markdown: bool = False) -> str:
    """One line per benchmark, in run order."""
    return _render(COLUMNS, [_format(info) for info in infos], markdown)


_ALL = ("tnet-2048", "tnet-240", "seed-2048", "mlp-2048", "cnn-128")
_ALL_METHODS = ("input_gradients", "gradient_x_input", "integrated_gradients", "occlusion",
                "feature_ablation", "shapley_values")  # fmt: skip
# (description, workloads, methods, variants, column, comparison, threshold)
_TARGETS: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str, str, float]] = [
    # issue 14: the defaults (vectorize="auto"), against the best-batch-size limit
    ("defaults: at most 1.1x the limit", _ALL, _ALL_METHODS, ("auto",), "vs_limit", "<=", 1.1),
    ("defaults: SmoothGrad at most 1.15x the limit", _ALL, ("smoothgrad",), ("auto",),
     "vs_limit", "<=", 1.15),
    ("defaults: not slower than Captum", _ALL, _ALL_METHODS + ("smoothgrad",), ("auto",),
     "vs_captum", ">=", 1.0),
    ("defaults: IG and occlusion >= 1.3x faster than Captum", ("tnet-2048",),
     ("integrated_gradients", "occlusion"), ("auto",), "vs_captum", ">=", 1.3),
    ("defaults: exact group Shapley >= 6x faster than Captum", ("tnet-2048",),
     ("shapley_values",), ("auto",), "vs_captum", ">=", 6.0),
    ("defaults, compiled: IG >= 4x faster than Captum", ("tnet-2048",),
     ("integrated_gradients",), ("auto+compile",), "vs_captum", ">=", 4.0),
    ("defaults, compiled: occlusion/ablation >= 2.5x faster than Captum", ("tnet-2048",),
     ("occlusion", "feature_ablation"), ("auto+compile",), "vs_captum", ">=", 2.5),
    # issue 5: the explicit variants
    ("IG eager within 1.15x of the limit", ("tnet-2048",), ("integrated_gradients",),
     ("vmap", "batch"), "vs_limit", "<=", 1.15),
    ("IG eager >= 1.3x faster than Captum", ("tnet-2048",), ("integrated_gradients",),
     ("vmap", "batch"), "vs_captum", ">=", 1.3),
    ("IG compiled >= 4x faster than Captum", ("tnet-2048",), ("integrated_gradients",),
     ("vmap+compile", "batch+compile"), "vs_captum", ">=", 4.0),
    ("occlusion/ablation eager within 1.15x of the limit", ("tnet-2048",),
     ("occlusion", "feature_ablation"), ("vmap", "batch"), "vs_limit", "<=", 1.15),
    ("occlusion/ablation eager >= 1.2x faster than Captum", ("tnet-2048",),
     ("occlusion", "feature_ablation"), ("vmap", "batch"), "vs_captum", ">=", 1.2),
    ("occlusion/ablation compiled >= 2x faster than Captum", ("tnet-2048",),
     ("occlusion", "feature_ablation"), ("vmap+compile", "batch+compile"), "vs_captum", ">=",
     2.0),
    ("Shapley eager >= 5x faster than Captum", ("tnet-2048",), ("shapley_values",),
     ("vmap", "batch"), "vs_captum", ">=", 5.0),
    ("Shapley compiled >= 10x faster than Captum", ("tnet-2048",), ("shapley_values",),
     ("vmap+compile", "batch+compile"), "vs_captum", ">=", 10.0),
    ("input gradients within 1.1x of the limit", ("tnet-2048",), ("input_gradients",),
     ("vmap", "batch"), "vs_limit", "<=", 1.1),
    ("seed module, batch: not slower than Captum", ("seed-2048",),
     ("input_gradients", "integrated_gradients", "feature_ablation", "shapley_values"),
     ("batch",), "vs_captum", ">=", 1.0),
]  # fmt: skip

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def targets(infos: list[dict], *, markdown: bool = False) -> str:
    """The issue's targets, one line per (target, method, variant) found in the run."""
    body = []
    for text, workloads, methods, variants, column, op, bound in _TARGETS:
        for info in infos:
            if info["workload"] in workloads and info["method"] in methods:
                if info["variant"] in variants:
                    value = info[column]
                    met = _COMPARE[op](value, bound) and math.isfinite(value)
                    if "CompileFallbackWarning" in info["warnings"] or _wrong(info):
                        met = False
                    body.append(
                        [text, info["workload"], info["method"], info["variant"],
                         f"{value:.2f} {op} {bound}", "met" if met else "NOT met"]
                    )  # fmt: skip
    header = ("target", "workload", "method", "variant", "measured", "verdict")
    return _render(header, body, markdown)


def _cross(infos: list[dict], *, markdown: bool = False) -> str:
    """Ours on the functional net against Captum on the seed's module (different benchmarks)."""
    captum_seed = {
        i["method"]: i["t_captum"] for i in infos if i["workload"] == "seed-2048"
    }  # the seed module, attributed by Captum: what a user would run instead
    body = []
    for info in infos:
        if info["workload"] == "tnet-2048" and info["method"] in captum_seed:
            speedup = captum_seed[info["method"]] / info["t_ours"]
            body.append(
                [info["method"], info["variant"], f"{captum_seed[info['method']]:.4f}",
                 f"{info['t_ours']:.4f}", f"{speedup:.2f}"]
            )  # fmt: skip
    header = ("method", "ours on tnet", "Captum on seed module s", "ours s", "speedup")
    return _render(header, body, markdown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="file written by pytest --benchmark-json")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    infos = load(args.json)
    print(table(infos, markdown=args.markdown))
    print("\nTargets (issues 14 and 5; ratios are medians of per-round ratios):")
    print(targets(infos, markdown=args.markdown))
    cross = _cross(infos, markdown=args.markdown)
    if cross.count("\n") > 1:
        print("\nThe seed's way (Captum on the nn.TransformerEncoder module) against ours on")
        print("the functional net; medians from two different benchmarks, so not paired:")
        print(cross)


if __name__ == "__main__":
    main()
