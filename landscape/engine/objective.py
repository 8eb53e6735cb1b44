"""Losses beyond the named per-sample ones: a callable ``loss(outputs, targets) -> summed loss``, a
``step(model, batch) -> (loss_sum, count)`` for models that compute their own loss (``model(**batch).loss``),
the next-token ``token_cross_entropy`` of Hugging Face causal LMs, and dict batches (``model(**batch)``).

How a point's loss is formed (every kind sums over the batches in their fixed order, in float64, then divides once):

- a named loss (``cross_entropy``, ``nll``, ``mse``): the sum of the per-sample losses over all samples (over all
  target tokens for sequences), divided by the number of samples (target tokens);
- ``token_cross_entropy``: targets are the input ids themselves (Hugging Face ``labels``); the logits at position
  t are scored against the token at t + 1; the sum over all such target tokens that are not ``-100``, divided by
  their number (what ``model(**batch).loss`` of a causal LM averages per batch, here averaged over the whole set);
- a callable ``loss(outputs, targets)``: its value per batch (a scalar: the batch's *summed* loss) added up over the
  batches, divided by the number of samples;
- a ``step(model, batch)``: its ``loss_sum`` added up over the batches, divided by the sum of its ``count``
  (a batch is ``(x, y)`` for tensor data, the dict for dict batches). Mean losses times their count are sums.

Accuracy is the fraction of argmax predictions equal to the targets where the outputs are logits of the targets'
shape plus a class axis; NaN otherwise (regression, steps).

Example:
    >>> import torch
    >>> obj = Objective(loss=lambda out, y: ((out - y) ** 2).sum(), task="regression")
    >>> net = torch.nn.Linear(1, 1)
    >>> with torch.no_grad(): _ = net.weight.fill_(1.0), net.bias.zero_()
    >>> loss, count, correct = obj.terms(net, torch.ones(4, 1), torch.zeros(4, 1))
    >>> float(loss), int(count), correct
    (4.0, 4, None)
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from ..core.errors import ConfigError, ModelError
from .losses import IGNORE_INDEX, LOSSES, correct_count, logits, per_sample_loss

__all__ = ["Step", "Objective", "is_step", "OBJECTIVE_LOSSES"]

#: loss names beyond :data:`~landscape.engine.losses.LOSSES`
OBJECTIVE_LOSSES = ("token_cross_entropy",)


class Step:
    """Marks ``fn(model, batch) -> (loss_sum, count)`` as a step (a callable whose first parameter is named
    ``model``, ``net`` or ``module`` is taken as one without it).

    Example:
        >>> is_step(Step(lambda m, b: (m(b[0]).sum(), 1))), is_step(lambda model, batch: None)
        (True, True)
    """

    def __init__(self, fn: Callable[[torch.nn.Module, Any], tuple[Any, Any]]):
        self.fn = fn

    def __call__(self, model: torch.nn.Module, batch: Any) -> tuple[Any, Any]:
        return self.fn(model, batch)


def is_step(loss: Any) -> bool:
    """True when ``loss`` is a :class:`Step` or a callable whose first parameter is named model/net/module."""
    if isinstance(loss, Step):
        return True
    if not callable(loss) or isinstance(loss, str):
        return False
    try:
        params = list(inspect.signature(loss).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] in ("model", "net", "module")


def _token_terms(out: torch.Tensor, y: torch.Tensor, classify: bool) -> tuple[torch.Tensor, torch.Tensor,
                                                                                    torch.Tensor | None]:
    out, y = out[:, :-1], y[:, 1:]
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1), reduction="sum",
                           ignore_index=IGNORE_INDEX)
    keep = y != IGNORE_INDEX
    return loss, keep.sum(), ((out.argmax(-1) == y) & keep).sum() if classify else None


class Objective:
    """One batch's summed loss, the count it divides by and its correct predictions, for the losses and data of
    the module's description; ``fields`` are the dict batches' tensors over all rows (``x`` is then the row
    index)."""

    def __init__(self, loss: str | Callable[..., Any] | None, task: str,
                 fields: Mapping[str, torch.Tensor] | None = None):
        self.task = task
        self.fields = dict(fields) if fields is not None else None
        self.step = loss if is_step(loss) else None
        self.fn = loss if callable(loss) and self.step is None else None
        if isinstance(loss, str) or loss is None:
            name = loss or ("mse" if task == "regression" else "cross_entropy")
            if name not in LOSSES and name not in OBJECTIVE_LOSSES:
                raise ConfigError(f"loss: expected one of {sorted(LOSSES) + list(OBJECTIVE_LOSSES)}, a callable "
                                  f"(outputs, targets) -> summed loss or a step(model, batch) -> (loss_sum, count); "
                                  f"got {name!r}")
            if name == "token_cross_entropy" and task != "language":
                raise ConfigError(f"loss 'token_cross_entropy' scores next tokens of a language model; the data's "
                                  f"task is {task}. Give token ids with labels of the same shape")
            self.name = name
        elif self.step is not None:
            self.name = getattr(getattr(loss, "fn", loss), "__name__", "step")
        else:
            self.name = getattr(loss, "__name__", "loss")
        self.name = self.name if self.name != "<lambda>" else ("step" if self.step is not None else "loss")

    @property
    def counts_samples(self) -> bool:
        """True when a point's loss divides by the number of samples (callable losses)."""
        return self.fn is not None

    def to(self, device: torch.device) -> "Objective":
        """The dict batches' tensors moved to ``device`` (once)."""
        if self.fields is not None:
            self.fields = {k: v.to(device) for k, v in self.fields.items()}
        return self

    def batch(self, x: torch.Tensor, y: torch.Tensor, labels: bool) -> Any:
        """What the model (or the step) is given: the dict of the rows ``x`` of every field (without ``labels``
        unless asked), or ``x`` itself."""
        if self.fields is None:
            return (x, y) if labels else x
        return {k: v[x] for k, v in self.fields.items() if labels or k != "labels"}

    def _call(self, net: torch.nn.Module, inputs: Any) -> Any:
        try:
            return net(**inputs) if isinstance(inputs, dict) else net(inputs)
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            shapes = ({k: tuple(v.shape) for k, v in inputs.items()} if isinstance(inputs, dict)
                      else tuple(inputs.shape))
            raise ModelError(f"the model does not accept the data: inputs {shapes} gave {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:300]}. Check the data's shapes against the model's "
                             "first layer (or give dict batches whose keys are the model's arguments)") from exc

    def terms(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
              ) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """(summed loss, count, correct or None) of one batch: differentiable when the forward is."""
        classify = self.task != "regression"
        if self.step is not None:
            out = self.step(net, self.batch(x, y, labels=True))
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise ModelError(f"step {self.name!r}: expected (loss_sum, count), got {type(out).__name__}")
            loss, count = out
            loss = torch.as_tensor(loss)
            if loss.numel() != 1:
                raise ModelError(f"step {self.name!r}: loss_sum must be a scalar, got shape {tuple(loss.shape)}")
            return loss.reshape(()), count, None
        out = self._call(net, self.batch(x, y, labels=False))
        if self.fn is not None:
            loss = self.fn(out, y)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ModelError(f"loss {self.name!r}: expected a scalar (the batch's summed loss), got {shape}; "
                                 "sum it over the batch (e.g. F.cross_entropy(out, y, reduction='sum'))")
            z = logits(out)
            hits = None
            if classify and isinstance(z, torch.Tensor) and z.dim() == y.dim() + 1 and z.shape[:-1] == y.shape:
                hits = correct_count(z, y)
            return loss.reshape(()), y.shape[0], hits
        z = logits(out)
        if not isinstance(z, torch.Tensor):
            raise ModelError(f"the model returned {type(out).__name__}, not logits; give a loss callable or a step")
        if self.name == "token_cross_entropy":
            return _token_terms(z, y, classify)
        if z.shape[0] != y.shape[0]:
            raise ModelError(f"the model's outputs {tuple(z.shape)} do not match the targets {tuple(y.shape)}")
        z = z.float()
        count = (y != IGNORE_INDEX).sum() if self.task == "language" else y.shape[0]
        # per-sample losses summed in float64, as the evaluator's own path sums them: the same values bitwise
        return per_sample_loss(self.name)(z, y).double().sum(), count, correct_count(z, y) if classify else None
