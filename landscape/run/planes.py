"""The directions of a surface's plane, made from plain inputs: seeded random directions, directions towards
other checkpoints, the top principal components of a recorded trajectory, another surface file's
directions, or eigenvectors of the Hessian at the centre; and grid axes that follow the projected training path (``auto:NUM``).

Each maker returns flat d₁, d₂ (None for a line) in the centre's ``StateSpec`` order, and the description
of how they were made (stored in the surface file's inputs).

Example:
    >>> import torch
    >>> c = {"w": torch.ones(3, 2), "b": torch.ones(3)}
    >>> d1, d2, info = random_plane(c, ["w", "b"], seed=1, count=2)
    >>> d1.shape, info["norm"]
    (torch.Size([9]), 'filter')
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..analysis.directions import direction_between, movable_names, random_directions
from ..analysis.pca import auto_range, pca_directions
from ..analysis.spectrum import extreme_eigenpairs
from ..engine.evaluator import Evaluator
from ..engine.hessian import HessianOperator
from ..core.errors import ConfigError, StoreError
from ..core.grid import parse_range
from ..core.params import StateSpec, flatten_state, state_checksum
from ..io.hdf5 import open_hdf5
from ..io.surface_file import read_surface
from ..io.trajectory import TrajectoryStore

__all__ = ["random_plane", "checkpoint_plane", "pca_plane", "file_plane", "hessian_plane", "grid_axis",
           "find_trajectory", "random_basis", "checkpoint_basis", "pca_basis", "hessian_basis"]

log = logging.getLogger(__name__)

Plane = tuple[torch.Tensor, "torch.Tensor | None", dict[str, Any]]


def random_basis(center: Mapping[str, torch.Tensor], param_names: Sequence[str], count: int, seed: int = 0,
                 norm: str = "filter", ignore: str = "biasbn", dir_type: str = "weights"
                 ) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """``count`` flat seeded Gaussian directions normalised per ``norm`` (Li et al. 2018), d₁ first: the first two
    are a random plane's d₁ and d₂ with the same seed. ``dir_type="states"`` also moves buffers (BatchNorm running
    statistics), which are 1-D: with ``ignore="biasbn"`` they stay at θ*, as in the reference, and the directions
    equal ``dir_type="weights"`` (a warning says so).

    Example:
        >>> c = {"w": torch.ones(3, 2), "b": torch.ones(3)}
        >>> dirs, info = random_basis(c, ["w", "b"], 3, seed=1)
        >>> len(dirs), torch.equal(dirs[1], random_plane(c, ["w", "b"], seed=1)[1])
        (3, True)
    """
    if dir_type == "states" and movable_names(center, param_names, "states", ignore) == movable_names(
            center, param_names, "weights", ignore):
        log.warning("dir_type=states moves nothing more than dir_type=weights here: %s; use ignore=none to move "
                    "BatchNorm running statistics (each by d = w, as the reference does)",
                    "the model has no floating-point buffers" if ignore == "none" else
                    "its buffers are 1-D and ignore=biasbn keeps 1-D tensors at the centre")
    dirs = random_directions(center, param_names, seed, norm, ignore, dir_type, count)
    info = {"directions": "random", "norm": norm, "ignore": ignore, "dir_type": dir_type, "seed": seed}
    spec = StateSpec.from_state(center)
    return [flatten_state(d, spec) for d in dirs], info


def random_plane(center: Mapping[str, torch.Tensor], param_names: Sequence[str], seed: int = 0,
                 norm: str = "filter", ignore: str = "biasbn", dir_type: str = "weights", count: int = 2) -> Plane:
    """Seeded Gaussian directions normalised per ``norm`` (:func:`random_basis`), d₂ None for a line."""
    dirs, info = random_basis(center, param_names, count, seed, norm, ignore, dir_type)
    return dirs[0], dirs[1] if count == 2 else None, info


def checkpoint_basis(center: Mapping[str, torch.Tensor], targets: Sequence[tuple[Mapping[str, torch.Tensor], str]],
                     param_names: Sequence[str], dir_type: str = "weights"
                     ) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Flat d_k = θ_k − θ* towards each (state, source) of ``targets``. Every floating-point tensor moves, buffers
    too (BatchNorm running statistics), whatever ``dir_type`` says, so that c_k = 1 is θ_k (to float32 rounding).

    Example:
        >>> c = {"w": torch.zeros(2)}
        >>> dirs, info = checkpoint_basis(c, [({"w": torch.ones(2)}, "a.pt"), ({"w": -torch.ones(2)}, "b.pt")], ["w"])
        >>> [d.tolist() for d in dirs], info["target2"]
        ([[1.0, 1.0], [-1.0, -1.0]], 'b.pt')
    """
    movable = movable_names(center, param_names, "states", "none")
    buffers = sorted(n for n in movable if n not in set(param_names) and any(
        not torch.equal(center[n], t[n]) for t, _ in targets))
    if buffers and dir_type == "weights":
        log.info("checkpoint directions also move %d buffer(s) that differ between the models (e.g. %s), so that "
                 "α = 1 reaches the target", len(buffers), buffers[0])
    info: dict[str, Any] = {"directions": "checkpoints"}
    dirs = []
    for k, (target, source) in enumerate(targets, 1):
        dirs.append(direction_between(center, target, movable))
        info[f"target{k}"] = source
        info[f"target{k}_checksum"] = state_checksum(target)
    info.update(norm="none", ignore="none", dir_type="states")
    spec = StateSpec.from_state(center)
    return [flatten_state(d, spec) for d in dirs], info


