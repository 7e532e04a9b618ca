"""A loopback-only local Dask cluster that leaves the driver's environment as it found it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import dask
import torch
from distributed import Client, LocalCluster

from ._checks import check_positive_int

__all__ = ["local_cluster", "WORKER_ENVIRON", "WORKER_PRELOAD"]

WORKER_PRELOAD = ("tfx_explain.distributed._partition",)
"""Modules every worker imports as it starts (torch, pandas, pyarrow and the partition
code: about 3 s a process here), so that a job's first partitions do not wait for them."""

WORKER_ENVIRON = {
    # glibc's default trim threshold; Dask's 65536 halved integrated-gradients throughput
    # here (every step's temporaries went back to the OS). Memory is trimmed per
    # partition instead.
    "MALLOC_TRIM_THRESHOLD_": None,
    "OMP_NUM_THREADS": 1,
    "MKL_NUM_THREADS": 1,
    "OPENBLAS_NUM_THREADS": 1,
}
"""``distributed.nanny.pre-spawn-environ`` for the workers (``None`` removes a variable)."""


@contextlib.contextmanager
def local_cluster(n_workers: int = 2, *, memory_limit: str | int = "auto") -> Iterator[Client]:
    """Start ``n_workers`` single-threaded worker processes on 127.0.0.1 and yield a client.

    Every listening socket (scheduler and its HTTP endpoint, nannies, workers) binds the
    loopback interface on a free port. Each worker runs one task at a time with one torch
    thread, and imports :data:`WORKER_PRELOAD` before it joins (the cluster's start, not
    the first job, pays for the imports).
    Starting nannies changes the driver's own environment (thread variables,
    ``MALLOC_TRIM_THRESHOLD_``, ``PYTHONHASHSEED``); it is restored, with the driver's
    torch thread count, when the block exits.

    Args:
      n_workers: worker processes (``>= 1``); one per core is the usual choice.
      memory_limit: per-worker memory limit passed to ``LocalCluster``.

    Yields:
      A ``distributed.Client`` connected to the cluster.

    Example:
      >>> with local_cluster(1) as client:  # doctest: +SKIP
      ...     client.submit(sum, [1, 2]).result()
      3
    """
    n_workers = check_positive_int(n_workers, "n_workers")
    environ, threads = dict(os.environ), torch.get_num_threads()
    with contextlib.ExitStack() as stack:
        stack.callback(_restore, environ, threads)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}):
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    # the scheduler's HTTP server (health, metrics) always starts; None
                    # would put it on port 8787, taken by any other cluster on the machine
                    dashboard_address="127.0.0.1:0",
                    memory_limit=memory_limit,
                    preload=list(WORKER_PRELOAD),
                )
            )
            stack.callback(_stop_workers, cluster)  # before the cluster's own close
        yield stack.enter_context(Client(cluster, set_as_default=False))


def _stop_workers(cluster: LocalCluster, timeout: float = 60.0) -> None:
    """Ask every nanny to stop its worker and wait up to ``timeout`` s for it to exit.

    ``LocalCluster.close`` gives a worker 4 s and then kills it with a "Worker process
    still alive after 4.0 seconds, killing" warning; a worker that has imported torch
    often needs longer to exit on a loaded machine, and a clean exit needs no warning.
    """

    async def stop() -> None:
        await asyncio.gather(
            *(nanny.close(timeout=timeout) for nanny in list(cluster.workers.values())),
            return_exceptions=True,
        )

    with contextlib.suppress(Exception):  # the cluster's close still cleans up after us
        cluster.sync(stop)


def _restore(environ: dict[str, str], threads: int) -> None:
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    os.environ.update(environ)
    torch.set_num_threads(threads)
