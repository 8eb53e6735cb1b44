"""matplotlib, imported lazily through :func:`~landscape.core.optional.require` with the Agg backend, and
saving figures in several formats.

Example:
    >>> import tempfile
    >>> plt = pyplot()
    >>> fig = plt.figure()
    >>> [p.suffix for p in save_figure(fig, tempfile.mkdtemp(), "empty", ("png", "pdf"))]
    ['.png', '.pdf']
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.optional import require
from ..io.hdf5 import replaced_atomically

__all__ = ["pyplot", "save_figure", "savefig", "log_tick_values", "plain_number", "plain_log_ticks"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (the ``plot`` extra names the install)."""
    mpl = require("matplotlib", "plot")
    mpl.use("Agg")
    return require("matplotlib.pyplot", "plot")


def save_figure(fig: Any, out_dir: str | Path, name: str, formats: Sequence[str], dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.<fmt>`` for each format (the folder made if missing), close it, and return
    the files."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = [Path(out_dir) / f"{name}.{fmt}" for fmt in formats]
    for p in out:
        savefig(fig, p, dpi)
    pyplot().close(fig)
    return out


def savefig(fig: Any, path: str | Path, dpi: int = 150) -> Path:
    """``fig.savefig(path)``, every logarithmic axis labelled with plain numbers first (:func:`plain_log_ticks`);
    a full or read-only disk gives a clear error naming the file."""
    path = Path(path)
    for ax in fig.axes:
        if getattr(ax, "name", "") != "3d":
            plain_log_ticks(ax)
    with replaced_atomically(path) as tmp:  # a failed write (a full disk) leaves no partial figure
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or None)
    return path


def log_tick_values(lo: float, hi: float) -> list[float]:
    """Tick values of a log scale from ``lo`` to ``hi`` at 1-2-5 steps (the ends when none falls inside).

    Example:
        >>> log_tick_values(0.15, 2.5)
        [0.2, 0.5, 1.0, 2.0]
    """
    vals = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
            for m in (1, 2, 5)]
    return [float(f"{v:.6g}") for v in vals if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)] or [lo, hi]


def plain_number(v: float, digits: int = 3) -> str:
    """A tick label: ``digits`` significant digits, never in scientific notation.

    Example:
        >>> [plain_number(v) for v in (0.012345, 1.0, 2000.0, 123456.0)]
        ['0.0123', '1', '2000', '123000']
    """
    return np.format_float_positional(float(f"{v:.{digits}g}"), precision=digits, unique=True, fractional=False,
                                      trim="-")


def plain_log_ticks(ax: Any) -> None:
    """Label each logarithmic axis of ``ax`` at 1-2-5 steps inside its limits (powers of ten only beyond four
    decades; the ends when no step falls inside) with plain numbers: matplotlib's own labels read "2×10⁰, 6×10⁻¹"
    and leave a narrow range (a loss near its minimum) without a label.

    Example:
        >>> fig = pyplot().figure(); ax = fig.add_subplot()
        >>> _ = ax.plot([0, 1], [0.15, 2.5]); ax.set_yscale("log"); ax.set_ylim(0.15, 2.5)
        (0.15, 2.5)
        >>> plain_log_ticks(ax); [t.get_text() for t in ax.get_yticklabels()]
        ['0.2', '0.5', '1', '2']
    """
    ticker = require("matplotlib.ticker", "plot")
    for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(limits)
        if not (lo > 0 and np.isfinite(hi)):
            continue
        ticks = log_tick_values(lo, hi)
        if hi > lo * 1e4:
            ticks = [t for t in ticks if abs(np.log10(t) - round(np.log10(t))) < 1e-9] or ticks
        axis.set_major_locator(ticker.FixedLocator(ticks))
        axis.set_major_formatter(ticker.FixedFormatter([plain_number(t) for t in ticks]))
        axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlim(limits) if axis is ax.xaxis else ax.set_ylim(limits)
