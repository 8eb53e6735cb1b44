"""Distributed surfaces with MPI: rank 0 is the master and the only process that opens the HDF5 file.

Scheduling is dynamic: a rank asks for work by sending its previous results, and the master answers with
the next chunk of pending grid points. Chunks are sized to about ``target_seconds`` of that rank's measured
speed and never larger than a fair share of what remains (guided self-scheduling), so fast and slow ranks
finish together. The master's own device is not idle: a worker thread on rank 0 evaluates chunks too, while
the main thread only communicates and writes (MPI calls stay in the main thread: ``MPI_THREAD_FUNNELED``).

Faults: SIGTERM/SIGUSR1 on any rank make the master flush, mark the file ``partial``, stop the workers and
exit within seconds; an exception on any rank is reported to the master, which flushes and aborts the whole
job (it never hangs until the time limit). Every point marked done is on disk, so rerunning resumes.
At the end of every command, :func:`exit_together` makes all ranks exit at once with the highest status
of any rank (75 after a signal), so a launcher never kills a rank that is still saving.

Example (what ``landscape surface`` does under ``mpiexec``)::

    comm = mpi_comm()                       # None when not launched by mpiexec/srun
    device = pick_device(comm, "auto")      # cuda:<node-local rank mod visible GPUs>, or cpu
    ...
    run_distributed(comm, plane, store if comm.rank == 0 else None)
"""
from __future__ import annotations

import logging
import math
import os
import queue
import socket
import threading
import time
import traceback
from typing import Any

import numpy as np
import torch

from .errors import LandscapeError, check_interrupted, require, stop_signals_ignored

__all__ = ["mpi_comm", "local_rank", "pick_device", "run_distributed", "chunk_size", "in_mpi_launch",
           "RankFailed", "on_root", "agree", "abort_if_parallel", "exit_together"]

log = logging.getLogger(__name__)

TAG_TO_MASTER, TAG_TO_WORKER, TAG_EXIT = 11, 12, 13
_LAUNCH_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class RankFailed(LandscapeError):
    """A rank raised while evaluating; the job was aborted after the results so far were flushed."""


def in_mpi_launch() -> bool:
    """True when this process was started by an MPI launcher (mpiexec, srun --mpi=pmi2, ...)."""
    return any(v in os.environ for v in _LAUNCH_VARS)


def mpi_comm(force: bool = False) -> Any | None:
    """``MPI.COMM_WORLD`` when launched by an MPI launcher (or ``force``), else None (serial)."""
    if not (force or in_mpi_launch()):
        return None
    MPI = require("mpi4py.MPI", "mpi")
    return MPI.COMM_WORLD


def local_rank(comm: Any | None) -> tuple[int, int]:
    """(rank within this node, ranks on this node): MPI shared-memory split, else launcher variables.

    Example:
        >>> local_rank(None)
        (0, 1)
    """
    if comm is not None:
        try:
            from mpi4py import MPI

            node = comm.Split_type(MPI.COMM_TYPE_SHARED)
            r, n = node.Get_rank(), node.Get_size()
            node.Free()
            return r, n
        except Exception:  # noqa: BLE001 - fall back to the launchers' variables
            pass
    for rv, nv in (("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"), ("OMPI_COMM_WORLD_LOCAL_RANK",
                                                                 "OMPI_COMM_WORLD_LOCAL_SIZE"),
                   ("MPI_LOCALRANKID", "MPI_LOCALNRANKS")):
        if rv in os.environ:
            n = os.environ.get(nv, "1").split("(")[0].split(",")[0]
            return int(os.environ[rv]), max(1, int(n) if n.isdigit() else 1)
    return 0, 1


def pick_device(comm: Any | None, requested: str = "auto") -> str:
    """The device of this rank: ``cuda:<local rank mod visible GPUs>`` for auto/cuda, else as requested.

    Honours ``CUDA_VISIBLE_DEVICES`` (Slurm's ``--gpus-per-task`` leaves one visible GPU per rank). On CPU,
    each rank gets ``cores / ranks on the node`` torch threads unless OMP_NUM_THREADS is set. Logs
    rank -> host -> device.

    Example:
        >>> pick_device(None, "cpu")
        'cpu'
    """
    lr, ln = local_rank(comm)
    rank = comm.Get_rank() if comm is not None else 0
    device = requested
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{lr % torch.cuda.device_count()}"
        torch.cuda.set_device(torch.device(device))
    elif requested == "auto":
        device = "cpu"
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ and ln > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // ln))
    line = (f"rank {rank} (local {lr} of {ln}) on {socket.gethostname()} -> {device}"
            + (f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})" if "CUDA_VISIBLE_DEVICES" in os.environ
               else ""))
    lines = comm.gather(line, root=0) if comm is not None else [line]
    if rank == 0:
        log.info("devices:\n  %s", "\n  ".join(lines))
    return device


