"""Built-in models (plain torch) and user models by ``package.module:callable``.

Built-ins: ``lenet5`` (as in Němcová 2021: conv1 60, conv2 880, fc1 69240,
fc2 10164, fc3 850 parameters), ``mlp`` (configurable depth and width),
CIFAR ResNets ``resnet20/56/110`` and their ``_noskip`` variants (Li et al.
2018), and a small DenseNet-BC ``densenet``.

Example:
    >>> m = build_model("lenet5")
    >>> sum(p.numel() for p in m.parameters())
    81194
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .gpt import GPT
from .hf import build_hf
from .imagenet import densenet121, resnet18, resnet18_noskip, resnet50, resnet50_noskip
from .errors import ModelError

__all__ = ["LeNet5", "MLP", "CifarResNet", "DenseNet", "MODELS", "build_model", "load_callable", "layer_names"]


class LeNet5(nn.Module):
    """LeNet-5 of the seed thesis: 1×32×32 input, two 3×3 convs with max-pooling, three FC layers."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 3)
        self.conv2 = nn.Conv2d(6, 16, 3)
        self.fc1 = nn.Linear(16 * 6 * 6, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class MLP(nn.Module):
    """Fully connected net: ``depth`` hidden layers of ``width`` units (depth 0 is a linear model)."""

    def __init__(self, input_dim: int = 2, num_classes: int = 3, depth: int = 1, width: int = 20,
                 activation: str = "relu"):
        super().__init__()
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
        if activation not in acts:
            raise ModelError(f"mlp: activation must be one of {sorted(acts)}, got {activation!r}")
        if depth < 0 or width < 1:
            raise ModelError(f"mlp: expected depth >= 0 and width >= 1, got depth={depth}, width={width}")
        layers: list[nn.Module] = [nn.Flatten()]
        dim = input_dim
        for _ in range(depth):
            layers += [nn.Linear(dim, width), acts[activation]()]
            dim = width
        layers.append(nn.Linear(dim, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, skip: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = skip
        self.shortcut = nn.Sequential()
        if skip and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.skip:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    """ResNet for 32×32 images (He et al. 2016), depth = 6n+2; ``skip=False`` removes all shortcuts."""

    def __init__(self, depth: int = 20, in_channels: int = 3, num_classes: int = 10, skip: bool = True,
                 width: int = 16):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ModelError(f"resnet: depth must be 6n+2 (20, 56, 110, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(n):
                blocks.append(_BasicBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1, skip))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return torch.cat([x, out], 1)


class DenseNet(nn.Module):
    """Small DenseNet-BC for 32×32 images: three dense blocks with compressing transitions."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, growth_rate: int = 12,
                 layers_per_block: int = 4, compression: float = 0.5):
        super().__init__()
        c = 2 * growth_rate
        mods: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                mods.append(_DenseLayer(c, growth_rate))
                c += growth_rate
            if block < 2:
                cout = int(c * compression)
                mods += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, cout, 1, bias=False), nn.AvgPool2d(2)]
                c = cout
        mods += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*mods)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _resnet(depth: int, skip: bool) -> Callable[..., nn.Module]:
    def make(in_channels: int = 3, num_classes: int = 10, width: int = 16) -> nn.Module:
        return CifarResNet(depth, in_channels, num_classes, skip, width)
    make.__doc__ = f"ResNet-{depth} for CIFAR{'' if skip else ' without skip connections'}."
    return make


MODELS: dict[str, Callable[..., nn.Module]] = {
    "gpt": GPT,
    "lenet5": LeNet5,
    "mlp": MLP,
    "densenet": DenseNet,
    **{f"resnet{d}{s}": _resnet(d, not s) for d in (20, 56, 110) for s in ("", "_noskip")},
    "resnet18": resnet18, "resnet50": resnet50, "resnet18_noskip": resnet18_noskip,
    "resnet50_noskip": resnet50_noskip, "densenet121": densenet121,
}

# which data-derived arguments each built-in takes
_IMAGE = ("in_channels", "num_classes")


def load_callable(ref: str) -> Callable[..., Any]:
    """Import ``package.module:callable`` (attribute paths with dots allowed).

    Example:
        >>> load_callable("math:sqrt")(4.0)
        2.0
    """
    if ":" not in ref:
        raise ModelError(f"expected 'package.module:callable', got {ref!r}")
    mod_name, attr = ref.split(":", 1)
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ModelError(f"cannot import module {mod_name!r} named in {ref!r}: {exc}; "
                         "check the name and that it is on PYTHONPATH") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"module {mod_name!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"{ref!r} is not callable")
    return obj


def build_model(name: str, data_info: Mapping[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Build a model by registry name or ``module:callable``.

    ``data_info`` (``in_channels``, ``num_classes``, ``input_dim``) fills the
    arguments a factory accepts and the user did not give.

    Example:
        >>> build_model("mlp", {"input_dim": 2, "num_classes": 3}, depth=5, width=5).net[1].in_features
        2
    """
    if name.startswith("hf:"):
        return build_hf(name, data_info, **kwargs)
    factory = MODELS.get(name) if ":" not in name else load_callable(name)
    if factory is None:
        raise ModelError(f"unknown model {name!r}; expected one of {sorted(MODELS)}, 'hf:DIR_OR_TYPE' or "
                         "'package.module:callable'")
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepted = {}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    args = {k: v for k, v in (data_info or {}).items() if (k in accepted or takes_any) and k not in kwargs}
    unknown = [k for k in kwargs if accepted and k not in accepted and not takes_any]
    if unknown:
        raise ModelError(f"model {name!r} does not take argument(s) {unknown}; it takes {sorted(accepted)}")
    # a built-in model's ValueError/RuntimeError is its arguments' fault (n_head=5 that does not divide d_model, a
    # negative width); a user factory's may be a bug in it, which keeps its traceback
    bad_args = (TypeError,) if ":" in name else (TypeError, ValueError, RuntimeError, AssertionError,
                                                 ZeroDivisionError)
    try:
        model = factory(**args, **kwargs)
    except bad_args as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {name!r} could not be built with {dict(args, **kwargs)}: {type(exc).__name__}: "
                         f"{reason}. Check model.kwargs") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"model factory {name!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly (the 'layers' of path analyses).

    Example:
        >>> layer_names(build_model("lenet5"))
        ['conv1', 'conv2', 'fc1', 'fc2', 'fc3']
    """
    return [n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
