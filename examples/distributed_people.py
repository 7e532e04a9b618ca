"""Explain the people-income TransformerNet over many rows on a local Dask cluster.

The steps match the command line::

    tfx-explain people                                # train, save out/people_params.pt
    tfx-explain people-data --out out/people.parquet --rows 20000
    tfx-explain attribute --input out/people.parquet --method ig --groups people \\
        --out out/people-ig.parquet

Here: train the model on the shipped people data, write synthetic people rows as
parquet, run integrated gradients (50 steps) on two loopback workers with the fields
as groups, print the global importance per field, and check a few rows against a
plain single-process call. Age should come first by a wide margin (data/README.md).
Everything is written to a temporary folder that is removed at the end.

Run: ``python examples/distributed_people.py [--rows 20000] [--workers 2] [--epochs 100]``
(needs ``pip install 'tfx_explain[distributed]'``).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch

import tfx_explain as tx
from tfx_explain.distributed import (
    attribute_dataset,
    job_progress,
    local_cluster,
    write_people_parquet,
)
from tfx_explain.people import (
    PEOPLE_FEATURES,
    PEOPLE_FIELDS,
    save_params,
    train_people,
    transformer_net,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="distributed-people-"))
    try:
        _run(args, work)
    finally:
        shutil.rmtree(work)


def _run(args: argparse.Namespace, work: Path) -> None:
    run = train_people(epochs=args.epochs, seed=0)
    print(f"trained {args.epochs} epochs: test accuracy {run.test_accuracy:.2f} (within 10%)")
    save_params(run.result.params, work / "people.pt")
    data = write_people_parquet(work / "people.parquet", n_rows=args.rows, seed=1)

    with local_cluster(args.workers) as client:
        result = attribute_dataset(
            data,
            work / "people-ig.parquet",
            params=work / "people.pt",
            model="tfx_explain.people:transformer_net",
            method="ig",
            options={"steps": 50},
            groups=PEOPLE_FIELDS,
            scheduler=client,
            progress=job_progress(),
        )
    print(
        f"{result.rows:,} rows, {result.errors} errors in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s) -> {result.out}"
    )
    print("global importance (mean |IG| per field, sums to 1):")
    for name, value in sorted(
        zip(result.groups, result.group_importance.tolist(), strict=True), key=lambda t: -t[1]
    ):
        print(f"  {name:<9} {value:.3f}  {'#' * round(50 * value)}")

    # the first rows, attributed again in this process, agree with the workers' output
    out = pd.read_parquet(result.out).sort_values("row_id").head(100)
    rows = pd.read_parquet(data).sort_values("row_id").head(100)
    x = torch.tensor(rows[list(PEOPLE_FEATURES)].to_numpy())
    fn = functools.partial(transformer_net, run.result.params)
    local = tx.integrated_gradients(fn, x, steps=50)
    remote = torch.tensor(out[[f"attr_{n}" for n in PEOPLE_FEATURES]].to_numpy())
    print(f"max |distributed - single process| on 100 rows: {(remote - local).abs().max():.1e}")


if __name__ == "__main__":
    main()
