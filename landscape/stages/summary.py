"""``summary.json``: what a job's stages wrote and found, updated by each stage in turn.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> out = Path(tempfile.mkdtemp())
    >>> with summary(out) as s:
    ...     s["outputs"]["surface"] = "surface.h5"
    >>> read_summary(out)["outputs"]
    {'surface': 'surface.h5'}
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

__all__ = ["read_summary", "write_summary", "summary"]

NAME = "summary.json"


def read_summary(out: str | Path) -> dict[str, Any]:
    """The job's summary, or an empty one (``{"outputs": {}}``) before the first stage wrote it."""
    path = Path(out) / NAME
    return json.loads(path.read_text()) if path.exists() else {"outputs": {}}


def write_summary(out: str | Path, data: dict[str, Any]) -> Path:
    """Write the job's summary (indented JSON)."""
    path = Path(out) / NAME
    path.write_text(json.dumps(data, indent=2))
    return path


@contextlib.contextmanager
def summary(out: str | Path) -> Iterator[dict[str, Any]]:
    """Read the summary, let the block change it, and write it back."""
    data = read_summary(out)
    data.setdefault("outputs", {})
    yield data
    write_summary(out, data)
