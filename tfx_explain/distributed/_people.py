"""People-format features as a parquet directory: the shipped rows or a large synthetic table."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tfx_explain.people import PEOPLE_FEATURES, default_people_paths, load_people

from ._checks import check_positive_int

__all__ = ["write_people_parquet", "MAX_ROWS"]

_ROWS_PER_PARTITION = 50_000
_BYTES_PER_ROW = 48  # row_id int64 + 8 float32 features, with parquet's overhead

MAX_ROWS = 10**8
"""Most synthetic rows :func:`write_people_parquet` writes (about 4 GB of parquet)."""


def _synthetic(n: int, seed: int, partition: int) -> np.ndarray:
    """``n`` rows ``(n, 8)`` drawn like ``data/make_people.py``: uniform sex, state and
    politics, whole-year ages 18..70."""
    rng = np.random.default_rng([seed, partition])
    x = np.zeros((n, len(PEOPLE_FEATURES)), dtype=np.float32)
    x[:, 0] = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n)
    x[:, 1] = rng.integers(18, 71, size=n) / 100
    x[np.arange(n), 2 + rng.integers(0, 3, size=n)] = 1.0
    x[np.arange(n), 5 + rng.integers(0, 3, size=n)] = 1.0
    return x


def write_people_parquet(
    out_dir: str | os.PathLike,
    *,
    n_rows: int | None = None,
    seed: int = 0,
    partitions: int | None = None,
) -> Path:
    """Write people features with a ``row_id`` column as ``part-NNNNN.parquet`` files.

    With ``n_rows=None`` the shipped rows (``people_train.txt`` then ``people_test.txt``,
    240 rows) get ids ``0..239``. With ``n_rows=N``, ``N`` synthetic rows are drawn the
    way the shipped files were (sex, state and politics uniform and independent, age a
    whole year uniform in 18..70, stored as age/100), each partition from its own stream
    ``numpy.random.default_rng([seed, p])``, so the table is fixed by the arguments and
    is generated one partition at a time. Ids run ``0..N-1`` in order. Columns:
    ``row_id`` (int64) and ``PEOPLE_FEATURES`` (float32). No income column: the table
    is for attribution, not training.

    Args:
      out_dir: directory to create; must not exist.
      n_rows: ``None`` for the shipped rows, or the number of synthetic rows, at most
        ``MAX_ROWS`` (10**8) and what the disk has room for (checked before writing).
      seed: seed of the synthetic rows.
      partitions: number of files; ``None``: one per 50,000 rows, at least
        ``min(4, rows)`` so that a few workers share even a small table.

    Returns:
      ``out_dir`` as a ``Path``.

    Example:
      >>> import tempfile, pandas as pd
      >>> path = write_people_parquet(tempfile.mkdtemp() + "/people", n_rows=10)
      >>> pd.read_parquet(path).shape
      (10, 9)
    """
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"out_dir {out} exists; choose a new directory")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    shipped = None
    if n_rows is None:
        shipped = np.concatenate([load_people(p)[0].numpy() for p in default_people_paths()])
        n_rows = len(shipped)
    n_rows = check_positive_int(n_rows, "n_rows")
    if n_rows > MAX_ROWS:
        raise ValueError(f"n_rows must be <= {MAX_ROWS:,} (MAX_ROWS), got {n_rows:,}")
    parent = next((p for p in out.absolute().parents if p.exists()), Path("/"))
    free = shutil.disk_usage(parent).free
    if n_rows * _BYTES_PER_ROW > free:
        raise ValueError(
            f"n_rows = {n_rows:,} needs about {n_rows * _BYTES_PER_ROW / 1e9:.1f} GB, but "
            f"{parent} has {free / 1e9:.1f} GB free"
        )
    if partitions is None:
        partitions = max(math.ceil(n_rows / _ROWS_PER_PARTITION), min(4, n_rows))
    partitions = check_positive_int(partitions, "partitions")
    if partitions > n_rows:
        raise ValueError(f"partitions must be <= n_rows = {n_rows}, got {partitions}")
    bounds = np.linspace(0, n_rows, partitions + 1).round().astype(np.int64)
    out.mkdir(parents=True)
    for p, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        x = shipped[start:stop] if shipped is not None else _synthetic(stop - start, seed, p)
        columns = {"row_id": np.arange(start, stop, dtype=np.int64)}
        columns.update({name: x[:, j] for j, name in enumerate(PEOPLE_FEATURES)})
        pq.write_table(pa.table(columns), out / f"part-{p:05d}.parquet")
    return out