def chunk_size(remaining: int, ranks: int, rate: float | None, minimum: int = 1, fixed: int = 0,
               target_seconds: float = 2.0, first: int = 64) -> int:
    """Points for the next chunk: ``fixed`` if set; else about ``target_seconds`` of work at ``rate``
    (``first`` before a rate is known), at most a fair share ``ceil(remaining / (2 ranks))``.

    Example:
        >>> chunk_size(1000, 4, rate=50.0), chunk_size(1000, 4, rate=None), chunk_size(10, 4, rate=500.0)
        (100, 64, 2)
    """
    if fixed:
        return max(1, min(fixed, remaining))
    want = first if rate is None else int(rate * target_seconds)
    fair = math.ceil(remaining / (2 * ranks))
    return max(1, min(remaining, max(minimum, min(want, fair))))


def on_root(comm: Any | None, fn: Any) -> Any:
    """Run ``fn`` on rank 0 only and share its outcome: every rank raises rank 0's LandscapeError (marked
    ``collective``), so all exit the same way instead of some waiting forever. Returns fn's result on rank 0,
    None elsewhere.

    Example:
        >>> on_root(None, lambda: 42)
        42
    """
    if comm is None:
        return fn()
    result, err = None, None
    if comm.Get_rank() == 0:
        try:
            result = fn()
        except LandscapeError as exc:
            err = exc
    shared = comm.bcast(None if err is None else (type(err), str(err)), root=0)
    if shared is not None:
        exc = err if err is not None else shared[0].__new__(shared[0])
        if err is None:
            Exception.__init__(exc, shared[1])
        exc.collective = True
        raise exc
    return result


def agree(comm: Any | None, what: str, value: Any) -> None:
    """Check that every rank computed the same ``value`` (a checksum, say); raise on all ranks otherwise."""
    if comm is None:
        return
    values = comm.allgather(value)
    if len(set(map(str, values))) > 1:
        exc = LandscapeError(f"ranks disagree on {what}: {values}; every rank must see the same files and settings")
        exc.collective = True
        raise exc


def abort_if_parallel(exc: BaseException) -> None:
    """In a multi-rank run, end the whole job after an error raised on this rank alone."""
    import sys

    if getattr(exc, "collective", False) or "mpi4py.MPI" not in sys.modules:
        return
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        MPI.COMM_WORLD.Abort(2)


def exit_together(rc: int, timeout: float | None = None) -> int:
    """End a multi-rank command on every rank at once, with one exit status: the highest of all ranks'.

    Rank 0 collects every rank's status and answers with the highest, so no rank exits while another is
    still saving (``srun`` and ``mpiexec`` end a step when its first task fails, and report the signal of
    the tasks they kill instead of their status), and a job interrupted on any rank exits with
    ``EXIT_INTERRUPTED`` on all of them. Signals that land while waiting change nothing. ``timeout``
    bounds the wait (used after an interruption, where the time left before the kill is short); a
    serial run returns ``rc`` unchanged.

    Example:
        >>> exit_together(0)  # serial: nothing to wait for
        0
    """
    import sys

    if "mpi4py.MPI" not in sys.modules:
        return rc
    from mpi4py import MPI

    if not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
        return rc
    comm = MPI.COMM_WORLD
    deadline = None if timeout is None else time.monotonic() + timeout

    status = MPI.Status()

    def receive(source: int) -> int | None:
        """The exit status sent by ``source``; messages still in flight from it (a stop order that crossed
        a rank's own signal, the last results after an interruption) are taken and dropped on the way, so
        that none is left unreceived when MPI finalises."""
        while True:
            if comm.Iprobe(source=source, tag=MPI.ANY_TAG, status=status):
                tag = status.Get_tag()
                message = comm.recv(source=source, tag=tag)
                if tag == TAG_EXIT:
                    return int(message)
                continue
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.01)

    with stop_signals_ignored():  # rank 0 decides: a signal now changes nothing
        if comm.Get_rank() != 0:
            comm.send(rc, dest=0, tag=TAG_EXIT)
            final = receive(0)
            return rc if final is None else final
        codes = [rc] + [receive(r) for r in range(1, comm.Get_size())]
        missing = [r for r, c in enumerate(codes) if c is None]
        if missing:
            log.warning("rank(s) %s did not reach the end within %.0f s; exiting without them", missing, timeout)
        final = max(c for c in codes if c is not None)
        for r in range(1, comm.Get_size()):
            if codes[r] is not None:
                comm.send(final, dest=r, tag=TAG_EXIT)
        return final