def checkpoint_plane(center: Mapping[str, torch.Tensor], targets: Sequence[tuple[Mapping[str, torch.Tensor], str]],
                     param_names: Sequence[str], dir_type: str = "weights") -> Plane:
    """d_k = θ_k − θ* towards each of ``targets`` (one for a line, two for a plane; :func:`checkpoint_basis`)."""
    dirs, info = checkpoint_basis(center, targets, param_names, dir_type)
    return dirs[0], dirs[1] if len(dirs) == 2 else None, info


def pca_basis(store: TrajectoryStore, center: Mapping[str, torch.Tensor], param_names: Sequence[str],
              ignore: str = "biasbn", dir_type: str = "weights", checkpoints: str = "epochs", count: int = 2,
              center_row: bool = True) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The top ``count`` principal axes of the trajectory's checkpoints relative to the centre (rows θ_e − θ*,
    restricted to the tensors a direction may move; ``checkpoints="all"`` adds step checkpoints). ``center_row``
    keeps the centre's own zero row when the centre is a checkpoint (the reference implementation's matrix);
    without it the rows are those of Li et al.'s formula. With few checkpoints the two differ noticeably."""
    spec = StateSpec.from_state(center)
    if store.spec != spec:
        raise StoreError(f"{store.path}: its checkpoints do not fit this model's state layout")
    movable = movable_names(center, param_names, dir_type, ignore)
    mask = flatten_state({n: torch.full(t.shape, float(n in movable)) for n, t in center.items()}, spec)
    c = flatten_state(center, spec)
    t = store.table()
    rows = [i for i in range(len(t["kind"])) if checkpoints == "all" or t["kind"][i] != "step"]
    if not center_row:
        rows = [i for i in rows if not torch.equal(store.vector(i), c)]
    dirs, ratio = pca_directions(lambda k: (store.vector(rows[k]) - c) * mask, len(rows), count)
    info = {"directions": "pca", "norm": "none", "ignore": ignore, "dir_type": dir_type,
            "trajectory": str(store.path), "pca_rows": len(rows), "pca_center_row": center_row,
            "explained_variance": [float(r) for r in ratio[:10]]}
    return list(dirs[:count]), info


def pca_plane(store: TrajectoryStore, center: Mapping[str, torch.Tensor], param_names: Sequence[str],
              ignore: str = "biasbn", dir_type: str = "weights", checkpoints: str = "epochs", count: int = 2,
              center_row: bool = True) -> Plane:
    """The top principal axes of the trajectory (:func:`pca_basis`): d₁, d₂ (None for a line)."""
    dirs, info = pca_basis(store, center, param_names, ignore, dir_type, checkpoints, count, center_row)
    return dirs[0], (dirs[1] if count == 2 else None), info


