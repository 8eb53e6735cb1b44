"""Directions for loss surfaces: random Gaussian directions with filter/layer/model normalisation
(Li et al. 2018), directions between checkpoints, and their bookkeeping.

A direction is a state-shaped mapping ``name -> tensor``. Tensors a direction must not move
(buffers for ``dir_type="weights"``, integer buffers always, and every 1-D tensor — biases and
BatchNorm parameters — for ``ignore="biasbn"``) are zero.

Filter normalisation: for every output filter (row along dim 0) ``d_f <- d_f / ||d_f|| * ||w_f||``.
A 1-D tensor (a bias, BatchNorm's weight, bias and running statistics) that a direction moves (``ignore="none"``)
gets ``d = w``, as the reference implementation does: moving by α scales it by (1 + α). ``layer``: each tensor scaled to ``||w||``; ``model``: the
whole direction scaled to ``||w||`` over the tensors it moves; ``none``: unchanged.

Example:
    >>> import torch
    >>> w = {"conv.weight": torch.tensor([[3., 4.], [0., 2.]]), "conv.bias": torch.tensor([1., 1.])}
    >>> d = {"conv.weight": torch.tensor([[1., 0.], [0., 5.]]), "conv.bias": torch.tensor([2., 2.])}
    >>> n = normalize_direction(d, w, "filter", "biasbn")
    >>> n["conv.weight"].tolist(), n["conv.bias"].tolist()
    ([[5.0, 0.0], [0.0, 2.0]], [0.0, 0.0])
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from ..core.errors import ConfigError

__all__ = ["NORMS", "IGNORES", "DIR_TYPES", "movable_names", "random_direction", "normalize_direction",
           "direction_between", "cosine", "random_directions"]

NORMS = ("filter", "layer", "model", "none")
IGNORES = ("biasbn", "none")
DIR_TYPES = ("weights", "states")
_EPS = 1e-10


def movable_names(center: Mapping[str, torch.Tensor], param_names: Iterable[str], dir_type: str = "weights",
                  ignore: str = "biasbn") -> set[str]:
    """Names of the tensors a direction may move.

    Example:
        >>> c = {"w": torch.zeros(2, 2), "b": torch.zeros(2), "bn.running_mean": torch.zeros(2)}
        >>> sorted(movable_names(c, ["w", "b"], "states", "none")), sorted(movable_names(c, ["w", "b"]))
        (['b', 'bn.running_mean', 'w'], ['w'])
    """
    if dir_type not in DIR_TYPES:
        raise ConfigError(f"dir_type: expected one of {list(DIR_TYPES)}, got {dir_type!r}")
    if ignore not in IGNORES:
        raise ConfigError(f"ignore: expected one of {list(IGNORES)}, got {ignore!r}")
    params = set(param_names)
    out = set()
    for name, t in center.items():
        if not t.is_floating_point():
            continue
        if dir_type == "weights" and name not in params:
            continue
        if ignore == "biasbn" and t.dim() <= 1:
            continue
        out.add(name)
    return out


def random_direction(center: Mapping[str, torch.Tensor], generator: torch.Generator,
                     movable: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Standard-normal values for the movable tensors (zeros elsewhere), drawn on the CPU in state order
    so the same seed gives the same direction on every device."""
    keep = set(center) if movable is None else set(movable)
    out = {}
    for name, t in center.items():
        if name in keep:
            out[name] = torch.randn(t.shape, generator=generator, dtype=torch.float32)
        else:
            out[name] = torch.zeros(t.shape, dtype=torch.float32)
    return out


