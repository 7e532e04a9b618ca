"""Integrated gradients over a dict input find the one keyword and the one number that matter.

Positive control for pytree inputs. Each synthetic sample has three modalities:

- text: L = 6 token ids from a vocabulary of 24 (id 0 never drawn), looked up in a
  trained embedding table, so the model sees ``(B, L, H)`` token embeddings;
- numbers: k = 4 standard normal values;
- categories: a one-hot of c = 3 categories.

The target depends on one keyword (token id KEYWORD, present once in half of the
sentences) and one number (index NUMBER); the other numbers, the category and
the other tokens are noise:

    y = 2 [KEYWORD in text] + 1.5 numbers[NUMBER] + 0.05 noise

A small model (per-token tanh layer, mean over tokens, concatenated with the
numbers and the one-hot, tanh MLP) is trained on 3000 samples. Integrated
gradients of its output take x = {"text", "numbers", "categories"} whole, against
the baseline {zero embeddings, zero numbers (their mean), uniform 1/c one-hot},
and return the same dict. Per modality, per token (sum over the embedding dim)
and per number, the verdict checks the attributions against the truth:

- the keyword is the top-|score| token in >= 90% of the test sentences holding it;
- numbers[NUMBER] has the largest mean |attribution| of the numbers;
- categories get < 5% of the total mean |attribution|.

Run:
    python examples/multimodal.py [--small] [--out DIR]

Writes DIR/multimodal.png: left, the share of mean |attribution| per modality, the
numbers the verdict uses; right, the mean |attribution| of each number and category.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

import tfx_explain

VOCAB, LENGTH, HIDDEN, N_NUMBERS, N_CATEGORIES = 24, 6, 8, 4, 3
KEYWORD, NUMBER = 7, 1
MIN_KEYWORD_HITS = 0.9
MAX_CATEGORY_SHARE = 0.05


def make_data(n: int, generator: torch.Generator) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Samples ``{"ids" (n, L), "numbers" (n, k), "categories" (n, c)}``, targets ``(n,)``
    and the keyword position ``(n,)`` (-1 where there is none)."""
    ids = torch.randint(1, VOCAB - 1, (n, LENGTH), generator=generator)
    ids = torch.where(ids >= KEYWORD, ids + 1, ids)  # ids in [1, VOCAB) without the keyword
    has = torch.rand(n, generator=generator) < 0.5
    position = torch.randint(LENGTH, (n,), generator=generator)
    rows = has.nonzero()[:, 0]
    ids[rows, position[rows]] = KEYWORD
    numbers = torch.randn(n, N_NUMBERS, generator=generator)
    categories = nn.functional.one_hot(
        torch.randint(N_CATEGORIES, (n,), generator=generator), N_CATEGORIES
    ).float()
    noise = torch.randn(n, generator=generator)
    y = 2.0 * has.float() + 1.5 * numbers[:, NUMBER] + 0.05 * noise
    samples = {"ids": ids, "numbers": numbers, "categories": categories}
    return samples, y, torch.where(has, position, -1)


