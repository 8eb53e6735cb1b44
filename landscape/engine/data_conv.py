"""The gradient of the convolution applied to the data, for Hessian-vector products, as a product with the data's
patches.

PyTorch's double backward of a convolution (``ConvolutionBackwardBackward``) computes a gradient for the
convolution's input whenever it differentiates the weight's gradient, also where that input is the data, which
needs none: a transposed convolution per Hessian-vector product, thrown away. For LeNet-5 on CPU it is a third
of every product. Here the convolution that a model applies to the data themselves keeps its forward (the same
convolution, the same output bitwise) but gets its gradient from the data's patches (``unfold``, computed once
per batch): ∂L/∂W = gy·Pᵀ and ∂L/∂b = Σ gy, matrix products whose own backward is one more product with P. The
gradient and H·v are the same functions of the parameters (to float32 rounding: the weight gradient is summed in
another order than the convolution's).

Example:
    >>> from torch import nn
    >>> conv = nn.Conv2d(1, 2, 3)
    >>> x = torch.randn(4, 1, 6, 6)
    >>> patched = PatchedConv(conv)
    >>> y = patched.output(conv(x), x)
    >>> g1 = torch.autograd.grad(y.square().sum(), conv.weight)[0]
    >>> g2 = torch.autograd.grad(conv(x).square().sum(), conv.weight)[0]
    >>> bool(torch.allclose(g1, g2, rtol=1e-5, atol=1e-5))
    True
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .folding import GraphFold, fold_conv_bn

__all__ = ["PatchedConv", "PATCH_BYTES"]

#: the data's patches of one batch are kept up to this size (bytes); beyond it the convolution's own gradient
PATCH_BYTES = 256 * 2**20


class _PatchGrad(torch.autograd.Function):
    """y (computed by the convolution) with the weight's and bias's gradients from the patches P ``[K, N·L]``."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # noqa: D102
                patches: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(patches)
        ctx.weight_shape, ctx.has_bias = weight.shape, bias is not None
        return y.view_as(y)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):  # noqa: D102 - differentiable: its graph gives H·v
        (patches,) = ctx.saved_tensors
        n, o = gy.shape[:2]
        g = gy.reshape(n, o, -1).transpose(0, 1).reshape(o, -1)  # [O, N·L]
        gw = (g @ patches.T).view(ctx.weight_shape)
        gb = gy.sum(dim=tuple(k for k in range(gy.dim()) if k != 1)) if ctx.has_bias else None
        return None, gw, gb, None


class PatchedConv:
    """The data's convolution ``module`` (an ``nn.Conv2d``, or a :class:`~landscape.engine.folding.GraphFold` of
    one and its BatchNorm) with its gradient from patches (see the module): :meth:`output` replaces its output on a
    data batch; patches are kept per batch (the data stay where they are)."""

    KINDS = (nn.Conv2d, GraphFold)  # the modules it stands in for

    def __init__(self, module: nn.Module):
        self.module = module
        self.conv = module.conv if isinstance(module, GraphFold) else module
        self._patches: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        self._fits: dict[tuple[int, ...], bool] = {}

    def usable(self, x: torch.Tensor) -> bool:
        """:meth:`eligible` for batches of ``x``'s shape (remembered per shape)."""
        shape = tuple(x.shape)
        if shape not in self._fits:
            self._fits[shape] = self.eligible(self.conv, x)
        return self._fits[shape]

    @staticmethod
    def eligible(conv: nn.Module, x: torch.Tensor) -> bool:
        """A plain 2-D convolution (one group, zero padding given as numbers) whose patches of ``x`` fit
        :data:`PATCH_BYTES`."""
        if type(conv) is not nn.Conv2d or conv.groups != 1 or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str) or x.dim() != 4:
            return False
        h, w = (F.conv2d(x[:1, :, :, :], torch.zeros(1, *conv.weight.shape[1:], dtype=x.dtype, device=x.device),
                         None, conv.stride, conv.padding, conv.dilation).shape[2:])
        return conv.weight[0].numel() * h * w * len(x) * x.element_size() <= PATCH_BYTES

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """The patches of ``x`` as ``[C·kh·kw, N·L]`` (kept for a resident batch)."""
        key = (x.data_ptr(), tuple(x.shape))
        if key not in self._patches:
            c = self.conv
            p = F.unfold(x, c.kernel_size, c.dilation, c.padding, c.stride)  # [N, K, L]
            self._patches = {key: p.transpose(0, 1).reshape(p.shape[1], -1).contiguous()}  # one batch at a time
        return self._patches[key]

    def output(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The convolution's output ``y`` on data ``x``, differentiable in its weight and bias through the
        patches (``y`` itself is taken as computed, detached from the convolution's own graph)."""
        weight, bias = self.conv.weight, self.conv.bias
        if isinstance(self.module, GraphFold):  # the folded weight and bias, as its forward computes them
            bn = self.module.bn
            weight, bias = fold_conv_bn(weight, bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight if bn.affine else None, bn.bias if bn.affine else None,
                                        compute=None)
        return _PatchGrad.apply(y.detach(), weight, bias, self.patches(x))
