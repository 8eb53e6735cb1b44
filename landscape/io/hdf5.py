"""Opening landscape's HDF5 files, and the schema names every file carries in its ``schema`` attribute.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> with open_hdf5(p, "w") as f:
    ...     f.attrs["schema"] = SURFACE_SCHEMA
    >>> file_schema(p)
    'landscape.surface'
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from ..core.errors import StoreError

__all__ = ["open_hdf5", "file_schema", "recorded_inputs", "unreadable", "label_dimension", "ensure_space",
           "write_failure", "writes_to", "replaced_atomically", "read_whole",
           "WRITE_ERRNOS", "SURFACE_SCHEMA", "PATH_SCHEMA", "SAMPLE_SCHEMA", "SURFACE_VERSION",
           "TRAJECTORY_SCHEMA",
           "TRAJECTORY_VERSION", "CORRELATION_SCHEMA", "CURVATURE_SCHEMA", "CURVATURE_VERSION",
           "TOPOLOGY_SCHEMA", "TOPOLOGY_VERSION"]

SURFACE_SCHEMA = "landscape.surface"
PATH_SCHEMA = "landscape.path"
SAMPLE_SCHEMA = "landscape.sample"
SURFACE_VERSION = 1
TRAJECTORY_SCHEMA = "landscape.trajectory"
TRAJECTORY_VERSION = 1
CORRELATION_SCHEMA = "landscape.correlation"
CURVATURE_SCHEMA = "landscape.curvature"
CURVATURE_VERSION = 1
TOPOLOGY_SCHEMA = "landscape.topology"
TOPOLOGY_VERSION = 1


def open_hdf5(path: str | Path, mode: str = "r", wait_seconds: float = 30.0) -> h5py.File:
    """Open a landscape HDF5 file. Readers take no lock, so a file that a run is writing can be inspected; a
    writer that finds the file locked by another process (an h5py session or viewer left open on it) retries
    for ``wait_seconds``, then raises a StoreError naming the lock. Other OSErrors reach the caller.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
        >>> with open_hdf5(p, "w") as f:
        ...     f.attrs["a"] = 1
        >>> with open_hdf5(p) as f:
        ...     int(f.attrs["a"])
        1
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return h5py.File(path, mode, locking=(mode != "r"))
        except OSError as exc:
            if "unable to lock file" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreError(f"{path}: another process holds a lock on the file ({exc}); close it there "
                                 "(h5py sessions, viewers) and run again") from exc
            time.sleep(0.05)


def recorded_inputs(path: str | Path) -> dict[str, Any] | None:
    """The ``inputs`` a file was created with (what a resumed run must match, and the choices made at its
    start, such as ``compile``), or None when there is no such file.

    Example:
        >>> recorded_inputs("/nonexistent.h5") is None
        True
    """
    try:
        with open_hdf5(path) as f:
            text = f.attrs.get("inputs")
    except (OSError, FileNotFoundError):
        return None
    return None if text is None else json.loads(text)


def file_schema(path: str | Path) -> str | None:
    """The ``schema`` attribute of an HDF5 file, or None when the file is missing, not HDF5 or has none."""
    try:
        with open_hdf5(path) as f:
            value = f.attrs.get("schema")
    except OSError:
        return None
    return None if value is None else str(value)


def unreadable(path: str | Path, exc: BaseException, redo: str) -> StoreError:
    """The error for a file that HDF5 cannot read: what failed, that a file being written at this instant can
    be read again, and what to do (``redo``) when it is damaged.

    Example:
        >>> str(unreadable("s.h5", OSError("bad signature"), "compute the surface again")).split(";")[0]
        's.h5: cannot be read as HDF5 (bad signature)'
    """
    return StoreError(f"{path}: cannot be read as HDF5 ({exc}); the file is truncated or corrupted (or a run was "
                      f"writing it at this instant: try again); move it away and {redo}")


def label_dimension(group: h5py.Group, name: str, scale: h5py.Dataset | None = None) -> h5py.Dataset:
    """Name the first axis of every dataset in ``group`` whose length is the scale's: ``scale`` if given, else
    a new index dataset ``group/name`` (0, 1, ...) made an HDF5 dimension scale. netCDF readers (xarray's
    h5netcdf engine) then see dimension ``name`` there instead of borrowing a same-named dimension of the root.

    Example:
        >>> import tempfile, numpy as np
        >>> with h5py.File(tempfile.mkdtemp() + "/x.h5", "w") as f:
        ...     g = f.create_group("trajectory")
        ...     g["alpha"] = np.zeros(3)
        ...     _ = label_dimension(g, "checkpoint")
        ...     g["alpha"].dims[0][0].name
        '/trajectory/checkpoint'
    """
    datasets = [d for d in group.values() if isinstance(d, h5py.Dataset) and d.ndim >= 1]
    if scale is None:
        n = max((d.shape[0] for d in datasets), default=0)
        scale = group.create_dataset(name, data=np.arange(n, dtype=np.int64), maxshape=(None,))
    scale.make_scale(name)
    for d in datasets:
        if d.name != scale.name and d.shape[0] == scale.shape[0] and not d.dims[0]:
            d.dims[0].attach_scale(scale)
    return scale


