"""Distributed surfaces with MPI: rank 0 is the master and the only process that opens the HDF5 file.

Scheduling is dynamic: a rank asks for work by sending its previous results, and the master answers with
the next chunk of pending grid points. Chunks are sized to about ``target_seconds`` of that rank's measured
speed and never larger than a fair share of what remains (guided self-scheduling), so fast and slow ranks
finish together. The master's own device is not idle: a worker thread on rank 0 evaluates chunks too, while
the main thread only communicates and writes (MPI calls stay in the main thread: ``MPI_THREAD_FUNNELED``).
With ``points_per_batch = "auto"`` rank 0 alone calibrates, on its first chunk, while the other ranks compute one
point at a time; its choice (batch mode, points per batch, batch size) is then sent to every rank, so ranks
sharing a node do not time their candidates against each other, and the calibration is paid once.

Faults: SIGTERM/SIGUSR1 on any rank make the master flush, mark the file ``partial``, stop the workers and
exit within seconds; an exception on any rank is reported to the master, which flushes and aborts the whole
job (it never hangs until the time limit). Every point marked done is on disk, so rerunning resumes.
At the end of every command, :func:`~landscape.run.mpi.exit_together` makes all ranks exit at once with the
highest status of any rank (75 after a signal), so a launcher never kills a rank that is still saving.

Example (what ``landscape surface`` does under ``mpiexec``; see :mod:`landscape.run.mpi`)::

    comm = mpi_comm()
    run_distributed(comm, plane, store if comm.rank == 0 else None)

    >>> chunk_size(1000, 4, rate=50.0)
    100
"""
from __future__ import annotations

import logging
import math
import queue
import socket
import threading
import time
import traceback
from typing import Any

import numpy as np

from ..core.errors import Interrupted, LandscapeError
from ..core.optional import require
from ..core.progress import Progress
from ..core.signals import check_interrupted, interruptible
from .idle_cores import ThreadsHook, cpu_rank_threads, threads_for
from .mpi import TAG_THREADS, TAG_TO_MASTER, TAG_TO_WORKER, RankFailed, abort_job, affinity, wait_for

__all__ = ["run_distributed", "chunk_size"]

log = logging.getLogger(__name__)

# the master's wait between polls when nothing arrived: from the first, doubled up to the most
_IDLE_FIRST, _IDLE_MOST = 2e-4, 2e-3
# sends still in flight when the master left early (interrupted, failed): their messages' buffers must outlive
# the master's frame, since MPI reads a large message only when its rank takes it
_UNFINISHED: list = []


