"""The tfx-explain command line: the people job end to end on a short run."""

import contextlib
import io

import pytest

from tfx_explain.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short people run that saves its params: ``(params, folder, exit code, stdout)``.

    Every test that needs the saved file gets it from here, so no test depends on
    another having run first.
    """
    folder = tmp_path_factory.mktemp("cli")
    params = folder / "params.pt"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            ["people", "--epochs", "4", "--steps", "8", "--save", str(params), "--out", str(folder)]
        )
    return params, folder, code, out.getvalue()


def test_people_trains_reports_and_saves(trained):
    params, folder, code, out = trained
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
    infidelity = next(line for line in out.splitlines() if line.strip().startswith("infidelity"))
    ig, gxi, ablation, shapley = (float(v) for v in infidelity.split()[1:])
    assert min(ig, gxi, ablation, shapley) >= 0
    assert shapley < gxi  # gradient x input is relative to zeros, not the mean-row baseline


def test_people_loads_saved_params(trained, capsys):
    params = trained[0]
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
