"""Hessian-vector products of the mean evaluation loss, exact by double backward.

H·v = ∇(∇L(θ)·v) for L the mean per-sample loss over the evaluation set (the loss the surfaces show), with
respect to the parameters a direction may move (``ignore``/``dir_type`` as for directions; BatchNorm running
statistics are buffers, not parameters, and never take part). The model stays in eval mode, the data resident
(or streamed) as the evaluator holds it; each batch's product is accumulated in float64. Vectors are flat over
the moved parameters in the evaluator's state order; :meth:`HessianOperator.embed` places them in the whole
state (``StateSpec`` order, zeros elsewhere), as surface directions are stored.

Example:
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> _, te = load_data("spiral", n_per_class=10)
    >>> op = HessianOperator(Evaluator(build_model("mlp", te.info(), depth=1, width=4), te, "cpu"))
    >>> op.names, op.numel
    (['net.1.weight', 'net.3.weight'], 20)
    >>> op.matvec(torch.zeros(20, dtype=torch.float64)).abs().sum().item()
    0.0
"""
from __future__ import annotations

from typing import Iterable

import torch

from ..analysis.directions import movable_names
from ..core.errors import ConfigError
from .evaluator import Evaluator
from .losses import logits, per_sample_loss

__all__ = ["HessianOperator"]


class HessianOperator:
    """H·v, the loss and its gradient at the evaluator's current parameters, over the moved parameters."""

    def __init__(self, evaluator: Evaluator, names: Iterable[str] | None = None, ignore: str = "biasbn",
                 dir_type: str = "weights"):
        self.ev = evaluator
        params = dict(evaluator.model.named_parameters())
        if names is None:
            names = movable_names(evaluator.state, params, dir_type, ignore) & set(params)
        wanted = set(names)
        self.names = [n for n in evaluator.state if n in wanted and n in params]
        if not self.names:
            raise ConfigError(f"curvature: no parameter to differentiate (ignore={ignore!r}, dir_type={dir_type!r}); "
                              "use ignore = \"none\"")
        self.params = [params[n] for n in self.names]
        self.sizes = [p.numel() for p in self.params]
        self.numel = sum(self.sizes)
        self.device = evaluator.device
        self._loss = per_sample_loss(evaluator.loss_name)
        self.matvecs = 0

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        return [c.view_as(p).to(p.dtype) for c, p in zip(torch.split(v.to(self.device), self.sizes), self.params)]

    def _eval_mode(self) -> None:
        if self.ev.model.training:
            self.ev.model.eval()
        for p in self.params:
            p.requires_grad_(True)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H·v (float64, flat over :attr:`names`) of the mean loss at the current parameters."""
        self._eval_mode()
        vs = self._split(v)
        out = torch.zeros(self.numel, dtype=torch.float64, device=self.device)
        with torch.enable_grad():
            for x, y in self.ev.batches():
                loss = self._loss(logits(self.ev.model(x)).float(), y).sum()
                grads = torch.autograd.grad(loss, self.params, create_graph=True)
                dot = sum((g * w).sum() for g, w in zip(grads, vs))
                hv = torch.autograd.grad(dot, self.params)
                out += torch.cat([h.reshape(-1) for h in hv]).double()
        self.matvecs += 1
        return out / self.ev.count

    def loss_and_gradient(self) -> tuple[float, torch.Tensor]:
        """The mean loss and its gradient (float64, flat over :attr:`names`) at the current parameters."""
        self._eval_mode()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        grad = torch.zeros(self.numel, dtype=torch.float64, device=self.device)
        with torch.enable_grad():
            for x, y in self.ev.batches():
                loss = self._loss(logits(self.ev.model(x)).float(), y).sum()
                g = torch.autograd.grad(loss, self.params)
                grad += torch.cat([t.reshape(-1) for t in g]).double()
                total += loss.detach().double()
        return float(total) / self.ev.count, grad / self.ev.count

    def forward_backward(self) -> None:
        """One forward and backward pass over the evaluation set (the benchmarks' unit of cost)."""
        self.loss_and_gradient()

    def get(self) -> torch.Tensor:
        """The moved parameters' current values, flat (float64)."""
        return torch.cat([p.detach().reshape(-1) for p in self.params]).double()

    @torch.no_grad()
    def set(self, flat: torch.Tensor) -> None:
        """Write flat values into the moved parameters in place."""
        for p, c in zip(self.params, self._split(flat)):
            p.copy_(c)

    def embed(self, flat: torch.Tensor) -> torch.Tensor:
        """A flat vector over :attr:`names` placed in the whole state (``StateSpec`` order, float32, zeros
        elsewhere), as surface directions and stored eigenvectors are laid out."""
        out = torch.zeros(self.ev.spec.numel, dtype=torch.float32)
        for n, part in zip(self.names, torch.split(flat.detach().cpu().float(), self.sizes)):
            out[self.ev.spec.slice(n)] = part
        return out

    def restrict(self, full: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`embed`: the moved parameters' entries of a whole-state vector (float64)."""
        return torch.cat([full[self.ev.spec.slice(n)].double() for n in self.names]).to(self.device)
