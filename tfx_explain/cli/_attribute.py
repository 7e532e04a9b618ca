"""``tfx-explain attribute`` and ``tfx-explain people-data``: scale-out attribution from a shell.

Dask is imported only when a command runs, so the rest of the command line works
without the ``distributed`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = [
    "add_attribute_parser",
    "run_attribute",
    "add_people_data_parser",
    "run_people_data",
]

_GROUPS = ("people",)
_EXTRA = "pip install -e '.[distributed]'"
_SHORT = "ig, gxi, grad, occlusion, ablation, shapley, eg, kernel_shap, lime"
# methods that take the groups as their players
_PLAYER_METHODS = ("shapley", "ablation", "kernel_shap", "lime")


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare word, e.g. rule=riemann_middle


def add_attribute_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``attribute`` to ``subparsers``; its handler is ``args.func = run_attribute``."""
    parser = subparsers.add_parser(
        "attribute",
        help="attribute a parquet dataset on a Dask cluster",
        description="Attribute every row of a parquet dataset on a local loopback Dask "
        "cluster (or an existing one) and write row id, prediction and one attribution "
        "column per feature (and per group) as parquet, with invalid rows in "
        "_errors.jsonl and the global importance in _summary.json.",
    )
    parser.add_argument("--input", required=True, help="parquet file or directory")
    parser.add_argument(
        "--params",
        default="out/people_params.pt",
        help="params file (default: out/people_params.pt, where `tfx-explain people` saves them)",
    )
    parser.add_argument("--out", required=True, help="output directory (must not exist)")
    parser.add_argument(
        "--method",
        default="ig",
        help=f"{_SHORT} (default ig), or module:function",
    )
    parser.add_argument(
        "--option",
        action="append",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="method option, value as JSON (repeatable): --option steps=50 --option window=2",
    )
    parser.add_argument(
        "--model",
        default="tfx_explain.people:transformer_net",
        help="model(params, x) as module:function (default: the functional TransformerNet)",
    )
    parser.add_argument("--factory", help="instead of --model: factory(params_path) -> fn")
    parser.add_argument("--features", help="comma-separated feature columns (default: all but id)")
    parser.add_argument("--id-column", default="row_id", help="row id column (default row_id)")
    parser.add_argument(
        "--groups",
        choices=_GROUPS,
        help="people: add per-field columns and importance (and use the fields as the "
        "players of shapley/ablation)",
    )
    parser.add_argument("--target", type=int, help="output index for multi-output models")
    parser.add_argument("--seed", type=int, help="seed for random methods (per partition)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (tqdm; plain lines when not a TTY)"
    )
    parser.set_defaults(func=run_attribute)
    return parser


def _distributed():
    try:
        import tfx_explain.distributed as distributed
    except ImportError as error:
        raise ImportError(f"{error}; from a checkout: {_EXTRA}") from None
    return distributed


def _error(command: str, error: BaseException) -> int:
    from tfx_explain.cli import flagged

    if isinstance(error, OSError) and not isinstance(error, FileExistsError) and error.filename:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error)
    print(f"tfx-explain {command}: error: {flagged(text)}", file=sys.stderr)
    return 2


def _check_flags(args: argparse.Namespace, methods) -> None:
    """The flags a job would fail on, checked in a moment and named by flag."""
    from pathlib import Path

    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.method not in methods and ":" not in args.method:
        raise ValueError(
            f"--method must be one of {_SHORT} or module:function, got {args.method!r}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file, not a directory")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out {out} exists; pass --overwrite to replace it")
    for flag, path in (("--input", args.input), ("--params", args.params)):
        if not Path(path).exists():
            raise ValueError(f"{flag} {path} not found")
    if Path(args.params).is_dir():
        raise ValueError(f"--params {args.params} is a directory, not a params file")


