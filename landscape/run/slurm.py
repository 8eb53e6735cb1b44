"""Slurm batch scripts for jobs: render one, print it, or submit it with ``sbatch``.

A rendered script runs ``landscape run JOB`` with one MPI rank per GPU (``srun --mpi=pmi2``; each rank sees
its own GPU through ``--gpus-per-task=1``, or picks one by its node-local rank with ``--gpus-per-node``).
``--signal=USR1@N`` makes Slurm warn the ranks N seconds before the time limit: every rank saves what it has
and exits with status 75 (:data:`~landscape.core.errors.EXIT_INTERRUPTED`), and the script then requeues the job
(``scontrol requeue``), which resumes the partial grid when it starts again. ``--requeue`` lets Slurm requeue
it by itself after a preemption or a node failure. A job with a ``[sweep]`` becomes an array job, one task
per combination (``landscape run`` reads ``SLURM_ARRAY_TASK_ID``).

Example:
    >>> opts = SlurmOptions(nodes=1, gpus_per_node=2, time="1:00:00", python="python3")
    >>> text = render_script("jobs/demo.toml", opts, workdir="/home/me/project", job=load_job({}))
    >>> "#SBATCH --gpus-per-task=1" in text, "srun --mpi=pmi2" in text, "#SBATCH --signal=USR1@180" in text
    (True, True, True)
"""
from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import EXIT_INTERRUPTED, ConfigError, LandscapeError
from .config import JobConfig
from .jobfile import expand_sweep, load_job

__all__ = ["SlurmOptions", "parse_time", "render_script", "submit", "watch_hint", "SubmitError", "PRESETS",
           "wait_for_job", "FINAL_STATES"]

log = logging.getLogger(__name__)

_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


class SubmitError(LandscapeError):
    """sbatch is missing or refused the script."""


def parse_time(text: str) -> int:
    """Seconds of a Slurm time limit: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M`` or ``D-H:M:S``.

    Example:
        >>> parse_time("30"), parse_time("1:30"), parse_time("2:00:00"), parse_time("1-12"), parse_time("1-0:30")
        (1800, 90, 7200, 129600, 88200)
    """
    m = _TIME.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ConfigError(f"--time: expected a Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
                          f"D-HH:MM:SS), got {text!r}")
    d, a, b, c = (int(m.group(k)) if m.group(k) is not None else None for k in "dabc")
    if d is not None:  # D-H[:M[:S]]
        return d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    if c is not None:
        return a * 3600 + b * 60 + c
    if b is not None:
        return a * 60 + b
    return a * 60


