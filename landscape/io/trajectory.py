"""The trajectory store: one HDF5 file with every checkpoint of a training run and its metrics.

Layout (schema ``landscape.trajectory`` version 1, see ``docs/schema.md``)::

    /states               float32 [n_checkpoints, n_state]   flat states in StateSpec order
    /checkpoints/epoch    float64 [n]   0 for init, e after epoch e, fractional for step checkpoints
    /checkpoints/step     int64   [n]   optimiser steps taken
    /checkpoints/kind     S8      [n]   "init" | "epoch" | "step" (fixed-length ASCII)
    /checkpoints/checkpoint int64 [n]   0, 1, ...: the dimension scale of /checkpoints/*
    /metrics/{epoch,train_loss,train_accuracy,test_loss,test_accuracy}   [n_epochs + 1]
    /resume_records/<epoch>  uint8   torch.save bytes of the optimiser state, epoch and step (weights_only)

Checkpoints are named ``init``, ``final``, ``mid``, ``epoch 7``, ``step 300`` or ``#3`` (index).

Example:
    >>> import tempfile, os, torch
    >>> from landscape.core.params import StateSpec
    >>> p = os.path.join(tempfile.mkdtemp(), "t.h5")
    >>> st = TrajectoryStore.create(p, StateSpec(("w",), ((2,),), ("float32",)), {"model": "toy"})
    >>> st.append_checkpoint(torch.tensor([1., 2.]), epoch=0, step=0, kind="init")
    >>> st.append_checkpoint(torch.tensor([3., 4.]), epoch=1, step=10, kind="epoch")
    >>> st.resolve("final"), st.vector("init").tolist()
    (1, [1.0, 2.0])
"""
from __future__ import annotations

import contextlib
import io
import json
import pickle
import logging
import re
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np
import torch

from ..core.errors import CheckpointError, StoreError
from ..core.params import StateSpec, unflatten_state
from ..core.signals import deferred
from ..core.version import __version__
from .hdf5 import (TRAJECTORY_SCHEMA, TRAJECTORY_VERSION, ensure_space, label_dimension, open_hdf5,
                   replaced_atomically, unreadable, writes_to)

__all__ = ["TrajectoryStore", "SCHEMA", "SCHEMA_VERSION", "METRICS"]

log = logging.getLogger(__name__)

SCHEMA = TRAJECTORY_SCHEMA
SCHEMA_VERSION = TRAJECTORY_VERSION
METRICS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")
_KIND = h5py.string_dtype("ascii", 8)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


