"""A model compiled once per run with ``torch.compile``, its compilations counted.

The engine writes each point's parameters into the model in place, so a compiled forward must not
specialise on their values: dynamo treats the parameters of inlined modules as graph inputs, and the
graphs are compiled for fixed shapes (``dynamic=False``): one graph for the full evaluation batch, one
for a smaller last batch. :attr:`CompiledNet.compiles` counts the compilations, so that a run can check
(and log) that none happens after the first pass over the data.

Example:
    >>> import torch
    >>> net = CompiledNet(torch.nn.Linear(2, 1))
    >>> net.compiles
    0
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..core.errors import ConfigError

__all__ = ["CompiledNet"]

log = logging.getLogger(__name__)


class CompiledNet:
    """``net`` compiled with ``backend`` (inductor by default), counting how many graphs were compiled."""

    def __init__(self, net: nn.Module, backend: str = "inductor"):
        self.net, self.compiles = net, 0
        try:
            inner = torch._dynamo.lookup_backend(backend)
        except Exception as exc:
            raise ConfigError(f"evaluate.compile: torch.compile backend {backend!r} is not available "
                              f"({exc}); use compile = false") from exc

        def counting(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
            self.compiles += 1
            log.info("torch.compile: graph %d (%d nodes)", self.compiles, len(gm.graph.nodes))
            return inner(gm, example_inputs)

        self._fn = torch.compile(net, backend=counting, dynamic=False)

    def __call__(self, x: torch.Tensor) -> Any:
        return self._fn(x)
