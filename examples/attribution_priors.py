"""Training with explanations: attribution priors on a decoy task and on the people data.

Two problems where we know the answer.

1. Decoy digits, in the style of DecoyMNIST (Ross et al. 2017), built on scikit-learn's
   bundled 8x8 digits (no download). A 3x3 patch in the bottom-left corner is painted
   with a shade that encodes the label (``label / 9``) in the training images and is
   random at test time. A plain MLP learns the shortcut. The same MLP trained with the
   "right for the right reasons" prior (:func:`tfx_explain.priors.right_reasons`, input
   gradients of the summed log-probabilities, the patch marked irrelevant) cannot use it.
   Verdict: on the decoy-shifted test set the plain model's accuracy collapses (at least
   ``COLLAPSE`` below its accuracy on test digits with the training decoy) while the
   prior-trained model keeps its accuracy (within ``KEEP``) and beats the plain one by at
   least ``COLLAPSE``. The fraction of input-gradient mass on the patch is printed for
   both models.

2. The people data (``tfx_explain.people``): the TransformerNet is trained plainly, then
   fine-tuned for a few epochs (no dropout, a lower learning rate) twice from the same
   parameters: once plainly, once with the group prior
   :func:`tfx_explain.priors.share_cap` on the field ``sex`` (a sensitive field), through
   ``train_transformer_net(..., penalty=...)``. Verdict: the plain model's share of
   input-gradient mass on ``sex`` (on the 40 held-out rows) is above ``CAP``, the
   prior-trained model's is below it (on the held-out and the training rows), and its
   held-out accuracy (within 10% of the true income) is at most ``MARGIN`` below the plain
   model's.

It also times one Adam step of the people model with and without each prior (input
gradients, integrated gradients with 4 steps, expected gradients with 4 draws) and prints
the ratio; timings on a shared machine are rough.

Run:
    python examples/attribution_priors.py [--small]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time

import torch
import torch.nn.functional as F
from torch.func import grad

import tfx_explain
from tfx_explain import priors
from tfx_explain.people import (
    PEOPLE_FIELDS,
    accuracy,
    adam_init,
    adam_update,
    default_people_paths,
    init_transformer_net,
    load_people,
    train_transformer_net,
    transformer_net,
)

PATCH = 3  # side of the decoy patch, bottom-left corner
COLLAPSE = 0.2  # accuracy lost by the plain model on decoy-shifted digits, at least
KEEP = 0.02  # accuracy the prior-trained model may lose there, at most
RRR_WEIGHT = 10.0
FIELD = "sex"
CAP = 0.004  # share of input-gradient mass on FIELD
CAP_WEIGHT = 300.0
MARGIN = 0.075  # held-out accuracy the capped model may lose (3 of the 40 rows), at most


# ---- 1. decoy digits ----


def decoy_digits(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Digits in [0, 1] ``(N, 8, 8)`` with the decoy patch: ``label / 9`` in training and in
    ``x_same``, a random shade in ``x_shifted``; plus the patch ``mask (8, 8)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32) / 16.0  # (N, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=generator)
    n_train = int(0.7 * len(x))
    train, test = order[:n_train], order[n_train:]
    mask = torch.zeros(8, 8)
    mask[-PATCH:, :PATCH] = 1.0

    def paint(images: torch.Tensor, shade: torch.Tensor) -> torch.Tensor:
        # (B, 8, 8) with the patch set to shade (B,)
        return torch.where(mask.bool(), shade[:, None, None], images)

    random_labels = torch.randint(0, 10, (len(test),), generator=generator)
    return {
        "x_train": paint(x[train], y[train] / 9.0),
        "y_train": y[train],
        "x_same": paint(x[test], y[test] / 9.0),
        "x_shifted": paint(x[test], random_labels / 9.0),
        "y_test": y[test],
        "mask": mask,
    }


def init_mlp(generator: torch.Generator, hidden: int = 32) -> dict[str, torch.Tensor]:
    """A 64-hidden-10 ReLU MLP's parameters, uniform in +-1/sqrt(fan_in) like nn.Linear."""

    def uniform(shape, fan_in):
        return (torch.rand(shape, generator=generator) * 2 - 1) / fan_in**0.5

    return {
        "w1": uniform((hidden, 64), 64),
        "b1": uniform((hidden,), 64),
        "w2": uniform((10, hidden), hidden),
        "b2": uniform((10,), hidden),
    }


