"""Tests for tfx_explain.distributed on a 2-worker loopback cluster shared by the module."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import re
import signal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import dask.dataframe as dd  # noqa: E402
import psutil  # noqa: E402

import tfx_explain as tx  # noqa: E402
from tfx_explain.cli._attribute import (  # noqa: E402
    add_attribute_parser,
    add_people_data_parser,
)
from tfx_explain.distributed import (  # noqa: E402
    ERRORS_FILE,
    SUMMARY_FILE,
    WORKER_PRELOAD,
    attribute_dataset,
    load_model,
    local_cluster,
    write_people_parquet,
)
from tfx_explain.people import (  # noqa: E402  # noqa: E402  # noqa: E402
    PEOPLE_FEATURES,
    PEOPLE_FIELDS,
    default_people_paths,
    init_transformer_net,
    load_params,
    load_people,
    save_params,
    transformer_net,
)

MODEL = "tfx_explain.people:transformer_net"
STEPS = 16


# ---- worker-side helpers: importable as test_distributed:<name> by the workers ----------

_FACTORY_CALLS = [0]


def counting_factory(path):
    """``factory(path) -> fn`` that counts how often this process built a model."""
    _FACTORY_CALLS[0] += 1
    return functools.partial(transformer_net, load_params(path))


def factory_calls():
    return _FACTORY_CALLS[0]


def nan_above_65_factory(path):
    """The TransformerNet, but NaN wherever age/100 exceeds 0.65 (IG paths reach it)."""
    params = load_params(path)

    def fn(x):
        return torch.where(x[:, 1] > 0.65, torch.nan, transformer_net(params, x))

    return fn


def broken_factory(path):
    raise RuntimeError(f"cannot build a model from {path}")


def executing_partitions(dask_worker):
    """Keys of the partition tasks this worker is running right now."""
    return [str(ts.key) for ts in dask_worker.state.executing if "run_partition" in str(ts.key)]


def worker_state():
    return {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "MALLOC_TRIM_THRESHOLD_": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


# ---- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    with local_cluster(2) as client:
        yield client


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    values = init_transformer_net(generator=torch.Generator().manual_seed(3))
    path = tmp_path_factory.mktemp("params") / "net.pt"
    save_params(values, path)
    return values, path


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """400 synthetic people rows in 4 parquet files, and the same rows as a tensor."""
    path = write_people_parquet(tmp_path_factory.mktemp("data") / "people", n_rows=400, seed=1)
    frame = pd.read_parquet(path).sort_values("row_id")
    return path, torch.tensor(frame[list(PEOPLE_FEATURES)].to_numpy())


def _read(out):
    return pd.read_parquet(out).sort_values("row_id").reset_index(drop=True)


def _errors(out):
    return [json.loads(line) for line in (out / ERRORS_FILE).read_text().splitlines()]


def _attr(frame, names=PEOPLE_FEATURES):
    return torch.tensor(frame[[f"attr_{n}" for n in names]].to_numpy())


# ---- results equal a single-process run -----------------------------------------------


def test_ig_equals_single_process_and_streams_global_importance(client, params, people, tmp_path):
    values, params_path = params
    data, x = people
    result = attribute_dataset(
        data,
        tmp_path / "out",
        params=params_path,
        model=MODEL,
        method="ig",
        options={"steps": STEPS},
        groups=PEOPLE_FIELDS,
        scheduler=client,
    )
    fn = functools.partial(transformer_net, values)
    expected = tx.integrated_gradients(fn, x, steps=STEPS)
    out = _read(tmp_path / "out")
    assert out["row_id"].tolist() == list(range(400))  # each id once, none lost
    assert (result.rows, result.errors, result.partitions) == (400, 0, 4)
    torch.testing.assert_close(_attr(out), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(out["prediction"].to_numpy()), fn(x))
    grouped = torch.tensor(out[[f"group_{g}" for g in PEOPLE_FIELDS]].to_numpy())
    torch.testing.assert_close(
        grouped, tx.group_attributions(expected, PEOPLE_FIELDS), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        result.importance, tx.global_importance(expected).double(), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        result.group_importance,
        tx.global_importance(expected, groups=PEOPLE_FIELDS).double(),
        atol=1e-6,
        rtol=0,
    )
    assert result.groups == tuple(PEOPLE_FIELDS)
    assert _errors(tmp_path / "out") == []
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["rows"] == 400 and summary["options"] == {"steps": STEPS, "chunk_size": 256}
    assert sorted(summary["group_importance"]) == sorted(PEOPLE_FIELDS)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind


@pytest.mark.parametrize(
    ("method", "options", "reference"),
    [
        ("gxi", {}, lambda fn, x: tx.gradient_x_input(fn, x)),
        (
            "shapley",
            {"groups": PEOPLE_FIELDS},
            lambda fn, x: tx.shapley_values(fn, x, groups=PEOPLE_FIELDS),
        ),
        (
            tx.occlusion,
            {"window": 2, "stride": 2},
            lambda fn, x: tx.occlusion(fn, x, window=2, stride=2),
        ),
        (
            "kernel_shap",  # all 2^4 - 2 coalitions: exact, no draws
            {"groups": PEOPLE_FIELDS},
            lambda fn, x: tx.kernel_shap(fn, x, groups=PEOPLE_FIELDS),
        ),
    ],
    ids=["gxi", "group-shapley", "occlusion-as-function", "exact-kernel-shap"],
)
def test_other_methods_equal_single_process(
    client, params, people, tmp_path, method, options, reference
):
    values, params_path = params
    data, x = people
    dataset = dd.read_parquet(data)  # a dask DataFrame input this time
    attribute_dataset(
        dataset,
        tmp_path / "out",
        params=params_path,
        model=MODEL,
        method=method,
        options=options,
        scheduler=client,
    )
    expected = reference(functools.partial(transformer_net, values), x)
    torch.testing.assert_close(_attr(_read(tmp_path / "out")), expected, atol=1e-6, rtol=0)


def test_lime_by_its_short_name_is_seeded_per_partition(client, params, people, tmp_path):
    _, params_path = params
    data, x = people
    run = functools.partial(
        attribute_dataset,
        data,
        params=params_path,
        model=MODEL,
        method="lime",
        options={"groups": PEOPLE_FIELDS, "n_samples": 64},
        seed=3,
        scheduler=client,
    )
    first, again = run(tmp_path / "a"), run(tmp_path / "b")
    a, b = _attr(_read(tmp_path / "a")), _attr(_read(tmp_path / "b"))
    assert first.rows == again.rows == x.shape[0] and torch.equal(a, b)  # reruns draw the same
    assert torch.isfinite(a).all() and a.abs().sum() > 0


def test_float64_people_rows_match_exactly(client, params, tmp_path):
    params64 = {k: v.double() for k, v in params[0].items()}
    save_params(params64, tmp_path / "net64.pt")
    data = write_people_parquet(tmp_path / "people")  # the 240 shipped rows
    result = attribute_dataset(
        data,
        tmp_path / "out",
        params=tmp_path / "net64.pt",
        model=MODEL,
        method="gxi",
        dtype=torch.float64,
        scheduler=client,
    )
    x = torch.cat([load_people(p)[0] for p in default_people_paths()]).double()
    expected = tx.gradient_x_input(functools.partial(transformer_net, params64), x)
    out = _read(tmp_path / "out")
    assert out["attr_age"].dtype == np.float64 and result.rows == 240
    torch.testing.assert_close(_attr(out), expected, atol=1e-12, rtol=0)


# ---- invalid rows ---------------------------------------------------------------------


def test_invalid_scalar_rows_are_reported_not_dropped(client, params, people, tmp_path):
    values, params_path = params
    _, x = people
    rows = x[:40].numpy().astype(np.float32)
    columns = {"row_id": pa.array(np.arange(100, 140))}
    broken = {3: ("age", float("nan")), 7: ("sex", None), 11: ("state_oklahoma", float("inf"))}
    for j, name in enumerate(PEOPLE_FEATURES):
        column = rows[:, j].tolist()
        for i, (field, value) in broken.items():
            if field == name:
                column[i] = value
        columns[name] = pa.array(column, type=pa.float32())
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table(columns), tmp_path / "data" / "part-0.parquet")
    # a second partition in which no row is valid
    hopeless = {name: pa.array([float("nan")] * 2, pa.float32()) for name in PEOPLE_FEATURES}
    hopeless = pa.table({"row_id": pa.array([500, 501]), **hopeless})
    pq.write_table(hopeless, tmp_path / "data" / "part-1.parquet")
    result = attribute_dataset(
        tmp_path / "data",
        tmp_path / "out",
        params=params_path,
        model=MODEL,
        method="gxi",
        groups=PEOPLE_FIELDS,
        scheduler=client,
    )
    errors = {e["row_id"]: e["reason"] for e in _errors(tmp_path / "out")}
    assert errors == {
        103: "feature 'age' is missing (null or NaN)",
        107: "feature 'sex' is missing (null or NaN)",
        111: "feature 'state_oklahoma' is not finite: inf",
        500: "feature 'sex' is missing (null or NaN)",
        501: "feature 'sex' is missing (null or NaN)",
    }
    out = _read(tmp_path / "out")
    good = [i for i in range(40) if i not in broken]
    assert out["row_id"].tolist() == [100 + i for i in good] and result.errors == 5
    fn = functools.partial(transformer_net, values)
    expected = tx.gradient_x_input(fn, x[good].float())
    torch.testing.assert_close(_attr(out), expected, atol=1e-6, rtol=0)


def test_list_column_wrong_width_and_nulls_are_reported(client, params, people, tmp_path):
    values, params_path = params
    _, x = people
    vectors = [row.tolist() for row in x[:12].float()]
    vectors[2] = vectors[2][:7]  # too short
    vectors[5] = vectors[5] + [0.0]  # too long
    vectors[8] = None
    vectors[9][4] = float("nan")
    table = pa.table(
        {
            "key": pa.array([f"r{i}" for i in range(12)]),
            "x": pa.array(vectors, pa.list_(pa.float32())),
        }
    )
    pq.write_table(table, tmp_path / "vectors.parquet")
    attribute_dataset(
        tmp_path / "vectors.parquet",
        tmp_path / "out",
        params=params_path,
        model=MODEL,
        method="gxi",
        features="x",
        width=8,
        id_column="key",
        scheduler=client,
    )
    errors = {e["row_id"]: e["reason"] for e in _errors(tmp_path / "out")}
    assert errors == {
        "r2": "feature column 'x' has 7 values, expected 8",
        "r5": "feature column 'x' has 9 values, expected 8",
        "r8": "feature column 'x' is missing (null)",
        "r9": "feature x[4] is not finite (null, NaN or inf): nan",
    }
    out = pd.read_parquet(tmp_path / "out")
    good = [0, 1, 3, 4, 6, 7, 10, 11]
    assert sorted(out["key"]) == sorted(f"r{i}" for i in good)
    out = out.set_index("key").loc[[f"r{i}" for i in good]]
    expected = tx.gradient_x_input(functools.partial(transformer_net, values), x[good].float())
    got = torch.tensor(out[[f"attr_x_{k}" for k in range(8)]].to_numpy())
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_rows_the_model_fails_on_are_isolated(client, params, people, tmp_path):
    values, params_path = params
    data, x = people
    result = attribute_dataset(
        data,
        tmp_path / "out",
        params=params_path,
        factory=nan_above_65_factory,
        method="ig",
        options={"steps": STEPS},
        scheduler=client,
    )
    old = (x[:, 1] > 0.65).nonzero().flatten().tolist()
    assert 0 < len(old) < 400
    errors = _errors(tmp_path / "out")
    assert sorted(e["row_id"] for e in errors) == old
    assert all("non-finite" in e["reason"] for e in errors)
    out = _read(tmp_path / "out")
    young = [i for i in range(400) if i not in old]
    assert out["row_id"].tolist() == young and result.rows + result.errors == 400
    expected = tx.integrated_gradients(
        functools.partial(transformer_net, values), x[young].float(), steps=STEPS
    )
    torch.testing.assert_close(_attr(out), expected, atol=1e-6, rtol=0)


# ---- output directory -----------------------------------------------------------------


def test_existing_output_is_refused_then_replaced_on_request(client, params, people, tmp_path):
    _, params_path = params
    data, _ = people
    run = functools.partial(
        attribute_dataset,
        data,
        tmp_path / "out",
        params=params_path,
        model=MODEL,
        method="gxi",
        scheduler=client,
    )
    run()
    (tmp_path / "out" / "stale.txt").write_text("from an older job")
    with pytest.raises(FileExistsError, match="overwrite"):
        run()
    assert (tmp_path / "out" / "stale.txt").exists()
    run(overwrite=True)
    assert not (tmp_path / "out" / "stale.txt").exists()  # replaced, never appended to
    assert len(_read(tmp_path / "out")) == 400
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("not an output")
    with pytest.raises(ValueError, match="not the output of a previous job"):
        attribute_dataset(
            data,
            tmp_path / "mine",
            params=params_path,
            model=MODEL,
            scheduler=client,
            overwrite=True,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"]


def test_a_failed_job_leaves_no_output(client, params, people, tmp_path):
    _, params_path = params
    data, _ = people
    # checked on the driver before any worker runs: one ValueError, no cluster traceback
    with pytest.raises(ValueError, match="cannot load a model.*cannot build a model"):
        attribute_dataset(
            data, tmp_path / "out", params=params_path, factory=broken_factory, scheduler=client
        )
    assert list(tmp_path.iterdir()) == []
    # an option every row fails on is the job's error, not 400 row errors
    with pytest.raises(ValueError, match="fails on its first valid row.*simpson"):
        attribute_dataset(
            data,
            tmp_path / "out",
            params=params_path,
            model=MODEL,
            options={"rule": "simpson"},
            scheduler=client,
        )
    assert list(tmp_path.iterdir()) == []


def test_argument_errors_name_the_argument(client, params, people, tmp_path):
    _, params_path = params
    data, _ = people
    run = functools.partial(attribute_dataset, data, tmp_path / "out", params=params_path)
    with pytest.raises(ValueError, match="exactly one of model and factory"):
        run()
    with pytest.raises(TypeError, match="options"):
        run(model=MODEL, method="ig", options={"stepz": 3})
    with pytest.raises(ValueError, match="seed="):
        run(model=MODEL, method="ig", options={"generator": torch.Generator()})
    with pytest.raises(ValueError, match="seed is for methods with a generator"):
        run(model=MODEL, method="gxi", seed=1)
    with pytest.raises(TypeError, match="lambdas"):
        run(model=lambda params, x: x.sum(-1))
    with pytest.raises(ValueError, match="features must name a column"):
        run(model=MODEL, features=["age", "height"])
    with pytest.raises(ValueError, match="width"):
        run(model=MODEL, width=8)
    with pytest.raises(ValueError, match="no group"):
        run(model=MODEL, groups={"sex": [0], "age": ["age"]})
    with pytest.raises(ValueError, match="must not be, contain or lie inside"):
        attribute_dataset(data, data / "out", params=params_path, model=MODEL)
    with pytest.raises(FileNotFoundError, match="params"):
        attribute_dataset(data, tmp_path / "out", params=tmp_path / "none.pt", model=MODEL)
    assert list(tmp_path.iterdir()) == []


# ---- workers: one load per process, fault tolerance, loopback, environment -----------


def test_model_is_loaded_once_per_worker_and_reloaded_when_rewritten(client, people, tmp_path):
    data, x = people
    path = tmp_path / "params.pt"
    save_params(init_transformer_net(generator=torch.Generator().manual_seed(5)), path)
    run = functools.partial(
        attribute_dataset,
        data,
        params=path,
        factory=counting_factory,
        method="gxi",
        scheduler=client,
    )
    before = client.run(factory_calls)
    run(tmp_path / "a")
    run(tmp_path / "b")
    loads = {w: client.run(factory_calls)[w] - before[w] for w in before}
    assert all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1  # 8 partitions ran

    new = init_transformer_net(generator=torch.Generator().manual_seed(6))
    save_params(new, path)
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse-clock filesystem
    run(tmp_path / "c")
    expected = tx.gradient_x_input(functools.partial(transformer_net, new), x.float())
    torch.testing.assert_close(_attr(_read(tmp_path / "c")), expected, atol=1e-6, rtol=0)
    fn = load_model(str(path), factory="test_distributed:counting_factory")
    assert load_model(str(path), factory="test_distributed:counting_factory") is fn
    with pytest.raises(RuntimeError, match="changed during the job"):
        load_model(str(path), factory="test_distributed:counting_factory", stamp=(2, 2))


def test_killed_worker_job_completes_with_every_row_once(client, params, tmp_path):
    values, params_path = params
    data = write_people_parquet(tmp_path / "data", n_rows=1200, partitions=12, seed=7)
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker(progress):
        if killed:
            return
        busy = [w for w, keys in client.run(executing_partitions).items() if keys]
        killed.append((pids[busy[0]], progress.partitions_done))
        os.kill(pids[busy[0]], signal.SIGKILL)  # mid-partition: its task must be rerun

    result = attribute_dataset(
        data,
        tmp_path / "out",
        params=params_path,
        model=MODEL,
        method="ig",
        options={"steps": STEPS},
        scheduler=client,
        progress=kill_a_busy_worker,
    )
    pid, done = killed[0]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert done < 12  # the kill happened with partitions still to run
    out = _read(tmp_path / "out")
    assert out["row_id"].tolist() == list(range(1200))
    assert (result.rows, result.errors) == (1200, 0)
    x = torch.tensor(pd.read_parquet(data).sort_values("row_id")[list(PEOPLE_FEATURES)].to_numpy())
    expected = tx.integrated_gradients(functools.partial(transformer_net, values), x, steps=STEPS)
    torch.testing.assert_close(_attr(out), expected, atol=1e-6, rtol=0)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it for the next tests


def test_cluster_stays_on_loopback_with_tuned_workers(client):
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    states = client.run(worker_state)
    assert all(w.startswith("tcp://127.0.0.1:") for w in states)
    for state in states.values():
        assert state["MALLOC_TRIM_THRESHOLD_"] is None and state["OMP_NUM_THREADS"] == "1"
    processes = [psutil.Process()] + [psutil.Process(s["pid"]) for s in states.values()]
    for process in processes:
        for connection in process.net_connections(kind="inet"):
            assert connection.laddr.ip == "127.0.0.1", connection
            assert not connection.raddr or connection.raddr.ip == "127.0.0.1", connection


def test_default_local_cluster_restores_the_driver_environment(params, people, tmp_path):
    _, params_path = params
    data, _ = people
    environ, threads = dict(os.environ), torch.get_num_threads()
    result = attribute_dataset(
        data, tmp_path / "out", params=params_path, model=MODEL, method="gxi", n_workers=1
    )
    assert result.rows == 400
    assert dict(os.environ) == environ and torch.get_num_threads() == threads


# ---- people parquet and the command line ----------------------------------------------


def test_write_people_parquet(tmp_path):
    shipped = pd.read_parquet(write_people_parquet(tmp_path / "shipped")).sort_values("row_id")
    x = torch.cat([load_people(p)[0] for p in default_people_paths()])
    assert shipped["row_id"].tolist() == list(range(240))
    assert torch.equal(torch.tensor(shipped[list(PEOPLE_FEATURES)].to_numpy()), x)

    path = write_people_parquet(tmp_path / "big", n_rows=5000, seed=2, partitions=3)
    assert len(list(path.glob("*.parquet"))) == 3
    big = pd.read_parquet(path).sort_values("row_id")
    again = pd.read_parquet(
        write_people_parquet(tmp_path / "again", n_rows=5000, seed=2, partitions=3)
    )
    pd.testing.assert_frame_equal(big, again.sort_values("row_id"))
    assert big["row_id"].tolist() == list(range(5000))
    features = big[list(PEOPLE_FEATURES)].to_numpy()
    assert set(np.unique(features[:, 0])) == {-1.0, 1.0}
    ages = np.round(features[:, 1] * 100)
    assert ages.min() == 18 and ages.max() == 70
    assert (features[:, 2:5].sum(1) == 1).all() and (features[:, 5:8].sum(1) == 1).all()
    assert abs(features[:, 2].mean() - 1 / 3) < 0.03  # uniform states, like the shipped data
    with pytest.raises(FileExistsError):
        write_people_parquet(path, n_rows=10)
    with pytest.raises(ValueError, match="partitions"):
        write_people_parquet(tmp_path / "bad", n_rows=2, partitions=3)


def test_command_line_people_data_then_attribute(client, params, tmp_path, capsys):
    _, params_path = params
    parser = argparse.ArgumentParser(prog="tfx-explain")
    commands = parser.add_subparsers(required=True)
    add_attribute_parser(commands)
    add_people_data_parser(commands)

    args = parser.parse_args(["people-data", "--out", str(tmp_path / "data"), "--rows", "300"])
    assert args.func(args) == 0
    argv = [
        "attribute",
        "--input",
        str(tmp_path / "data"),
        "--params",
        str(params_path),
        "--method",
        "shapley",
        "--groups",
        "people",
        "--out",
        str(tmp_path / "out"),
        "--scheduler",
        client.scheduler.address,
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    shown = capsys.readouterr()
    assert "300 rows attributed, 0 errors" in shown.out and "rows/s" in shown.out
    assert "global importance by group" in shown.out and "4/4 partitions" in shown.err
    # tqdm's plain lines (stderr is not a terminal): partitions, ETA, rows and rows/s
    assert re.search(r"attribute: 4/4 partitions \(100%\) \[\d\d:\d\d<00:00, ", shown.err)
    assert "300 rows, " in shown.err and " rows/s, 0 errors]" in shown.err
    assert "\r" not in shown.err
    out = pd.read_parquet(tmp_path / "out")
    assert {f"group_{g}" for g in PEOPLE_FIELDS} <= set(out.columns) and len(out) == 300
    # exact group Shapley with the people fields as players: one value per field, shared evenly
    torch.testing.assert_close(
        torch.tensor(out["group_state"].to_numpy()) / 3,
        torch.tensor(out["attr_state_michigan"].to_numpy()),
    )
    args = parser.parse_args(argv)
    assert args.func(args) == 2  # the output exists now
    assert "overwrite" in capsys.readouterr().err


def test_a_local_cluster_stops_its_workers_without_the_kill_warning():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    nanny = logging.getLogger("distributed.nanny")
    nanny.addHandler(handler)
    try:
        with local_cluster(1) as client:
            # the worker imported torch and the partition code as it started, not in a job;
            # asked by a builtin, since unpickling a function of this module imports torch
            names = ["torch", *WORKER_PRELOAD]
            asked = f"all(m in __import__('sys').modules for m in {names!r})"
            assert list(client.run(eval, asked).values()) == [True]
            assert client.submit(_torch_sum).result() == 3.0
    finally:
        nanny.removeHandler(handler)
    assert not [r for r in records if "still alive" in r.getMessage()]


def _torch_sum():
    import torch

    return float(torch.ones(3).sum())


# ---- issue 13: the job is checked on the driver before any cluster starts -------------

UNREACHABLE = "tcp://127.0.0.1:9"  # a job that got as far as connecting would fail on this


def _people_table(tmp_path, ids, name="ids"):
    x = load_people(default_people_paths()[0])[0][: len(ids)].numpy()
    columns = {"row_id": pa.array(ids, type=pa.int64())}
    columns.update({f: x[:, j] for j, f in enumerate(PEOPLE_FEATURES)})
    path = tmp_path / name
    path.mkdir()
    pq.write_table(pa.table(columns), path / "part-0.parquet")
    return path


def test_duplicate_and_null_row_ids_are_refused_before_any_cluster(params, tmp_path):
    _, params_path = params
    run = functools.partial(
        attribute_dataset, params=params_path, model=MODEL, scheduler=UNREACHABLE
    )
    twice = _people_table(tmp_path, [0, 1, 2, 1, 4, 4, 4], "twice")
    with pytest.raises(ValueError, match=r"unique ids, but 2 ids repeat \(e\.g\. 1, 2 times\)"):
        run(twice, tmp_path / "out")
    null = _people_table(tmp_path, [0, None, 2, None], "null")
    with pytest.raises(ValueError, match="must not be null, but 2 rows .* row 1 of the data"):
        run(null, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_dask_frame_with_repeated_ids_is_refused_before_any_partition(client, params, tmp_path):
    _, params_path = params
    frame = dd.from_pandas(pd.read_parquet(_people_table(tmp_path, [5, 6, 5])), npartitions=2)
    with pytest.raises(ValueError, match="unique ids"):
        attribute_dataset(
            frame, tmp_path / "out", params=params_path, model=MODEL, scheduler=client
        )
    assert not (tmp_path / "out").exists()


def test_bad_params_and_options_fail_on_the_driver_in_one_line(params, people, tmp_path):
    _, params_path = params
    data, _ = people
    run = functools.partial(attribute_dataset, data, tmp_path / "out", scheduler=UNREACHABLE)
    text = tmp_path / "notes.txt"
    text.write_text("a text file\n")
    with pytest.raises(ValueError, match="notes.txt: cannot be read as a params file"):
        run(params=text, model=MODEL)
    five = tmp_path / "five.pt"
    save_params(init_transformer_net(n_features=5), five)
    with pytest.raises(ValueError, match="expected 8 features, the file has 5"):
        run(params=five, model=MODEL)
    with pytest.raises(ValueError, match="first valid row.*steps must be an int, got str"):
        run(params=params_path, model=MODEL, options={"steps": "abc"})
    with pytest.raises(ValueError, match="first valid row.*steps must be <= 16384"):
        run(params=params_path, model=MODEL, options={"steps": 10**9})
    with pytest.raises(ValueError, match="method 'no_such_mod:fn' cannot be imported"):
        run(params=params_path, model=MODEL, method="no_such_mod:fn")
    with pytest.raises(ValueError, match="method must be one of ig, gxi, grad"):
        run(params=params_path, model=MODEL, method="integrated")
    assert not (tmp_path / "out").exists()  # none got as far as the (unreachable) scheduler


def test_an_unreachable_scheduler_is_one_clear_error(params, people, tmp_path, monkeypatch):
    import tfx_explain.distributed._job as job

    _, params_path = params
    data, _ = people
    monkeypatch.setattr(job, "_CONNECT_TIMEOUT", "1s")
    with pytest.raises(ValueError, match=f"scheduler '{UNREACHABLE}' cannot be reached"):
        attribute_dataset(
            data, tmp_path / "out", params=params_path, model=MODEL, scheduler=UNREACHABLE
        )
    assert list(tmp_path.iterdir()) == []


def test_a_job_where_every_row_fails_says_so(client, params, tmp_path, capsys):
    _, params_path = params
    x = load_people(default_people_paths()[0])[0][:6].numpy()
    columns = {"row_id": np.arange(6), **{f: x[:, j] for j, f in enumerate(PEOPLE_FEATURES)}}
    columns["age"] = pa.array([None] * 6, type=pa.float32())
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(pa.table(columns), data / "part-0.parquet")
    parser = argparse.ArgumentParser(prog="tfx-explain")
    add_attribute_parser(parser.add_subparsers(required=True))
    argv = ["attribute", "--input", str(data), "--params", str(params_path), "--quiet"]
    args = parser.parse_args(argv + ["--out", str(tmp_path / "out")])
    args.scheduler = client.scheduler.address
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "error: every one of the 6 rows failed, none was attributed" in err
    assert "feature 'age' is missing" in err and "Traceback" not in err


def test_the_default_chunk_shrinks_with_the_steps_per_row():
    from tfx_explain.distributed._job import _check_options

    def chunk(**options):
        return _check_options(options, tx.integrated_gradients, None, None)["chunk_size"]

    assert chunk() == chunk(steps=50) == 256
    assert chunk(steps=16384) == 8  # 8 x 16384 path points, not 256 x 16384
    assert chunk(steps=16384, chunk_size=64) == 64  # the caller's choice is kept
