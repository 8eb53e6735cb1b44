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


def machine_line() -> str:
    """Where and when a table was measured: CPU model, cores, torch and its threads, the load average, the date."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="ascii", errors="replace"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        load = open("/proc/loadavg", encoding="ascii").read().split()[:3]
    except OSError:
        load = ["?"] * 3
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} on {torch.get_num_threads()} threads, "
            f"load average {' '.join(load)}, {time.strftime('%Y-%m-%d')}")


def write_markdown(path: str, command: str, head: Sequence[str], rows: Sequence[Sequence[object]],
                   note: str = "") -> None:
    """A benchmark's table as a Markdown file (docs/bench/ holds the ones the documentation shows): the command
    that printed it, the machine, the table, and a note."""
    from pathlib import Path

    lines = [f"`{command}` on {machine_line()}:", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