def chunk_size(remaining: int, ranks: int, rate: float | None, minimum: int = 1, fixed: int = 0,
               target_seconds: float = 2.0, first: int = 64, unit: int = 1) -> int:
    """Points for the next chunk: ``fixed`` if set; else about ``target_seconds`` of work at ``rate``
    (``first`` before a rate is known), at most a fair share ``ceil(remaining / (2 ranks))``; a whole number of
    ``unit`` points (at least one unit).

    Example:
        >>> chunk_size(1000, 4, rate=50.0), chunk_size(1000, 4, rate=None), chunk_size(10, 4, rate=500.0)
        (100, 64, 2)
        >>> chunk_size(1000, 4, rate=50.0, unit=30), chunk_size(1000, 4, rate=1.0, unit=30)
        (90, 30)
    """
    if fixed:
        n = max(1, min(fixed, remaining))
    else:
        want = first if rate is None else int(rate * target_seconds)
        fair = math.ceil(remaining / (2 * ranks))
        n = max(1, min(remaining, max(minimum, min(want, fair))))
    return min(remaining, max(unit, n // unit * unit))


def _complete(requests: list) -> None:
    """Wait for non-blocking sends by polling: a blocking send (or wait) of a message beyond MPI's eager size spins a
    core until the receiver takes it, and ranks that share cores (many ranks on a node, or the master's node)
    then slow each other."""
    delay = 5e-5
    while requests:
        requests[:] = [r for r in requests if not r.Test()]
        if requests:
            time.sleep(delay)
            delay = min(delay * 2, 2e-3)


def _send_polled(comm: Any, message: Any, dest: int, tag: int) -> None:
    """Send without spinning (see :func:`_complete`)."""
    _complete([comm.isend(message, dest=dest, tag=tag)])


def _device(plane: Any) -> str:
    ev = getattr(plane, "ev", None)
    return str(getattr(ev, "device", "cpu"))


def _worker(comm: Any, plane: Any) -> None:
    kind = "ready"
    hook = _install_hook(plane, ThreadsHook(comm))
    try:
        with interruptible():
            # whether it would calibrate (auto): rank 0 then calibrates for all and sends its choice; its node and
            # threads, which the master hands on to the ranks of its node when it finishes
            comm.send(("ready", (bool(getattr(plane, "auto", False)), socket.gethostname(),
                                 cpu_rank_threads(_device(plane)), affinity())), dest=0, tag=TAG_TO_MASTER)
            while True:
                wait_for(comm, 0, TAG_TO_WORKER)
                kind, payload = comm.recv(source=0, tag=TAG_TO_WORKER)
                if kind == "stop" and payload == "interrupted":  # end the command on every rank alike
                    raise Interrupted("the master was interrupted; results so far are saved, rerun the same "
                                      "command to resume")
                if kind == "stop":
                    return
                if hook is not None:  # a change that came after the last batch of the last point
                    hook()
                if kind == "mode":  # rank 0's calibration: wait for it (one point at a time), or use it
                    if payload is None:
                        plane.auto = False
                    else:
                        plane.use_choice(payload)
                    continue
                idx, a, b = payload
                t = time.perf_counter()
                values = tuple(plane.evaluate_points(a, b))  # loss and accuracy, or a curvature map's values
                _send_polled(comm, ("result", (idx, values, time.perf_counter() - t)), 0, TAG_TO_MASTER)
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
        abort_job(text, 1)
    finally:
        _remove_hook(plane, hook)


def _install_hook(plane: Any, hook: ThreadsHook) -> ThreadsHook | None:
    """Bind ``hook`` to the calling (evaluating) thread and set it on the plane's evaluator (CPU ranks only)."""
    ev = getattr(plane, "ev", None)
    if ev is None or not cpu_rank_threads(_device(plane)):
        return None
    hook.bind()
    ev.between_batches = hook
    return hook


def _remove_hook(plane: Any, hook: ThreadsHook | None) -> None:
    if hook is not None:
        plane.ev.between_batches = None
        hook.restore()


class _LocalWorker(threading.Thread):
    """Rank 0's own evaluator, fed chunks by the master loop."""

    def __init__(self, plane: Any):
        super().__init__(daemon=True, name="landscape-local-worker")
        self.plane = plane
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.busy = False
        self.threads = 0  # the master's wish (0: as it is), taken between batches
        self.posted = threading.Event()  # set with every result or error put into the outbox

    def run(self) -> None:
        hook = _install_hook(self.plane, ThreadsHook(wanted=lambda: self.threads))
        try:
            self._run()
        finally:
            _remove_hook(self.plane, hook)

    def _run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            idx, a, b = item
            try:
                t = time.perf_counter()
                values = tuple(self.plane.evaluate_points(a, b))
                self.outbox.put(("result", (idx, values, time.perf_counter() - t)))
                self.posted.set()
            except BaseException as exc:  # noqa: BLE001
                self.outbox.put(("error", f"rank 0: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
                self.posted.set()
                return


def _drain(comm: Any, active: set[int], record: Any, seconds: float = 5.0) -> None:
    """After an interruption: keep the results that arrive within ``seconds`` and stop every worker."""
    MPI = require("mpi4py.MPI", "mpi")
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

    Rank 0 passes the open :class:`~landscape.io.surface_file.SurfaceStore`, the others None. ``local=False`` keeps
    rank 0 from evaluating (only for measuring the master alone).
    """
    if comm.Get_rank() != 0:
        _worker(comm, plane)
        return 0
    return _master(comm, plane, store, progress, chunk, target_seconds, local)


def _master(comm: Any, plane: Any, store: Any, progress: bool, chunk: int, target_seconds: float,
            local: bool) -> int:
    MPI = require("mpi4py.MPI", "mpi")
    pending = list(store.pending()[::-1])  # pop() from the end takes points in C order
    size = comm.Get_size()
    ranks = size if local else size - 1
    rates: dict[int, float] = {}
    in_flight: dict[int, np.ndarray] = {}
    active = set(range(1, size))
    minimum = 1 if plane is None or plane.auto else plane.points_per_batch
    firsts: dict[int, int] = {}  # rank 0's first chunk, which its auto calibration times its candidates on
    # rank 0 calibrates once (on its own first chunk, while the others compute) and shares its choice: the ranks
    # that would calibrate evaluate one point at a time until it comes (values are the same in every mode)
    sharing = local and bool(getattr(plane, "auto", False)) and hasattr(plane, "choice") and not chunk
    choice: dict | None = None
    waiting: set[int] = set()  # ranks told to wait for the choice
    unit = getattr(plane, "chunk_unit", 1)  # chunks of whole rows when a point depends on its row's previous
    total, computed = store.grid.size, 0
    bar = Progress(total, total - len(pending), f"{store.path.name} on {size} ranks", "points", progress)
    worker = _LocalWorker(plane) if local else None
    # each rank's node and threads (from its "ready"), the ranks with no more work, and the threads asked of each
    hosts, threads, cpus = [""] * size, [0] * size, [[]] * size
    if worker is not None:
        hosts[0], threads[0], cpus[0] = socket.gethostname(), cpu_rank_threads(_device(plane)), affinity()
    finished: set[int] = set() if local else {0}
    asked: dict[int, int] = {}

    def take(rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if not pending:
            return None
        n = chunk_size(len(pending), ranks, rates.get(rank), minimum, chunk, target_seconds,
                       firsts.get(rank, 64), unit)
        idx = np.array([pending.pop() for _ in range(min(n, len(pending)))], dtype=np.int64)
        in_flight[rank] = idx
        a, b = store.grid.coords(idx)
        return idx, a, b

    def record(rank: int, payload: tuple) -> None:
        nonlocal computed
        idx, values, seconds = payload
        store.write(idx, *values)
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
            elif 0 not in finished:
                finish(0)

    def finish(rank: int) -> None:
        """``rank`` has no more work: the ranks of its node still computing take its threads."""
        finished.add(rank)
        if not threads[rank]:
            return
        for r, n in threads_for(hosts, threads, finished, cpus).items():
            if asked.get(r, threads[r]) == n:
                continue
            asked[r] = n
            if r == 0:
                worker.threads = n
            else:
                sending.append(comm.isend(n, dest=r, tag=TAG_THREADS))
            log.debug("rank %d: %d threads from now on (rank %d has no more work)", r, n, rank)

    status = MPI.Status()
    sending: list = []  # requests of sends not yet taken by their rank
    idle = _IDLE_FIRST
    try:
        with interruptible():
            if worker is not None:
                if plane.auto and not chunk:
                    firsts[0] = plane.calibration_chunk(pending=len(pending))
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
                    elif kind == "ready":
                        would_calibrate, hosts[rank], threads[rank], cpus[rank] = payload
                        if would_calibrate and sharing:
                            comm.send(("mode", choice), dest=rank, tag=TAG_TO_WORKER)
                            if choice is None:
                                waiting.add(rank)
                    work = take(rank)  # sent without waiting for the rank to take it (see _complete)
                    sending.append(comm.isend(("stop", None) if work is None else ("work", work), dest=rank,
                                              tag=TAG_TO_WORKER))
                    if work is None:
                        active.discard(rank)
                        finish(rank)
                if worker is not None:
                    while not worker.outbox.empty():
                        kind, payload = worker.outbox.get()
                        progressed = True
                        if kind == "error":
                            raise RankFailed(payload)
                        worker.busy = False
                        record(0, payload)
                        if sharing and choice is None:  # rank 0's first chunk: its calibration is done
                            choice = plane.choice()
                            for rank in sorted(waiting & active):
                                comm.send(("mode", choice), dest=rank, tag=TAG_TO_WORKER)
                            waiting.clear()
                        feed_local()
                sending = [r for r in sending if not r.Test()]
                if progressed:
                    idle = _IDLE_FIRST
                else:  # nothing arrived: wait longer each time (rank 0's own results wake it at once), so that
                    # the master's polling takes next to no time from the worker thread beside it
                    if worker is not None and worker.busy:
                        worker.posted.wait(idle)
                        worker.posted.clear()
                    else:
                        time.sleep(idle)
                    idle = min(2 * idle, _IDLE_MOST)
            _complete(sending)  # the last sends (stop): taken by ranks that are still polling for them
            if pending or in_flight:
                raise LandscapeError(f"internal: {len(pending)} points pending, {len(in_flight)} chunks "
                                     "in flight after all ranks stopped")
    except RankFailed as exc:
        bar.close()
        store.close("partial")
        log.error("a rank failed; %d points were saved, aborting the job:\n%s", int(store.done.sum()), exc)
        abort_job(str(exc), 1)
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
        text = traceback.format_exc()
        log.exception("the master failed; saving what is done and aborting the job")
        try:
            store.close("partial")
        finally:
            abort_job(text, 1)
        raise
    finally:
        _UNFINISHED.extend(r for r in sending if not r.Test())
        if worker is not None:  # a thread still inside torch when the interpreter exits aborts the process
            worker.inbox.put(None)
            worker.join(timeout=30)
    bar.close()
    store.close()
    return computed
