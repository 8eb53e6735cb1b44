"""BatchNorm folded into the convolution before it, for evaluation at parameter points written in place.

In eval mode a BatchNorm after a convolution is an affine map per channel, so the pair is one convolution
with weight ``W·s`` and bias ``(b − μ)·s + β``, ``s = γ / √(σ² + ε)``. :func:`fold_conv_bn` is that map;
:class:`FoldedNet` traces a model with ``torch.fx``, replaces each convolution whose only user is a
BatchNorm (with running statistics) by a folded copy and drops the BatchNorm. The original model keeps its
parameters, where the engine writes each point; :meth:`FoldedNet.refresh` folds them again (a few
element-wise ops per pair, nothing next to a forward pass) before each evaluation. Values equal the
unfolded model's up to float32 rounding. ``FoldedNet.build(model, differentiable=True)`` folds inside the
forward instead (:class:`GraphFold`), so gradients and Hessian-vector products reach the original parameters
without a BatchNorm backward (or its costly double backward).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).eval()
    >>> folded = FoldedNet.build(net)
    >>> folded.pairs
    1
    >>> x = torch.randn(4, 1, 5, 5)
    >>> bool(torch.allclose(folded.refresh()(x), net(x), atol=1e-6))
    True
"""
from __future__ import annotations

import copy
import logging

import torch
from torch import nn

__all__ = ["fold_conv_bn", "FoldedNet", "GraphFold"]

log = logging.getLogger(__name__)

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def fold_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None, mean: torch.Tensor, var: torch.Tensor,
                 eps: float, gamma: torch.Tensor | None, beta: torch.Tensor | None,
                 compute: torch.dtype | None = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the convolution that equals convolution (``weight``, ``bias``) followed by an
    eval-mode BatchNorm (running ``mean``/``var``, ``eps``, affine ``gamma``/``beta`` or None), computed in
    ``compute`` (float64; None: the weight's dtype) and returned in the weight's dtype. Differentiable.

    Example:
        >>> w, b = fold_conv_bn(torch.tensor([[2.0]]), torch.tensor([1.0]), torch.tensor([3.0]),
        ...                     torch.tensor([4.0]), 0.0, torch.tensor([0.5]), torch.tensor([10.0]))
        >>> w.tolist(), b.tolist()  # s = 0.5 / 2 = 0.25: w = 2·0.25, b = (1 - 3)·0.25 + 10
        ([[0.5]], [9.5])
    """
    dt = compute or weight.dtype
    scale = torch.rsqrt(var.to(dt) + eps)
    if gamma is not None:
        scale = scale * gamma.to(dt)
    shift = -mean.to(dt) * scale if bias is None else (bias.to(dt) - mean.to(dt)) * scale
    if beta is not None:
        shift = shift + beta.to(dt)
    w = weight.to(dt) * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    return w.to(weight.dtype), shift.to(weight.dtype)


class GraphFold(nn.Module):
    """A convolution and the eval-mode BatchNorm after it, run as one convolution whose weight and bias are
    folded from the originals' parameters by :func:`fold_conv_bn` inside the forward (differentiable, in the
    parameters' own dtype).

    Example:
        >>> pair = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval()
        >>> x = torch.randn(2, 1, 4, 4)
        >>> bool(torch.allclose(GraphFold(pair[0], pair[1])(x), pair(x), atol=1e-6))
        True
    """

    def __init__(self, conv: nn.Module, bn: nn.Module):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn = self.conv, self.bn
        weight, bias = fold_conv_bn(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight if bn.affine else None, bn.bias if bn.affine else None, compute=None)
        return conv._conv_forward(x, weight, bias)


class FoldedNet(nn.Module):
    """A traced copy of a model with its conv–BatchNorm pairs folded (see the module docstring); every other
    module is the original's own, so parameters written into the original are seen without copying."""

    def __init__(self, graph_module: nn.Module, pairs: list[tuple[nn.Module, nn.Module, nn.Module]]):
        super().__init__()
        self.net = graph_module
        self._pairs = pairs  # (original conv, original BatchNorm, folded conv)

    @property
    def pairs(self) -> int:
        """How many BatchNorms are folded."""
        return len(self._pairs)

    @classmethod
    def build(cls, model: nn.Module, differentiable: bool = False) -> "FoldedNet | None":
        """The folded net of ``model``, or None when it cannot be traced or has no foldable pair;
        ``differentiable`` folds inside the forward (:class:`GraphFold`, no :meth:`refresh` needed).

        Example:
            >>> FoldedNet.build(nn.Linear(2, 2)) is None
            True
        """
        if not any(isinstance(m, _BN) for m in model.modules()):
            return None  # nothing to fold: not even traced
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as exc:  # untraceable control flow: evaluate the model as it is
            log.info("BatchNorm folding: %s cannot be traced (%s: %s); evaluating it unfolded",
                     type(model).__name__, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return None
        modules = dict(gm.named_modules())
        pairs = []
        for node in list(gm.graph.nodes):
            bn = modules.get(node.target) if node.op == "call_module" else None
            if not isinstance(bn, _BN) or not bn.track_running_stats or bn.running_mean is None:
                continue
            prev = node.args[0] if node.args else None
            conv = modules.get(prev.target) if isinstance(prev, torch.fx.Node) and prev.op == "call_module" else None
            if not isinstance(conv, _CONV) or conv.transposed or len(prev.users) != 1 or len(node.args) != 1:
                continue
            if differentiable:
                folded = GraphFold(conv, bn)
            else:
                folded = copy.deepcopy(conv)
                if folded.bias is None:
                    folded.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype,
                                                           device=conv.weight.device))
                folded.requires_grad_(False)
            name = f"_folded_{len(pairs)}"
            gm.add_submodule(name, folded)
            with gm.graph.inserting_after(prev):
                new = gm.graph.call_module(name, prev.args, prev.kwargs)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
            gm.graph.erase_node(prev)
            pairs.append((conv, bn, folded))
        if not pairs:
            return None
        gm.graph.lint()
        gm.recompile()
        return cls(gm, pairs).eval()

    @torch.no_grad()
    def refresh(self) -> "FoldedNet":
        """Fold the original parameters and statistics as they are now into the folded convolutions."""
        for conv, bn, folded in self._pairs:
            if isinstance(folded, GraphFold):
                continue
            w, b = fold_conv_bn(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                bn.weight if bn.affine else None, bn.bias if bn.affine else None)
            folded.weight.copy_(w)
            folded.bias.copy_(b)
        return self

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)