class TrajectoryStore:
    """Append-only access to one trajectory file; each write opens, writes and closes the file,
    so a run killed between writes leaves a readable store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a trajectory file; give the path of the .h5 file (e.g. "
                             f"{self.path / 'trajectory.h5'})")
        try:
            with h5py.File(self.path, "r", locking=False) as f:
                if f.attrs.get("schema") != SCHEMA:
                    raise StoreError(f"{self.path}: not a landscape trajectory (schema attribute "
                                     f"{f.attrs.get('schema')!r}, expected {SCHEMA!r})")
                version = int(f.attrs.get("schema_version", -1))
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: schema version {version} is newer than this "
                                     f"landscape ({SCHEMA_VERSION}); upgrade landscape")
                if "state_spec" not in f.attrs:
                    raise StoreError(f"{self.path}: a trajectory without its state_spec attribute; the file is "
                                     "damaged or was not written by landscape")
                self.spec = StateSpec.from_json(json.loads(f.attrs["state_spec"]))
                self.attrs = {k: f.attrs[k] for k in f.attrs}
        except FileNotFoundError:
            raise StoreError(f"{self.path}: trajectory file does not exist; train first (landscape train, or landscape "
                             "run JOB), or give the centre as a checkpoint file: --center my.pt (surface.center = "
                             "\"my.pt\")") from None
        except OSError as exc:
            raise unreadable(self.path, exc, "train again") from exc

    # -- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, spec: StateSpec, attrs: Mapping[str, Any], init: torch.Tensor | None = None,
               resume: Mapping[str, Any] | None = None) -> "TrajectoryStore":
        """Create a store (refuses to overwrite an existing file), holding the ``init`` checkpoint and the
        ``resume`` record from the moment it appears under its name: a run killed at any point after this
        resumes."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path}: already exists; resume it, or choose another output")
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as tmp:
            ensure_space(tmp, 4 * spec.numel * (2 if init is not None else 0) + (256 << 10))
            cls._layout(tmp, spec, attrs)
            first = cls(tmp)
            if init is not None:
                first.append_checkpoint(init, epoch=0, step=0, kind="init")
            if resume is not None:
                first.save_resume(resume)
        return cls(path)

    @staticmethod
    def _layout(tmp: Path, spec: StateSpec, attrs: Mapping[str, Any]) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "package_version": __version__,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "complete": False,
                            "state_spec": json.dumps(spec.to_json())})
            for k, v in attrs.items():
                f.attrs[k] = v if isinstance(v, (str, int, float, bool, np.number)) else json.dumps(
                    v, default=_json_default)
            n = max(spec.numel, 1)
            f.create_dataset("states", (0, spec.numel), "f4", maxshape=(None, spec.numel),
                             chunks=(1, min(n, 1 << 20)))
            g = f.create_group("checkpoints")
            g.create_dataset("epoch", (0,), "f8", maxshape=(None,))
            g.create_dataset("step", (0,), "i8", maxshape=(None,))
            g.create_dataset("kind", (0,), _KIND, maxshape=(None,))  # fixed length: no global heap to break
            label_dimension(g, "checkpoint")  # netCDF readers see a checkpoint dimension here
            m = f.create_group("metrics")
            for k in METRICS:
                m.create_dataset(k, (0,), "f8", maxshape=(None,))
            label_dimension(m, "epoch", m["epoch"])

    def _open(self, mode: str = "r", wait_seconds: float = 30.0) -> h5py.File:
        """The file, for reading (no lock) or writing (waiting up to ``wait_seconds`` for another process's
        lock): see :func:`landscape.io.hdf5.open_hdf5`."""
        try:
            return open_hdf5(self.path, mode, wait_seconds)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot be opened ({exc}); the file is truncated or corrupted") from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[h5py.File]:
        """The file for one whole write: SIGTERM/SIGUSR1 wait until it is done (see
        :func:`~landscape.core.signals.deferred`), so no dataset is left resized but unfilled."""
        with writes_to(self.path), deferred(), self._open("a") as f:
            yield f

    # -- writing ----------------------------------------------------------------------------------
    def append_checkpoint(self, vector: torch.Tensor, epoch: float, step: int, kind: str) -> None:
        """Append one flat state with its epoch, step and kind."""
        v = vector.detach().to("cpu", torch.float32).numpy()
        ensure_space(self.path, v.nbytes + (64 << 10))
        with self._write() as f:
            n = f["states"].shape[0]
            f["states"].resize(n + 1, 0)
            f["states"][n] = v
            kind_ds = f["checkpoints"]["kind"]
            values = {"epoch": epoch, "step": step, "checkpoint": n,
                      "kind": kind if kind_ds.dtype.kind == "O" else kind.encode()}  # vlen str in old files
            for key, val in values.items():
                if key in f["checkpoints"]:
                    ds = f["checkpoints"][key]
                    ds.resize(n + 1, 0)
                    ds[n] = val

    def append_norms(self, layers: list[str], kinds: list[str], steps: np.ndarray, weight: np.ndarray,
                     grad: np.ndarray) -> None:
        """Append rows of per-layer L2 norms (``/norms/{step,weight,grad}``) recorded during training."""
        if not len(steps):
            return
        with self._write() as f:
            if "norms" not in f:
                g = f.create_group("norms")
                g.attrs["layers"] = json.dumps(layers)
                g.attrs["kinds"] = json.dumps(kinds)
                g.create_dataset("step", (0,), "i8", maxshape=(None,))
                for k in ("weight", "grad"):
                    g.create_dataset(k, (0, len(layers)), "f8", maxshape=(None, len(layers)))
                label_dimension(g, "step", g["step"])
            g = f["norms"]
            n = g["step"].shape[0]
            for k, v in (("step", steps), ("weight", weight), ("grad", grad)):
                g[k].resize(n + len(steps), 0)
                g[k][n:] = v

    def norms(self) -> dict[str, Any] | None:
        """Recorded norms: ``layers``, ``kinds`` (conv/linear/other), ``step``, ``weight``, ``grad``."""
        with self._open() as f:
            if "norms" not in f:
                return None
            g = f["norms"]
            return {"layers": json.loads(g.attrs["layers"]), "kinds": json.loads(g.attrs["kinds"]),
                    "step": g["step"][:], "weight": g["weight"][()], "grad": g["grad"][()]}

    def append_metrics(self, **values: float) -> None:
        """Append one row of per-epoch metrics (missing ones are NaN)."""
        with self._write() as f:
            for k in METRICS:
                ds = f["metrics"][k]
                ds.resize(ds.shape[0] + 1, 0)
                ds[-1] = values.get(k, np.nan)

    def save_resume(self, payload: Mapping[str, Any]) -> None:
        """Store what resuming needs (optimiser state, epoch, step) as torch.save bytes, in a record of its own
        (``/resume_records/<epoch>``): the previous record stays until the new one is whole, so a run killed
        while saving still resumes from the one before."""
        buf = io.BytesIO()
        torch.save(dict(payload), buf)
        name = f"{int(payload.get('epoch', 0)):06d}"
        ensure_space(self.path, len(buf.getvalue()) + (64 << 10))
        with self._write() as f:
            g = f.require_group("resume_records")
            if name in g:
                del g[name]
            g.create_dataset(name, data=np.frombuffer(buf.getvalue(), np.uint8))
            for old in sorted(g)[:-2]:
                del g[old]
            if "resume" in f:  # the single record of files written before resume_records
                del f["resume"]

    def load_resume(self) -> dict[str, Any] | None:
        """The newest whole resume record (None when there is none)."""
        with self._open() as f:
            raws = [f["resume_records"][k][()].tobytes() for k in sorted(f["resume_records"])[::-1]] \
                if "resume_records" in f else []
            if "resume" in f:
                raws.append(f["resume"][()].tobytes())
        for raw in raws:
            try:
                return torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
            except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError):  # a record cut short by a kill
                continue
        return None

    def truncate_after(self, epoch: float) -> None:
        """Drop checkpoints and metric rows later than ``epoch`` (uncommitted work of a killed run)."""
        with self._write() as f:
            ep = f["checkpoints"]["epoch"][:]
            keep = int(np.searchsorted(ep, epoch, side="right"))
            for ds in (f["states"], *(f["checkpoints"][k] for k in ("epoch", "step", "kind", "checkpoint")
                                      if k in f["checkpoints"])):
                if ds.shape[0] > keep:
                    ds.resize(keep, 0)
            if "norms" in f:  # norms recorded after the last committed step are dropped too
                last_step = int(f["checkpoints"]["step"][keep - 1]) if keep else 0
                nkeep = int(np.searchsorted(f["norms"]["step"][:], last_step, side="right"))
                for k in ("step", "weight", "grad"):
                    f["norms"][k].resize(nkeep, 0)
            mep = f["metrics"]["epoch"][:]
            mkeep = int(np.searchsorted(mep, epoch, side="right"))
            for k in METRICS:
                if f["metrics"][k].shape[0] > mkeep:
                    f["metrics"][k].resize(mkeep, 0)

    def put_array(self, name: str, values: np.ndarray) -> None:
        """Store an extra dataset (e.g. a learned curve's endpoints, ``curve/start``), replacing one of that name."""
        with self._write() as f:
            ensure_space(self.path, values.nbytes + (64 << 10))
            if name in f:
                del f[name]
            f.create_dataset(name, data=values)

    def array(self, name: str) -> np.ndarray | None:
        """An extra dataset stored with :meth:`put_array`, or None."""
        with self._open() as f:
            return f[name][()] if name in f else None

    def set_attrs(self, **attrs: Any) -> None:
        with self._write() as f:
            f.attrs.update(attrs)
        self.attrs.update(attrs)

    # -- reading ----------------------------------------------------------------------------------
    def table(self) -> dict[str, np.ndarray]:
        """Checkpoint index: arrays ``epoch``, ``step``, ``kind``."""
        with self._open() as f:
            g = f["checkpoints"]
            n = f["states"].shape[0]  # a row is complete only once the state is written
            return {"epoch": g["epoch"][:n], "step": g["step"][:n],
                    "kind": np.array([k.decode() if isinstance(k, bytes) else k for k in g["kind"][:n]])}

    def metrics(self) -> dict[str, np.ndarray]:
        with self._open() as f:
            n = min(f["metrics"][k].shape[0] for k in METRICS)
            return {k: f["metrics"][k][:n] for k in METRICS}

    def __len__(self) -> int:
        with self._open() as f:
            return int(f["states"].shape[0])

    def resolve(self, ref: str | int) -> int:
        """Index of a checkpoint named ``init``, ``final``, ``mid``, ``epoch N``, ``step N``, ``#i`` or ``i``."""
        t = self.table()
        n = len(t["epoch"])
        if n == 0:
            raise CheckpointError(f"{self.path}: holds no checkpoint yet")
        s = str(ref).strip().lower()
        if s == "init":
            return 0
        if s in ("final", "last"):
            return n - 1
        if s in ("mid", "middle"):
            return int(np.argmin(np.abs(t["epoch"] - t["epoch"][-1] / 2)))
        m = re.fullmatch(r"(epoch|step)[\s:=_]*(\d+(\.\d+)?)", s)
        if m:
            key, val = m.group(1), float(m.group(2))
            hits = np.nonzero(np.isclose(t[key].astype(float), val))[0]
            if key == "epoch":
                hits = [i for i in hits if t["kind"][i] in ("init", "epoch")] or list(hits)
            if len(hits):
                return int(hits[0])
            avail = sorted(set(t[key].tolist()))
            raise CheckpointError(f"{self.path}: no checkpoint at {key} {m.group(2)}; available {key}s: "
                                  f"{avail[:20]}{' ...' if len(avail) > 20 else ''}")
        m = re.fullmatch(r"#?(-?\d+)", s)
        if m:
            i = int(m.group(1))
            if -n <= i < n:
                return i % n
            raise CheckpointError(f"{self.path}: checkpoint index {i} out of range; the store holds {n}")
        raise CheckpointError(f"checkpoint name {ref!r} not understood; expected 'init', 'final', 'mid', "
                              "'epoch N', 'step N' or '#index'")

    def vector(self, ref: str | int) -> torch.Tensor:
        """The flat float32 state of a checkpoint."""
        i = self.resolve(ref)
        with self._open() as f:
            return torch.from_numpy(f["states"][i])

    def state(self, ref: str | int) -> dict[str, torch.Tensor]:
        """A checkpoint as a state dict, loadable with ``model.load_state_dict``."""
        return unflatten_state(self.vector(ref), self.spec)

    def describe(self) -> str:
        """A short human-readable summary."""
        t, m = self.table(), self.metrics()
        kind = self.attrs.get("curve_kind")
        head = f"trajectory {self.path}" if kind is None else (
            f"learned {kind} curve {self.path}: the training of its bend (test_loss: the loss at t = 0.5)\n"
            f"  from {self.attrs.get('start')} to {self.attrs.get('end')}")
        lines = [head, f"  model {self.attrs.get('model')}  state size {self.spec.numel}",
                 f"  checkpoints {len(t['epoch'])} (epochs {t['epoch'][0] if len(t['epoch']) else '-'}"
                 f"..{t['epoch'][-1] if len(t['epoch']) else '-'})  complete {bool(self.attrs.get('complete'))}"]
        if len(m["epoch"]):
            lines.append("  epoch  train_loss  train_acc  test_loss  test_acc")
            for row in zip(*(m[k] for k in METRICS)):
                lines.append("  {:5.0f}  {:10.4f}  {:9.4f}  {:9.4f}  {:8.4f}".format(*row))
        return "\n".join(lines)
