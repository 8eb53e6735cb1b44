"""ImageNet-style models in plain torch with torchvision's parameter names, so that a torchvision checkpoint file
(``resnet18-*.pth``, ``resnet50-*.pth``, ``densenet121-*.pth``) loads with ``torch.load(weights_only=True)`` and
no torchvision: ``resnet18``, ``resnet50`` (v1.5: the stride in the 3×3 convolution of each bottleneck) and
``densenet121``, as in seed 004. ``resnet18_noskip``/``resnet50_noskip`` remove every shortcut (Li et al.'s
"no skip connections" networks: the blocks' outputs are not added to their inputs and the 1×1 projection
shortcuts do not exist). DenseNet checkpoints published with the older ``norm.1``/``conv.1`` key names are
renamed on loading (:meth:`DenseNet121.adapt_state`).

Example:
    >>> sum(p.numel() for p in resnet18().parameters())
    11689512
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ImageNetResNet", "DenseNet121", "resnet18", "resnet50", "resnet18_noskip", "resnet50_noskip",
           "densenet121"]


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, skip: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.skip = skip
        if skip and (stride != 1 or cin != planes):
            self.downsample = _downsample(cin, planes, stride)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.skip:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return F.relu(out)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, skip: bool):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = _bn(out)
        self.skip = skip
        self.downsample = _downsample(cin, out, stride) if skip and (stride != 1 or cin != out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.skip:
            y = y + (self.downsample(x) if self.downsample is not None else x)
        return F.relu(y)


class ImageNetResNet(nn.Module):
    """ResNet for 224×224 images with torchvision's module names (conv1, bn1, layer1..4, fc)."""

    def __init__(self, block: type, layers: tuple[int, ...], num_classes: int = 1000, in_channels: int = 3,
                 skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = _bn(64)
        cin = 64
        for k, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for i in range(n):
                blocks.append(block(cin, planes, 2 if (i == 0 and k > 0) else 1, skip))
                cin = planes * block.expansion
            self.add_module(f"layer{k + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1 = _bn(cin)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = _bn(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class _DenseBlock(nn.Module):
    def __init__(self, n: int, cin: int, growth: int, bn_size: int):
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(cin + i * growth, growth, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], 1)
        return x


class _Transition(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm = _bn(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2, 2)


_OLD_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
                            r"running_var|num_batches_tracked))$")


class DenseNet121(nn.Module):
    """DenseNet-121 (growth 32, blocks 6-12-24-16, 64 initial features, bottleneck 4) with torchvision's names
    (features.conv0 ... features.norm5, classifier)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, growth: int = 32,
                 blocks: tuple[int, ...] = (6, 12, 24, 16), init_features: int = 64, bn_size: int = 4):
        super().__init__()
        feats: OrderedDict[str, nn.Module] = OrderedDict(
            conv0=nn.Conv2d(in_channels, init_features, 7, 2, 3, bias=False), norm0=_bn(init_features))
        c = init_features
        for i, n in enumerate(blocks):
            feats[f"denseblock{i + 1}"] = _DenseBlock(n, c, growth, bn_size)
            c += n * growth
            if i < len(blocks) - 1:
                feats[f"transition{i + 1}"] = _Transition(c, c // 2)
                c //= 2
        feats["norm5"] = _bn(c)
        self.features = nn.ModuleDict(feats)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features
        x = F.max_pool2d(F.relu(f["norm0"](f["conv0"](x))), 3, 2, 1)
        for name, module in f.items():
            if name.startswith(("denseblock", "transition")):
                x = module(x)
        x = F.relu(f["norm5"](x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    @staticmethod
    def adapt_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename the older published keys (``denselayer1.norm.1.weight``) to today's (``norm1.weight``).

        Example:
            >>> list(DenseNet121.adapt_state({"features.denseblock1.denselayer1.norm.1.weight": 0}))
            ['features.denseblock1.denselayer1.norm1.weight']
        """
        out = {}
        for k, v in state.items():
            m = _OLD_DENSE_KEY.match(k)
            out[m.group(1) + m.group(2) if m else k] = v
        return out


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """ResNet-18 (basic blocks 2-2-2-2): 11,689,512 parameters with 1,000 classes."""
    return ImageNetResNet(_Basic, (2, 2, 2, 2), num_classes, in_channels)


def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """ResNet-50 (bottlenecks 3-4-6-3, v1.5): 25,557,032 parameters with 1,000 classes."""
    return ImageNetResNet(_Bottleneck, (3, 4, 6, 3), num_classes, in_channels)


def resnet18_noskip(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """ResNet-18 without shortcuts."""
    return ImageNetResNet(_Basic, (2, 2, 2, 2), num_classes, in_channels, skip=False)


def resnet50_noskip(num_classes: int = 1000, in_channels: int = 3) -> ImageNetResNet:
    """ResNet-50 without shortcuts."""
    return ImageNetResNet(_Bottleneck, (3, 4, 6, 3), num_classes, in_channels, skip=False)


def densenet121(num_classes: int = 1000, in_channels: int = 3) -> DenseNet121:
    """DenseNet-121: 7,978,856 parameters with 1,000 classes."""
    return DenseNet121(num_classes, in_channels)