def mlp(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, 8, 8) -> (B, 10)``."""
    hidden = torch.relu(x.flatten(1) @ params["w1"].T + params["b1"])
    return hidden @ params["w2"].T + params["b2"]


def summed_log_probs(params, x: torch.Tensor) -> torch.Tensor:
    """``sum_k log p_k(x)`` ``(B,)``: the function Ross et al. explain with input gradients."""
    return mlp(params, x).log_softmax(-1).sum(-1)


def train_mlp(params, x, y, *, mask, weight, epochs, generator, batch_size=64, lr=0.01):
    """Minibatch Adam on cross-entropy + ``weight`` x RRR (``weight=0``: plain training)."""

    def loss(params, xb, yb):
        value = F.cross_entropy(mlp(params, xb), yb)
        if weight:
            fn = functools.partial(summed_log_probs, params)
            value = value + weight * priors.right_reasons(
                fn, xb, method=tfx_explain.input_gradients, irrelevant=mask
            )
        return value

    step = grad(loss)
    state = adam_init(params)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            params, state = adam_update(params, step(params, x[batch], y[batch]), state, lr=lr)
    return params


def patch_fraction(params, x, mask) -> float:
    """Fraction of the input-gradient mass ``sum |a|`` that falls on the patch."""
    attr = tfx_explain.input_gradients(functools.partial(summed_log_probs, params), x).abs()
    return float((attr * mask).sum() / attr.sum())


def decoy_verdict(*, small: bool, seed: int) -> dict:
    data = decoy_digits(torch.Generator().manual_seed(seed))
    epochs = 10 if small else 30
    n_train = 600 if small else len(data["x_train"])
    x, y = data["x_train"][:n_train], data["y_train"][:n_train]
    start = init_mlp(torch.Generator().manual_seed(seed + 1))
    result = {}
    for name, weight in (("plain", 0.0), ("prior", RRR_WEIGHT)):
        params = train_mlp(
            start,
            x,
            y,
            mask=data["mask"],
            weight=weight,
            epochs=epochs,
            generator=torch.Generator().manual_seed(seed + 2),
        )

        def acc(images, params=params):
            return float((mlp(params, images).argmax(-1) == data["y_test"]).float().mean())

        result[name] = {
            "same": acc(data["x_same"]),
            "shifted": acc(data["x_shifted"]),
            "patch": patch_fraction(params, data["x_shifted"], data["mask"]),
        }
    plain, prior = result["plain"], result["prior"]
    result["passed"] = (
        plain["shifted"] <= plain["same"] - COLLAPSE
        and prior["shifted"] >= prior["same"] - KEEP
        and prior["shifted"] >= plain["shifted"] + COLLAPSE
    )
    return result


# ---- 2. people: a share cap on one field ----


def field_share(params, x) -> float:
    fn = functools.partial(transformer_net, params)
    method = tfx_explain.input_gradients
    return float(priors.share(fn, x, method=method, group=PEOPLE_FIELDS[FIELD]))


def cap_penalty(params, x, y, *, method=tfx_explain.input_gradients):
    """``CAP_WEIGHT * max(0, share_sex - CAP)^2`` on a batch, the hook for training."""
    fn = functools.partial(transformer_net, params)
    return CAP_WEIGHT * priors.share_cap(fn, x, method=method, group=PEOPLE_FIELDS[FIELD], cap=CAP)


def people_verdict(*, small: bool, seed: int) -> dict:
    train_path, test_path = default_people_paths()
    x, y = load_people(train_path)
    x_test, y_test = load_people(test_path)
    base_epochs, more_epochs = (10, 6) if small else (40, 10)
    start = init_transformer_net(generator=torch.Generator().manual_seed(seed))
    base = train_transformer_net(
        start, x, y, epochs=base_epochs, generator=torch.Generator().manual_seed(seed)
    ).params
    result = {}
    for name, penalty in (("plain", None), ("prior", cap_penalty)):
        params = train_transformer_net(
            base,
            x,
            y,
            epochs=more_epochs,
            batch_size=20,
            lr=0.003,
            dropout=False,
            penalty=penalty,
            generator=torch.Generator().manual_seed(seed + 1),
        ).params
        fn = functools.partial(transformer_net, params)
        result[name] = {
            "share": field_share(params, x_test),
            "train_share": field_share(params, x),
            "accuracy": accuracy(fn, x_test, y_test),
            "train_accuracy": accuracy(fn, x, y),
        }
    plain, prior = result["plain"], result["prior"]
    result["passed"] = (
        plain["share"] > CAP
        and prior["share"] < CAP
        and prior["train_share"] < CAP
        and prior["accuracy"] >= plain["accuracy"] - MARGIN
    )
    return result


# ---- cost of a penalized step ----


def step_costs(*, repeats: int, seed: int = 0) -> dict[str, float]:
    """Seconds per Adam step of the people model on a batch of 10, plain and penalized."""
    x, y = load_people(default_people_paths()[0])
    xb, yb = x[:10], y[:10]
    params = init_transformer_net(generator=torch.Generator().manual_seed(seed))
    refs = x[10:60]
    methods = {
        "input_gradients": tfx_explain.input_gradients,
        "integrated_gradients (4 steps)": functools.partial(
            tfx_explain.integrated_gradients, steps=4
        ),
        "expected_gradients (4 draws)": functools.partial(
            tfx_explain.expected_gradients,
            baselines=refs,
            n_samples=4,
            generator=torch.Generator().manual_seed(seed),
        ),
    }

    def mse(params):
        return ((transformer_net(params, xb) - yb) ** 2).mean()

    objectives = {"plain": mse}
    for name, method in methods.items():
        objectives[name] = lambda p, m=method: mse(p) + cap_penalty(p, xb, yb, method=m)
    seconds = {}
    for name, objective in objectives.items():
        step = grad(objective)
        state = adam_init(params)
        adam_update(params, step(params), state, lr=0.01)  # warm up
        begin = time.perf_counter()
        for _ in range(repeats):
            adam_update(params, step(params), state, lr=0.01)
        seconds[name] = (time.perf_counter() - begin) / repeats
    return seconds


def run(*, small: bool = False, seed: int = 0, costs: bool = True) -> dict:
    """Both verdicts (and, if ``costs``, the step timings); ``passed`` when both hold."""
    begin = time.perf_counter()
    decoy = decoy_verdict(small=small, seed=seed)
    people = people_verdict(small=small, seed=seed)
    cost = step_costs(repeats=3 if small else 20, seed=seed) if costs else None
    return {
        "decoy": decoy,
        "people": people,
        "costs": cost,
        "passed": decoy["passed"] and people["passed"],
        "seconds": time.perf_counter() - begin,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small and fast (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", help="accepted for examples/run_all.py; this example writes no file"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny models: threads cost more than they save
    r = run(small=args.small, seed=args.seed)
    d, p = r["decoy"], r["people"]
    print("decoy digits (accuracy on test digits: training decoy / random decoy; patch share)")
    for name in ("plain", "prior"):
        m = d[name]
        print(
            f"  {name:5s}  {m['same']:.3f} / {m['shifted']:.3f}   "
            f"input-gradient mass on the patch {m['patch']:.4f}"
        )
    print(f"people, share of input-gradient mass on {FIELD!r} (cap {CAP}), held-out accuracy")
    for name in ("plain", "prior"):
        m = p[name]
        print(
            f"  {name:5s}  share {m['share']:.4f} (train rows {m['train_share']:.4f})   "
            f"accuracy {m['accuracy']:.3f} (train rows {m['train_accuracy']:.3f})"
        )
    if r["costs"]:
        plain = r["costs"]["plain"]
        print("seconds per Adam step, batch of 10 (shared machines: rough)")
        for name, seconds in r["costs"].items():
            print(f"  {name:32s} {seconds * 1e3:8.1f} ms  {seconds / plain:5.1f}x plain")
    print(
        f"VERDICT: decoy-shifted accuracy plain {d['plain']['shifted']:.3f} vs prior "
        f"{d['prior']['shifted']:.3f} (patch share {d['plain']['patch']:.3f} -> "
        f"{d['prior']['patch']:.4f}); {FIELD} share {p['plain']['share']:.4f} -> "
        f"{p['prior']['share']:.4f} (cap {CAP}), accuracy {p['plain']['accuracy']:.3f} -> "
        f"{p['prior']['accuracy']:.3f} (margin {MARGIN}) in {r['seconds']:.1f} s: "
        + ("PASS" if r["passed"] else "FAIL")
    )
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