@dataclass
class SlurmOptions:
    """What to ask Slurm for. ``gpus_per_node=0`` is a CPU job; ranks per node default to one per GPU."""

    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    mem: str | None = None
    job_name: str | None = None
    signal_seconds: int = 180
    requeue: bool = True
    max_restarts: int = 20
    gpu_bind: str = "task"
    launcher: str = "srun"
    python: str = "python3"
    setup: list[str] = field(default_factory=list)
    sbatch: list[str] = field(default_factory=list)
    array_limit: int | None = None
    log: str | None = None

    @property
    def ranks_per_node(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)

    def problems(self) -> list[str]:
        """Everything wrong with the options, all at once."""
        out = []
        for name in ("nodes", "max_restarts"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (1 if name == "nodes" else 0):
                out.append(f"--{name.replace('_', '-')}: expected an integer >= {1 if name == 'nodes' else 0}, "
                           f"got {getattr(self, name)!r}")
        for name in ("gpus_per_node", "tasks_per_node", "cpus_per_task", "array_limit"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < (0 if name == "gpus_per_node" else 1)):
                out.append(f"--{name.replace('_', '-')}: expected an integer >= "
                           f"{0 if name == 'gpus_per_node' else 1}, got {v!r}")
        if self.gpu_bind not in ("task", "node", "gres"):
            out.append(f"--gpu-bind: expected task, node or gres, got {self.gpu_bind!r}")
        if self.launcher not in ("srun", "mpiexec"):
            out.append(f"--launcher: expected srun or mpiexec, got {self.launcher!r}")
        if (self.gpus_per_node and self.gpu_bind == "task" and self.tasks_per_node
                and self.tasks_per_node != self.gpus_per_node):
            out.append(f"--tasks-per-node {self.tasks_per_node} with --gpus-per-task=1 needs one rank per GPU "
                       f"({self.gpus_per_node}); use --gpu-bind node to share GPUs between ranks")
        try:
            limit = parse_time(self.time)
            if self.signal_seconds >= limit:
                out.append(f"--signal-seconds {self.signal_seconds}: the warning must come before the time limit "
                           f"({limit} s); use a smaller value or a longer --time")
        except ConfigError as exc:
            out += exc.problems
        if not isinstance(self.signal_seconds, int) or not 0 < self.signal_seconds <= 65535:
            out.append(f"--signal-seconds: expected 1..65535 seconds, got {self.signal_seconds!r}")
        for name in ("partition", "account", "qos", "mem", "job_name", "log"):
            v = getattr(self, name)
            if v is not None and ('"' in v or "\n" in v):
                out.append(f"--{name.replace('_', '-')}: double quotes and newlines cannot appear in an "
                           f"#SBATCH line, got {v!r}")
        if self.mem is not None and not re.fullmatch(r"\d+([KMGT]B?)?", str(self.mem), re.IGNORECASE):
            out.append(f"--mem: expected a size Slurm reads, such as 16G, 4000M or 32000 (megabytes), got "
                       f"{self.mem!r}")
        for d in self.sbatch:
            if not d.startswith("--") or "\n" in d:
                out.append(f"--sbatch: expected a long sbatch option like --constraint=a100, got {d!r}")
        return out


def _directive(key: str, value: object = None) -> str:
    if value is None:
        return f"#SBATCH --{key}"
    text = str(value)
    if '"' in text or "\n" in text:
        raise ConfigError(f"#SBATCH --{key}: a path with double quotes or newlines cannot be used ({text!r}); "
                          "rename or move it")
    return f'#SBATCH --{key}="{text}"' if re.search(r"\s", text) else f"#SBATCH --{key}={text}"


def render_script(job_file: str | Path | None, opts: SlurmOptions, overrides: Sequence[str] = (),
                  workdir: str | Path | None = None, job: JobConfig | None = None, n_tasks: int = 1) -> str:
    """The sbatch script (text) that runs ``landscape run JOB_FILE`` with the overrides.

    ``job_file=None`` renders a generic script whose arguments (``sbatch script JOB [KEY=VALUE...]``) are the
    job file and overrides. ``job`` (the loaded job) names the job and its log folder; ``n_tasks > 1`` makes an
    array job over a sweep's combinations. ``workdir`` becomes ``--chdir`` (relative paths are relative to it).

    Example:
        >>> print(render_script(None, SlurmOptions(time="30")).splitlines()[0])
        #!/bin/bash
    """
    problems = opts.problems()
    if problems:
        raise ConfigError(problems)
    gpus, ranks = opts.gpus_per_node, opts.ranks_per_node
    sweep = n_tasks > 1
    name = opts.job_name or (job.name if job is not None else "landscape")
    if opts.log:
        log_path = opts.log
    elif job is not None:
        log_path = str(Path(job.output) / ("slurm-%A_%a.out" if sweep else "slurm-%j.out"))
    else:
        log_path = "slurm-%x-%j.out"
    what = f"job {name!r} ({job_file})" if job_file is not None else "run of the job file given to sbatch"
    where = (f"{opts.nodes} node{'s' if opts.nodes > 1 else ''} x {gpus} GPU{'s' if gpus > 1 else ''}, "
             "one MPI rank per GPU" if gpus else
             f"{opts.nodes} node{'s' if opts.nodes > 1 else ''} x {ranks} CPU rank{'s' if ranks > 1 else ''}")
    lines = ["#!/bin/bash",
             f"# landscape {what} on {where}" + (f"; an array of {n_tasks} sweep combinations" if sweep else "")
             + ".",
             f"# Slurm sends USR1 {opts.signal_seconds} s before the time limit: every rank saves its results and "
             f"exits with status {EXIT_INTERRUPTED},",
             ("# and this script requeues the job, which resumes where it stopped (at most "
              f"{opts.max_restarts} times)." if opts.requeue else
              "# and submitting the same script again resumes where it stopped."),
             ("# Usage: sbatch THIS_FILE JOB.toml [KEY=VALUE ...]; change the #SBATCH lines here or on the sbatch "
              "command line." if job_file is None else
              "# Rendered by 'landscape submit'; submit it again with: sbatch THIS_FILE"),
             _directive("job-name", name),
             _directive("nodes", opts.nodes),
             _directive("ntasks-per-node", ranks)]
    if gpus:
        lines.append({"task": _directive("gpus-per-task", 1), "node": _directive("gpus-per-node", gpus),
                      "gres": _directive("gres", f"gpu:{gpus}")}[opts.gpu_bind])
    if opts.cpus_per_task:
        lines.append(_directive("cpus-per-task", opts.cpus_per_task))
    lines.append(_directive("time", opts.time))
    for key in ("partition", "account", "qos", "mem"):
        if getattr(opts, key):
            lines.append(_directive(key, getattr(opts, key)))
    if sweep:
        lines.append(_directive("array", f"0-{n_tasks - 1}" + (f"%{opts.array_limit}" if opts.array_limit else "")))
    lines.append(_directive("signal", f"USR1@{opts.signal_seconds}"))
    lines.append(_directive("requeue" if opts.requeue else "no-requeue"))
    lines.append(_directive("open-mode", "append"))  # a restarted job adds to the same log
    lines.append(_directive("output", log_path))
    if workdir is not None:
        lines.append(_directive("chdir", workdir))
    for d in opts.sbatch:
        key, _, value = d[2:].partition("=")
        lines.append(_directive(key, value if value else None))
    lines += ["", "set -uo pipefail"]
    lines += list(opts.setup)
    lines += ['export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}" PYTHONUNBUFFERED=1',
              'echo "landscape: job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST}'
              ' at $(date -Is)"', "",
              "# MPICH leaves shared-memory segments named after the job and step ids behind when a run is killed;",
              "# the requeued job would attach to them in MPI_Init and fail: remove this user's unmapped ones.",
              'srun --nodes="${SLURM_JOB_NUM_NODES}" --ntasks="${SLURM_JOB_NUM_NODES}" --ntasks-per-node=1 '
              "--mpi=none bash -c \\",
              """    'for f in /dev/shm/mpich_*; do [ -O "$f" ] && ! grep -qsF "$f" /proc/[0-9]*/maps && rm -f "$f"; """
              """done; true'""", ""]
    if opts.launcher == "srun":
        lines += ["# All ranks exit together with one status (75: interrupted, results saved); --wait ends the step",
                  "# 60 s after a rank dies without the others noticing."]
        launch = ["srun", "--mpi=pmi2", "--kill-on-bad-exit=0", "--wait=60"]
    else:
        launch = ["mpiexec", "-n", '"${SLURM_NTASKS}"']
    args = ([shlex.quote(str(job_file))] + [shlex.quote(o) for o in overrides]) if job_file is not None else ['"$@"']
    lines.append(" ".join(launch + [shlex.quote(opts.python), "-m", "landscape", "run"] + args + ["--no-progress"]))
    lines.append("rc=$?")
    if opts.requeue:
        lines += [f'if [ "$rc" -eq {EXIT_INTERRUPTED} ]; then',
                  f'    if [ "${{SLURM_RESTART_COUNT:-0}}" -lt {opts.max_restarts} ]; then',
                  '        echo "landscape: stopped before the time limit, results saved; requeueing job '
                  '${SLURM_JOB_ID} to resume"',
                  '        scontrol requeue "${SLURM_JOB_ID}"',
                  "    else",
                  f'        echo "landscape: {opts.max_restarts} restarts used; submit the script again to resume"'
                  " >&2",
                  "    fi",
                  "fi"]
    lines.append('exit "$rc"')
    return "\n".join(lines) + "\n"


#: the example scripts in ``slurm/`` (``tools/update_slurm_scripts.py`` writes them, a test compares)
PRESETS: dict[str, SlurmOptions] = {
    "gpu_node.sbatch": SlurmOptions(nodes=1, gpus_per_node=4, cpus_per_task=8, time="04:00:00",
                                    setup=["# module load cuda  # and/or: source ~/venvs/landscape/bin/activate"]),
    "gpu_multinode.sbatch": SlurmOptions(nodes=4, gpus_per_node=4, cpus_per_task=8, time="12:00:00",
                                         setup=["# module load cuda  # and/or: source ~/venvs/landscape/bin/"
                                                "activate"]),
    "cpu.sbatch": SlurmOptions(nodes=1, tasks_per_node=4, cpus_per_task=4, time="04:00:00",
                               setup=["# source ~/venvs/landscape/bin/activate"]),
}


def watch_hint(script: str, job_id: str, workdir: Path, output: Path) -> str:
    """Where a submitted job logs and the commands that follow it (printed by ``landscape submit``).

    Example:
        >>> print(watch_hint("#SBATCH --output=out/slurm-%j.out", "42", Path("/w"), Path("/w/out")))
          log     /w/out/slurm-42.out
          watch   squeue -j 42; tail -f /w/out/slurm-42.out; landscape status /w/out/surface.h5
          stop    scancel 42 (the job saves what it has; submitting again resumes)
    """
    m = re.search(r"^#SBATCH --output=(.+)$", script, re.M)
    pattern = shlex.split(m.group(1))[0] if m else "slurm-%j.out"  # the directive quotes paths with spaces
    logfile = pattern.replace("%A", job_id).replace("%a", "*").replace("%j", job_id).replace("%x", "*")
    path = Path(logfile) if Path(logfile).is_absolute() else workdir / logfile
    return (f"  log     {path}\n  watch   squeue -j {job_id}; tail -f {path}; landscape status {output / 'surface.h5'}\n"
            f"  stop    scancel {job_id} (the job saves what it has; submitting again resumes)")


def submit(job_file: str | Path, opts: SlurmOptions, overrides: Sequence[str] = (), dry_run: bool = False,
           wait: bool = False, workdir: str | Path | None = None,
           on_submitted: Callable[[str], None] | None = None) -> tuple[str, str | None]:
    """Validate the job, render its script and submit it; returns (script text, job id or None for a dry run).

    The script is saved as ``OUTPUT/submit.sbatch`` (the sweep's folder for a sweep) before ``sbatch`` runs,
    so ``sbatch OUTPUT/submit.sbatch`` resubmits it. ``on_submitted(job_id)`` is called as soon as Slurm
    accepts it. With ``wait`` the call returns when the job has ended and raises :class:`SubmitError` if it
    failed. The job runs in ``workdir`` (default: the current folder); the job file is read from the current
    folder, and written into the script as an absolute path when ``workdir`` is elsewhere.

    Example:
        >>> text, jid = submit("jobs/demo.toml", SlurmOptions(time="30"), dry_run=True, workdir="/p")
        >>> jid, "#SBATCH --chdir=/p" in text, "demo.toml --no-progress" in text
        (None, True, True)
    """
    problems = opts.problems()
    try:  # every problem of the job and of the options together, before anything is queued
        jobs = expand_sweep(job_file, list(overrides))
        job = load_job(job_file, list(overrides))
    except ConfigError as exc:
        raise ConfigError(exc.problems + problems) from None
    if problems:
        raise ConfigError(problems)
    workdir = Path(workdir) if workdir is not None else Path.cwd()
    if workdir.exists():  # a folder that exists only on the cluster is taken as given
        workdir = workdir.resolve()
    if workdir != Path.cwd().resolve() and not Path(job_file).is_absolute():
        job_file = Path(job_file).resolve()
    text = render_script(job_file, opts, overrides, workdir, job, len(jobs))
    if opts.gpus_per_node and job.evaluate.device == "cpu":
        log.warning("the job asks for GPUs but evaluate.device is 'cpu'; set evaluate.device=auto to use them")
    if dry_run:
        return text, None
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise SubmitError("sbatch is not on PATH: run 'landscape submit' on a Slurm login node, or print the "
                          "script with --dry-run and submit it yourself")
    out = Path(job.output)
    out = (workdir / out if not out.is_absolute() else out)
    out.mkdir(parents=True, exist_ok=True)  # sbatch does not create the log's folder
    log_dir = Path(opts.log).parent if opts.log else None
    if log_dir is not None:
        (workdir / log_dir if not log_dir.is_absolute() else log_dir).mkdir(parents=True, exist_ok=True)
    script = out / "submit.sbatch"
    script.write_text(text)
    proc = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, cwd=workdir)
    first = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    job_id = first.split(";")[0] if proc.returncode == 0 and first else None
    if not job_id:
        raise SubmitError(f"sbatch refused {script}: {proc.stderr.strip() or proc.stdout.strip() or 'no job id printed'}")
    log.info("submitted %s as Slurm job %s (script %s)\n%s", job_file, job_id, script,
             watch_hint(text, job_id, workdir, out))
    if on_submitted is not None:
        on_submitted(job_id)
    if wait:
        state, code = wait_for_job(job_id)
        if state != "COMPLETED" or code not in ("0:0", ""):
            raise SubmitError(f"Slurm job {job_id} ended {state} with exit code {code or '?'}; see its log in {out}")
    return text, job_id