def run_attribute(args: argparse.Namespace) -> int:
    """Run ``tfx-explain attribute``; print the throughput and importance table."""
    import torch

    try:
        distributed = _distributed()
        _check_flags(args, distributed.METHODS)
    except (ImportError, ValueError) as error:
        return _error("attribute", error)
    ERRORS_FILE, attribute_dataset = distributed.ERRORS_FILE, distributed.attribute_dataset
    job_progress = distributed.job_progress
    from tfx_explain.people import PEOPLE_FIELDS

    options = dict(args.option)
    groups = {"people": PEOPLE_FIELDS}.get(args.groups)
    if groups is not None and args.method in _PLAYER_METHODS:
        options.setdefault("groups", groups)
    for key in ("baseline", "baselines"):
        if isinstance(options.get(key), list):
            options[key] = torch.tensor(options[key], dtype=getattr(torch, args.dtype))
    if isinstance(options.get("window"), list):
        options["window"] = tuple(options["window"])
    started = time.perf_counter()
    show = None if args.quiet else job_progress()
    try:
        result = attribute_dataset(
            args.input,
            args.out,
            params=args.params,
            model=None if args.factory else args.model,
            factory=args.factory,
            method=args.method,
            options=options,
            features=args.features.split(",") if args.features else None,
            id_column=args.id_column,
            groups=groups,
            target=args.target,
            dtype=getattr(torch, args.dtype),
            seed=args.seed,
            scheduler=args.scheduler,
            n_workers=args.workers,
            overwrite=args.overwrite,
            progress=show,
        )
    except (ValueError, TypeError, OSError, ImportError) as error:
        return _error("attribute", error)
    finally:
        if show is not None:
            show.close()
    if result.rows == 0 and result.errors:
        first = (result.out / ERRORS_FILE).read_text().splitlines()[0]
        reason = json.loads(first)["reason"]
        print(
            f"tfx-explain attribute: error: every one of the {result.errors:,} rows failed, "
            f"none was attributed (first reason: {reason}); all are listed in "
            f"{result.out / ERRORS_FILE}",
            file=sys.stderr,
        )
        return 2
    total = time.perf_counter() - started
    print(f"wrote {result.out}")
    print(
        f"{result.rows:,} rows attributed, {result.errors:,} errors, {result.partitions} "
        f"partitions: {result.rows_per_second:,.0f} rows/s ({result.seconds:.1f} s of work, "
        f"{total:.1f} s with cluster start)"
    )
    if result.errors:
        print(f"rows with errors are listed in {result.out / ERRORS_FILE}")
    tables = [("feature", result.features, result.importance)]
    if result.groups is not None:
        tables.insert(0, ("group", result.groups, result.group_importance))
    for title, names, values in tables:
        print(f"\nglobal importance by {title} (mean |attribution|, sums to 1)")
        width = max(len(n) for n in names)
        for name, value in sorted(zip(names, values.tolist(), strict=True), key=lambda t: -t[1]):
            print(f"  {name:<{width}}  {value:.4f}  {'#' * round(40 * value)}")
    return 0


def add_people_data_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``people-data`` to ``subparsers``; its handler is ``args.func = run_people_data``."""
    parser = subparsers.add_parser(
        "people-data",
        help="write people features as parquet for 'attribute'",
        description="Write the shipped people rows (or N synthetic rows drawn the same way) "
        "with a row_id column as a parquet directory.",
    )
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument(
        "--rows",
        type=int,
        help="synthetic rows, at most 100,000,000 (default: the 240 shipped rows)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic rows")
    parser.add_argument("--partitions", type=int, help="parquet files (default: 1 per 50k rows)")
    parser.set_defaults(func=run_people_data)
    return parser


def run_people_data(args: argparse.Namespace) -> int:
    """Run ``tfx-explain people-data``."""
    try:
        out = _distributed().write_people_parquet(
            args.out, n_rows=args.rows, seed=args.seed, partitions=args.partitions
        )
    except (ValueError, TypeError, OSError, ImportError) as error:
        return _error("people-data", error)
    files = sorted(out.glob("*.parquet"))
    print(f"wrote {len(files)} parquet files to {out}")
    return 0
