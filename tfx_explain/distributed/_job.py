"""The driver of a distributed attribution job: checks, submission, progress, commit."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import dask
import dask.dataframe as dd
import pyarrow.parquet as pq
import torch
from distributed import Client, as_completed

import tfx_explain as tx

from ._checks import check_positive_int
from ._cluster import local_cluster
from ._loader import METHODS, import_path, load_model, params_stamp, resolve
from ._partition import JobSpec, feature_matrix, feature_names, part_name, run_partition

__all__ = [
    "attribute_dataset",
    "JobProgress",
    "JobResult",
    "SUMMARY_FILE",
    "ERRORS_FILE",
    "DEFAULT_CHUNK_SIZE",
]

SUMMARY_FILE = "_summary.json"
ERRORS_FILE = "_errors.jsonl"
_RESERVED = ("prediction", "attr_", "group_")
_CONNECT_TIMEOUT = "10s"
_ROWS_PER_CHUNK = 256 * 512  # DEFAULT_CHUNK_SIZE rows of 512 steps
_ROWS_PER_SAMPLE = ("steps", "n_samples", "n_permutations")
_PEOPLE_MODEL = "tfx_explain.people:transformer_net"
DEFAULT_CHUNK_SIZE = 256
"""Rows per vmap chunk when the method takes ``chunk_size`` and ``options`` leave it out:
whole partitions at once would hold every path point in memory (50k rows x 50 IG steps).
With more than 512 ``steps`` (``n_samples``, ``n_permutations``) per row it shrinks so
that a chunk stays at about 131072 evaluated rows."""


class JobProgress(NamedTuple):
    """Passed to ``progress`` after every finished partition."""

    partitions_done: int
    partitions: int
    rows: int
    errors: int
    seconds: float


class JobResult(NamedTuple):
    """What :func:`attribute_dataset` wrote and the global importance it computed."""

    out: Path
    """The output directory (parquet parts, ``_errors.jsonl``, ``_summary.json``)."""
    rows: int
    """Rows attributed (each appears once in the parquet parts)."""
    errors: int
    """Rows reported in ``_errors.jsonl`` instead."""
    partitions: int
    seconds: float
    """Wall time from submission to commit (cluster start excluded)."""
    cpu_seconds: float
    """CPU time the workers spent on the partitions: ``rows / cpu_seconds`` is the
    per-core rate, unaffected by other load on the machines."""
    features: tuple[str, ...]
    importance: torch.Tensor
    """``(D,)`` float64 mean ``|a|`` per feature over all rows, normalized to sum 1."""
    groups: tuple[str, ...] | None
    group_importance: torch.Tensor | None
    """``(G,)`` float64, the same per group, or None without groups."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def attribute_dataset(
    data: Any,
    out: str | os.PathLike,
    *,
    params: str | os.PathLike,
    model: str | Callable | None = None,
    factory: str | Callable | None = None,
    method: str | Callable = "ig",
    options: Mapping[str, Any] | None = None,
    features: Sequence[str] | str | None = None,
    width: int | None = None,
    id_column: str = "row_id",
    groups: Mapping[str, Any] | None = None,
    target: int | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
    scheduler: str | Client | None = None,
    n_workers: int = 2,
    overwrite: bool = False,
    progress: Callable[[JobProgress], None] | None = None,
) -> JobResult:
    """Attribute every row of a parquet dataset on a Dask cluster and write the results.

    .. math::

        a_b = \\mathrm{method}(f, x_b), \\qquad
        I_j = \\frac{\\frac{1}{N}\\sum_b |a_{b,j}|}{\\sum_k \\frac{1}{N}\\sum_b |a_{b,k}|}

    Each worker attributes whole partitions with ``method`` and the model ``f`` it loads
    once from ``params``; it writes one parquet part per input partition with the row id,
    ``prediction`` = :math:`f_t(x_b)`, one ``attr_<feature>`` column per feature and, with
    ``groups``, one ``group_<name>`` column per group (the summed attributions). It also
    returns the per-feature sums of :math:`|a_{b,j}|` and its row count, so the global
    importance :math:`I` (as ``tfx_explain.global_importance``) is combined on the driver
    without reading the output back. Rows with invalid features (null, NaN, inf, not a
    number, a list of the wrong width) or on which the method raises ``ValueError`` are
    written to ``_errors.jsonl`` with their id and reason; the other rows carry on.

    Everything is written into a fresh hidden sibling of ``out`` and renamed into place
    only when every partition has succeeded; a failed job leaves no output. A partition
    re-run after a worker died rewrites the same part file, so each row appears once.

    Args:
      data: a parquet file or directory, or a ``dask.dataframe.DataFrame``.
      out: output directory; must not exist unless ``overwrite``.
      params: params file, readable by every worker (shared filesystem).
      model: ``model(params, x)``, e.g. ``"tfx_explain.people:transformer_net"``; the
        params are read with ``tfx_explain.people.load_params``.
      factory: instead of ``model``, ``factory(params_path) -> fn`` for any other format.
        Both are given as import paths or module-level functions: only the name travels.
      method: ``"ig"``, ``"gxi"``, ``"grad"``, ``"occlusion"``, ``"ablation"``,
        ``"shapley"``, ``"eg"``, ``"kernel_shap"``, ``"lime"`` (see :data:`METHODS`), or
        any ``method(fn, x, **options)`` by import path.
      options: keyword options of the method (``steps``, ``baseline``, ``window``,
        ``groups`` for Shapley players, ``chunk_size``...). Shipped with every task, so
        keep them small. ``chunk_size`` defaults to ``DEFAULT_CHUNK_SIZE`` (256) rows.
      features: feature columns in model order (default: every column but ``id_column``),
        or the name of one list column holding ``width`` values per row.
      width: values per row of a list column ``features``; only then.
      id_column: unique row id column, copied to the output and the errors.
      groups: name -> feature indices or column names, partitioning the features:
        adds ``group_*`` columns and the group importance.
      target: ``None`` for ``(B,)`` models, or the output index to explain.
      dtype: floating dtype the features are cast to (the model's dtype).
      seed: seeds a fresh ``torch.Generator`` per partition for random methods, so a
        re-run partition draws the same noise.
      scheduler: ``None`` for a local loopback cluster of ``n_workers`` processes, a
        scheduler address, or a connected ``distributed.Client``.
      n_workers: local workers when ``scheduler`` is None.
      overwrite: replace an existing ``out`` (one holding a previous job's
        ``_summary.json``, or empty) once the new job has succeeded.
      progress: called with a :class:`JobProgress` after every partition.

    Returns:
      :class:`JobResult` with the counts, timing and global importance.

    Example:
      >>> import tempfile
      >>> from tfx_explain.people import PEOPLE_FIELDS
      >>> from tfx_explain.distributed import write_people_parquet
      >>> from tfx_explain.people import init_transformer_net
      >>> from tfx_explain.people import save_params
      >>> work = tempfile.mkdtemp()
      >>> save_params(init_transformer_net(), f"{work}/net.pt")
      >>> data = write_people_parquet(f"{work}/people")  # the 240 shipped rows
      >>> result = attribute_dataset(
      ...     data, f"{work}/ig", params=f"{work}/net.pt",
      ...     model="tfx_explain.people:transformer_net", method="ig",
      ...     options={"steps": 20}, groups=PEOPLE_FIELDS, n_workers=1)
      >>> result.rows, result.errors, result.groups
      (240, 0, ('sex', 'age', 'state', 'politics'))
      >>> round(float(result.group_importance.sum()), 12)
      1.0

    References:
      Dask distributed documentation, "Managing memory" and "Resilience".
    """
    frame, source = _open(data)
    id_column = _check_name(id_column, "id_column", frame.columns)
    features, width = _check_features(features, width, id_column, frame.columns)
    frame = frame[[id_column, *features]]
    method_path = METHODS.get(method, method) if isinstance(method, str) else method
    if isinstance(method_path, str) and ":" not in method_path:
        raise ValueError(
            f"method must be one of {', '.join(METHODS)} or 'module:function', got {method!r}"
        )
    method_path = import_path(method_path, "method")
    try:
        method_fn = resolve(method_path)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"method {method_path!r} cannot be imported: {error}") from None
    if not callable(method_fn):
        raise TypeError(f"method {method_path!r} is not callable: {method_fn!r}")
    options = _check_options(options, method_fn, target, seed)
    if (model is None) == (factory is None):
        raise ValueError(f"give exactly one of model and factory, got {model!r} and {factory!r}")
    params = os.path.abspath(params)
    if not os.path.isfile(params):
        raise FileNotFoundError(f"params file {params} not found")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
        raise TypeError(f"target must be None or an int, got {target!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")
    n_workers = check_positive_int(n_workers, "n_workers")
    out = _check_out(out, source, overwrite)
    spec = JobSpec(
        params=params,
        params_stamp=params_stamp(params),
        model=None if model is None else import_path(model, "model"),
        factory=None if factory is None else import_path(factory, "factory"),
        method=method_path,
        options=options,
        features=tuple(features),
        width=width,
        id_column=id_column,
        groups=None,
        target=target,
        dtype=str(dtype).removeprefix("torch."),
        seed=seed,
        staging="",
    )
    names = feature_names(spec)
    spec = spec._replace(groups=_check_groups(groups, names))
    if source is not None:  # parquet: read the id column alone, before any cluster starts
        ids = pq.read_table(str(source), columns=[id_column]).column(id_column)
        _check_ids(ids.to_pandas(), id_column)
    _dry_run(frame, spec)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (staging / "_errors").mkdir()
        with _client(scheduler, n_workers) as client:
            if source is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # dask's own deprecation notices
                    ids = client.compute(frame[id_column]).result()
                _check_ids(ids, id_column)
            started = time.perf_counter()
            summaries = _run(client, frame, spec._replace(staging=str(staging)), progress)
            seconds = time.perf_counter() - started
        result = _commit(staging, out, overwrite, summaries, spec, names, seconds)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _check_ids(ids, id_column: str) -> None:
    """Refuse null or repeated row ids: every output row and error is keyed by its id."""
    missing = ids.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"id_column {id_column!r} must not be null, but {int(missing.sum()):,} rows have "
            f"a null id (the first is row {int(missing.argmax())} of the data)"
        )
    repeated = ids[ids.duplicated()]
    if len(repeated):
        first = repeated.iloc[0]
        first = first.item() if hasattr(first, "item") else first
        raise ValueError(
            f"id_column {id_column!r} must hold unique ids, but {repeated.nunique():,} ids "
            f"repeat (e.g. {first!r}, {int((ids == first).sum())} times)"
        )


