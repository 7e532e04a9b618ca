"""Progress bars for long runs: tqdm on a terminal, plain periodic lines in logs.

tqdm is imported only when a bar is made (the ``plot``, ``distributed`` and ``examples``
extras install it); without it, :func:`progress_bar` returns None and the caller shows
no progress. ``NO_COLOR`` (https://no-color.org) turns the bar's color off.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, TextIO

__all__ = ["progress_bar"]

_PLAIN = (
    "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%) [{elapsed}<{remaining}, "
    "{rate_fmt}{postfix}]"
)


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into whole, distinct lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.last = stream, None

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        counts = line.split(" [")[0]  # tqdm's close() redraws the last counts once more
        if line and counts != self.last:
            self.stream.write(line + "\n")
            self.last = counts

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _delay(elapsed: float) -> float:
    # a bar made after some work (elapsed > 0) skips tqdm's first "0/N" display
    return 1e-9 if elapsed > 0 else 0.0


def progress_bar(
    total: int,
    *,
    desc: str,
    unit: str,
    stream: TextIO | None = None,
    lines: int = 10,
    elapsed: float = 0.0,
    smoothing: float = 0.3,
) -> Any:
    """A tqdm bar over ``total`` steps on ``stream`` (stderr), or None without tqdm.

    On a terminal: one redrawn bar with the rate and the ETA, green unless
    ``NO_COLOR`` is set. Elsewhere (a log file, CI): a plain line every
    ``total / lines`` steps and at the end, with the same counts, rate and ETA.
    ``elapsed`` seconds already spent count into the rate; ``smoothing`` is tqdm's
    (0: the average rate since the start).
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        color = None if os.environ.get("NO_COLOR") else "green"
        bar = tqdm(
            total=total,
            desc=desc,
            unit=f" {unit}",
            file=stream,
            colour=color,
            dynamic_ncols=True,
            smoothing=smoothing,
            delay=_delay(elapsed),
        )
    else:
        bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=_Lines(stream),
            bar_format=_PLAIN,
            mininterval=0.0,
            maxinterval=math.inf,  # tqdm's monitor would otherwise print every step after a stall
            miniters=max(1, total // lines),
            ascii=True,
            smoothing=smoothing,
            delay=_delay(elapsed),
        )
    bar.start_t -= elapsed  # so the rate and ETA count the time before the bar
    return bar
