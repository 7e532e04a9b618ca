"""Attribution maps of a small CNN on 8x8 digits, checked by deleting the top pixels.

The image part of the integrated gradients seed, offline: scikit-learn's bundled
``load_digits`` (1797 grayscale 8x8 digits, no download) instead of a photo and a
pretrained ResNet. A small CNN is trained on 70% of the digits. For test digits it
draws, next to each digit, the maps of

- integrated gradients (IG) from a black baseline (all zeros),
- IG from a blurred baseline (the digit averaged over 3x3 neighbourhoods, twice),
- SmoothGrad (input gradients averaged over Gaussian noise),
- occlusion with 2x2 windows set to black,

each explaining the logit of the predicted class.

Evaluation with ``tfx_explain.metrics``, for every map and for random attributions
(mean over several draws), all in batched passes:

- deletion area (MoRF: pixels set to black, most relevant first; lower is better),
- insertion area (pixels of the digit put into a black image; higher is better),
- ROAD area (Rong et al. 2022: removed pixels imputed from their neighbours plus
  noise, so the score does not favour the black baseline that IG itself used; lower
  is better).

Verdict: deletion faithfulness. For each test digit, setting the 20% of pixels with
the largest black-baseline IG attribution to the baseline (0) should lower the
predicted class logit far more than setting a random 20% of pixels to 0 (mean over
test digits and several random draws); it is read off the deletion curve:

    drop(S) = f_t(x) - f_t(x with the pixels in S set to 0)

PASS when the mean IG drop exceeds 2x the mean random drop.

Run:
    python examples/images_digits.py [--small] [--out DIR]

Writes DIR/images_digits.png (digits and their four maps).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import tfx_explain
from tfx_explain import metrics

FRACTION = 0.2
MARGIN = 2.0


def load(generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Digits scaled to [0, 1]: ``x_train (N, 1, 8, 8), y_train (N,), x_test, y_test``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=generator)
    n_train = int(0.7 * len(x))
    train, test = order[:n_train], order[n_train:]
    return x[train], y[train], x[test], y[test]


def make_cnn() -> nn.Module:
    """Two 3x3 convolutions, a 2x2 max-pool and a linear layer: ``(B, 1, 8, 8) -> (B, 10)``."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def train(
    x: torch.Tensor, y: torch.Tensor, *, epochs: int, generator: torch.Generator
) -> nn.Module:
    """A CNN fitted by Adam on cross-entropy, returned in eval mode with frozen weights."""
    with torch.random.fork_rng():  # weight init without touching the caller's global RNG
        torch.manual_seed(int(torch.randint(2**31, (), generator=generator)))
        model = make_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for rows in torch.randperm(len(x), generator=generator).split(64):
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval().requires_grad_(False)


def blur(x: torch.Tensor) -> torch.Tensor:
    """Two passes of a 3x3 mean filter (zero padding): ``(B, 1, H, W) -> (B, 1, H, W)``."""
    kernel = x.new_full((1, 1, 3, 3), 1 / 9)
    return F.conv2d(F.conv2d(x, kernel, padding=1), kernel, padding=1)