#: errors of a file system that cannot take a write: full, over quota, read-only, not permitted
WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted"}
MARGIN = 256 << 10


def _errno_of(exc: BaseException) -> int | None:
    if getattr(exc, "errno", None) in WRITE_ERRNOS:
        return exc.errno
    m = re.search(r"errno = (\d+)", str(exc))  # h5py reports the C library's errno inside its message
    return int(m.group(1)) if m and int(m.group(1)) in WRITE_ERRNOS else None


def _free(path: Path) -> int:
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def write_failure(path: str | Path, exc: BaseException) -> StoreError | None:
    """The clear error for a write the file system refused (full, read-only, no permission), or None when
    ``exc`` is another failure. It names the file and what to do; what was stored before stays readable.

    Example:
        >>> str(write_failure("/data/s.h5", OSError(errno.EROFS, "Read-only file system"))).split(";")[0]
        'cannot write /data/s.h5: the file system is read-only'
    """
    code = _errno_of(exc)
    if code is None:
        return None
    path = Path(path)
    what = WRITE_ERRNOS[code]
    if code in (errno.ENOSPC, errno.EDQUOT):
        try:
            what += f" ({_size(_free(path))} free)"
        except OSError:
            pass
        todo = "free space and run the same command again: what is stored is kept and the run resumes"
    else:
        todo = "write the results to another folder (--output/--out), or make this one writable"
    return StoreError(f"cannot write {path}: {what}; {todo}")


def ensure_space(path: str | Path, nbytes: int) -> None:
    """Refuse a write of about ``nbytes`` to ``path`` before it starts when its file system has not that much
    (and a margin) free: HDF5 files cut short by a full disk in the middle of a write can break for good.

    Example:
        >>> ensure_space("/tmp/x.h5", 1)  # a little is always there
    """
    path = Path(path)
    try:
        free = _free(path)
    except OSError:
        return
    if free < nbytes + MARGIN:
        raise StoreError(f"cannot write {path}: not enough space left on the device ({_size(free)} free, about "
                         f"{_size(nbytes + MARGIN)} needed for the next write); free space and run the same command "
                         "again: what is stored is kept and the run resumes")


@contextlib.contextmanager
def writes_to(path: str | Path) -> Iterator[None]:
    """Inside the block, a write the file system refuses becomes :func:`write_failure`'s error naming ``path``.

    Example:
        >>> with writes_to("/tmp/fine.txt"):
        ...     pass
    """
    try:
        yield
    except OSError as exc:
        failure = write_failure(path, exc)
        if failure is None:
            raise
        raise failure from exc


@contextlib.contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """Write ``path`` through a temporary file beside it (``.NAME.<pid>.tmp``, yielded), moved into place when the
    block ends: a reader never sees half a file, and a write that fails (a full disk) leaves neither a partial
    file nor the temporary one behind (the error names ``path``). Temporary files of processes that no longer run
    (killed mid-write) are removed on the way.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with replaced_atomically(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> sorted(p.name for p in d.iterdir()), (d / "a.txt").read_text()
        (['a.txt'], 'done')
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = old.name[len(path.name) + 2:-4]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            old.unlink(missing_ok=True)
    try:
        with writes_to(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_whole(path: str | Path, schema: str, kind: str, redo: str) -> dict:
    """Every dataset of a small result file (by its path inside the file) and its attributes (``attrs``), after
    checking that it is a ``schema`` file; ``kind`` names it in the errors, ``redo`` says how to write it again.

    Example:
        >>> read_whole("/nonexistent.h5", "landscape.topology", "topology", "run it")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        landscape.core.errors.StoreError: /nonexistent.h5: topology file does not exist; run it
    """
    path = Path(path)
    out: dict = {}
    try:
        with open_hdf5(path) as f:
            if f.attrs.get("schema") != schema:
                raise StoreError(f"{path}: not a landscape {kind} file (schema {f.attrs.get('schema')!r}); {redo}")
            out["attrs"] = {k: f.attrs[k] for k in f.attrs}
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    except FileNotFoundError:
        raise StoreError(f"{path}: {kind} file does not exist; {redo}") from None
    except OSError as exc:
        raise unreadable(path, exc, redo) from exc
    return out
