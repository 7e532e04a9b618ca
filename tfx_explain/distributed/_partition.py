"""One partition of a distributed attribution job, as run on a worker.

A partition is a pandas frame of rows. Rows whose features are invalid are set aside
with a reason; the others are attributed in one method call (``chunk_size`` bounds the
memory). If that call raises ``ValueError`` (a non-finite model output, say), the rows
are bisected until the failing rows are isolated, so one bad row never stops the rest.
Results and errors are written under fixed per-partition names with an atomic rename:
a partition that is run twice (its worker died) leaves exactly one copy.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tfx_explain import group_attributions

from ._loader import load_model, resolve

__all__ = ["JobSpec", "run_partition", "feature_matrix", "part_name"]


class JobSpec(NamedTuple):
    """Everything a worker needs for a job: strings, numbers and small options only."""

    params: str
    params_stamp: tuple[int, int]
    model: str | None
    factory: str | None
    method: str
    options: dict
    features: tuple[str, ...]
    width: int | None  # values per row when ``features`` is one list column
    id_column: str
    groups: tuple[tuple[str, tuple[int, ...]], ...] | None
    target: int | None
    dtype: str
    seed: int | None
    staging: str


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def feature_names(spec: JobSpec) -> list[str]:
    """One name per flat feature: the columns, or ``column_k`` for a list column."""
    if spec.width is None:
        return list(spec.features)
    return [f"{spec.features[0]}_{k}" for k in range(spec.width)]


def feature_matrix(frame: pd.DataFrame, spec: JobSpec) -> tuple[np.ndarray, list[str | None]]:
    """Features ``(N, D)`` float64 (NaN where invalid) and one reason per row (None: valid)."""
    n = len(frame)
    reasons: list[str | None] = [None] * n
    if spec.width is not None:
        return _list_column(frame[spec.features[0]], spec.features[0], spec.width, reasons)
    values = np.full((n, len(spec.features)), np.nan)
    for j, column in enumerate(spec.features):
        series = frame[column]
        missing = series.isna().to_numpy(dtype=bool)
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        not_number = ~missing & np.isnan(numbers)
        infinite = np.isinf(numbers)
        values[:, j] = numbers
        for i in np.flatnonzero(missing | not_number | infinite):
            if reasons[i] is None:
                if missing[i]:
                    reasons[i] = f"feature {column!r} is missing (null or NaN)"
                elif not_number[i]:
                    reasons[i] = f"feature {column!r} is not a number: {series.iloc[i]!r}"
                else:
                    reasons[i] = f"feature {column!r} is not finite: {numbers[i]}"
    return values, reasons


def _list_column(series: pd.Series, column: str, width: int, reasons: list) -> tuple:
    values = np.full((len(series), width), np.nan)
    for i, cell in enumerate(series):
        if cell is None or isinstance(cell, float) and math.isnan(cell):
            reasons[i] = f"feature column {column!r} is missing (null)"
            continue
        try:
            row = np.asarray(cell, dtype=np.float64)
        except (TypeError, ValueError):
            reasons[i] = f"feature column {column!r} does not hold numbers: {cell!r}"
            continue
        if row.shape != (width,):
            reasons[i] = f"feature column {column!r} has {row.size} values, expected {width}"
        elif not np.isfinite(row).all():
            k = int(np.flatnonzero(~np.isfinite(row))[0])
            reasons[i] = f"feature {column}[{k}] is not finite (null, NaN or inf): {row[k]}"
        else:
            values[i] = row
    return values, reasons


def _attribute_rows(call, x: torch.Tensor, start: int = 0) -> tuple[list, list]:
    """``([(first row, attributions)], [(row, reason)])``, bisecting on ``ValueError``."""
    try:
        return [(start, call(x))], []
    except ValueError as error:
        if x.shape[0] == 1:
            return [], [(start, f"{type(error).__name__}: {error}")]
    half = x.shape[0] // 2
    done_a, failed_a = _attribute_rows(call, x[:half], start)
    done_b, failed_b = _attribute_rows(call, x[half:], start + half)
    return done_a + done_b, failed_a + failed_b


def _json_id(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _write_atomic(path: Path, write) -> None:
    """Write through a hidden temporary file in the same directory, then rename."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    write(temporary)
    os.replace(temporary, path)


