"""Checkpoints of a training run projected onto a surface's plane: the training path stored with a surface,
and other runs projected onto a fixed plane (``landscape project``).

Example:
    >>> project_onto.__name__
    'project_onto'
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..analysis.pca import projected_path
from ..core.errors import ConfigError
from ..io.hdf5 import label_dimension, open_hdf5
from ..io.surface_file import read_surface
from ..io.trajectory import TrajectoryStore

__all__ = ["projection_datasets", "project_trajectory", "project_onto"]


def projection_datasets(store: TrajectoryStore, coords: np.ndarray, group: str = "trajectory"
                        ) -> dict[str, np.ndarray]:
    """``group/{alpha,beta,epoch,step,loss,accuracy}`` of projected checkpoints (recorded test metrics at
    epoch checkpoints, NaN at step checkpoints)."""
    t, m = store.table(), store.metrics()
    loss, acc = np.full(len(coords), np.nan), np.full(len(coords), np.nan)
    for i, (kind, ep) in enumerate(zip(t["kind"], t["epoch"])):
        hit = np.flatnonzero(np.isclose(m["epoch"], ep))
        if kind != "step" and len(hit):
            loss[i], acc[i] = m["test_loss"][hit[0]], m["test_accuracy"][hit[0]]
    return {f"{group}/alpha": coords[:, 0], f"{group}/beta": coords[:, 1], f"{group}/epoch": t["epoch"],
            f"{group}/step": t["step"].astype(np.float64), f"{group}/loss": loss, f"{group}/accuracy": acc}


def project_trajectory(store: TrajectoryStore, center: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor | None,
                       method: str = "lstsq") -> dict[str, np.ndarray]:
    """Every checkpoint of ``store`` projected onto the plane through the flat ``center`` spanned by d₁, d₂:
    the ``trajectory/...`` datasets of a surface file."""
    coords = projected_path(store.vector, len(store), center, d1, d2, method)
    return projection_datasets(store, coords)


def project_onto(surface: Path | str, trajectory: Path | str, label: str, method: str = "lstsq") -> np.ndarray:
    """Project another run's checkpoints onto a surface's plane (its θ*, d₁, d₂): a fixed plane on which
    runs can be compared. Stored as ``/projections/<label>/...``; returns the (n, 2) coordinates."""
    s = read_surface(surface)
    other = TrajectoryStore(trajectory)
    with open_hdf5(s.path) as f:
        if "center" not in f["directions"]:
            raise ConfigError(f"{s.path}: holds no centre vector (written by an older landscape); recompute it")
        c = torch.from_numpy(f["directions/center"][:])
        d1 = torch.from_numpy(f["directions/d1"][:])
        d2 = torch.from_numpy(f["directions/d2"][:]) if "d2" in f["directions"] else None
    if other.spec.numel != c.numel() or json.loads(s.attrs["state_spec"]) != other.spec.to_json():
        raise ConfigError(f"{trajectory}: its model's state layout differs from the surface's; a plane can only "
                          "be shared by runs of the same model")
    coords = projected_path(other.vector, len(other), c, d1, d2, method)
    with open_hdf5(s.path, "r+") as f:
        g = f.require_group("projections")
        if label in g:
            del g[label]
        for key, arr in projection_datasets(other, coords, f"projections/{label}").items():
            f.create_dataset(key, data=arr)
        label_dimension(g[label], "checkpoint")
        g[label].attrs["trajectory"] = str(trajectory)
        g[label].attrs["method"] = method
    return coords
