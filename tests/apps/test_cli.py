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


# ---- issue 13: a bad run ends with one `error:` line naming the flag, exit code 2 ----------


def _fails(argv, capsys, *expected):
    """Run ``argv``; assert exit 2, one error line with every ``expected`` text, no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_people_refuses_bad_files_before_training(tmp_path, capsys):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    _fails(["people", "--train", str(tmp_path), "--no-plot"], capsys, "--train", "directory")
    _fails(["people", "--train", str(binary), "--epochs", "1", "--no-plot"], capsys, "blob.bin")
    missing = tmp_path / "no" / "such" / "params.pt"
    _fails(["people", "--save", str(missing), "--no-plot"], capsys, "--save", "does not exist")
    a_file = tmp_path / "taken"
    a_file.write_text("")
    _fails(["people", "--out", str(a_file)], capsys, "--out", "existing file")
    _fails(["people", "--epochs", "0", "--no-plot"], capsys, "--epochs must be >= 1")


def test_people_names_the_architecture_of_other_params(tmp_path, capsys):
    from tfx_explain.people import init_transformer_net, save_params

    five = tmp_path / "five.pt"
    save_params(init_transformer_net(n_features=5), five)
    _fails(
        ["people", "--load", str(five), "--no-plot"],
        capsys,
        "--load",
        "expected 8 features, the file has 5",
    )


def test_people_data_refuses_rows_beyond_the_maximum(tmp_path, capsys):
    pytest.importorskip("dask")
    _fails(
        ["people-data", "--out", str(tmp_path / "d"), "--rows", str(10**10)],
        capsys,
        "--rows must be <= 100,000,000",
    )
    assert not (tmp_path / "d").exists()


def test_attribute_refuses_bad_flags_in_a_moment(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask")
    import tfx_explain.distributed._job as job
    from tfx_explain.distributed import write_people_parquet
    from tfx_explain.people import init_transformer_net, save_params

    data = write_people_parquet(tmp_path / "data", n_rows=20)
    params = tmp_path / "net.pt"
    save_params(init_transformer_net(), params)
    text = tmp_path / "notes.txt"
    text.write_text("not a params file\n")
    a_file = tmp_path / "taken"
    a_file.write_text("")
    base = ["attribute", "--input", str(data), "--params", str(params), "--quiet"]
    out = ["--out", str(tmp_path / "out")]
    _fails(base + out + ["--method", "no_such_mod:fn"], capsys, "--method", "cannot be imported")
    line = _fails(base + out + ["--method", "integrated"], capsys, "--method")
    assert "ig, gxi, grad, occlusion, ablation, shapley, eg" in line
    _fails(base + out + ["--workers", "0"], capsys, "--workers must be >= 1")
    _fails(base + ["--out", str(a_file)], capsys, "--out", "existing file")
    _fails(base + out + ["--option", "steps=abc"], capsys, "first valid row", "steps")
    _fails(base + out + ["--option", "steps=1e9"], capsys, "steps must be an int")
    _fails(base + out + ["--option", f"steps={10**9}"], capsys, "steps must be <= 16384")
    text_params = ["attribute", "--input", str(data), "--params", str(text), "--quiet"]
    _fails(text_params + out, capsys, "notes.txt", "cannot be read as a params file")
    five = tmp_path / "five.pt"
    save_params(init_transformer_net(n_features=5), five)
    five_params = ["attribute", "--input", str(data), "--params", str(five), "--quiet"]
    _fails(five_params + out, capsys, "expected 8 features, the file has 5")
    monkeypatch.setattr(job, "_CONNECT_TIMEOUT", "1s")
    _fails(base + out + ["--scheduler", "tcp://127.0.0.1:9"], capsys, "--scheduler", "reached")
    assert not (tmp_path / "out").exists()


def test_text_refuses_a_sentence_longer_than_the_model(capsys):
    pytest.importorskip("tfx_explain.text")
    long = " ".join(["word"] * 600)
    _fails(["text", long, "short", "--format", "none"], capsys, "SENTENCE_A", "512")
