"""A progress display for :func:`attribute_dataset`: partitions, rows/s and an ETA."""

from __future__ import annotations

from typing import Any, TextIO

from tfx_explain.progress import progress_bar

from ._job import JobProgress

__all__ = ["job_progress"]


class _JobBar:
    def __init__(self, stream: TextIO | None) -> None:
        self.stream, self.bar = stream, None

    def __call__(self, p: JobProgress) -> None:
        if self.bar is None:
            lines = min(p.partitions, 20)  # every partition, or every 5% of many
            self.bar = progress_bar(
                p.partitions,
                desc="attribute",
                unit="partitions",
                stream=self.stream,
                lines=lines,
                elapsed=p.seconds,  # the bar starts at the first finished partition
                smoothing=0.0,  # ETA = (P - p) / p * t
            )
            if self.bar is None:  # no tqdm: no display
                self.bar = False
        if self.bar is False:
            return
        rate = p.rows / p.seconds if p.seconds > 0 else 0.0
        self.bar.set_postfix_str(
            f"{p.rows:,} rows, {rate:,.0f} rows/s, {p.errors:,} errors", refresh=False
        )
        self.bar.update(p.partitions_done - self.bar.n)
        if p.partitions_done >= p.partitions:
            self.close()

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def job_progress(*, stream: TextIO | None = None) -> Any:
    """A ``progress`` callback for :func:`attribute_dataset` that shows a tqdm bar.

    .. math::

        \\text{ETA} = \\frac{P - p}{p} \\, t

    after ``p`` of ``P`` partitions in ``t`` seconds (tqdm's smoothed rate), with the rows
    done, rows per second and errors. On a terminal it is one redrawn bar (no color
    under ``NO_COLOR``); in a log a plain line per partition (every 5% beyond 20
    partitions). Without tqdm (the ``distributed`` extra installs it) it shows nothing.

    Args:
      stream: where to write (default: stderr).

    Returns:
      A callable taking :class:`JobProgress`, with ``close()`` for a job cut short.

    Example:
      >>> import io
      >>> log = io.StringIO()
      >>> show = job_progress(stream=log)
      >>> for done in (1, 2):
      ...     show(JobProgress(done, 2, rows=100 * done, errors=0, seconds=done))
      >>> print(log.getvalue().splitlines()[-1].split(" [")[0])
      attribute: 2/2 partitions (100%)
    """
    return _JobBar(stream)