#: states after which a job never runs again (a requeued job passes through PENDING and runs again)
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT")


def wait_for_job(job_id: str, poll: float = 0.5, longest: float = 5.0) -> tuple[str, str]:
    """Wait until Slurm job ``job_id`` has ended for good (a requeue is not an end); returns its state and exit code
    (``"0:0"``). Polled with ``scontrol show job`` every ``poll`` seconds, growing to ``longest``: ``sbatch --wait``
    polls at 2, 4, 8, 16 then 32 s, so a job of 12 s was reported after up to 45 s. A job Slurm no longer lists
    (purged after MinJobAge) is taken as completed with an unknown exit code.

    Example:
        >>> "COMPLETED" in FINAL_STATES and "PENDING" not in FINAL_STATES
        True
    """
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        raise SubmitError("scontrol is not on PATH: cannot follow the job; run on a Slurm login node")
    while True:
        r = subprocess.run([scontrol, "show", "job", "-o", str(job_id)], capture_output=True, text=True)
        if r.returncode != 0 and "Invalid job id" in r.stderr:
            log.warning("Slurm job %s is no longer listed; taken as completed", job_id)
            return "COMPLETED", ""
        # one line per job (an array job: one per task): it has ended when every one has
        records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in r.stdout.splitlines() if "JobState=" in line]
        if records and all(rec.get("JobState") in FINAL_STATES for rec in records):
            worst = next((rec for rec in records if rec["JobState"] != "COMPLETED" or rec.get("ExitCode") != "0:0"),
                         records[0])
            return worst["JobState"], worst.get("ExitCode", "")
        time.sleep(poll)
        poll = min(longest, poll * 1.5)
