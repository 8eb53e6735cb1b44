"""Progress of long work: a bar on a terminal, and where there is none (batch logs under Slurm, ``--no-progress``)
a log line every ~5 % of the work with the rate and the time left, so ``tail -f`` shows how a job is doing.

Example:
    >>> import logging
    >>> p = Progress(200, desc="surface", unit="points", bar=False)
    >>> for _ in range(4):
    ...     p.update(50)
    >>> p.close()
    >>> p.done
    200
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["Progress", "format_seconds"]

log = logging.getLogger("landscape.progress")


def format_seconds(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``12 s``.

    Example:
        >>> format_seconds(3725), format_seconds(185), format_seconds(12.4)
        ('1 h 02 min', '3 min 05 s', '12 s')
    """
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class Progress:
    """Counts work done out of ``total``. With ``bar`` (default: progress wanted and stderr a terminal) it draws a
    tqdm bar; otherwise it logs ``desc: done/total unit (pct), rate, ETA`` each time another ``every`` fraction is
    done (and at the end)."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "points", progress: bool = True,
                 bar: bool | None = None, every: float = 0.05, **bar_kwargs: Any):
        self.total, self.done, self.desc, self.unit = int(total), int(initial), desc, unit
        self.start, self.start_done = time.perf_counter(), int(initial)
        self._bar = None
        if bar is None:
            bar = progress and sys.stderr.isatty()
        if bar:
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, **bar_kwargs)
        self._step = max(1, int(total * every))
        self._next = (self.done // self._step + 1) * self._step

    def update(self, n: int, **postfix: Any) -> None:
        """Count ``n`` more units done (``postfix``: values shown beside the bar or the log line)."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(**postfix)
        elif self.done >= self._next or self.done >= self.total:
            self._next = (self.done // self._step + 1) * self._step
            self._log(postfix)

    def _log(self, postfix: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.start_done) / max(elapsed, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        extra = "".join(f", {k} {v}" for k, v in postfix.items())
        log.info("%s: %d/%d %s (%.0f%%), %.3g %s/s, %s left%s", self.desc, self.done, self.total, self.unit,
                 100.0 * self.done / max(self.total, 1), rate, self.unit, format_seconds(left) if rate > 0 else "?",
                 extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
