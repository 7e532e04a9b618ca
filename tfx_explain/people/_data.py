"""The people-income data: a strict loader, the feature layout, and a row encoder.

A data line holds 9 numbers, tab- or space-separated::

    sex (-1 male, +1 female)  age/100  state one-hot (3)  income/100000  politics one-hot (3)

Income is the target; the other 8 columns, in order, are the features ``PEOPLE_FEATURES``.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "PEOPLE_FEATURES",
    "PEOPLE_FIELDS",
    "load_people",
    "people_row",
    "default_people_paths",
]

PEOPLE_FEATURES = (
    "sex",
    "age",
    "state_michigan",
    "state_nebraska",
    "state_oklahoma",
    "politics_conservative",
    "politics_moderate",
    "politics_liberal",
)
# field name -> indices of its features in a row; attributions are summed per field with it
PEOPLE_FIELDS = {"sex": (0,), "age": (1,), "state": (2, 3, 4), "politics": (5, 6, 7)}

_STATES = ("michigan", "nebraska", "oklahoma")
_POLITICS = ("conservative", "moderate", "liberal")
_SEXES = {"m": -1.0, "male": -1.0, "f": 1.0, "female": 1.0}
_N_COLUMNS = 9
_INCOME_COLUMN = 5


def _parse_line(text: str) -> list[float]:
    """The 9 values of a data line; raises ``ValueError`` saying what is wrong."""
    fields = text.split()
    if len(fields) != _N_COLUMNS:
        raise ValueError(
            f"expected {_N_COLUMNS} columns (sex, age, 3 state, income, 3 politics), "
            f"found {len(fields)}"
        )
    values = []
    for column, field in enumerate(fields, start=1):
        try:
            value = float(field)
        except ValueError:
            raise ValueError(f"column {column} is not a number: {field!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"column {column} is not finite: {field!r}")
        values.append(value)
    if values[0] not in (-1.0, 1.0):
        raise ValueError(f"sex (column 1) must be -1 or +1, got {fields[0]!r}")
    for name, first in (("state", 3), ("politics", 7)):
        group = values[first - 1 : first + 2]
        if sorted(group) != [0.0, 0.0, 1.0]:
            shown = " ".join(fields[first - 1 : first + 2])
            raise ValueError(
                f"{name} (columns {first}-{first + 2}) must be one-hot "
                f"(one 1 and two 0s), got {shown!r}"
            )
    return values


def load_people(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read a people-income file into features and incomes.

    Every line is either blank, a ``#`` comment, or a data line of 9 values; anything else is
    an error, never skipped. Checked per line: the column count, that every value is a finite
    number, that sex is -1 or +1, and that state and politics are one-hot.

    Args:
      path: the file to read.

    Returns:
      ``(x, y)``: features ``(N, 8)`` float32 in the order of ``PEOPLE_FEATURES`` and
      incomes ``(N,)`` float32 (in units of 100000).

    Raises:
      FileNotFoundError: no such file.
      ValueError: a directory, a binary file, a malformed line (the message names the
        file and 1-based line number) or a file without data lines.

    Example:
      >>> x, y = load_people(default_people_paths()[0])
      >>> x.shape, y.shape
      (torch.Size([200, 8]), torch.Size([200]))
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a people data file")
    if not path.is_file():
        raise FileNotFoundError(f"people data file {path} not found")
    rows = []
    with path.open(encoding="utf-8") as lines:
        number = 0
        try:
            for number, line in enumerate(lines, start=1):  # noqa: B007 - read in except
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                try:
                    rows.append(_parse_line(text))
                except ValueError as error:
                    raise ValueError(f"{path}, line {number}: {error}") from None
        except UnicodeDecodeError:
            raise ValueError(
                f"{path}, line {number + 1}: not UTF-8 text (a binary file?); expected a "
                "people data file of 9 values per line"
            ) from None
    if not rows:
        raise ValueError(f"{path}: no data rows (only blank or '#' comment lines)")
    table = torch.tensor(rows, dtype=torch.float32)  # (N, 9)
    features = [c for c in range(_N_COLUMNS) if c != _INCOME_COLUMN]
    return table[:, features], table[:, _INCOME_COLUMN]


def _one_hot(name: str, value: object, choices: tuple[str, ...]) -> list[float]:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{name} must be one of {choices} (any case), got {value!r}")
    return [1.0 if choice == value.lower() else 0.0 for choice in choices]


def people_row(*, sex: str | int, age: float, state: str, politics: str) -> Tensor:
    """Encode one person as a feature row ``(8,)`` float32, as in the data files.

    Args:
      sex: ``"M"``/``"male"`` or ``"F"``/``"female"`` (any case), or the code -1 / +1.
      age: age in years, 1..120 (stored divided by 100).
      state: ``"michigan"``, ``"nebraska"`` or ``"oklahoma"`` (any case).
      politics: ``"conservative"``, ``"moderate"`` or ``"liberal"`` (any case).

    Returns:
      Features ``(8,)`` in the order of ``PEOPLE_FEATURES``.

    Example:
      >>> people_row(sex="M", age=34, state="oklahoma", politics="moderate")
      tensor([-1.0000,  0.3400,  0.0000,  0.0000,  1.0000,  0.0000,  1.0000,  0.0000])
    """
    if isinstance(sex, str) and sex.lower() in _SEXES:
        sex_code = _SEXES[sex.lower()]
    elif not isinstance(sex, (str, bool)) and isinstance(sex, numbers.Real) and sex in (-1, 1):
        sex_code = float(sex)
    else:
        raise ValueError(f"sex must be 'M', 'F', 'male', 'female', -1 or +1, got {sex!r}")
    if isinstance(age, bool) or not isinstance(age, numbers.Real):
        raise TypeError(f"age must be a number of years, got {type(age).__name__}: {age!r}")
    if not 1 <= age <= 120:
        raise ValueError(f"age must be in years between 1 and 120, got {age!r}")
    values = [sex_code, age / 100]
    values += _one_hot("state", state, _STATES) + _one_hot("politics", politics, _POLITICS)
    return torch.tensor(values, dtype=torch.float32)


def default_people_paths() -> tuple[Path, Path]:
    """Paths of the shipped ``(people_train.txt, people_test.txt)``.

    The files ship as package data in ``tfx_explain/people/data/``, so they are there
    in a wheel install as well as in a source checkout.

    Raises:
      FileNotFoundError: the files were removed from the installed package.
    """
    data = Path(__file__).resolve().parent / "data"
    paths = (data / "people_train.txt", data / "people_test.txt")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"people data file {path} not found; it ships inside the tfx_explain "
                "package (reinstall tfx_explain)"
            )
    return paths
