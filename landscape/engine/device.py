"""Devices and reduced precision: ``auto``/``cpu``/``cuda[:N]`` resolved and checked, and the autocast
context of a precision.

Example:
    >>> resolve_device("cpu"), type(autocast_context(resolve_device("cpu"), "fp32")).__name__
    (device(type='cpu'), 'nullcontext')
"""
from __future__ import annotations

import contextlib

import torch

from ..core.errors import ConfigError

__all__ = ["resolve_device", "autocast_context"]


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda:N`` is checked to exist.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {spec!r} was asked for but CUDA is not available here; use device=cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device: {spec!r} does not exist; {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type != "cpu":
        raise ConfigError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    return dev


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``bf16``/``fp16`` on CUDA; ``fp32`` is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ConfigError(f"precision: expected 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if device.type != "cuda":
        raise ConfigError(f"precision {precision!r} needs a CUDA device, the device is {device}; use precision=fp32")
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
