"""Recording the trajectory of your own training loop into the documented trajectory store, so PCA planes,
projected paths, dynamics, curves and the report work on it.

``Recorder(model, "run.h5")`` stores the model's state as ``init`` when it is created; ``rec.step(loss=...)``
after each optimiser step (a ``step`` checkpoint every ``every_steps``, layer norms every ``norms_every``),
``rec.epoch(**metrics)`` after each epoch (an ``epoch`` checkpoint every ``every_epochs`` and a metrics row:
``train_loss`` defaults to the mean of the epoch's step losses), ``rec.close()`` (or leaving the ``with`` block)
records the last state if it was not recorded and marks the store complete. Metrics other than ``train_loss``,
``train_accuracy``, ``test_loss`` and ``test_accuracy`` are kept too (the ``extra_metrics`` attribute).

After a crash, ``Recorder(model, "run.h5")`` on the existing store goes on after its last checkpoint; a script
that restarts from its own checkpoint of epoch k passes ``resume_epoch=k`` (later records are dropped).

Example:
    >>> import tempfile, torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> path = tempfile.mkdtemp() + "/run.h5"
    >>> with Recorder(model, path, every_steps=2) as rec:
    ...     for epoch in range(2):
    ...         for _ in range(3):
    ...             opt.zero_grad(); loss = model(torch.ones(4, 2)).pow(2).mean(); loss.backward(); opt.step()
    ...             rec.step(loss=loss.item())
    ...         rec.epoch(test_loss=0.5)
    >>> st = TrajectoryStore(path)
    >>> st.table()["kind"].tolist(), st.metrics()["epoch"].tolist()
    (['init', 'step', 'epoch', 'step', 'step', 'epoch'], [1.0, 2.0])
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..analysis.dynamics import LayerNorms
from ..core.errors import StoreError
from ..core.params import StateSpec, model_state
from ..io.trajectory import METRICS, TrajectoryStore

__all__ = ["Recorder"]

log = logging.getLogger(__name__)


class Recorder:
    """Writes a training run's checkpoints and metrics to a trajectory store (see the module's description)."""

    def __init__(self, model: nn.Module, path: str | Path, every_steps: int | None = None, every_epochs: int = 1,
                 norms_every: int = 0, steps_per_epoch: int | None = None, resume_epoch: float | None = None,
                 meta: dict[str, Any] | None = None):
        if not isinstance(model, nn.Module):
            raise StoreError(f"Recorder: expected the torch.nn.Module being trained, got {type(model).__name__}")
        for name, v in (("every_steps", every_steps), ("steps_per_epoch", steps_per_epoch)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise StoreError(f"Recorder: {name} must be an integer >= 1 or None, got {v!r}")
        if not isinstance(every_epochs, int) or every_epochs < 0:
            raise StoreError(f"Recorder: every_epochs must be an integer >= 0 (0: no epoch checkpoints), got "
                             f"{every_epochs!r}")
        self.model, self.path = model, Path(path)
        self.every_steps, self.every_epochs, self.norms_every = every_steps, every_epochs, int(norms_every)
        self.steps_per_epoch = steps_per_epoch
        spec = StateSpec.from_state(model_state(model))
        self._norms = LayerNorms(model) if self.norms_every else None
        self._losses: list[float] = []
        self._extra: dict[str, list[float]] = {}
        self.closed = False
        if self.path.exists():
            self.store = TrajectoryStore(self.path)
            if self.store.spec != spec:
                raise StoreError(f"{self.path}: holds a trajectory of another model (state layout differs); record "
                                 "into a new file")
            if resume_epoch is not None:
                self.store.truncate_after(float(resume_epoch))
            t = self.store.table()
            self.steps = int(t["step"][-1]) if len(t["step"]) else 0
            self.epochs = int(math.floor(t["epoch"][-1])) if len(t["epoch"]) else 0
            self._extra = json.loads(self.store.attrs.get("extra_metrics", "{}"))
            self.store.set_attrs(complete=False)
            log.info("%s: recording on after epoch %d, step %d", self.path, self.epochs, self.steps)
        else:
            attrs = {"model": type(model).__name__, "recorded_by": "Recorder", **dict(meta or {})}
            self.store = TrajectoryStore.create(self.path, spec, attrs, init=self._flat())
            self.steps = self.epochs = 0
        self._step_in_epoch = 0
        self._last_recorded_step = self.steps

    def _flat(self) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1).float().cpu() for t in model_state(self.model).values()])

    def _epoch_value(self) -> float:
        if self.steps_per_epoch:
            return self.epochs + min(self._step_in_epoch / self.steps_per_epoch, 1.0)
        return float(self.epochs)

    def step(self, loss: float | torch.Tensor | None = None) -> None:
        """One optimiser step taken (call it after ``optimizer.step()``); ``loss`` the step's training loss."""
        if self.closed:
            raise StoreError(f"{self.path}: the recorder is closed")
        self.steps += 1
        self._step_in_epoch += 1
        if loss is not None:
            self._losses.append(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss))
        if self._norms is not None and self.steps % self.norms_every == 0:
            self._norms.record(self.steps, self._norms.grad_norms())
        if self.every_steps and self.steps % self.every_steps == 0:
            self.store.append_checkpoint(self._flat(), self._epoch_value(), self.steps, "step")
            self._last_recorded_step = self.steps

    def epoch(self, **metrics: float) -> None:
        """One epoch done: an ``epoch`` checkpoint every ``every_epochs`` and a row of ``metrics``."""
        if self.closed:
            raise StoreError(f"{self.path}: the recorder is closed")
        if self.steps_per_epoch is None and self._step_in_epoch:
            self.steps_per_epoch = self._step_in_epoch
        self.epochs += 1
        self._step_in_epoch = 0
        values = {k: float(v) for k, v in metrics.items()}
        if "train_loss" not in values and self._losses:
            values["train_loss"] = float(np.mean(self._losses))
        self._losses = []
        if self.every_epochs and self.epochs % self.every_epochs == 0:
            self.store.append_checkpoint(self._flat(), float(self.epochs), self.steps, "epoch")
            self._last_recorded_step = self.steps
        self.store.append_metrics(epoch=float(self.epochs), **{k: v for k, v in values.items() if k in METRICS})
        extra = {k: v for k, v in values.items() if k not in METRICS}
        if extra:
            for k, v in extra.items():
                self._extra.setdefault(k, []).append(v)
            self.store.set_attrs(extra_metrics=json.dumps(self._extra))
        if self._norms is not None:
            self.store.append_norms(*self._norms.flush())

    def close(self) -> None:
        """Record the current state if it was not (the ``final`` checkpoint) and mark the store complete."""
        if self.closed:
            return
        if self.steps != self._last_recorded_step:
            kind = "epoch" if self._step_in_epoch == 0 else "step"
            self.store.append_checkpoint(self._flat(), self._epoch_value(), self.steps, kind)
            self._last_recorded_step = self.steps
        if self._norms is not None:
            self.store.append_norms(*self._norms.flush())
        self.store.set_attrs(complete=True)
        self.closed = True

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        # after an exception the store stays incomplete, as a killed run's does: a new Recorder goes on from it

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, epoch {self.epochs}, step {self.steps})"