class MultimodalNet(nn.Module):
    """``{"text" (B, L, H), "numbers" (B, k), "categories" (B, c)} -> (B,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.token = nn.Sequential(nn.Linear(HIDDEN, 16), nn.Tanh())
        self.mlp = nn.Sequential(
            nn.Linear(16 + N_NUMBERS + N_CATEGORIES, 32), nn.Tanh(), nn.Linear(32, 1)
        )

    def inputs(self, samples: dict) -> dict:
        """The attributed dict: token ids replaced by their (detached) embeddings."""
        with torch.no_grad():
            text = self.embed(samples["ids"])
        return {"text": text, "numbers": samples["numbers"], "categories": samples["categories"]}

    def forward(self, x: dict) -> torch.Tensor:
        words = self.token(x["text"]).mean(1)  # (B, L, H) -> (B, 16)
        return self.mlp(torch.cat([words, x["numbers"], x["categories"]], dim=1)).squeeze(-1)


def train(samples: dict, y: torch.Tensor, *, epochs: int, generator: torch.Generator):
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**31, (), generator=generator)))
        net = MultimodalNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    n = y.shape[0]
    for _ in range(epochs):
        for rows in torch.randperm(n, generator=generator).split(100):
            x = {
                "text": net.embed(samples["ids"][rows]),
                "numbers": samples["numbers"][rows],
                "categories": samples["categories"][rows],
            }
            loss = (net(x) - y[rows]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval().requires_grad_(False)


def run(*, small: bool = False, out: str | Path = "out", seed: int = 0) -> dict:
    """Train, attribute the dict input, check per modality/token/number against the truth.

    Returns:
      dict with ``test_r2``, ``modality_share`` ({name: share of mean |attr|}),
      ``number_importance`` (k,), ``keyword_hits`` (fraction of keyword sentences
      whose top token is the keyword), ``max_gap``, ``passed``, ``seconds``, ``plot`` and
      ``figure`` (its matplotlib Figure).
    """
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    n_train, n_test, epochs = (2000, 200, 15) if small else (3000, 500, 30)
    train_samples, y_train, _ = make_data(n_train, generator)
    test_samples, y_test, position = make_data(n_test, generator)
    net = train(train_samples, y_train, epochs=epochs, generator=generator)

    x = net.inputs(test_samples)
    with torch.no_grad():
        residual = net(x) - y_test
    test_r2 = float(1 - residual.pow(2).mean() / y_test.var())
    baseline = {
        "text": torch.zeros(1, LENGTH, HIDDEN),
        "numbers": torch.zeros(1, N_NUMBERS),
        "categories": torch.full((1, N_CATEGORIES), 1.0 / N_CATEGORIES),
    }
    attr = tfx_explain.integrated_gradients(net, x, baseline=baseline, steps=32)
    gap = tfx_explain.completeness_gap(net, x, attr, baseline=baseline)

    # one definition for the verdict, the printout and the picture: the share of a
    # modality is its summed attribution's mean |.| over samples, normalized to sum 1
    modalities = {name: name for name in ("text", "numbers", "categories")}
    share = tfx_explain.global_importance(attr, groups=modalities)  # (3,)
    tokens = attr["text"].sum(-1)  # (B, L): per-token score
    with_keyword = position >= 0
    top = tokens.abs().argmax(1)
    keyword_hits = float((top[with_keyword] == position[with_keyword]).float().mean())
    number_importance = attr["numbers"].abs().mean(0)  # (k,)
    category_importance = attr["categories"].abs().mean(0)  # (c,)

    path = fig = None
    try:
        from matplotlib.figure import Figure

        from tfx_explain import plot

        path = Path(out) / "multimodal.png"
        fig = Figure(figsize=(11.0, 3.6), dpi=110, layout="constrained")  # no pyplot state
        left, right = fig.subplots(1, 2, width_ratios=[1, 1.3])
        plot.field_bars(
            share,
            list(modalities),
            ax=left,
            highlight=["text", "numbers"],
            title="share of mean |attribution| per modality (the verdict's)",
            xlabel="share of mean |attribution|",
        )
        features = [f"number {i}" for i in range(N_NUMBERS)]
        features += [f"category {i}" for i in range(N_CATEGORIES)]
        plot.field_bars(
            torch.cat([number_importance, category_importance]),
            features,
            path,
            ax=right,
            highlight=[f"number {NUMBER}"],
            title="mean |attribution| per number and category (not shares)",
            xlabel="mean |attribution|",
        )
    except ImportError as err:
        print(f"(no plot: {err})")
    result = {
        "test_r2": test_r2,
        "modality_share": dict(zip(modalities, share.tolist(), strict=True)),
        "number_importance": number_importance.tolist(),
        "category_importance": category_importance.tolist(),
        "keyword_hits": keyword_hits,
        "max_gap": float(gap.abs().max()),
        "plot": path,
        "figure": fig,
    }
    result["passed"] = (
        keyword_hits >= MIN_KEYWORD_HITS
        and int(number_importance.argmax()) == NUMBER
        and result["modality_share"]["categories"] < MAX_CATEGORY_SHARE
    )
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small and fast (smoke test)")
    parser.add_argument("--out", default="out", help="folder for the PNG (default: out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = run(small=args.small, out=args.out, seed=args.seed)
    print(f"model fit on test samples: R^2 = {r['test_r2']:.4f}")
    print(f"largest |completeness gap| of IG: {r['max_gap']:.1e}")
    shares = ", ".join(f"{k} {v:.3f}" for k, v in r["modality_share"].items())
    print(f"share of mean |attribution| per modality: {shares}")
    numbers = ", ".join(f"{v:.3f}" for v in r["number_importance"])
    print(f"mean |attribution| per number: {numbers} (truth: number {NUMBER})")
    categories = ", ".join(f"{v:.3f}" for v in r["category_importance"])
    print(
        f"mean |attribution| per category: {categories} (one-hot against the uniform "
        "baseline: they cancel within a sample, so the modality's share stays small)"
    )
    print(f"keyword is the top token in {r['keyword_hits']:.1%} of the sentences holding it")
    if r["plot"]:
        print(f"wrote {r['plot']}")
    verdict = "PASS" if r["passed"] else "FAIL"
    shares = r["modality_share"]
    top = max(range(N_NUMBERS), key=lambda i: r["number_importance"][i])
    print(
        f"VERDICT: {verdict} (keyword hits {r['keyword_hits']:.0%}, want >= "
        f"{MIN_KEYWORD_HITS:.0%}; top number {top}, want {NUMBER}; shares text "
        f"{shares['text']:.3f}, numbers {shares['numbers']:.3f}, categories "
        f"{shares['categories']:.3f}, want "
        f"categories < {MAX_CATEGORY_SHARE:.0%}) in {r['seconds']:.1f} s"
    )
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
