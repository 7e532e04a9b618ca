"""Lower bounds for the speed targets that are not met: work any implementation must do.

Each bound is timed in one process, interleaved with the references it is compared to:

- ``noise``: SmoothGrad must draw ``B x N x D`` normal numbers before any forward; the
  bound is (limit + ``torch.randn`` of that shape) / limit.
- ``compiled``: a compiled occlusion or ablation cannot beat ``torch.compile`` of the
  plain forward over the same prebuilt rows (at its best rows per call); the bound on
  "faster than Captum" is Captum / that compiled forward.
- ``captum-at-limit``: an eager method cannot beat the eager limit, so the most it can
  be faster than Captum is Captum / limit.
- ``built``: a perturbation method must build its perturbed rows before ``fn`` sees
  them, which the limit (over prebuilt rows) never does. The floor replays the
  method's own chunks: build each chunk's rows and run the forward on them, nothing
  else (no checks, no reduction); the bound is floor / limit.
- ``path``: integrated gradients must build its path points ``x' + alpha (x - x')``
  before ``fn`` sees them, and sum each sample's ``S`` gradients with the
  quadrature weights after. The floor replays the method's chunks (the samples of
  one row budget): build each chunk's path rows, run the forward+backward on them,
  take the weighted sum over the path and multiply by ``x - x'``, nothing else;
  the bound is floor / limit.
- ``checked``: a gradient method that keeps our contract refuses non-finite inputs
  and outputs with a ``ValueError``, which takes one reduction over ``x`` and one
  over the outputs, and hands ``fn`` a copy of the rows (``fn`` may write to its
  argument; the caller's tensors are never touched). The floor is the limit plus
  exactly those; for a call of a few milliseconds each pass over cold memory
  shows. Timed in shuffled order over many rounds (the calls are short).

Run::

    python -m benchmarks.bounds [--rounds 7]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import time
from collections.abc import Callable

import torch

import benchmarks._workloads as W
import tfx_explain as tx


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _medians(
    runs: dict[str, Callable[[], object]], rounds: int, *, shuffle: bool = False
) -> dict[str, float]:
    """Median seconds of each run over ``rounds`` interleaved rounds, after a warm-up.

    ``shuffle``: a new (seeded) order every round instead of the same one, for short
    calls, where the position in a round shows.
    """
    for run in runs.values():
        run()  # warm-up (and compile)
    times: dict[str, list[float]] = {name: [] for name in runs}
    order, rng = list(runs), random.Random(0)
    for _ in range(rounds):
        if shuffle:
            rng.shuffle(order)
        for name in order:
            times[name].append(_seconds(runs[name]))
    return {name: statistics.median(t) for name, t in times.items()}


def _rows_of(workload: str, method: str) -> tuple[W.Trial, torch.Tensor, bool]:
    """The trial and the prebuilt rows its limit evaluates (and whether it takes gradients)."""
    seen: dict[str, object] = {}
    forward, gradient = W._forward_limit, W._gradient_limit

    def spy(kind: bool, original: Callable) -> Callable:
        def limit(fn, rows, t_rows):
            seen.update(rows=rows, grad=kind)
            return original(fn, rows, t_rows)

        return limit

    W._forward_limit, W._gradient_limit = spy(False, forward), spy(True, gradient)
    try:
        case = W.trial(workload, method)
    finally:
        W._forward_limit, W._gradient_limit = forward, gradient
    return case, seen["rows"], seen["grad"]


def noise(rounds: int) -> None:
    w = W.workload("mlp-2048")
    case = W.trial("mlp-2048", "smoothgrad")
    shape = (w.x.shape[0], W.NOISE_SAMPLES, *w.x.shape[1:])
    g = torch.Generator().manual_seed(0)
    runs = {f"limit {b}": case.limit(b) for b in (1024, 2048, 4096)}
    runs["randn"] = lambda: torch.randn(shape, generator=g)
    runs["ours"] = case.ours("auto", False)
    m = _medians(runs, rounds)
    limit = min(v for k, v in m.items() if k.startswith("limit"))
    print(f"noise, mlp-2048 smoothgrad: limit {limit:.4f} s, randn{tuple(shape)} "
          f"{m['randn']:.4f} s -> bound {(limit + m['randn']) / limit:.2f}x the limit; "
          f"ours {m['ours'] / limit:.2f}x")  # fmt: skip


def compiled(method: str, rounds: int) -> None:
    case, rows, grad = _rows_of("tnet-2048", method)
    fn = torch.compile(W.workload("tnet-2048").fn, dynamic=False)
    sizes = sorted({b for b in (4096, 8192, 16384) if b < rows.shape[0]} | {rows.shape[0]})

    def plain(size: int) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                for start in range(0, rows.shape[0], size):
                    fn(rows[start : start + size])

        return run

    assert not grad, "the compiled bound is for perturbation methods"
    runs = {f"compiled forward {b}": plain(b) for b in sizes}
    runs["captum"] = case.captum
    runs["limit"] = case.limit(rows.shape[0])
    runs["ours compiled"] = case.ours("auto", True)
    m = _medians(runs, rounds)
    best = min(v for k, v in m.items() if k.startswith("compiled forward"))
    print(f"compiled, tnet-2048 {method}: Captum {m['captum']:.4f} s, compiled plain forward "
          f"{best:.4f} s -> bound {m['captum'] / best:.2f}x faster than Captum; ours compiled "
          f"{m['captum'] / m['ours compiled']:.2f}x; eager limit {m['captum'] / m['limit']:.2f}x "
          f"(the captum-at-limit bound)")  # fmt: skip


def built(workload: str, method: str, rounds: int) -> None:
    """Limit, and the floor of any black-box perturbation method: build the rows, forward."""
    import tfx_explain._engine.perturbed as P

    case, w = W.trial(workload, method), W.workload(workload)
    ours = case.ours("auto", False)
    calls: list[tuple] = []
    original = P.masked_rows

    def record(keep, x, b):
        calls.append((keep, x.clone(), b.clone()))
        return original(keep, x, b)

    P.masked_rows = record
    try:
        ours()
    finally:
        P.masked_rows = original
    targets, start = [], 0
    for keep, x, _ in calls:  # each chunk's samples, in order: their targets per row
        t = None if w.target is None else w.target[start : start + x.shape[0]]
        targets.append(None if t is None else t.repeat_interleave(keep.shape[0]))
        start += x.shape[0]

    def build() -> None:
        for keep, x, b in calls:
            original(keep, x, b)

    def build_and_forward() -> None:
        with torch.no_grad():
            for (keep, x, b), t in zip(calls, targets, strict=True):
                W._explained(w.fn(P.unflatten_rows(original(keep, x, b), w.x[0])), t)

    small = (1024, 2048, 4096, 8192) if case.rows > 8192 else (64, 128, 256, 512, 1024)
    sizes = sorted({n for n in small if n < case.rows} | {case.rows})  # all rows at once too
    runs = {f"limit {n}": case.limit(n) for n in sizes}
    runs.update(build=build, floor=build_and_forward, ours=ours)
    m = _medians(runs, rounds)
    limit = min(v for k, v in m.items() if k.startswith("limit"))
    print(f"built, {workload} {method}: limit {limit:.4f} s; building the {case.rows} rows "
          f"in {len(calls)} chunks {m['build']:.4f} s; building them and the forward on "
          f"each chunk {m['floor']:.4f} s -> bound {m['floor'] / limit:.2f}x the limit; "
          f"ours {m['ours'] / limit:.2f}x the limit, {m['ours'] / m['floor']:.2f}x the "
          "floor")  # fmt: skip


def path(workload: str, rounds: int) -> None:
    """Limit, and the floor of integrated gradients: build each chunk's path rows, backward."""
    from tfx_explain._engine.routing import row_budget

    case, w = W.trial(workload, "integrated_gradients"), W.workload(workload)
    ours = case.ours("auto", False)
    x, t = w.x, w.target
    alphas, weights = tx.quadrature("gauss_legendre", W.STEPS, dtype=x.dtype)
    per_chunk = max(1, row_budget(x) // W.STEPS)
    shape = (1, W.STEPS) + (1,) * (x.ndim - 1)

    def build_and_backward() -> torch.Tensor:
        out = torch.empty_like(x)
        for start in range(0, x.shape[0], per_chunk):
            xs = x[start : start + per_chunk]
            d = xs - torch.zeros_like(xs)  # the benchmark's baseline is zeros
            rows = (alphas.reshape(shape) * d.unsqueeze(1)).flatten(0, 1).requires_grad_()
            ts = None if t is None else t[start : start + per_chunk].repeat_interleave(W.STEPS)
            (g,) = torch.autograd.grad(W._explained(w.fn(rows), ts).sum(), rows)
            g = g.reshape(xs.shape[0], W.STEPS, -1)  # sum_s w_s g_s as one batched matmul
            out[start : start + per_chunk] = d * torch.matmul(weights, g).reshape(xs.shape)
        return out

    sizes = sorted({b for b in W.LIMIT_BATCHES if b < case.rows} | {case.rows})
    runs = {f"limit {n}": case.limit(n) for n in sizes if n >= 1024}
    runs.update(floor=build_and_backward, ours=ours)
    m = _medians(runs, rounds, shuffle=True)
    limit = min(v for k, v in m.items() if k.startswith("limit"))
    print(f"path, {workload} integrated_gradients: limit {limit:.4f} s; building the "
          f"{case.rows} path rows in chunks of {per_chunk} samples, the forward+backward "
          f"on each and the weighted sums {m['floor']:.4f} s -> bound "
          f"{m['floor'] / limit:.2f}x the limit; ours "
          f"{m['ours'] / limit:.2f}x the limit, {m['ours'] / m['floor']:.2f}x the "
          "floor")  # fmt: skip


def checked(workload: str, method: str, rounds: int) -> None:
    """The limit plus the checks and the copy of our contract, for gradient methods.

    ``gradient_x_input`` also multiplies the gradients by ``x``: one more pass, in place.
    """
    case, w = W.trial(workload, method), W.workload(workload)
    fn, x, t = w.fn, w.x, w.target
    multiply = method == "gradient_x_input"

    def gradients(copy: bool, checks: bool) -> Callable[[], object]:
        product = multiply and checks  # the plain pass is the limit's work only

        def run() -> torch.Tensor:
            if checks and not math.isfinite(float(x.sum())):
                raise ValueError("x must be finite")
            r = x.detach().requires_grad_()
            values = W._explained(fn(r.clone() if copy else r), t)
            g = torch.autograd.grad(values.sum(), r)[0]
            if checks and not math.isfinite(float(values.detach().sum())):
                raise ValueError("fn returned a non-finite value")
            return g.mul_(x) if product else g

        return run

    runs = {f"limit {n}": case.limit(n) for n in (case.rows // 2, case.rows)}
    runs.update(plain=gradients(False, False), checks=gradients(False, True))
    runs.update(checked=gradients(True, True), ours=case.ours("auto", False))
    m = _medians(runs, rounds, shuffle=True)
    limit = min(v for k, v in m.items() if k.startswith("limit"))
    floor = limit * m["checked"] / m["plain"]  # the contract's cost, on the limit
    what = "gradient x input (the product in place)" if multiply else method
    extra = " and the product" if multiply else ""
    print(f"checked, {workload} {what}: limit {limit * 1e3:.2f} ms; one plain pass "
          f"{m['plain'] / limit:.2f}x; with the two finite checks{extra} "
          f"{m['checks'] / limit:.2f}x; "
          f"with them and the copy for fn {m['checked'] / limit:.2f}x -> bound "
          f"{floor / limit:.2f}x the limit; ours {m['ours'] / limit:.2f}x the limit, "
          f"{m['ours'] / floor:.2f}x the bound")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    noise(args.rounds)
    for method in ("occlusion", "feature_ablation"):
        compiled(method, args.rounds)
    for workload, method in (
        ("mlp-2048", "occlusion"),
        ("mlp-2048", "feature_ablation"),
        ("cnn-128", "occlusion"),
        ("tnet-240", "feature_ablation"),
    ):
        built(workload, method, args.rounds)
    path("mlp-2048", args.rounds)
    for method in ("input_gradients", "gradient_x_input"):
        checked("mlp-2048", method, 60 * args.rounds)


if __name__ == "__main__":
    main()
