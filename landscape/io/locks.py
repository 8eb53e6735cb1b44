"""One writer per result file: an exclusive, non-blocking lock on ``FILE.lock`` held for a whole run, so that a
second run started on the same file refuses at once, naming the run that holds it, instead of mixing values or
meeting HDF5's own lock halfway through.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> with WriterLock(p):
    ...     try:
    ...         WriterLock(p).acquire()
    ...     except StoreError as exc:
    ...         print(str(exc).split(" (")[0])
    another landscape run is writing ...s.h5
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..core.errors import StoreError
from .hdf5 import writes_to

__all__ = ["WriterLock"]


class WriterLock:
    """The exclusive lock of one file's writer (``flock`` on ``FILE.lock``; its text names the holder)."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        """Take the lock or raise :class:`StoreError` at once, naming the process that holds it."""
        if self._fd is not None:
            return self
        with writes_to(self.target):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._acquire()

    def _acquire(self) -> "WriterLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise StoreError(f"another landscape run is writing {self.target} ({holder}); wait for it to end, "
                                 "or write to another file") from None
            try:  # the holder before us may have removed the file we opened: lock the current one instead
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  .encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and let go (safe to call twice)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
