"""Cores a finished rank leaves idle go to the ranks of its node that still compute.

Ranks that share a node's CPU cores each run ``cores / ranks on the node`` torch threads
(:func:`~landscape.run.mpi.pick_device`). At the end of a grid the ranks finish one after another: a rank with no
more work leaves its cores idle while the others still compute their last points, which on short grids of long
points (a few points of a ResNet) is a large share of the run. The master knows which ranks it has stopped; it
tells the ranks still computing on the same node to take their threads (:func:`threads_for`), and each computing
rank changes its thread count between two batches of the point it is evaluating (:class:`ThreadsHook`, called by
:meth:`~landscape.engine.evaluator.Evaluator.batches`). An evaluation's values do not depend on the thread count,
so nothing stored changes. Ranks on GPUs, processes whose ``OMP_NUM_THREADS`` the user set, and stages that fix
their count because their values depend on it (:func:`~landscape.core.threads.fixed_threads`: curvature maps) keep
theirs.

Example:
    >>> threads_for(["a", "a", "b"], [1, 1, 2], finished={1})
    {0: 2, 2: 2}
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Sequence

import torch

from ..core.threads import threads_pinned
from .mpi import TAG_THREADS

__all__ = ["threads_for", "ThreadsHook", "cpu_rank_threads"]

log = logging.getLogger(__name__)


def threads_for(hosts: Sequence[str], threads: Sequence[int], finished: set[int],
                cpus: Sequence[Sequence[int]] | None = None) -> dict[int, int]:
    """Threads for every rank still computing: its own, and an equal share (the first ranks of the node take the
    remainder) of the node's cores that the computing ranks' own threads leave idle. A node's cores are the union
    of its ranks' CPU affinities ``cpus`` (None: the sum of their threads), and a rank never takes more threads
    than its own affinity has cores: ranks bound to their own cores (Slurm's binding) keep their counts, and
    oversubscribed ranks gain nothing until the computing ranks' threads fit the cores. ``threads[r]`` 0 marks a
    rank that keeps its count (a GPU's, or one the user fixed): it neither gives nor takes threads.

    Example:
        >>> threads_for(["n0"] * 4, [2, 2, 2, 2], finished={0, 3})
        {1: 4, 2: 4}
        >>> threads_for(["n0"] * 3, [1, 1, 1], finished={2})
        {0: 2, 1: 1}
        >>> threads_for(["n0", "n0"], [1, 0], finished={0})
        {}
        >>> threads_for(["n0"] * 3, [1, 1, 1], finished={2}, cpus=[[0, 1]] * 3)  # 3 ranks on 2 cores
        {0: 1, 1: 1}
    """
    out: dict[int, int] = {}
    for host in dict.fromkeys(hosts):
        ranks = [r for r, h in enumerate(hosts) if h == host and threads[r] > 0]
        working = [r for r in ranks if r not in finished]
        if not working:
            continue
        cores = len(set().union(*(cpus[r] for r in ranks))) if cpus is not None else sum(threads[r] for r in ranks)
        spare = max(0, cores - sum(threads[r] for r in working))
        for k, r in enumerate(working):
            n = threads[r] + spare // len(working) + (1 if k < spare % len(working) else 0)
            out[r] = max(threads[r], n if cpus is None else min(n, len(cpus[r])))
    return out


def cpu_rank_threads(device: str) -> int:
    """What this rank puts into :func:`threads_for`: its torch thread count on a CPU, 0 on an accelerator or
    when ``OMP_NUM_THREADS`` is set (the user's count stays)."""
    if not device.startswith("cpu") or "OMP_NUM_THREADS" in os.environ:
        return 0
    return torch.get_num_threads()


class ThreadsHook:
    """Set as an evaluator's ``between_batches``: in the thread that evaluates (the one that made the hook; other
    threads, such as a plane's point threads, are left alone) it takes the thread count the master last asked for:
    from ``wanted()`` (rank 0's own worker) or from a ``TAG_THREADS`` message (other ranks)."""

    def __init__(self, comm: Any = None, wanted: Callable[[], int] | None = None):
        self.comm, self.wanted = comm, wanted
        self.owner: int | None = None
        self.base = torch.get_num_threads()
        self.now = self.base

    def bind(self) -> None:
        """Make the calling thread the one whose count the hook changes."""
        self.owner = threading.get_ident()
        self.base = self.now = torch.get_num_threads()

    def __call__(self) -> None:
        if threading.get_ident() != self.owner or threads_pinned():  # a stage whose values depend on the count
            return
        n = self.now
        if self.wanted is not None:
            n = self.wanted() or n
        while self.comm is not None and self.comm.Iprobe(source=0, tag=TAG_THREADS):
            n = int(self.comm.recv(source=0, tag=TAG_THREADS))
        if n != self.now:
            torch.set_num_threads(n)
            log.debug("%d threads from now on (cores a finished rank left)", n)
            self.now = n

    def restore(self) -> None:
        """Back to the count at :meth:`bind` (in the bound thread), and drop the messages no batch took."""
        while self.comm is not None and self.comm.Iprobe(source=0, tag=TAG_THREADS):
            self.comm.recv(source=0, tag=TAG_THREADS)
        if threading.get_ident() == self.owner and self.now != self.base:
            torch.set_num_threads(self.base)
            self.now = self.base
