"""Tests for tfx_explain.people and the shipped synthetic people files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tfx_explain.people import (
    PEOPLE_FEATURES,
    PEOPLE_FIELDS,
    default_people_paths,
    load_people,
    people_row,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tfx_explain" / "people" / "data"
GOOD = "-1\t0.39\t0\t0\t1\t0.5120\t0\t1\t0"


def test_default_paths_point_at_the_shipped_files():
    train, test = default_people_paths()
    assert train == DATA / "people_train.txt" and test == DATA / "people_test.txt"


@pytest.mark.parametrize(("index", "n_rows"), [(0, 200), (1, 40)])
def test_load_shipped_files(index, n_rows):
    x, y = load_people(default_people_paths()[index])
    assert x.shape == (n_rows, 8) and y.shape == (n_rows,)
    assert x.dtype == y.dtype == torch.float32
    assert set(x[:, 0].tolist()) == {-1.0, 1.0}
    assert 0.18 <= x[:, 1].min() and x[:, 1].max() <= 0.70
    for columns in (PEOPLE_FIELDS["state"], PEOPLE_FIELDS["politics"]):
        hot = x[:, list(columns)]
        assert torch.equal(hot.sum(1), torch.ones(n_rows)) and set(hot.flatten().tolist()) <= {0, 1}
    assert 0.15 < y.min() and y.max() < 0.85


def test_shipped_files_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_people", ROOT / "data" / "make_people.py")
    make_people = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_people)
    for name, text in make_people.render().items():
        assert (DATA / name).read_text() == text


def test_age_drives_income_in_the_shipped_data():
    x, y = load_people(default_people_paths()[0])
    design = torch.cat([torch.ones(len(x), 1), x[:, [0, 1, 2, 4, 5, 7]]], dim=1).double()
    coef = torch.linalg.lstsq(design, y.double()[:, None]).solution[:, 0]
    assert coef[2] == pytest.approx(0.95, abs=0.1)  # age, with the curvature averaged in
    assert coef[[1, 3, 4, 5, 6]].abs().max() < 0.05


def test_layout_constants():
    assert len(PEOPLE_FEATURES) == 8
    flat = sorted(i for indices in PEOPLE_FIELDS.values() for i in indices)
    assert flat == list(range(8))
    assert [PEOPLE_FEATURES[i] for i in PEOPLE_FIELDS["state"]] == [
        "state_michigan",
        "state_nebraska",
        "state_oklahoma",
    ]


def test_comments_blank_lines_and_spaces_are_allowed(tmp_path):
    path = tmp_path / "people.txt"
    path.write_text(f"# header\n\n{GOOD}\n   \n# note\n+1 0.24 1 0 0 0.2950 0 0 1\n")
    x, y = load_people(path)
    expected = torch.tensor([[-1, 0.39, 0, 0, 1, 0, 1, 0], [1, 0.24, 1, 0, 0, 0, 0, 1]])
    torch.testing.assert_close(x, expected)
    torch.testing.assert_close(y, torch.tensor([0.5120, 0.2950]))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("-1\t0.39\t0\t0\t1\t0.5120\t0\t1", "expected 9 columns .* found 8"),
        (GOOD + "\t1", "expected 9 columns .* found 10"),
        (GOOD.replace("0.39", "abc"), "column 2 is not a number: 'abc'"),
        (GOOD.replace("0.5120", "nan"), "column 6 is not finite: 'nan'"),
        (GOOD.replace("-1", "0", 1), r"sex \(column 1\) must be -1 or \+1, got '0'"),
        (GOOD.replace("0\t0\t1", "0\t1\t1", 1), r"state \(columns 3-5\) must be one-hot"),
        (GOOD.replace("0\t0\t1", "0\t0\t0", 1), r"state .* got '0 0 0'"),
        (GOOD.replace("0\t0\t1", "0\t0\t2", 1), r"state .* got '0 0 2'"),
        (
            GOOD.replace("0.5120\t0\t1", "0.5120\t0.5\t0.5"),
            r"politics \(columns 7-9\) must be one-hot",
        ),
    ],
)
def test_malformed_line_names_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "bad.txt"
    path.write_text(f"# comment\n{GOOD}\n\n{line}\n{GOOD}\n")
    with pytest.raises(ValueError, match=f"line 4: {problem}") as info:
        load_people(path)
    assert str(info.value).startswith(f"{path}, line 4: ")


@pytest.mark.parametrize("text", ["", "# only a comment\n\n   \n"])
def test_file_without_data_rows(tmp_path, text):
    path = tmp_path / "empty.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="no data rows") as info:
        load_people(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_people(tmp_path / "absent.txt")


def test_people_row_encodes_like_the_files():
    row = people_row(sex="M", age=34, state="oklahoma", politics="moderate")
    torch.testing.assert_close(row, torch.tensor([-1, 0.34, 0, 0, 1, 0, 1, 0]))
    assert row.dtype == torch.float32
    same = people_row(sex=-1, age=34.0, state="Oklahoma", politics="MODERATE")
    assert torch.equal(row, same)
    female = people_row(sex="female", age=63, state="nebraska", politics="conservative")
    torch.testing.assert_close(female, torch.tensor([1, 0.63, 0, 1, 0, 1, 0, 0]))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"sex": "x"}, ValueError, "sex must be 'M', 'F', 'male', 'female', -1 or \\+1, got 'x'"),
        ({"sex": 0}, ValueError, "sex must be .* got 0"),
        ({"sex": True}, ValueError, "sex must be .* got True"),
        ({"age": 0.34}, ValueError, "age must be in years between 1 and 120, got 0.34"),
        ({"age": float("nan")}, ValueError, "age must be in years"),
        ({"age": "34"}, TypeError, "age must be a number of years, got str"),
        ({"state": "ohio"}, ValueError, "state must be one of .* got 'ohio'"),
        ({"politics": 1}, ValueError, "politics must be one of .* got 1"),
    ],
)
def test_people_row_validates(options, error, match):
    person = {"sex": "F", "age": 40, "state": "michigan", "politics": "liberal"} | options
    with pytest.raises(error, match=match):
        people_row(**person)
