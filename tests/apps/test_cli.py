"""The tfx-explain command line: the people job end to end on a short run."""

import pytest

from tfx_explain.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    return folder / "params.pt", folder


def test_people_trains_reports_and_saves(saved, capsys):
    params, folder = saved
    code = main(
        ["people", "--epochs", "4", "--steps", "8", "--save", str(params), "--out", str(folder)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert params.exists()
    assert "Accuracy (within 10% of the true income): train" in out
    assert "34-year-old male moderate from Oklahoma: $" in out
    assert "Training-time input-gradient importance" in out
    for column in ["integrated gradients", "gradient x input", "field ablation", "exact Shapley"]:
        assert column in out
    for field in ["sex", "age", "state", "politics"]:
        assert f"\n  {field} " in out
    png = folder / "people_field_importance.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # exact Shapley closes the gap to float32 rounding, IG with 8 steps does not claim to
    gap_line = next(line for line in out.splitlines() if line.strip().startswith("|gap|"))
    assert float(gap_line.split()[-1]) < 1e-5


def test_people_loads_saved_params(saved, capsys):
    params, folder = saved
    assert main(["people", "--load", str(params), "--no-plot", "--steps", "8"]) == 0
    out = capsys.readouterr().out
    assert f"Loaded params from {params}" in out
    assert "Training-time input-gradient importance" not in out  # only known when training


def test_people_reports_a_malformed_file(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("1\t0.5\t1\t0\n")
    assert main(["people", "--train", str(bad), "--epochs", "1", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "bad.txt" in err and "line 1" in err


def test_people_reports_a_corrupt_params_file(tmp_path, capsys):
    bad = tmp_path / "params.pt"
    bad.write_bytes(b"not a torch file")
    assert main(["people", "--load", str(bad), "--no-plot"]) == 2
    assert "params.pt" in capsys.readouterr().err


def test_people_saves_its_params_to_out_by_default_and_attribute_finds_them(tmp_path, capsys):
    from tfx_explain.cli import PARAMS_FILE, build_parser

    args = ["people", "--epochs", "2", "--steps", "4", "--no-plot", "--out", str(tmp_path)]
    assert main(args) == 0
    saved = tmp_path / PARAMS_FILE
    assert saved.is_file() and f"Saved params to {saved}" in capsys.readouterr().out
    attribute = build_parser().parse_args(["attribute", "--input", "x", "--out", "y"])
    assert attribute.params == "out/people_params.pt" == f"out/{PARAMS_FILE}"
    again = tmp_path / "again"
    assert (
        main(
            [
                "people",
                "--epochs",
                "1",
                "--steps",
                "4",
                "--no-plot",
                "--no-save",
                "--out",
                str(again),
            ]
        )
        == 0
    )
    assert not again.exists()  # --no-save and --no-plot: nothing written
    assert (
        main(["people", "--load", str(saved), "--no-plot", "--steps", "4", "--out", str(again)])
        == 0
    )
    assert not again.exists()  # loaded params are not saved again


def test_people_chart_keeps_the_training_gradient_apart(tmp_path):
    from tfx_explain.cli import _people_chart

    rows = [["sex", 0.1, 0.2], ["age", 0.9, 0.8]]
    path = _people_chart(rows, ["sex", "age"], ["exact Shapley"], tmp_path, importance=[0.5])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