def run(*, small: bool = False, out: str | Path = "out", seed: int = 0, draws: int = 10) -> dict:
    """Train, draw the maps, measure deletion drops; return the verdict numbers.

    Returns:
      dict with ``accuracy``, ``drops`` (method -> mean logit drop), ``random_drop``,
      ``areas`` (method or ``"random"`` -> mean deletion, insertion and ROAD areas),
      ``ratio`` (IG drop / random drop), ``passed``, ``seconds`` and ``plot``.
    """
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    epochs, n_explained = (6, 64) if small else (25, 300)
    x_train, y_train, x_test, y_test = load(generator)
    model = train(x_train, y_train, epochs=epochs, generator=generator)
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())

    x = x_test[:n_explained]
    with torch.no_grad():
        logits = model(x)  # (B, 10)
    predicted = logits.argmax(1)  # explain the predicted class

    smooth = tfx_explain.smoothgrad(
        tfx_explain.input_gradients, n_samples=16 if small else 50, sigma=0.15, generator=generator
    )
    maps = {
        "IG, black baseline": tfx_explain.integrated_gradients(
            model, x, target=predicted, steps=32
        ),
        "IG, blurred baseline": tfx_explain.integrated_gradients(
            model, x, baseline=blur(x), target=predicted, steps=32
        ),
        "SmoothGrad": smooth(model, x, target=predicted),
        "occlusion 2x2": tfx_explain.occlusion(model, x, window=(1, 2, 2), target=predicted),
    }
    fractions = torch.linspace(0, 1, 11)
    at = int(torch.argmin((fractions - FRACTION).abs()))  # the verdict's 20% point
    k = round(float(fractions[at]) * x[0].numel())
    random = torch.rand((draws,) + x.shape, generator=generator).flatten(0, 1)
    x_r, t_r = x.repeat(draws, 1, 1, 1), predicted.repeat(draws)  # draw-major rows
    scores = {}
    for name, (images, attr, t) in {
        **{name: (x, a, predicted) for name, a in maps.items()},
        "random": (x_r, random, t_r),
    }.items():
        with torch.no_grad():
            deletion = metrics.deletion_curve(model, images, attr, fractions=fractions, target=t)
            insertion = metrics.insertion_curve(model, images, attr, fractions=fractions, target=t)
            road = metrics.road(model, images, attr, target=t, generator=generator)
        scores[name] = {
            "drop": float((deletion.values[:, 0] - deletion.values[:, at]).mean()),
            "deletion": float(deletion.area.mean()),
            "insertion": float(insertion.area.mean()),
            "road": float(road.area.mean()),
        }
    drops = {name: scores[name]["drop"] for name in maps}
    random_drop = scores["random"]["drop"]
    ig_drop = drops["IG, black baseline"]
    ratio = ig_drop / random_drop if random_drop > 0 else float("inf")

    path = None
    try:
        from tfx_explain import plot

        shown = slice(0, 5)
        path = Path(out) / "images_digits.png"
        plot.image_overlays(
            x[shown, 0],
            {name: a[shown, 0] for name, a in maps.items()},
            path,
            row_labels=[
                f"label {int(t)}, predicted {int(p)}"
                for t, p in zip(y_test[shown], predicted[shown], strict=True)
            ],
            title="Attribution of the predicted digit's logit",
        )
    except ImportError as err:
        print(f"(no plot: {err})")
    return {
        "accuracy": accuracy,
        "n_explained": len(x),
        "k": k,
        "drops": drops,
        "areas": scores,
        "random_drop": random_drop,
        "ratio": ratio,
        "passed": ig_drop > MARGIN * random_drop and ig_drop > 0,
        "plot": path,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small and fast (smoke test)")
    parser.add_argument("--out", default="out", help="folder for the PNG (default: out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = run(small=args.small, out=args.out, seed=args.seed)
    print(f"CNN test accuracy: {r['accuracy']:.4f}")
    print(
        f"mean drop of the predicted logit after deleting {r['k']} of 64 pixels "
        f"({r['n_explained']} test digits):"
    )
    for name, drop in r["drops"].items():
        print(f"  top pixels by {name:22s} {drop:8.3f}")
    print(f"  random pixels (mean of draws)         {r['random_drop']:8.3f}")
    print("mean curve areas (logit; deletion and ROAD: lower is better, insertion: higher):")
    print(f"  {'map':22s} {'deletion':>9s} {'insertion':>9s} {'ROAD':>9s}")
    for name, area in r["areas"].items():
        print(f"  {name:22s} {area['deletion']:9.3f} {area['insertion']:9.3f} {area['road']:9.3f}")
    if r["plot"]:
        print(f"wrote {r['plot']}")
    verdict = "PASS" if r["passed"] else "FAIL"
    print(
        f"VERDICT: IG deletion drop {r['drops']['IG, black baseline']:.3f} vs random "
        f"{r['random_drop']:.3f} = {r['ratio']:.1f}x (want > {MARGIN}x) "
        f"in {r['seconds']:.1f} s: {verdict}"
    )
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