def file_plane(path: str | Path, center: Mapping[str, torch.Tensor], count: int = 2) -> Plane:
    """The directions stored in another surface file, reused around the same centre of the same model."""
    spec = StateSpec.from_state(center)
    src = read_surface(path)
    with open_hdf5(src.path) as f:
        vecs = [torch.from_numpy(f["directions"][k][:]) for k in ("d1", "d2")[:count] if k in f["directions"]]
    if len(vecs) < count:
        raise StoreError(f"{src.path}: holds {len(vecs)} direction(s), this surface needs {count}")
    stored_spec = src.attrs.get("state_spec")
    if stored_spec is not None and json.loads(stored_spec) != spec.to_json():
        raise StoreError(f"{src.path}: its directions belong to a model with another state layout; "
                         "directions can be reused only for the same model")
    if src.inputs.get("center_checksum") != state_checksum(center):
        raise StoreError(f"{src.path}: its directions were made around a centre with checksum "
                         f"{src.inputs.get('center_checksum')}, this centre has {state_checksum(center)}; "
                         "reuse directions only around the same model")
    info = {"directions": "file", **{k: src.inputs.get(k) for k in ("norm", "ignore", "dir_type", "seed")},
            "directions_file": str(src.path)}
    return vecs[0], vecs[1] if count == 2 else None, info


def find_trajectory(given: str | Path | None, default: Path) -> TrajectoryStore | None:
    """The trajectory store ``given`` (which must exist), else ``default`` when it exists, else None."""
    path = Path(given) if given else default
    if given is None and not path.exists():
        return None
    return TrajectoryStore(path)


def grid_axis(text: str | None, projected: np.ndarray | None) -> np.ndarray | None:
    """Coordinates of an axis: ``MIN:MAX:NUM``, None (no beta: a line), or ``auto[:NUM]`` covering the
    ``projected`` coordinates of the training path with a margin.

    Example:
        >>> grid_axis("auto:3", np.array([0.0, 2.0])).tolist(), grid_axis("0:1:2", None).tolist()
        ([-0.5, 1.0, 2.5], [0.0, 1.0])
    """
    if text is None:
        return None
    if text.startswith("auto"):
        if projected is None:
            raise ConfigError("surface: auto grid ranges need the projected trajectory (a trajectory store)")
        return parse_range(auto_range(projected, int(text[5:]) if text.startswith("auto:") else 25))
    return parse_range(text)


def hessian_basis(evaluator: Evaluator, count: int, ignore: str = "biasbn", dir_type: str = "weights",
                  tol: float = 1e-3, max_iter: int = 100, seed: int = 0, pair: str = "top"
                  ) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Unit eigenvectors of the Hessian of the evaluator's loss at its current parameters: the ``count`` largest
    eigenvalues' (``pair="top"``), or λmax's and λmin's (``"extremes"``, two). The eigenvalues are part of the
    description (and so of the file and the axis labels)."""
    if pair not in ("top", "extremes"):
        raise ConfigError(f"surface.hessian_pair: expected 'top' or 'extremes', got {pair!r}")
    op = HessianOperator(evaluator, ignore=ignore, dir_type=dir_type)
    top, bottom = (count, 0) if pair == "top" or count == 1 else (1, 1)
    eig = extreme_eigenpairs(op.matvec, op.numel, top, bottom, tol, max_iter, seed=seed, device=evaluator.device,
                             matmat=op.block_matmat)
    if not eig.converged:
        log.warning("Hessian directions: Lanczos did not reach tol %g in %d iterations (residuals %s); the "
                    "directions are approximate (raise curvature.max_iter)", tol, eig.iterations, eig.residuals)
    dirs = [op.embed(v) for v in eig.vectors]
    info = {"directions": "hessian", "hessian_pair": pair, "eigenvalues": [float(v) for v in eig.values],
            "lanczos_iterations": eig.iterations, "lanczos_tol": tol, "ignore": ignore, "dir_type": dir_type,
            "norm": "none", "seed": seed, "parameters": op.numel}
    log.info("Hessian directions: eigenvalues %s (%d Lanczos iterations)",
             ", ".join(f"{v:.4g}" for v in eig.values), eig.iterations)
    return dirs, info


def hessian_plane(evaluator: Evaluator, pair: str = "top", ignore: str = "biasbn", dir_type: str = "weights",
                  count: int = 2, tol: float = 1e-3, max_iter: int = 100, seed: int = 0) -> Plane:
    """Unit eigenvectors of the Hessian at the evaluator's parameters (:func:`hessian_basis`): the two largest
    eigenvalues' (``pair="top"``), or λmax's and λmin's (``"extremes"``, Böttcher & Wheeler's view of saddles);
    one for a line.

    Example:
        >>> hessian_plane.__name__
        'hessian_plane'
    """
    dirs, info = hessian_basis(evaluator, count, ignore, dir_type, tol, max_iter, seed, pair)
    return dirs[0], dirs[1] if count == 2 else None, info
