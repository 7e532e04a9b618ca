"""Integrated gradients recover the known coefficients of a synthetic linear target.

Positive control for integrated gradients (IG). The data has 32 positive, 32
negative and 32 noise features, all uniform in [-1, 1], and the target

    y = sum_i pos_i (i + 1) / 32  -  sum_i neg_i (i + 1) / 32

so feature i's true coefficient c_i is known (0 for the noise features). An MLP
is trained on (x, y), and IG against the all-zeros baseline is computed for test
rows. If the network learned the target, f(x) - f(0) = sum_i c_i x_i and IG_i(x)
= c_i x_i, so the least-squares slope of IG_i against x_i over the test rows
(through the origin, since IG_i = 0 where x_i = 0) estimates c_i:

    slope_i = sum_b IG_bi x_bi / sum_b x_bi^2

Verdict: correlation(slope, c) > 0.99 and max_i |slope_i - c_i| < 0.1.

Run:
    python examples/ig_synthetic_linear.py [--small] [--out DIR]

Writes DIR/ig_synthetic_linear.png (expected vs estimated coefficient per feature).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

import tfx_explain

N_POS = N_NEG = N_NOISE = 32
MIN_CORRELATION = 0.99
MAX_ERROR = 0.1


def true_coefficients() -> torch.Tensor:
    """The known coefficients ``(96,)``: positive, negative, then noise (zeros)."""
    ramp = torch.arange(1, N_POS + 1, dtype=torch.float32) / N_POS
    return torch.cat([ramp, -ramp, torch.zeros(N_NOISE)])


def make_data(n_rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``x (N, 96)`` uniform in [-1, 1] and the target ``y = x @ coef`` ``(N,)``."""
    x = torch.rand(n_rows, N_POS + N_NEG + N_NOISE, generator=generator) * 2 - 1
    return x, x @ true_coefficients()


def train_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    generator: torch.Generator,
) -> nn.Module:
    """An MLP fitted to ``(x, y)`` by Adam on mean squared error, returned in eval mode."""
    with torch.random.fork_rng():  # weight init without touching the caller's global RNG
        torch.manual_seed(int(torch.randint(2**31, (), generator=generator)))
        model = nn.Sequential(
            nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1)
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    for _ in range(epochs):
        for rows in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = (model(x[rows]).squeeze(-1) - y[rows]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval().requires_grad_(False)


def slopes(attributions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Least-squares slope through the origin of each feature's attribution on its value.

    ``(B, D), (B, D) -> (D,)``: ``sum_b a_bi x_bi / sum_b x_bi^2``.
    """
    return (attributions * x).sum(0) / x.pow(2).sum(0)


def run(*, small: bool = False, out: str | Path = "out", seed: int = 0) -> dict:
    """Train, attribute and compare with the truth; return the verdict numbers.

    Returns:
      dict with ``correlation``, ``worst_error``, ``worst_feature``, ``noise_max``
      (largest |slope| of a noise feature), ``test_r2``, ``mean_gap`` (mean
      |completeness gap|), ``passed``, ``seconds`` and ``plot`` (PNG path).
    """
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    n_train, n_test, epochs, batch_size = (8000, 256, 12, 128) if small else (20000, 1000, 30, 64)
    x_train, y_train = make_data(n_train, generator)
    x_test, y_test = make_data(n_test, generator)
    model = train_mlp(x_train, y_train, epochs=epochs, batch_size=batch_size, generator=generator)

    def f(x: torch.Tensor) -> torch.Tensor:  # (B, 96) -> (B,)
        return model(x).squeeze(-1)

    with torch.no_grad():
        residual = f(x_test) - y_test
    test_r2 = float(1 - residual.pow(2).mean() / y_test.var())
    attributions = tfx_explain.integrated_gradients(f, x_test, steps=32)  # zero baseline
    gap = tfx_explain.completeness_gap(f, x_test, attributions)

    coef = true_coefficients()
    estimated = slopes(attributions, x_test)
    errors = (estimated - coef).abs()
    correlation = float(torch.corrcoef(torch.stack([estimated, coef]))[0, 1])
    worst = int(errors.argmax())
    names = feature_names()

    path = None
    try:
        from tfx_explain import plot

        categories = ["positive"] * N_POS + ["negative"] * N_NEG + ["noise"] * N_NOISE
        path = Path(out) / "ig_synthetic_linear.png"
        plot.expected_vs_estimated(
            coef,
            estimated,
            path,
            categories=categories,
            title="Integrated gradients vs known coefficients (96 features)",
            xlabel="true coefficient c_i",
            ylabel="slope of IG_i on x_i over test rows",
        )
    except ImportError as err:
        print(f"(no plot: {err})")
    result = {
        "correlation": correlation,
        "worst_error": float(errors[worst]),
        "worst_feature": names[worst],
        "noise_max": float(estimated[N_POS + N_NEG :].abs().max()),
        "test_r2": test_r2,
        "mean_gap": float(gap.abs().mean()),
        "plot": path,
    }
    result["passed"] = correlation > MIN_CORRELATION and result["worst_error"] < MAX_ERROR
    result["seconds"] = time.perf_counter() - start
    return result


def feature_names() -> list[str]:
    return (
        [f"POS_{i}" for i in range(N_POS)]
        + [f"NEG_{i}" for i in range(N_NEG)]
        + [f"NOISE_{i}" for i in range(N_NOISE)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small and fast (smoke test)")
    parser.add_argument("--out", default="out", help="folder for the PNG (default: out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = run(small=args.small, out=args.out, seed=args.seed)
    print(f"model fit on test rows: R^2 = {r['test_r2']:.4f}")
    print(f"mean |completeness gap| of IG: {r['mean_gap']:.2e}")
    print(f"correlation(IG slope, true coefficient) = {r['correlation']:.4f}")
    print(f"worst |slope - coefficient| = {r['worst_error']:.4f} ({r['worst_feature']})")
    print(f"largest |slope| of a noise feature = {r['noise_max']:.4f}")
    if r["plot"]:
        print(f"wrote {r['plot']}")
    verdict = "PASS" if r["passed"] else "FAIL"
    print(
        f"VERDICT: {verdict} (correlation {r['correlation']:.4f}, want > {MIN_CORRELATION}; "
        f"worst error {r['worst_error']:.4f}, want < {MAX_ERROR}) in {r['seconds']:.1f} s"
    )
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
