"""Cost of a training step with an attribution prior, against a plain step.

Reference: one plain step, ``torch.func.grad`` of the squared error of the functional
TransformerNet (``init_transformer_net`` seed 0) on a batch of people-format rows, followed
by ``adam_update``. Measured against it, per attribution method (input gradients,
integrated gradients with 4 Gauss-Legendre steps, expected gradients with 4 draws):

- ``attribution``: the attributions alone, ``method(fn, x)`` (no parameter gradient);
- ``penalized``: the step on ``mse + 100 * share_cap(fn, x, method=..., group=sex,
  cap=0.004)``.

``penalized / plain`` is the price of the prior. ``(penalized - plain) / attribution`` tells
how many attribution passes the prior adds: the attributions themselves plus one backward
through them, so about 2 to 3 when the extra backward costs one or two forward-backwards.

Run::

    python benchmarks/bench_priors.py [--batches 10 100 1000] [--repeats 20]

Timings on a shared machine are rough: the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import torch
from torch.func import grad

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfx_explain as tx  # noqa: E402
from tfx_explain import priors  # noqa: E402
from tfx_explain.people import (  # noqa: E402
    PEOPLE_FIELDS,
    adam_init,
    adam_update,
    default_people_paths,
    init_transformer_net,
    load_people,
    transformer_net,
)


def _rows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_people(default_people_paths()[0])
    index = torch.arange(n) % len(x)
    return x[index], y[index]


def _methods(refs: torch.Tensor) -> dict:
    return {
        "input_gradients": tx.input_gradients,
        "integrated_gradients (4 steps)": functools.partial(tx.integrated_gradients, steps=4),
        "expected_gradients (4 draws)": functools.partial(
            tx.expected_gradients,
            baselines=refs,
            n_samples=4,
            generator=torch.Generator().manual_seed(0),
        ),
    }


def _seconds(run, repeats: int) -> float:
    run()  # warm up
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        run()
        times.append(time.perf_counter() - begin)
    return sorted(times)[len(times) // 2]  # median


def measure(batch: int, repeats: int) -> dict[str, tuple[float, float, float]]:
    """``method -> (plain, attribution, penalized)`` seconds at one batch size."""
    x, y = _rows(batch)
    params = init_transformer_net(generator=torch.Generator().manual_seed(0))
    state = adam_init(params)
    sex = PEOPLE_FIELDS["sex"]

    def mse(p):
        return ((transformer_net(p, x) - y) ** 2).mean()

    plain_step = grad(mse)
    plain = _seconds(lambda: adam_update(params, plain_step(params), state, lr=0.01), repeats)
    fn = functools.partial(transformer_net, params)
    results = {}
    for name, method in _methods(_rows(50)[0]).items():

        def objective(p, method=method):
            cap = priors.share_cap(
                functools.partial(transformer_net, p), x, method=method, group=sex, cap=0.004
            )
            return mse(p) + 100.0 * cap

        step = grad(objective)
        attribution = _seconds(lambda method=method: method(fn, x), repeats)
        penalized = _seconds(
            lambda step=step: adam_update(params, step(params), state, lr=0.01), repeats
        )
        results[name] = (plain, attribution, penalized)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    one, five, _ = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} thread(s), load avg {one:.1f} / {five:.1f}")
    print(f"{'B':>5} {'method':32s} {'plain ms':>9} {'attr ms':>9} {'prior ms':>9} "
          f"{'prior/plain':>11} {'extra/attr':>10}")  # fmt: skip
    for batch in args.batches:
        for name, (plain, attr, penalized) in measure(batch, args.repeats).items():
            print(
                f"{batch:5d} {name:32s} {plain * 1e3:9.2f} {attr * 1e3:9.2f} "
                f"{penalized * 1e3:9.2f} {penalized / plain:11.2f} "
                f"{(penalized - plain) / attr:10.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
