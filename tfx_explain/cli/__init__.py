"""The ``tfx-explain`` command line (also ``python -m tfx_explain``)."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["main", "build_parser"]

PERSON = {"sex": "M", "age": 34, "state": "oklahoma", "politics": "moderate"}
PARAMS_FILE = "people_params.pt"
"""Where ``tfx-explain people`` saves the trained params in its ``--out`` folder, and where
``tfx-explain attribute`` looks for them by default (``out/people_params.pt``)."""


class _Progress:
    """``on_epoch`` for training: a tqdm bar ``epochs 120/300 [...] loss=0.00123`` on stderr."""

    def __init__(self, total: int, *, stream=None) -> None:
        from tfx_explain.progress import progress_bar

        self.bar = progress_bar(total, desc="epochs", unit="epochs", stream=stream)

    def __call__(self, epoch: int, loss: float) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix_str(f"loss {loss:.5f}", refresh=False)
        self.bar.update(epoch + 1 - self.bar.n)
        if self.bar.n >= self.bar.total:
            self.bar.close()


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, header))] + [
        [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        pairs = enumerate(zip(row, widths, strict=True))
        padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join(padded))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def _field_subsets(fields: dict):
    """Infidelity perturbations: random subsets of whole fields set to the baseline."""
    generator = torch.Generator().manual_seed(0)

    def perturb(x: torch.Tensor, baseline: torch.Tensor):  # (B, N, F) -> (B, N, F) twice
        drop = torch.rand(x.shape[:2] + (len(fields),), generator=generator) < 0.5
        subset = torch.zeros(x.shape, dtype=torch.bool)
        for g, features in enumerate(fields.values()):
            subset[..., list(features)] = drop[..., g : g + 1]
        return subset.to(x.dtype), torch.where(subset, baseline, x)

    return perturb


def explain_people(params: dict, x: torch.Tensor, baseline: torch.Tensor, *, steps: int = 50):
    """Post-hoc attributions of the people model per field, with completeness gaps.

    Returns:
      ``{method: (importance per field (G,), mean |completeness gap| or None,
      mean infidelity)}``; infidelity over 32 random field subsets set to the baseline.
    """
    import tfx_explain as tx
    from tfx_explain.people import PEOPLE_FIELDS, transformer_net

    fn = functools.partial(transformer_net, params)
    base = baseline.expand_as(x)
    methods = {
        "integrated gradients": (
            lambda: tx.integrated_gradients(fn, x, baseline=base, steps=steps),
            True,
        ),
        "gradient x input": (lambda: tx.gradient_x_input(fn, x), False),
        "field ablation": (
            lambda: tx.feature_ablation(fn, x, groups=PEOPLE_FIELDS, baseline=base),
            False,
        ),
        "exact Shapley": (
            lambda: tx.shapley_values(fn, x, groups=PEOPLE_FIELDS, baseline=base),
            True,
        ),
    }
    out = {}
    for name, (run, complete) in methods.items():
        attr = run()
        importance = tx.global_importance(attr, groups=PEOPLE_FIELDS)
        gap = None
        if complete:
            gap = float(tx.completeness_gap(fn, x, attr, baseline=base).abs().mean())
        infidelity = tx.metrics.infidelity(
            fn, x, attr, perturbation=_field_subsets(PEOPLE_FIELDS), n_samples=32, baseline=base
        )
        out[name] = (importance, gap, float(infidelity.mean()))
    return out


def check_out_dir(path: str, flag: str = "--out") -> Path:
    """Refuse an output folder that is an existing file (before any work is done)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is an existing file, not a directory")
    return out


