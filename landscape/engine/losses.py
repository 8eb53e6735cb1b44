"""Losses by name: summed over a batch (training), and per sample (evaluation).

The evaluator sums per-sample losses in float64, one point at a time, in sample order: every way of
evaluating points (one at a time, stacked with vmap, on threads) reduces the same values the same way, so a
stored value does not depend on how it was computed (see :mod:`landscape.engine.calibration`).

Example:
    >>> import torch
    >>> name, fn = loss_function(None, "classification")
    >>> name, round(float(fn(torch.zeros(2, 3), torch.tensor([0, 1]))), 4)
    ('cross_entropy', 2.1972)
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError

__all__ = ["LOSSES", "PER_SAMPLE", "loss_function", "per_sample_loss"]


def _mse_sum(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.reshape(y.shape[0], -1), y.reshape(y.shape[0], -1), reduction="sum") / max(
        1, out[0].numel())


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": lambda out, y: F.cross_entropy(out, y, reduction="sum"),
    "nll": lambda out, y: F.nll_loss(out, y, reduction="sum"),
    "mse": _mse_sum,
}


def _mse_per_sample(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n = y.shape[0]
    return F.mse_loss(out.reshape(n, -1), y.reshape(n, -1), reduction="none").mean(1)


PER_SAMPLE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": lambda out, y: F.cross_entropy(out, y, reduction="none"),
    "nll": lambda out, y: F.nll_loss(out, y, reduction="none"),
    "mse": _mse_per_sample,
}


def per_sample_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of each sample (shape ``[N]``) by name, as :func:`loss_function` names it.

    Example:
        >>> per_sample_loss("mse")(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0]])).tolist()
        [5.0]
    """
    return PER_SAMPLE[name]


def loss_function(name: str | None, task: str) -> tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The summed loss by name (default from the task: cross_entropy or mse).

    Example:
        >>> loss_function(None, "regression")[0]
        'mse'
    """
    name = name or ("cross_entropy" if task == "classification" else "mse")
    if name not in LOSSES:
        raise ConfigError(f"loss: expected one of {sorted(LOSSES)}, got {name!r}")
    if task == "regression" and name != "mse" or task == "classification" and name == "mse":
        raise ConfigError(f"loss {name!r} does not suit a {task} task; use "
                          f"{'mse' if task == 'regression' else 'cross_entropy or nll'}")
    return name, LOSSES[name]
