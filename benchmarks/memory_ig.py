"""Peak memory of path and noise methods over many rows: bounded by the chunk, not by rows.

Each row count runs in a fresh subprocess, which reports its peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after one call of the method on the
functional TransformerNet, with ``S`` rows per sample (``--steps``, default 50):
``integrated_gradients(fn, x, steps=S)``, ``smoothgrad(input_gradients, n_samples=S)``
or ``expected_gradients(fn, x, baselines=1000 rows, n_samples=S)`` (``--method``; by
default the defaults: ``chunk_size=None``, i.e. about the row budget of path rows a
chunk, and ``vectorize="auto"``). The rows of one chunk do not depend on ``S`` (the
chunk holds ``budget // S`` samples), so a smaller ``--steps`` measures the same
peak in less time.
The inputs and the result (``rows x 8`` float32 each, 32 MB per million rows) are the only
memory that should grow with the row count; the path points of one chunk
(``C x 50`` rows) and their activations are the rest.

Usage::

    python -m benchmarks.memory_ig                      # 10k, 100k and 1M rows, the defaults
    python -m benchmarks.memory_ig --rows 10000 100000 --chunk-size 512 --vectorize batch
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time

__all__ = ["measure", "main"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


METHODS = ("integrated_gradients", "smoothgrad", "expected_gradients")


def measure(
    rows: int, chunk_size: int | None, vectorize: str, steps: int = 50,
    method: str = "integrated_gradients",
) -> dict:  # fmt: skip
    """Run the method once over ``rows`` rows in this process; return timings and peak RSS."""
    import torch

    import tfx_explain as tx
    from tfx_explain.people import init_transformer_net, transformer_net

    torch.set_num_threads(2)
    fn = functools.partial(transformer_net, init_transformer_net())
    x = torch.rand(rows, 8, generator=torch.Generator().manual_seed(0))
    before = _peak_mb()
    start = time.perf_counter()
    options = {"chunk_size": chunk_size, "vectorize": vectorize}
    if method == "integrated_gradients":
        attr = tx.integrated_gradients(fn, x, steps=steps, **options)
    elif method == "smoothgrad":
        noisy = tx.smoothgrad(tx.input_gradients, n_samples=steps, sigma=0.1,
                              generator=torch.Generator().manual_seed(1))  # fmt: skip
        attr = noisy(fn, x, **options)
    else:
        refs = torch.rand(1000, 8, generator=torch.Generator().manual_seed(2))
        draws = torch.Generator().manual_seed(3)
        attr = tx.expected_gradients(
            fn, x, baselines=refs, n_samples=steps, generator=draws, **options
        )
    seconds = time.perf_counter() - start
    assert attr.shape == x.shape and bool(torch.isfinite(attr).all())
    return {
        "method": method,
        "rows": rows,
        "steps": steps,
        "chunk_size": chunk_size,
        "vectorize": vectorize,
        "seconds": round(seconds, 1),
        "path_rows_per_s": round(rows * steps / seconds),
        "peak_rss_before_mb": round(before),
        "peak_rss_mb": round(_peak_mb()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--chunk-size", type=int, default=None, help="default: None")
    parser.add_argument("--vectorize", choices=("auto", "vmap", "batch"), default="auto")
    parser.add_argument("--method", choices=METHODS, default="integrated_gradients")
    parser.add_argument("--steps", type=int, default=50, help="rows per sample (S)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one row count, in this fresh process
        print(json.dumps(measure(args.rows[0], args.chunk_size, args.vectorize, args.steps,
                                 args.method)))  # fmt: skip
        return
    print(f"{'method':20}  {'S':>3}  {'rows':>9}  {'chunk':>5}  {'vectorize':9}  "
          f"{'seconds':>7}  {'path rows/s':>11}  {'RSS before':>13}  {'peak RSS':>8}")  # fmt: skip
    for rows in args.rows:
        child = [sys.executable, "-m", "benchmarks.memory_ig", "--child", "--rows", str(rows)]
        if args.chunk_size is not None:
            child += ["--chunk-size", str(args.chunk_size)]
        child += ["--vectorize", args.vectorize, "--steps", str(args.steps)]
        child += ["--method", args.method]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['method']:20}  {r['steps']:>3}  {r['rows']:>9}  {str(r['chunk_size']):>5}  "
              f"{r['vectorize']:9}  {r['seconds']:>7}  {r['path_rows_per_s']:>11,}  "
              f"{r['peak_rss_before_mb']:>10} MB  {r['peak_rss_mb']:>5} MB",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
