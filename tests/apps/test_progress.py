"""Progress display: tqdm bars on a terminal, plain distinct lines in logs, NO_COLOR, ETA."""

import io
import subprocess
import sys

import pytest

pytest.importorskip("tqdm")

from tfx_explain.cli import _Progress  # noqa: E402
from tfx_explain.progress import progress_bar  # noqa: E402


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_about_one_plain_line_per_tenth():
    log = io.StringIO()
    on_epoch = _Progress(100, stream=log)
    for epoch in range(100):
        on_epoch(epoch, 1.0 / (epoch + 1))
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and "\x1b[" not in text  # no redraws, no colors in a log
    assert 10 <= len(lines) <= 12  # the start, every 10 epochs (the end is not repeated)
    assert len(set(lines)) == len(lines)
    assert lines[-1].startswith("epochs: 100/100 epochs (100%) [")
    assert "loss 0.01000" in lines[-1]


def test_a_terminal_gets_one_redrawn_bar_in_color_unless_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    screen = _Terminal()
    bar = progress_bar(5, desc="epochs", unit="epochs", stream=screen)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert "\r" in screen.getvalue() and "\x1b[32m" in screen.getvalue()  # green
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    bar = progress_bar(5, desc="epochs", unit="epochs", stream=plain)
    bar.update(5)
    bar.close()
    assert "\r" in plain.getvalue() and "\x1b[" not in plain.getvalue()
    assert "5/5" in plain.getvalue()


def test_a_job_shows_partitions_rows_per_second_and_an_eta():
    pytest.importorskip("distributed")
    from tfx_explain.distributed import JobProgress, job_progress

    log = io.StringIO()
    show = job_progress(stream=log)
    show(JobProgress(1, 4, rows=50_000, errors=2, seconds=10.0))  # 10 s for 1 of 4
    assert len(log.getvalue().splitlines()) == 1  # no "0/4" line: the bar starts after 1
    first = log.getvalue().splitlines()[-1]
    assert first.startswith("attribute: 1/4 partitions (25%) [00:10<00:30")  # ETA 3 x 10 s
    assert "50,000 rows, 5,000 rows/s, 2 errors" in first
    for done in (2, 3, 4):
        show(JobProgress(done, 4, rows=50_000 * done, errors=2, seconds=10.0 * done))
    lines = log.getvalue().splitlines()
    assert lines[-1].startswith("attribute: 4/4 partitions (100%)")
    assert sum("4/4" in line for line in lines) == 1  # closed once, not repeated


def test_without_tqdm_there_is_no_display(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    assert progress_bar(3, desc="d", unit="u") is None
    on_epoch = _Progress(3)
    on_epoch(0, 1.0)  # no bar, no error


IMPORTS_NO_TQDM = """
import sys
import torch  # torch.hub imports tqdm itself when it is installed: forget it, then refuse it

for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")]:
    del sys.modules[name]


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "tqdm" or name.startswith("tqdm."):
            raise AssertionError(f"imported {name}")


sys.meta_path.insert(0, Refuse())
import tfx_explain, tfx_explain.cli, tfx_explain.progress  # noqa: E401
"""


def test_importing_the_package_and_the_cli_does_not_import_tqdm():
    subprocess.run([sys.executable, "-c", IMPORTS_NO_TQDM], check=True)
