"""Explain one person's predicted income field by field with exact Shapley values.

The people seed measures input importance during training. This example explains
a single prediction instead: the exact Shapley value of each of the four fields
(sex, age, State, politics), with the mean training row as the baseline, drawn as
a waterfall from the baseline prediction to this person's prediction.

Verdict: efficiency. The four values sum to f(person) - f(baseline), up to float
rounding, and the example prints the gap and the top field.

    python examples/people_waterfall.py [--params FILE] [--epochs N] [--out DIR]

``--params`` takes a file written by ``tfx-explain people`` (out/people_params.pt). Without
it, the example trains a model first (300 epochs; see examples/README.md for the time).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import tfx_explain
from tfx_explain.people import (
    PEOPLE_FIELDS,
    default_people_paths,
    load_params,
    load_people,
    people_row,
    train_people,
    transformer_net,
)

PERSON = {"sex": "M", "age": 34, "state": "oklahoma", "politics": "moderate"}


def run(*, params_path=None, epochs: int = 300, out="out", person=None) -> dict:
    """Explain ``person``; return the Shapley values, the gap and the PNG path."""
    start = time.perf_counter()
    train_path, _ = default_people_paths()
    x_train, _ = load_people(train_path)
    if params_path is None:
        params = train_people(epochs=epochs).result.params
    else:
        params = load_params(params_path)
    fn = functools.partial(transformer_net, params)
    x = people_row(**(person or PERSON))[None]  # (1, 8)
    baseline = x_train.mean(0, keepdim=True)  # the "average person"
    phi = tfx_explain.shapley_values(fn, x, baseline=baseline, groups=PEOPLE_FIELDS)
    values = tfx_explain.group_attributions(phi, PEOPLE_FIELDS)[0]  # (4,)
    prediction, base = float(fn(x)[0]), float(fn(baseline)[0])
    gap = float(values.sum()) - (prediction - base)
    names = list(PEOPLE_FIELDS)
    path = None
    try:
        from tfx_explain import plot

        path = Path(out) / "people_waterfall.png"
        plot.waterfall(
            values * 100_000,
            names,
            path,
            base=base * 100_000,
            title="Predicted income: 34-year-old male moderate from Oklahoma",
            xlabel="income ($)",
            fmt="${:,.0f}",
        )
    except ImportError as err:
        print(f"(no plot: {err})")
    return {
        "values": dict(zip(names, values.tolist(), strict=True)),
        "prediction": prediction,
        "baseline_prediction": base,
        "gap": gap,
        "top_field": names[int(values.abs().argmax())],
        "plot": path,
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", help="params file from `tfx-explain people` (e.g. out/people_params.pt)"
    )
    parser.add_argument("--epochs", type=int, default=300, help="training epochs without --params")
    parser.add_argument("--out", default="out", help="folder for the PNG (default: out)")
    args = parser.parse_args(argv)
    r = run(params_path=args.params, epochs=args.epochs, out=args.out)
    print(f"baseline prediction (mean training row): ${r['baseline_prediction'] * 1e5:,.2f}")
    for name, value in sorted(r["values"].items(), key=lambda kv: -abs(kv[1])):
        print(f"  {name:9s} {value * 1e5:+12,.2f}")
    print(f"prediction for this person:              ${r['prediction'] * 1e5:,.2f}")
    print(f"efficiency gap (sum - change): {r['gap']:.2e}; top field: {r['top_field']}")
    verdict = abs(r["gap"]) < 1e-5
    top = r["values"][r["top_field"]] * 1e5
    print(
        f"verdict: {'PASS' if verdict else 'FAIL'} (|gap| {abs(r['gap']):.2e} < 1e-5; top field "
        f"{r['top_field']}, {'-' if top < 0 else '+'}${abs(top):,.0f} against the mean person)"
    )
    if r["plot"]:
        print(f"wrote {r['plot']}")
    return 0 if verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
