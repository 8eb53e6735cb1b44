"""A learned curve as a trainable module, and BatchNorm statistics re-estimated at a point.

:class:`CurveModule` holds the bend θ_b as the parameters of a copy of the model (state names ``bend.<name>``)
and the fixed endpoints θ₀, θ₁ outside its state. In training mode every forward call draws a fresh
t ~ U(0, 1) from a generator seeded by ``(seed, draws)`` — ``draws`` is a buffer, so a resumed training run
draws the same t as an uninterrupted one — and evaluates the model at φ(t) with gradients flowing to θ_b
only. In eval mode it evaluates φ(``eval_t``) (0.5 by default, the point the bend moves most).

Example:
    >>> m = torch.nn.Linear(2, 1)
    >>> s0 = {k: torch.zeros_like(v) for k, v in m.state_dict().items()}
    >>> s1 = {k: torch.ones_like(v) for k, v in m.state_dict().items()}
    >>> c = CurveModule(m, "bezier", s0, s1)
    >>> c.bend.weight.tolist(), sorted(c.state_dict())
    ([[0.5, 0.5]], ['bend.bias', 'bend.weight', 'draws'])
    >>> c.eval()(torch.ones(1, 2)).item()  # φ(0.5) of the untrained curve is the chord's midpoint
    1.5
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from ..analysis.curves import chord_midpoint, curve_weights

__all__ = ["CurveModule", "bend_state", "batchnorm_layers", "update_bn"]

BEND = "bend."


class CurveModule(nn.Module):
    """θ_b of a ``bezier``/``polychain`` curve between fixed ``start`` and ``end`` states, trainable."""

    def __init__(self, model: nn.Module, kind: str, start: Mapping[str, torch.Tensor],
                 end: Mapping[str, torch.Tensor], seed: int = 0, bend: Mapping[str, torch.Tensor] | None = None,
                 eval_t: float = 0.5):
        super().__init__()
        curve_weights(kind, 0.0)  # validates the kind
        self.kind, self.seed, self.eval_t = kind, int(seed), float(eval_t)
        self.bend = copy.deepcopy(model)
        self.bend.load_state_dict(dict(bend) if bend is not None else chord_midpoint(start, end))
        self.register_buffer("draws", torch.zeros((), dtype=torch.float64))
        names = [n for n, _ in self.bend.named_parameters()]
        dev = next(self.bend.parameters()).device
        # the endpoints are fixed: kept outside the module's state (not parameters, not buffers)
        self._ends = [{n: s[n].detach().to(dev, torch.float32).clone() for n in names} for s in (start, end)]

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> "CurveModule":
        super()._apply(fn, recurse)
        self._ends = [{n: fn(v) for n, v in e.items()} for e in self._ends]
        return self

    def draw(self) -> float:
        """The next t ~ U(0, 1): a function of (seed, number of draws so far) alone."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.draws.item()))
        self.draws += 1
        return float(torch.rand((), generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.draw() if self.training else self.eval_t
        w0, wb, w1 = curve_weights(self.kind, t)
        s0, s1 = self._ends
        params = {n: w0 * s0[n] + wb * p + w1 * s1[n] for n, p in self.bend.named_parameters()}
        return torch.func.functional_call(self.bend, params, (x,))


def bend_state(curve_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The bend as a state of the model itself (``bend.`` prefix removed, the draw counter dropped).

    Example:
        >>> bend_state({"bend.fc.weight": torch.ones(1), "draws": torch.zeros(())})
        {'fc.weight': tensor([1.])}
    """
    return {k[len(BEND):]: v for k, v in curve_state.items() if k.startswith(BEND)}


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """The model's BatchNorm layers (those with running statistics).

    Example:
        >>> len(batchnorm_layers(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))))
        1
    """
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def update_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> bool:
    """Re-estimate every BatchNorm layer's running mean and variance at the model's current weights from
    ``batches`` (in their order): the sample-weighted average of the batch statistics, as Garipov et al. do
    for points on a curve. The model's mode is restored. Returns False when the model has no BatchNorm.

    Example:
        >>> m = nn.Sequential(nn.BatchNorm1d(1)).eval()
        >>> update_bn(m, [torch.tensor([[1.], [3.]]), torch.tensor([[5.], [7.]])]), m[0].running_mean.item()
        (True, 4.0)
    """
    layers = batchnorm_layers(model)
    if not layers:
        return False
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
    was_training = model.training
    model.train()
    seen = 0
    try:
        for x in batches:
            b = len(x)
            for m in layers:  # running = running + b/(seen+b)·(batch − running): the weighted mean
                m.momentum = b / (seen + b)
            model(x)
            seen += b
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        model.train(was_training)
    return True