def _wait(comm: Any, source: int, tag: int, status: Any = None) -> None:
    """Poll for a message so that signal handlers run while waiting."""
    delay = 1e-4
    while not comm.Iprobe(source=source, tag=tag, status=status):
        check_interrupted()
        time.sleep(delay)
        delay = min(delay * 2, 5e-3)


def _worker(comm: Any, plane: Any) -> None:
    from .errors import Interrupted, interruptible

    kind = "ready"
    try:
        with interruptible():
            comm.send(("ready", None), dest=0, tag=TAG_TO_MASTER)
            while True:
                _wait(comm, 0, TAG_TO_WORKER)
                kind, payload = comm.recv(source=0, tag=TAG_TO_WORKER)
                if kind == "stop" and payload == "interrupted":  # end the command on every rank alike
                    raise Interrupted("the master was interrupted; results so far are saved, rerun the same "
                                      "command to resume")
                if kind == "stop":
                    return
                idx, a, b = payload
                t = time.perf_counter()
                loss, acc = plane.evaluate_points(a, b)
                comm.send(("result", (idx, loss, acc, time.perf_counter() - t)), dest=0, tag=TAG_TO_MASTER)
    except (Interrupted, KeyboardInterrupt):
        if kind != "stop":  # our own signal: the master takes our chunk back and goes on without us
            comm.send(("bye", None), dest=0, tag=TAG_TO_MASTER)
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure must end the whole job, not hang it
        text = f"rank {comm.Get_rank()} on {socket.gethostname()}: {type(exc).__name__}: {exc}\n" + \
            traceback.format_exc()
        log.error("%s", text)
        comm.send(("error", text), dest=0, tag=TAG_TO_MASTER)
        time.sleep(30)  # the master aborts the job after flushing; abort ourselves if it does not
        comm.Abort(1)


