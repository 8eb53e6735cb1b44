"""Recording a trajectory from PyTorch Lightning's ``Trainer`` and Hugging Face's ``transformers.Trainer``: callbacks
that drive a :class:`~landscape.run.recorder.Recorder` (the same store, on the main process only).

- :func:`lightning_recorder`: ``Trainer(callbacks=[ls.lightning_recorder("run.h5")])``; a step is a training batch
  whose loss the ``training_step`` returned; epoch metrics come from ``trainer.callback_metrics`` (``train_loss``,
  ``train_acc``/``train_accuracy``, ``val_loss`` as ``test_loss``, ``val_acc``/``val_accuracy`` as ``test_accuracy``,
  any other scalar kept as an extra metric).
- :func:`hf_recorder`: ``Trainer(..., callbacks=[ls.hf_recorder("run.h5")])``; a step is an optimiser step
  (``on_step_end``); the logged ``loss`` values of an epoch average into ``train_loss``, ``eval_loss`` and
  ``eval_accuracy`` (when evaluated each epoch) become ``test_loss`` and ``test_accuracy``.

Example:
    >>> lightning_recorder.__name__, hf_recorder.__name__  # tests/run/test_callbacks.py trains with both
    ('lightning_recorder', 'hf_recorder')
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..core.optional import require
from .recorder import Recorder

__all__ = ["lightning_recorder", "hf_recorder", "metric_names"]

_NAMES = {"train_loss": "train_loss", "train_acc": "train_accuracy", "train_accuracy": "train_accuracy",
          "val_loss": "test_loss", "val_acc": "test_accuracy", "val_accuracy": "test_accuracy",
          "test_loss": "test_loss", "test_acc": "test_accuracy", "test_accuracy": "test_accuracy",
          "eval_loss": "test_loss", "eval_accuracy": "test_accuracy", "eval_acc": "test_accuracy"}


def metric_names(metrics: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics under the store's names (``val_loss`` → ``test_loss``, ...); others as they are.

    Example:
        >>> metric_names({"val_loss": 0.5, "lr": 0.1, "note": "x"})
        {'test_loss': 0.5, 'lr': 0.1}
    """
    out: dict[str, float] = {}
    for k, v in metrics.items():
        try:
            value = float(v.detach()) if hasattr(v, "detach") else float(v)
        except (TypeError, ValueError, RuntimeError):
            continue
        name = _NAMES.get(k.replace("/", "_").removesuffix("_epoch"), k.replace("/", "_"))
        if name.endswith("_step"):
            continue
        out.setdefault(name, value)
    return out


def lightning_recorder(path: str | Path, every_steps: int | None = None, every_epochs: int = 1,
                       norms_every: int = 0, package: str = "lightning.pytorch") -> Any:
    """A Lightning ``Callback`` recording the LightningModule's trajectory into ``path`` (``package``:
    ``lightning.pytorch`` or ``pytorch_lightning``, whichever your Trainer comes from)."""
    pl = require(package, "lightning")
    kw = {"every_steps": every_steps, "every_epochs": every_epochs, "norms_every": norms_every}

    class LandscapeRecorder(pl.Callback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.recorder: Recorder | None = None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.is_global_zero:
                self.recorder = Recorder(pl_module, path, **kw)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if self.recorder is None:
                return
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            self.recorder.step(loss=loss if loss is not None and hasattr(loss, "detach") or
                               isinstance(loss, float) else None)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if self.recorder is not None and not trainer.sanity_checking:
                self.recorder.epoch(**metric_names(dict(trainer.callback_metrics)))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.recorder is not None:
                self.recorder.close()

    return LandscapeRecorder()


def hf_recorder(path: str | Path, every_steps: int | None = None, every_epochs: int = 1,
                norms_every: int = 0) -> Any:
    """A ``transformers.TrainerCallback`` recording the trained model's trajectory into ``path``."""
    transformers = require("transformers", "hf")
    kw = {"every_steps": every_steps, "every_epochs": every_epochs, "norms_every": norms_every}

    class LandscapeRecorder(transformers.TrainerCallback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.recorder: Recorder | None = None
            self.losses: list[float] = []
            self.pending: dict[str, float] | None = None  # an epoch's row, waiting for its evaluation

        def _flush(self, evaluation: dict[str, Any] | None = None) -> None:
            if self.recorder is None or self.pending is None:
                return
            row = dict(self.pending)
            row.update(metric_names({k: v for k, v in (evaluation or {}).items()
                                     if k in ("eval_loss", "eval_accuracy", "eval_acc")}))
            self.pending = None
            self.recorder.epoch(**row)

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if state.is_world_process_zero and model is not None:
                self.recorder = Recorder(model, path, **kw)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.recorder is not None:
                self.recorder.step()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            value = (logs or {}).get("loss")
            if value is not None and math.isfinite(float(value)):
                self.losses.append(float(value))

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._flush()

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.recorder is None:
                return
            self._flush()
            self.pending = {"train_loss": sum(self.losses) / len(self.losses)} if self.losses else {}
            self.losses = []

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None,
                        **kwargs: Any) -> None:
            self._flush(metrics)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.recorder is not None:
                self._flush()
                self.recorder.close()

    return LandscapeRecorder()
