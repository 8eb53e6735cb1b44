"""Losses by name: summed over a batch (training), and per sample (evaluation).

Sequence outputs ``(N, T, V)`` (the ``language`` task: logits of the next token at every position) take
``cross_entropy``/``nll`` over every target token; targets equal to :data:`IGNORE_INDEX` (padding) count for
nothing. A sample's loss is then the sum over its tokens, and means divide by the number of target tokens
(:func:`target_count`), so the loss is the mean per-token cross-entropy of the whole set.

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

from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError

__all__ = ["LOSSES", "PER_SAMPLE", "TASKS", "IGNORE_INDEX", "loss_function", "per_sample_loss", "target_count",
           "correct_count", "logits"]

#: the tasks a data set can have
TASKS = ("classification", "regression", "language")
#: targets of this value (padding) are left out of losses, accuracies and token counts
IGNORE_INDEX = -100


def _mse_sum(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.reshape(y.shape[0], -1), y.reshape(y.shape[0], -1), reduction="sum") / max(
        1, out[0].numel())


def _tokens(fn: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A class loss summed over a batch; sequence logits (N, T, V) are flattened to (N·T, V)."""
    def summed(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.dim() == 3:
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return fn(out, y, reduction="sum", ignore_index=IGNORE_INDEX)
    return summed


def _per_sequence(fn: Callable[..., torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A class loss per sample; for sequence logits the sum over the sample's tokens."""
    def per_sample(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.dim() == 3:
            tok = fn(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none", ignore_index=IGNORE_INDEX)
            return tok.view(y.shape).sum(1)
        return fn(out, y, reduction="none", ignore_index=IGNORE_INDEX)
    return per_sample


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _tokens(F.cross_entropy),
    "nll": _tokens(F.nll_loss),
    "mse": _mse_sum,
}


def _mse_per_sample(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n = y.shape[0]
    return F.mse_loss(out.reshape(n, -1), y.reshape(n, -1), reduction="none").mean(1)


PER_SAMPLE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": _per_sequence(F.cross_entropy),
    "nll": _per_sequence(F.nll_loss),
    "mse": _mse_per_sample,
}


def logits(out: Any) -> torch.Tensor:
    """A model's output as a tensor: ``out.logits`` for outputs that carry them (Hugging Face models' output
    objects), the first element of a tuple, else ``out`` itself.

    Example:
        >>> from types import SimpleNamespace
        >>> logits(SimpleNamespace(logits=torch.ones(1))).tolist(), logits((torch.zeros(1), None)).tolist()
        ([1.0], [0.0])
    """
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return out


def target_count(y: torch.Tensor, task: str) -> int:
    """What means divide by: samples, or for the ``language`` task the target tokens that are not padding.

    Example:
        >>> target_count(torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]]), "language")
        3
    """
    return int((y != IGNORE_INDEX).sum()) if task == "language" else int(y.shape[0])


def correct_count(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct predictions (argmax over the last axis; padding never counts), over all but a leading point
    axis when ``out`` has one more axis than ``y`` needs (stacked points): a scalar or one count per point.

    Example:
        >>> correct_count(torch.tensor([[[0., 1.], [1., 0.]]]), torch.tensor([[1, IGNORE_INDEX]])).item()
        1
    """
    hit = out.argmax(-1) == y
    return hit.sum() if hit.dim() == y.dim() else hit.flatten(1).sum(1)


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
    name = name or ("mse" if task == "regression" else "cross_entropy")
    if name not in LOSSES:
        raise ConfigError(f"loss: expected one of {sorted(LOSSES)}, got {name!r}")
    if task == "regression" and name != "mse" or task != "regression" and name == "mse":
        raise ConfigError(f"loss {name!r} does not suit a {task} task; use "
                          f"{'mse' if task == 'regression' else 'cross_entropy or nll'}")
    return name, LOSSES[name]
