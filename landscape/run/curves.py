"""Training learned curves (Garipov et al. 2018) with the training machinery of ordinary runs.

The bend θ_b of a ``bezier`` or ``polychain`` curve between fixed endpoints is trained by SGD on the expected
training loss over t ~ U(0, 1), a fresh t per mini-batch (:class:`~landscape.engine.curve.CurveModule`),
starting from the chord's midpoint. The run is recorded like a training run — a trajectory store per curve,
``OUTPUT/<paths.output>_<kind>_curve.h5``, with a checkpoint of θ_b per epoch, the optimiser state to resume
from, and per-epoch metrics (train loss: the mean over the sampled t; test loss: the loss at t = 0.5) — so a
killed curve training resumes where it stopped and equals an uninterrupted one. The endpoints are stored in
the same file (``/curve/start``, ``/curve/end``), so :func:`load_curve` rebuilds the whole curve from it.

Example:
    >>> import tempfile, os
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> tr, te = load_data("spiral", n_per_class=20)
    >>> a, b = (build_model("mlp", tr.info(), depth=1, width=4).state_dict() for _ in range(2))
    >>> path = os.path.join(tempfile.mkdtemp(), "c.h5")
    >>> c = train_curve(build_model("mlp", tr.info(), depth=1, width=4), "bezier", a, b, tr, te,
    ...                 CurveConfig(epochs=1), path, device="cpu", progress=False)
    >>> load_curve(path).kind, sorted(c.bend) == sorted(a)
    ('bezier', True)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..analysis.curves import CURVE_KINDS, Curve
from ..core.data import TensorData
from ..core.errors import StoreError
from ..core.params import StateSpec, flatten_state, state_checksum, unflatten_state
from ..engine.curve import CurveModule, bend_state
from ..io.trajectory import TrajectoryStore
from .config import CurveConfig, TrainConfig
from .training import train

__all__ = ["curve_train_config", "train_curve", "load_curve", "curve_file"]

log = logging.getLogger(__name__)

_ENDS = ("curve/start", "curve/end")


def curve_train_config(cfg: CurveConfig, loss: str | None = None) -> TrainConfig:
    """The training settings of a curve: SGD with the ``[paths.curve]`` values.

    Example:
        >>> curve_train_config(CurveConfig(epochs=3, lr=0.1)).epochs
        3
    """
    return TrainConfig(optimizer="sgd", lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                       lr_milestones=list(cfg.lr_milestones), lr_gamma=cfg.lr_gamma, epochs=cfg.epochs,
                       batch_size=cfg.batch_size, seed=cfg.seed, loss=loss)


def curve_file(output: str | Path, prefix: str, kind: str) -> Path:
    """Where a job's learned curve of ``kind`` is stored.

    Example:
        >>> curve_file("out", "path", "bezier").as_posix()
        'out/path_bezier_curve.h5'
    """
    return Path(output) / f"{prefix}_{kind}_curve.h5"


def _flat_ends(store: TrajectoryStore, start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor]
               ) -> None:
    """Store the endpoints in the curve store's own layout (as bends), once."""
    if all(store.array(name) is not None for name in _ENDS):
        return
    for name, s in zip(_ENDS, (start, end)):
        full = {f"bend.{k}": v for k, v in s.items()}
        full["draws"] = torch.zeros((), dtype=torch.float64)
        store.put_array(name, flatten_state(full, store.spec).numpy())


def train_curve(model: nn.Module, kind: str, start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor],
                train_data: TensorData, test_data: TensorData, cfg: CurveConfig, path: str | Path,
                device: str | torch.device = "auto", eval_batch_size: int = 256, loss: str | None = None,
                meta: Mapping[str, Any] | None = None, progress: bool = True) -> Curve:
    """Train (or resume, or just read) the bend of a ``kind`` curve between ``start`` and ``end`` into the store
    ``path``; returns the learned :class:`~landscape.analysis.curves.Curve`. ``meta`` (model, data, sources) is
    stored and must match on resume, as the endpoints' checksums and the settings must."""
    if kind not in CURVE_KINDS:
        raise StoreError(f"learned curve kind: expected one of {list(CURVE_KINDS)}, got {kind!r}")
    module = CurveModule(model, kind, start, end, cfg.seed)
    info = {**dict(meta or {}), "curve_kind": kind, "curve_metrics_t": 0.5,
            "curve_checksums": [state_checksum(dict(start)), state_checksum(dict(end))]}
    tcfg = curve_train_config(cfg, loss)
    store = train(module, train_data, test_data, tcfg, path, device, eval_batch_size, meta=info, progress=progress)
    _flat_ends(store, start, end)
    m = store.metrics()
    if len(m["epoch"]) > 1:
        log.info("%s curve trained for %d epochs: train loss %.4f (mean over t), loss at t = 0.5: %.4f",
                 kind, int(m["epoch"][-1]), m["train_loss"][-1], m["test_loss"][-1])
    return load_curve(path)


def load_curve(path: str | Path) -> Curve:
    """The learned curve stored in ``path`` (its final bend), with its endpoints: evaluate it at any t with
    ``curve.state(t)``.

    Example:
        >>> load_curve.__name__
        'load_curve'
    """
    store = TrajectoryStore(path)
    kind = store.attrs.get("curve_kind")
    ends = [store.array(name) for name in _ENDS]
    if kind is None or any(e is None for e in ends):
        raise StoreError(f"{store.path}: not a learned curve (no curve_kind attribute or endpoints); curves are "
                         "written by the paths stage with paths.kinds = [\"bezier\"] or [\"polychain\"]")
    spec: StateSpec = store.spec
    start, end = (bend_state(unflatten_state(torch.from_numpy(np.asarray(e)), spec)) for e in ends)
    bend = bend_state(store.state("final"))
    return Curve(str(kind), start, bend, end, dict(store.attrs))