class _LocalWorker(threading.Thread):
    """Rank 0's own evaluator, fed chunks by the master loop."""

    def __init__(self, plane: Any):
        super().__init__(daemon=True, name="landscape-local-worker")
        self.plane = plane
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.busy = False

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            idx, a, b = item
            try:
                t = time.perf_counter()
                loss, acc = self.plane.evaluate_points(a, b)
                self.outbox.put(("result", (idx, loss, acc, time.perf_counter() - t)))
            except BaseException as exc:  # noqa: BLE001
                self.outbox.put(("error", f"rank 0: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
                return


def _drain(comm: Any, active: set[int], record: Any, seconds: float = 5.0) -> None:
    """After an interruption: keep the results that arrive within ``seconds`` and stop every worker."""
    from mpi4py import MPI

    status = MPI.Status()
    deadline = time.monotonic() + seconds
    for rank in active:
        comm.send(("stop", "interrupted"), dest=rank, tag=TAG_TO_WORKER)
    try:
        while active and time.monotonic() < deadline:
            if not comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_TO_MASTER, status=status):
                time.sleep(1e-3)
                continue
            rank = status.Get_source()
            kind, payload = comm.recv(source=rank, tag=TAG_TO_MASTER)
            if kind == "result":
                record(rank, payload)  # computed before the stop: keep it
            if kind in ("bye", "error", "result"):
                active.discard(rank)
    except (KeyboardInterrupt, LandscapeError):  # a second signal: stop draining
        pass


def run_distributed(comm: Any, plane: Any, store: Any | None, progress: bool = True, chunk: int = 0,
                    target_seconds: float = 2.0, local: bool = True) -> int:
    """Evaluate the store's pending points over all ranks of ``comm``; returns the points computed (rank 0).

    Rank 0 passes the open :class:`~landscape.store.SurfaceStore`, the others None. ``local=False`` keeps
    rank 0 from evaluating (only for measuring the master alone).
    """
    if comm.Get_rank() != 0:
        _worker(comm, plane)
        return 0
    return _master(comm, plane, store, progress, chunk, target_seconds, local)


def _master(comm: Any, plane: Any, store: Any, progress: bool, chunk: int, target_seconds: float,
            local: bool) -> int:
    from mpi4py import MPI
    from tqdm.auto import tqdm

    from .errors import Interrupted, interruptible

    pending = list(store.pending()[::-1])  # pop() from the end takes points in C order
    size = comm.Get_size()
    ranks = size if local else size - 1
    rates: dict[int, float] = {}
    in_flight: dict[int, np.ndarray] = {}
    active = set(range(1, size))
    minimum = 1 if plane is None or plane.auto else plane.points_per_batch
    total, computed = store.grid.size, 0
    bar = tqdm(total=total, initial=total - len(pending), desc=f"surface x{size}", unit="pt", disable=not progress)
    worker = _LocalWorker(plane) if local else None

    def take(rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if not pending:
            return None
        n = chunk_size(len(pending), ranks, rates.get(rank), minimum, chunk, target_seconds)
        idx = np.array([pending.pop() for _ in range(min(n, len(pending)))], dtype=np.int64)
        in_flight[rank] = idx
        a, b = store.grid.coords(idx)
        return idx, a, b

    def record(rank: int, payload: tuple) -> None:
        nonlocal computed
        idx, loss, acc, seconds = payload
        store.write(idx, loss, acc)
        in_flight.pop(rank, None)
        rates[rank] = len(idx) / max(seconds, 1e-6)
        computed += len(idx)
        bar.update(len(idx))

    def feed_local() -> None:
        if worker is not None and not worker.busy:
            work = take(0)
            if work is not None:
                worker.busy = True
                worker.inbox.put(work)

    status = MPI.Status()
    try:
        with interruptible():
            if worker is not None:
                worker.start()
                feed_local()
            while active or (worker is not None and worker.busy):
                check_interrupted()
                progressed = False
                while comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_TO_MASTER, status=status):
                    rank = status.Get_source()
                    kind, payload = comm.recv(source=rank, tag=TAG_TO_MASTER)
                    progressed = True
                    if kind == "error":
                        raise RankFailed(payload)
                    if kind == "bye":  # the rank was interrupted: its chunk goes back
                        pending.extend(in_flight.pop(rank, np.empty(0, np.int64))[::-1].tolist())
                        active.discard(rank)
                        continue
                    if kind == "result":
                        record(rank, payload)
                    work = take(rank)
                    comm.send(("stop", None) if work is None else ("work", work), dest=rank, tag=TAG_TO_WORKER)
                    if work is None:
                        active.discard(rank)
                if worker is not None:
                    while not worker.outbox.empty():
                        kind, payload = worker.outbox.get()
                        progressed = True
                        if kind == "error":
                            raise RankFailed(payload)
                        worker.busy = False
                        record(0, payload)
                        feed_local()
                if not progressed:
                    time.sleep(2e-4)
            if pending or in_flight:
                raise LandscapeError(f"internal: {len(pending)} points pending, {len(in_flight)} chunks "
                                     "in flight after all ranks stopped")
    except RankFailed as exc:
        bar.close()
        store.close("partial")
        log.error("a rank failed; %d points were saved, aborting the job:\n%s", int(store.done.sum()), exc)
        comm.Abort(1)
        raise
    except (Interrupted, KeyboardInterrupt):
        bar.close()
        _drain(comm, active, record)
        if worker is not None and worker.busy:  # rank 0's own chunk: keep it if it ends within seconds
            try:
                kind, payload = worker.outbox.get(timeout=5.0)
                if kind == "result":
                    record(0, payload)
            except (queue.Empty, Interrupted, KeyboardInterrupt):
                pass
        store.close("partial")
        log.warning("interrupted: %d of %d points are saved in %s; rerun the same command to resume",
                    int(store.done.sum()), total, store.path)
        raise
    except BaseException:  # noqa: BLE001 - never leave the workers waiting
        log.exception("the master failed; saving what is done and aborting the job")
        try:
            store.close("partial")
        finally:
            comm.Abort(1)
        raise
    finally:
        if worker is not None:  # a thread still inside torch when the interpreter exits aborts the process
            worker.inbox.put(None)
            worker.join(timeout=30)
    bar.close()
    store.close()
    return computed