def _dry_run(frame: dd.DataFrame, spec: JobSpec) -> None:
    """Load the model and attribute the first valid row on the driver, before any cluster.

    A params file of the wrong kind or architecture, or options the method refuses,
    then fail in a second with one message instead of once per worker.
    """
    if spec.model == _PEOPLE_MODEL and spec.width is None:
        from tfx_explain.people import load_params

        load_params(spec.params, n_features=len(spec.features))
    try:
        fn = load_model(spec.params, model=spec.model, factory=spec.factory)
    except (ValueError, TypeError, FileNotFoundError):
        raise
    except Exception as error:  # noqa: BLE001 - a factory may raise anything
        raise ValueError(
            f"cannot load a model from params {spec.params} ({type(error).__name__}: {error})"
        ) from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "insufficient elements for head"
        head = frame.head(16, npartitions=1)
    values, reasons = feature_matrix(head, spec)
    valid = [i for i, r in enumerate(reasons) if r is None]
    if not valid:
        return  # nothing to try: the rows' own errors are reported by the workers
    x = torch.from_numpy(values[valid[:1]]).to(getattr(torch, spec.dtype))
    options = dict(spec.options)
    if spec.target is not None:
        options["target"] = spec.target
    if spec.seed is not None:
        options["generator"] = torch.Generator().manual_seed(spec.seed)
    try:
        resolve(spec.method)(fn, x, **options)
    except Exception as error:  # noqa: BLE001 - any failure here would fail every row
        row_id = head[spec.id_column].iloc[valid[0]]
        raise ValueError(
            f"the job fails on its first valid row (id {_plain(row_id)!r}), so no cluster "
            f"was started: {type(error).__name__}: {error}"
        ) from error


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _open(data: Any) -> tuple[dd.DataFrame, Path | None]:
    if isinstance(data, dd.DataFrame):
        return data, None
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a parquet path or a dask DataFrame, got {data!r}")
    path = Path(data).resolve()
    if not path.exists():
        raise FileNotFoundError(f"data {path} not found")
    return dd.read_parquet(str(path)), path


