"""Timing helpers shared by the benchmark scripts in tools/ (interleaved medians, device-synchronised)."""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes, with the device synchronised before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t


def interleaved(fns: Sequence[Callable[[], object]], device: torch.device, repeats: int) -> list[float]:
    """Median seconds of each function; one warm-up call each, then rounds that call all of them in turn,
    so drifts of the machine hit every function alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            times[k].append(timed(fn, device))
    return [statistics.median(t) for t in times]


def pure_forward(evaluator) -> Callable[[], None]:
    """The baseline: ``model(x)`` over the evaluator's device-resident batches, nothing else."""
    xs = [x for x, _ in evaluator.batches()]
    model = evaluator.model

    @torch.no_grad()
    def forward() -> None:
        for x in xs:
            model(x)

    return forward


def cifar_shaped(n: int, seed: int = 0):
    """``n`` random CIFAR-shaped images with labels (the reference case of the speed targets)."""
    from landscape.core.data import TensorData

    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g),
                      "classification", 10, "cifar-shaped")


def header(device: torch.device) -> str:
    """The first line every benchmark prints: device, torch version, threads."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}"