def check_new_file(path: str, flag: str) -> Path:
    """Refuse a file to write whose directory does not exist, or that is a directory."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{flag} {target} is a directory; give a file name")
    if not target.absolute().parent.is_dir():
        raise ValueError(
            f"{flag} {target}: the directory {target.absolute().parent} does not exist"
        )
    return target


_PLOT_EXTRA = 'pip install -e ".[plot]"'


def _people_chart(rows, fields, methods, out: Path, importance) -> Path:
    """The field-importance PNG: the training-time loss gradient in a panel of its own."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError('the chart needs matplotlib: pip install "tfx_explain[plot]"') from err
    from tfx_explain.plot import field_bars

    trained = importance is not None
    fig = Figure(figsize=(12.0 if trained else 7.0, 3.4), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[1, 1.6]) if trained else [fig.add_subplot()]
    fig.suptitle("People income: field importance (each panel sums to 1)")
    if trained:
        field_bars(
            [row[1] for row in rows],
            fields,
            ax=axes[0],
            title="training time: mean |d loss / d x| over the epochs",
            xlabel="share of mean |loss gradient| (not an attribution)",
        )
    field_bars(
        [[row[i + 1 + trained] for row in rows] for i in range(len(methods))],
        fields,
        ax=axes[-1],
        series=methods,
        title="post hoc: attributions of the prediction, test rows",
        xlabel="share of mean |field attribution|",
    )
    path = out / "people_field_importance.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _people(args: argparse.Namespace) -> int:
    from tfx_explain.people import (
        PEOPLE_FEATURES,
        PEOPLE_FIELDS,
        accuracy,
        field_importance,
        load_params,
        load_people,
        people_row,
        save_params,
        train_people,
        transformer_net,
    )

    if args.save:
        check_new_file(args.save, "--save")
    if not args.no_plot:
        check_out_dir(args.out)
    for flag, path in (("--train", args.train), ("--test", args.test), ("--load", args.load)):
        if path is not None and not Path(path).is_file():
            what = "is a directory, not a file" if Path(path).is_dir() else "not found"
            raise ValueError(f"{flag} {path}: {what}")
    for flag, value in (("--epochs", args.epochs), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")

    started = time.perf_counter()
    importance = None
    if args.load:
        from tfx_explain.people import default_people_paths

        default_train, default_test = default_people_paths()
        x_train, y_train = load_people(args.train or default_train)
        x_test, y_test = load_people(args.test or default_test)
        try:
            params = load_params(args.load, n_features=len(PEOPLE_FEATURES))
        except ValueError as error:
            raise ValueError(f"--load {error}") from None
        fn = functools.partial(transformer_net, params)
        train_acc, test_acc = accuracy(fn, x_train, y_train), accuracy(fn, x_test, y_test)
        print(f"Loaded params from {args.load}")
    else:
        print(
            f"Training TransformerNet on {args.train or 'data/people_train.txt'} "
            f"({args.epochs} epochs, batch 10, Adam lr 0.01, seed {args.seed})"
        )
        run = train_people(
            train_path=args.train,
            test_path=args.test,
            epochs=args.epochs,
            seed=args.seed,
            on_epoch=_Progress(args.epochs),
        )
        params, importance = run.result.params, run.result.input_importance
        x_train, x_test = run.x_train, run.x_test
        train_acc, test_acc = run.train_accuracy, run.test_accuracy
    save = args.save or (None if args.load or args.no_save else Path(args.out) / PARAMS_FILE)
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        save_params(params, save)
        print(f"Saved params to {save}")
    fn = functools.partial(transformer_net, params)
    print(f"\nAccuracy (within 10% of the true income): train {train_acc:.4f}, test {test_acc:.4f}")

    person = people_row(**PERSON)
    income = float(fn(person[None])[0]) * 100_000
    print(f"Predicted income of a 34-year-old male moderate from Oklahoma: ${income:,.2f}")

    fields = list(PEOPLE_FIELDS)
    if importance is not None:
        print("\nTraining-time input-gradient importance (mean |d loss / d x|, sums to 1):")
        rows = [[n, float(v)] for n, v in zip(PEOPLE_FEATURES, importance, strict=True)]
        print(_table(["feature", "importance"], rows))
        per_field = field_importance(importance, PEOPLE_FIELDS)
        print()
        print(_table(["field", "importance"], [[f, per_field[f]] for f in fields]))

    baseline = x_train.mean(0, keepdim=True)
    results = explain_people(params, x_test, baseline, steps=args.steps)
    print(
        f"\nPost-hoc field importance on the {x_test.shape[0]} test rows "
        "(mean |field attribution|, sums to 1; baseline = mean training row):"
    )
    header = ["field"] + (["train-time"] if importance is not None else []) + list(results)
    rows = []
    for g, field in enumerate(fields):
        row = [field] + ([per_field[field]] if importance is not None else [])
        rows.append(row + [float(imp[g]) for imp, *_ in results.values()])
    gaps = ["|gap|"] + ([""] if importance is not None else [])
    gaps += [f"{gap:.1e}" if gap is not None else "n/a" for _, gap, _ in results.values()]
    infid = ["infidelity"] + ([""] if importance is not None else [])
    infid += [f"{inf:.1e}" for *_, inf in results.values()]
    print(_table(header, rows + [gaps, infid]))
    print("  |gap| = mean |sum of attributions - (f(x) - f(baseline))|; n/a: not a complete method")
    print(
        "  infidelity = mean (sum of attributions in S - (f(x) - f(x, S set to baseline)))^2 "
        "over 32 random field subsets S (tfx_explain.metrics.infidelity)"
    )

    if not args.no_plot:
        try:
            path = _people_chart(rows, fields, list(results), Path(args.out), importance)
        except ImportError as err:  # matplotlib is an optional extra
            print(f"\nNo chart: {err} (from a checkout: {_PLOT_EXTRA})", file=sys.stderr)
        else:
            print(f"\nWrote {path}")
    print(f"\nDone in {time.perf_counter() - started:.1f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfx-explain", description="Functional feature attribution for PyTorch."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    people = commands.add_parser(
        "people",
        help="train the people-income TransformerNet and explain it field by field",
        description="Train (or load) the people-income TransformerNet, report accuracy, "
        "training-time input-gradient importance and post-hoc attributions per field.",
    )
    people.add_argument("--train", help="training file (default: data/people_train.txt)")
    people.add_argument("--test", help="test file (default: data/people_test.txt)")
    people.add_argument("--epochs", type=int, default=300, help="training epochs (300)")
    people.add_argument("--seed", type=int, default=0, help="seed of the run (0)")
    people.add_argument("--steps", type=int, default=50, help="integrated-gradients steps (50)")
    people.add_argument(
        "--out", default="out", help=f"folder for the chart and the params (out/, {PARAMS_FILE})"
    )
    people.add_argument("--load", metavar="FILE", help="load params instead of training")
    people.add_argument(
        "--save",
        metavar="FILE",
        help=f"save the params to FILE (default after training: OUT/{PARAMS_FILE})",
    )
    people.add_argument("--no-save", action="store_true", help="do not save the trained params")
    people.add_argument("--no-plot", action="store_true", help="do not write the PNG chart")
    people.set_defaults(func=_people)
    from tfx_explain.cli._attribute import add_attribute_parser, add_people_data_parser
    from tfx_explain.cli._text import add_text_parser

    add_attribute_parser(commands)
    add_people_data_parser(commands)
    add_text_parser(commands)
    return parser


_FLAGS = {
    "out": "--out",
    "n_workers": "--workers",
    "n_rows": "--rows",
    "partitions": "--partitions",
    "seed": "--seed",
    "method": "--method",
    "options": "--option",
    "params": "--params",
    "params file": "--params",
    "id_column": "--id-column",
    "features": "--features",
    "target": "--target",
    "scheduler": "--scheduler",
    "data": "--input",
    "steps": "--steps",
    "epochs": "--epochs",
    "out_dir": "--out",
}


def flagged(message: str) -> str:
    """A library message in flag terms: ``n_workers must be >= 1`` -> ``--workers must ...``."""
    message = " ".join(message.split())  # one line, whatever the library said
    message = message.replace("pass overwrite=True", "pass --overwrite")
    for name in sorted(_FLAGS, key=len, reverse=True):
        if message.startswith(name + " "):
            return _FLAGS[name] + message[len(name) :]
    return message


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as err:
        message = (
            str(err)
            if not isinstance(err, OSError) or err.filename is None
            else (f"{err.strerror}: {err.filename}")
        )
        print(f"tfx-explain {args.command}: error: {flagged(message)}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"tfx-explain {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