def normalize_direction(direction: Mapping[str, torch.Tensor], center: Mapping[str, torch.Tensor],
                        norm: str = "filter", ignore: str = "biasbn",
                        movable: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """Scale a direction to the size of ``center`` (see module docstring); returns new tensors.

    Example:
        >>> w = {"a": torch.tensor([[3., 4.]]), "b": torch.tensor([[0., 1.]])}
        >>> d = {"a": torch.tensor([[1., 0.]]), "b": torch.tensor([[2., 0.]])}
        >>> n = normalize_direction(d, w, "model", "none")  # scale ||w|| / ||d|| = sqrt(26) / sqrt(5)
        >>> [round(float(v[0, 0]), 4) for v in n.values()]
        [2.2804, 4.5607]
    """
    if norm not in NORMS:
        raise ConfigError(f"norm: expected one of {list(NORMS)}, got {norm!r}")
    if ignore not in IGNORES:
        raise ConfigError(f"ignore: expected one of {list(IGNORES)}, got {ignore!r}")
    keep = set(direction) if movable is None else set(movable)
    out: dict[str, torch.Tensor] = {}
    for name, d in direction.items():
        w = center[name].detach().to(torch.float32).cpu()
        d = d.detach().to(torch.float32).cpu().clone()
        if name not in keep or (ignore == "biasbn" and d.dim() <= 1) or not center[name].is_floating_point():
            out[name] = torch.zeros_like(d)
            continue
        if d.dim() <= 1:  # biases, BatchNorm weights and statistics with ignore=none: d = w (as the reference)
            out[name] = w.clone()
            continue
        if norm == "filter":
            d2, w2 = d.view(_filters(d)), w.reshape(_filters(d))
            d2.mul_(w2.norm(dim=1, keepdim=True) / (d2.norm(dim=1, keepdim=True) + _EPS))
        elif norm == "layer":
            d.mul_(w.norm() / (d.norm() + _EPS))
        out[name] = d
    if norm == "model":
        moved = [n for n in out if n in keep and out[n].dim() > 1 and out[n].abs().sum() > 0]
        wn = torch.sqrt(sum((center[n].detach().float().cpu() ** 2).sum() for n in moved)) if moved else 0.0
        dn = torch.sqrt(sum((out[n] ** 2).sum() for n in moved)) if moved else 1.0
        for n in moved:
            out[n].mul_(wn / (dn + _EPS))
    return out


def _filters(t: torch.Tensor) -> tuple[int, int]:
    """Filter-major 2-D shape of a tensor: (filters, values per filter)."""
    return (t.shape[0], -1) if t.dim() else (1, 1)


def random_directions(center: Mapping[str, torch.Tensor], param_names: Iterable[str], seed: int = 0,
                      norm: str = "filter", ignore: str = "biasbn", dir_type: str = "weights", count: int = 2
                      ) -> list[dict[str, torch.Tensor]]:
    """``count`` normalised random directions from one seeded generator (d1 first, then d2).

    Example:
        >>> c = {"w": torch.ones(3, 2), "b": torch.ones(3)}
        >>> d1, d2 = random_directions(c, ["w", "b"], seed=1)
        >>> torch.allclose(d1["w"].norm(dim=1), c["w"].norm(dim=1)), d1["b"].abs().sum().item()
        (True, 0.0)
    """
    movable = movable_names(center, param_names, dir_type, ignore)
    g = torch.Generator().manual_seed(seed)
    return [normalize_direction(random_direction(center, g, movable), center, norm, ignore, movable)
            for _ in range(count)]


def direction_between(center: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                      movable: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """``target - center`` for the movable tensors (zeros elsewhere).

    Example:
        >>> direction_between({"w": torch.tensor([1., 2.])}, {"w": torch.tensor([4., 6.])})["w"].tolist()
        [3.0, 4.0]
    """
    keep = set(center) if movable is None else set(movable)
    return {n: (target[n].float().cpu() - c.float().cpu()) if n in keep and c.is_floating_point()
            else torch.zeros(c.shape) for n, c in center.items()}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the angle between two flat vectors (0 when either is zero).

    Example:
        >>> round(cosine(torch.tensor([1., 0.]), torch.tensor([1., 1.])), 6)
        0.707107
    """
    na, nb = a.double().norm(), b.double().norm()
    if na == 0 or nb == 0:
        return 0.0
    return float((a.double() @ b.double()) / (na * nb))