def _check_name(name: Any, what: str, columns: Sequence[str]) -> str:
    if not isinstance(name, str) or name not in columns:
        raise ValueError(f"{what} must name a column of data {list(columns)}, got {name!r}")
    return name


def _check_features(features, width, id_column, columns) -> tuple[list[str], int | None]:
    if isinstance(features, str):
        _check_name(features, "features", columns)
        if width is None:
            raise ValueError(f"width is required when features is one list column {features!r}")
        return [features], check_positive_int(width, "width")
    if width is not None:
        raise ValueError(f"width is only for a list column features, got width={width!r}")
    if features is None:
        features = [c for c in columns if c != id_column]
    features = list(features)
    if not features:
        raise ValueError(f"features must name at least one column, got {features!r}")
    for name in features:
        _check_name(name, "features", columns)
    if id_column in features or len(set(features)) != len(features):
        raise ValueError(f"features must be distinct columns other than the id, got {features}")
    if id_column == "prediction" or id_column.startswith(_RESERVED[1:]):
        raise ValueError(f"id_column {id_column!r} clashes with the output column names")
    return features, None


def _check_options(options, method: Callable, target, seed) -> dict:
    options = {} if options is None else options
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise TypeError(f"options must be a mapping of keyword options, got {options!r}")
    options = dict(options)
    for key, instead in (("target", "target="), ("generator", "seed=")):
        if key in options:
            raise ValueError(f"options must not hold {key!r}; pass {instead} instead")
    parameters = inspect.signature(method).parameters
    if seed is not None and "generator" not in parameters:
        raise ValueError(f"seed is for methods with a generator; {method.__name__} has none")
    trial = dict(options)
    if target is not None:
        trial["target"] = target
    if seed is not None:
        trial["generator"] = None
    try:
        inspect.signature(method).bind(None, None, **trial)
    except TypeError as error:
        raise TypeError(f"options {sorted(options)} do not fit the method: {error}") from None
    if "chunk_size" in parameters and "chunk_size" not in options:
        # about DEFAULT_CHUNK_SIZE x 512 rows of fn at once, however many steps or samples
        per_sample = max(
            (v for k, v in options.items() if k in _ROWS_PER_SAMPLE and isinstance(v, int)),
            default=1,
        )
        options["chunk_size"] = max(1, min(DEFAULT_CHUNK_SIZE, _ROWS_PER_CHUNK // per_sample))
    return options


def _check_groups(groups, names: list[str]) -> tuple | None:
    if groups is None:
        return None
    if not isinstance(groups, Mapping):
        raise TypeError(f"groups must be a mapping of name -> features, got {groups!r}")
    by_name = {name: i for i, name in enumerate(names)}
    indexed = {}
    for group, members in groups.items():
        if isinstance(members, Sequence) and not isinstance(members, str):
            members = [by_name.get(m, m) if isinstance(m, str) else m for m in members]
        indexed[group] = members
    # the public group sums of the identity are the (D, G) membership matrix; they also
    # validate the groups (cover every feature once) with the core's own messages
    members = tx.group_attributions(torch.eye(len(names)), indexed)  # (D, G)
    return tuple(
        (name, tuple(column.nonzero().flatten().tolist()))
        for name, column in zip(indexed, members.T, strict=True)
    )


def _check_out(out: Any, source: Path | None, overwrite: bool) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a directory path, got {out!r}")
    out = Path(out).resolve()
    if source is not None and (out == source or source in out.parents or out in source.parents):
        raise ValueError(f"out {out} must not be, contain or lie inside the input {source}")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"out {out} exists; pass overwrite=True to replace it")
        if not out.is_dir() or out.is_symlink():
            raise ValueError(f"out {out} is not a directory; refusing to replace it")
        if any(out.iterdir()) and not (out / SUMMARY_FILE).is_file():
            raise ValueError(
                f"out {out} has no {SUMMARY_FILE}, so it is not the output of a previous "
                "job; refusing to replace it (remove it yourself)"
            )
    return out


@contextlib.contextmanager
def _client(scheduler: Any, n_workers: int):
    if scheduler is None:
        with local_cluster(n_workers) as client:
            yield client
    elif isinstance(scheduler, Client):
        yield scheduler
    elif isinstance(scheduler, str):
        try:
            client = Client(scheduler, set_as_default=False, timeout=_CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            raise ValueError(
                f"scheduler {scheduler!r} cannot be reached within {_CONNECT_TIMEOUT} "
                f"({type(error).__name__}: {error})"
            ) from None
        with client:
            yield client
    else:
        raise TypeError(f"scheduler must be None, an address or a Client, got {scheduler!r}")


def _run(client: Client, frame: dd.DataFrame, spec: JobSpec, progress) -> list[dict]:
    parts = frame.to_delayed()
    task = dask.delayed(run_partition, pure=False)
    futures = client.compute([task(part, i, spec) for i, part in enumerate(parts)])
    summaries, rows, errors = [], 0, 0
    started = time.perf_counter()
    try:
        for future in as_completed(futures, loop=client.loop):
            summary = future.result()
            summaries.append(summary)
            rows, errors = rows + summary["rows"], errors + summary["errors"]
            if progress is not None:
                seconds = time.perf_counter() - started
                progress(JobProgress(len(summaries), len(parts), rows, errors, seconds))
    finally:
        client.cancel(futures)
    return summaries


def _commit(staging, out, overwrite, summaries, spec, names, seconds) -> JobResult:
    """Check that every partition is there once, merge the errors, rename into place."""
    n = len(summaries)
    if sorted(s["partition"] for s in summaries) != list(range(n)):
        raise RuntimeError(f"partitions missing or repeated: {[s['partition'] for s in summaries]}")
    lines = []
    for s in sorted(summaries, key=lambda s: s["partition"]):
        if s["rows"] + s["errors"] != s["input_rows"]:
            raise RuntimeError(f"partition {s['partition']} lost rows: {s}")
        if not (staging / f"{part_name(s['partition'])}.parquet").is_file():
            raise RuntimeError(f"partition {s['partition']} wrote no part file")
        errors = staging / "_errors" / f"{part_name(s['partition'])}.jsonl"
        found = errors.read_text().splitlines() if errors.is_file() else []
        if len(found) != s["errors"]:
            raise RuntimeError(f"partition {s['partition']} reported {s['errors']} errors")
        lines += found
    (staging / ERRORS_FILE).write_text("".join(line + "\n" for line in lines))
    shutil.rmtree(staging / "_errors")
    for stray in staging.glob(".*"):  # temporaries of attempts cut short by a dead worker
        stray.unlink()

    rows = sum(s["rows"] for s in summaries)
    importance = _normalized([s["abs_sum"] for s in summaries], rows, len(names))
    group_importance = None
    group_names = None if spec.groups is None else tuple(g for g, _ in spec.groups)
    if group_names is not None:
        group_importance = _normalized(
            [s["group_abs_sum"] for s in summaries], rows, len(group_names)
        )
    result = JobResult(
        out=out,
        rows=rows,
        errors=len(lines),
        partitions=n,
        seconds=seconds,
        cpu_seconds=sum(s["cpu_seconds"] for s in summaries),
        features=tuple(names),
        importance=importance,
        groups=group_names,
        group_importance=group_importance,
    )
    _write_summary(staging / SUMMARY_FILE, result, spec)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"out {out} appeared during the job; results left unwritten")
        trash = out.with_name(f".{out.name}.old-{uuid.uuid4().hex}")
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash)
    else:
        os.replace(staging, out)
    return result


def _normalized(sums: list, rows: int, size: int) -> torch.Tensor:
    total = torch.tensor(sums, dtype=torch.float64).reshape(-1, size).sum(0)  # (D,)
    mean = total / max(rows, 1)
    return mean / mean.sum() if mean.sum() > 0 else torch.zeros_like(mean)


def _write_summary(path: Path, result: JobResult, spec: JobSpec) -> None:
    options = spec.options  # tensors and other objects are written as their repr
    summary = {
        "rows": result.rows,
        "errors": result.errors,
        "partitions": result.partitions,
        "seconds": result.seconds,
        "rows_per_second": result.rows_per_second,
        "cpu_seconds": result.cpu_seconds,
        "method": spec.method,
        "options": options,
        "params": spec.params,
        "model": spec.model,
        "factory": spec.factory,
        "target": spec.target,
        "seed": spec.seed,
        "importance": dict(zip(result.features, result.importance.tolist(), strict=True)),
        "group_importance": None
        if result.groups is None
        else dict(zip(result.groups, result.group_importance.tolist(), strict=True)),
    }
    path.write_text(json.dumps(summary, indent=2, default=repr) + "\n")
