"""Integrated gradients find the sentiment words of a sentence classifier on frozen MiniLM.

Positive control for token attribution through a pretrained transformer. The 40
sentences of data/sentiment_sentences.tsv (20 positive, 20 negative) were
written so that each carries its sentiment in one or two clear words ("delicious",
"rude", ...; listed in SENTIMENT_WORDS below) inside otherwise neutral text, and
positive and negative sentences share their neutral frames ("The hotel room was
... "). A logistic-regression head is trained on the frozen all-MiniLM-L6-v2
sentence embeddings (mean pooling, L2 norm) of 30 sentences; 10 are held out.

For each explained sentence, integrated gradients (IG) of the predicted class's
logit with respect to the word embeddings, against the [PAD] baseline that keeps
[CLS]/[SEP] and the mask, gives a score per word piece; pieces of one word are
summed into the word (the sum keeps completeness). If the classifier uses the
sentiment, the top-scoring word is a sentiment word:

    hit(s) = [argmax_w score_w(s) in SENTIMENT_WORDS]

Verdict: held-out accuracy >= 0.8 and hit rate >= 0.8 over the explained
sentences that are classified correctly.

Run:
    python examples/text_classification.py [--small] [--out DIR]

Writes DIR/text_classification_positive.png and _negative.png (token scores of
up to 8 explained sentences of each class, one strip per sentence). Needs the text extra:
    pip install "torch==2.13.0" -e ".[text]"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

import tfx_explain
from tfx_explain import text

DATA = Path(__file__).resolve().parents[1] / "data" / "sentiment_sentences.tsv"
SENTIMENT_WORDS = frozenset(
    """
    delicious friendly wonderful loved clean comfortable excellent fantastic helpful amazing
    happy tasty warm brilliant beautiful great fast lovely superb enjoyed perfect pleasant
    kind patient sturdy nice delightful
    cold rude boring hated dirty noisy terrible awful unhelpful disappointing mess angry
    bland stale horrible ugly trash slow broken dull poor miserable bitter gross unpleasant
    mean impatient flimsy bad sad pointless
    """.split()
)
MIN_ACCURACY = 0.8
MIN_HIT_RATE = 0.8
MAX_SHOWN = 8  # sentences per picture


def load_sentences(path: str | Path = DATA) -> tuple[list[str], torch.Tensor]:
    """Sentences and labels ``(N,)`` from a ``label<TAB>sentence`` file (``#`` comments)."""
    sentences, labels = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, sentence = line.partition("\t")
        if not sep or label not in ("0", "1") or not sentence.strip():
            raise ValueError(f"{path}, line {number}: expected 'label<TAB>sentence', got {line!r}")
        sentences.append(sentence.strip())
        labels.append(int(label))
    return sentences, torch.tensor(labels)


def train_head(u: torch.Tensor, y: torch.Tensor, *, epochs: int = 300, seed: int = 0) -> nn.Module:
    """Logistic regression ``(N, H) -> (N, 2)`` logits, by Adam on cross-entropy."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = nn.Linear(u.shape[1], 2)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(head(u), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval().requires_grad_(False)


def words(tokens: list[str], scores: list[float]) -> list[tuple[str, float]]:
    """Word pieces merged into words (``##`` continues a word), their scores summed."""
    merged: list[tuple[str, float]] = []
    for token, score in zip(tokens, scores, strict=True):
        if token in ("[CLS]", "[SEP]", "[PAD]"):
            continue
        if token.startswith("##") and merged:
            word, total = merged[-1]
            merged[-1] = (word + token[2:], total + score)
        else:
            merged.append((token, score))
    return merged


def run(*, small: bool = False, out: str | Path = "out", seed: int = 0) -> dict:
    """Train the head, explain sentences, compare their top words with the truth.

    Returns:
      dict with ``accuracy`` (held out), ``hit_rate``, ``explained`` (rows of
      sentence, label, prediction, top word, hit), ``max_gap`` (largest |IG
      completeness gap|), ``passed``, ``seconds`` and ``plots``.
    """
    start = time.perf_counter()
    tokenizer, model = text.load_minilm()
    sentences, labels = load_sentences()
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    embeddings, rest = text.split_encoder(model, enc["input_ids"], enc["attention_mask"])
    x_all = text.encoder_inputs(embeddings, enc["attention_mask"])
    with torch.no_grad():
        u = text.sentence_embedding(rest(x_all), x_all["mask"])  # (N, H)

    held_out = torch.arange(len(sentences)) % 4 == 3  # 5 positive, 5 negative
    head = train_head(u[~held_out], labels[~held_out], seed=seed)
    with torch.no_grad():
        predicted = head(u).argmax(1)
    accuracy = float((predicted[held_out] == labels[held_out]).float().mean())

    # small: the 10 held-out sentences; full: all 40
    rows = held_out.nonzero()[:, 0] if small else torch.arange(len(sentences))
    ids, mask = enc["input_ids"][rows], enc["attention_mask"][rows]
    embeddings, rest = text.split_encoder(model, ids, mask)
    x = text.encoder_inputs(embeddings, mask)
    keep = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    baseline = text.pad_baseline(model, ids, mask, keep_ids=keep, pad_id=tokenizer.pad_token_id)

    def logits(x: dict) -> torch.Tensor:  # {(B, L, H), (B, L)} -> (B, 2)
        return head(text.sentence_embedding(rest(x), x["mask"]))

    target = predicted[rows]
    steps = 32 if small else 64
    attr = tfx_explain.integrated_gradients(
        logits, x, baseline=baseline, target=target, steps=steps
    )
    gap = tfx_explain.completeness_gap(logits, x, attr, baseline=baseline, target=target)
    scores = text.token_scores(attr)  # (B, L)

    explained = []
    for i, row in enumerate(rows.tolist()):
        tokens = tokenizer.convert_ids_to_tokens(ids[i][mask[i].bool()])
        merged = words(tokens, scores[i, : len(tokens)].tolist())
        top = max(merged, key=lambda pair: pair[1])[0]
        correct = int(predicted[row]) == int(labels[row])
        explained.append(
            {
                "sentence": sentences[row],
                "label": int(labels[row]),
                "predicted": int(predicted[row]),
                "top_word": top,
                "hit": top in SENTIMENT_WORDS,
                "correct": correct,
                "tokens": tokens,
                "scores": scores[i, : len(tokens)].tolist(),
            }
        )
    judged = [e for e in explained if e["correct"]]
    hit_rate = sum(e["hit"] for e in judged) / max(1, len(judged))

    plots = []
    try:
        from matplotlib.figure import Figure

        from tfx_explain import plot

        for label, name in ((1, "positive"), (0, "negative")):
            shown = [e for e in explained if e["label"] == label][:MAX_SHOWN]
            if not shown:
                continue
            width = min(18.0, max(8.0, 0.13 * max(len(" ".join(e["tokens"])) for e in shown)))
            fig = Figure(figsize=(width, 0.3 + 1.05 * len(shown)), dpi=110, layout="constrained")
            fig.suptitle(f"IG of the predicted logit, {name} sentences (green: for the class)")
            for ax, e in zip(fig.subplots(len(shown), 1, squeeze=False)[:, 0], shown, strict=True):
                said = "positive" if e["predicted"] == 1 else "negative"
                plot.token_strip(
                    e["tokens"],
                    e["scores"],
                    ax=ax,
                    bars=False,
                    title=f"{e['sentence']}  (predicted {said}, top word {e['top_word']!r})",
                )
            plots.append(Path(out) / f"text_classification_{name}.png")
            plots[-1].parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(plots[-1])
    except ImportError as err:
        print(f"(no plot: {err})")
    result = {
        "accuracy": accuracy,
        "hit_rate": hit_rate,
        "explained": explained,
        "max_gap": float(gap.abs().max()),
        "plots": plots,
    }
    result["passed"] = accuracy >= MIN_ACCURACY and hit_rate >= MIN_HIT_RATE
    result["seconds"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="held-out sentences only, 32 steps")
    parser.add_argument("--out", default="out", help="folder for the PNGs (default: out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    r = run(small=args.small, out=args.out, seed=args.seed)
    print(f"held-out accuracy of the logistic head: {r['accuracy']:.2f}")
    print(f"largest |completeness gap| of IG: {r['max_gap']:.1e}")
    print("\nlabel pred  top word        sentence")
    for e in r["explained"]:
        mark = "" if e["hit"] else "   <- not a sentiment word"
        print(f"  {e['label']}    {e['predicted']}   {e['top_word']:<14}  {e['sentence']}{mark}")
    for path in r["plots"]:
        print(f"wrote {path}")
    verdict = "PASS" if r["passed"] else "FAIL"
    print(
        f"\nVERDICT: {verdict} (top word is a sentiment word in {r['hit_rate']:.0%} of the "
        f"correctly classified sentences, want >= {MIN_HIT_RATE:.0%}; accuracy "
        f"{r['accuracy']:.2f}, want >= {MIN_ACCURACY}) in {r['seconds']:.1f} s"
    )
    return 0 if r["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