def _trim_memory() -> None:
    """Give freed heap pages back to the OS (glibc only): replaces a low trim threshold."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def run_partition(frame: pd.DataFrame, index: int, spec: JobSpec) -> dict:
    """Attribute one partition, write ``part-NNNNN.parquet`` (and its errors), return sums.

    Returns:
      A summary dict: ``partition``, ``rows`` (attributed), ``errors``, ``input_rows``,
      ``abs_sum`` (per feature, float64 sums of ``|a|``), ``group_abs_sum`` (per group or
      None), ``seconds`` (wall), ``cpu_seconds`` (the worker process's CPU time) and ``pid``.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)  # one task per worker thread: no oversubscription
    fn = load_model(spec.params, model=spec.model, factory=spec.factory, stamp=spec.params_stamp)
    method = resolve(spec.method)
    dtype = getattr(torch, spec.dtype)
    names = feature_names(spec)

    values, reasons = feature_matrix(frame, spec)
    valid = np.array([r is None for r in reasons], dtype=bool)
    x = torch.from_numpy(values[valid]).to(dtype)  # (N_valid, D)
    options = dict(spec.options)
    if spec.target is not None:
        options["target"] = spec.target

    def call(rows: torch.Tensor) -> torch.Tensor:
        if spec.seed is not None:  # a fresh stream per partition: reruns draw the same noise
            options["generator"] = torch.Generator().manual_seed(spec.seed * 1_000_003 + index)
        return method(fn, rows, **options)

    done, failed = _attribute_rows(call, x) if x.shape[0] else ([], [])
    attr = torch.full(x.shape, math.nan, dtype=dtype)
    ok = torch.zeros(x.shape[0], dtype=torch.bool)
    for start, block in done:
        attr[start : start + block.shape[0]] = block.detach()
        ok[start : start + block.shape[0]] = True
    if failed and not done and len({reason for _, reason in failed}) == 1 and len(failed) > 1:
        raise ValueError(
            f"partition {index}: the method failed on every one of its {len(failed)} valid "
            f"rows with the same error, which is not about the rows: {failed[0][1]}"
        )
    with torch.no_grad():
        out = fn(x[ok]) if bool(ok.any()) else torch.zeros(0, dtype=dtype)
        prediction = out if spec.target is None else out[:, spec.target]
    full_prediction = torch.full((x.shape[0],), math.nan, dtype=dtype)
    full_prediction[ok] = prediction.to(dtype)
    bad_prediction = ok & ~torch.isfinite(full_prediction)
    for row in bad_prediction.nonzero().flatten().tolist():
        failed.append((row, f"prediction is not finite: {full_prediction[row].item()}"))
    ok &= ~bad_prediction

    # positions within the partition of valid rows, then of the rows kept
    valid_rows = np.flatnonzero(valid)
    for row, reason in failed:
        reasons[valid_rows[row]] = reason
    kept = valid_rows[ok.numpy()]
    attr, prediction = attr[ok], full_prediction[ok]

    ids = frame[spec.id_column].to_numpy()
    table = {spec.id_column: ids[kept], "prediction": prediction.numpy()}
    table.update({f"attr_{name}": attr[:, j].numpy() for j, name in enumerate(names)})
    group_abs_sum = None
    if spec.groups is not None:
        groups = dict(spec.groups)
        grouped = group_attributions(attr, groups) if len(attr) else attr[:, : len(groups)]
        table.update({f"group_{g}": grouped[:, k].numpy() for k, (g, _) in enumerate(spec.groups)})
        group_abs_sum = grouped.abs().sum(0, dtype=torch.float64).tolist()
    staging = Path(spec.staging)
    result = pa.Table.from_pandas(pd.DataFrame(table), preserve_index=False)
    _write_atomic(staging / f"{part_name(index)}.parquet", lambda p: pq.write_table(result, p))

    errors = [
        {"row_id": _json_id(ids[i]), "partition": index, "position": int(i), "reason": reasons[i]}
        for i in range(len(frame))
        if reasons[i] is not None
    ]
    if errors:
        text = "".join(json.dumps(e) + "\n" for e in errors)
        path = staging / "_errors" / f"{part_name(index)}.jsonl"
        _write_atomic(path, lambda p: p.write_text(text))
    _trim_memory()
    return {
        "partition": index,
        "input_rows": len(frame),
        "rows": len(kept),
        "errors": len(errors),
        "abs_sum": attr.abs().sum(0, dtype=torch.float64).tolist(),
        "group_abs_sum": group_abs_sum,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "pid": os.getpid(),
    }
