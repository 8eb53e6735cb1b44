"""Commands that run whole jobs: ``demo``, ``run``, ``submit``, ``train`` and ``evaluate``.

Example:
    >>> sorted(n for n in COMMANDS if n in ("demo", "run", "submit", "train", "evaluate"))
    ['demo', 'evaluate', 'run', 'submit', 'train']
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..run.jobfile import load_job
from ..run.mpi import mpi_comm
from ..run.slurm import SlurmOptions, submit
from ..run.training import train_job
from ..stages.api import evaluate_checkpoint, run_sweep
from ..stages.job import demo_job_path
from ..views.report import REPORT_NAME
from .common import COMMANDS  # noqa: F401 - the doctest lists the registry
from .common import FLAGS, command, common_flags, is_root, job_flags, overrides, progress

__all__: list[str] = []


def _print_runs(runs: list) -> None:
    for r in runs:
        if r.report:
            print(r.report)
        print(f"outputs written to {r.output.resolve()}")
        page = r.output / REPORT_NAME
        if page.is_file():
            print(f"open the report: {page.resolve()}")


@command("demo", common_flags)
def demo(args: argparse.Namespace) -> int:
    """run the demo job (LeNet-5 on the embedded digits)

    Train LeNet-5 on scikit-learn's digits and run every analysis; prints the output folder at the end.
    """
    comm = mpi_comm()
    runs = run_sweep(demo_job_path(), overrides(args, FLAGS), None, progress(args), comm)
    if is_root(comm):
        _print_runs(runs)
    return 0


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="path of the TOML job file")
    p.add_argument("--task", type=int, help="run only combination K of the job's [sweep]")
    common_flags(p)


@command("run", _run_arguments)
def run(args: argparse.Namespace) -> int:
    """run a job file

    Run every stage of a TOML job file. A job with a [sweep] runs every combination (outputs OUTPUT/000,
    OUTPUT/001, ... listed in OUTPUT/sweep.json), or only --task K (default: $SLURM_ARRAY_TASK_ID when set).
    """
    task = args.task
    if task is None and os.environ.get("SLURM_ARRAY_TASK_ID", "").isdigit():
        task = int(os.environ["SLURM_ARRAY_TASK_ID"])
    comm = mpi_comm()
    runs = run_sweep(args.job, overrides(args, FLAGS), task, progress(args), comm)
    if is_root(comm):
        _print_runs(runs)
    return 0


def _submit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="path of the TOML job file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, passed to the run")
    p.add_argument("--output", "-o", help="output folder of the run (job.output)")
    p.add_argument("--nodes", "-N", type=int, help="nodes (default 1)")
    p.add_argument("--gpus-per-node", "-G", type=int, help="GPUs per node, one MPI rank each (default 0: CPU job)")
    p.add_argument("--tasks-per-node", type=int, help="MPI ranks per node (default: one per GPU, or 1)")
    p.add_argument("--cpus-per-task", "-c", type=int, help="CPU cores per rank (OMP_NUM_THREADS)")
    p.add_argument("--time", "-t", help="time limit, e.g. 30, 4:00:00 or 1-12:00:00 (default 01:00:00)")
    p.add_argument("--partition", "-p", help="Slurm partition")
    p.add_argument("--account", "-A", help="Slurm account")
    p.add_argument("--qos", help="quality of service")
    p.add_argument("--mem", help="memory per node, e.g. 64G")
    p.add_argument("--job-name", "-J", help="Slurm job name (default: the job's name)")
    p.add_argument("--signal-seconds", type=int, help="USR1 this many seconds before the time limit (default 180)")
    p.add_argument("--no-requeue", dest="requeue", action="store_false", default=None,
                   help="do not requeue after the time-limit warning or a preemption")
    p.add_argument("--max-restarts", type=int, help="requeue at most this many times (default 20)")
    p.add_argument("--gpu-bind", choices=("task", "node", "gres"),
                   help="task: --gpus-per-task=1 (default); node: --gpus-per-node, ranks pick by local rank; "
                        "gres: --gres=gpu:G for older clusters")
    p.add_argument("--launcher", choices=("srun", "mpiexec"), help="srun --mpi=pmi2 (default) or mpiexec")
    p.add_argument("--python", help="Python interpreter on the nodes (default: this one, %(default)s)",
                   default=sys.executable)
    p.add_argument("--setup", action="append", help="shell line run first, e.g. 'module load cuda' (repeatable)")
    p.add_argument("--sbatch", action="append", metavar="OPTION",
                   help="extra sbatch option, e.g. --sbatch=--constraint=a100 (repeatable)")
    p.add_argument("--array-limit", type=int, help="sweeps: at most K array tasks at once")
    p.add_argument("--log", help="log file (default OUTPUT/slurm-%%j.out)")
    p.add_argument("--workdir", help="folder the job runs in (default: the current folder)")
    p.add_argument("--dry-run", action="store_true", help="print the script, submit nothing")
    p.add_argument("--wait", action="store_true", help="wait for the job to end; exit with its status")


@command("submit", _submit_arguments, formatter_class=argparse.RawDescriptionHelpFormatter,
         epilog="examples:\n"
                "  landscape submit jobs/demo.toml --gpus-per-node 4 --time 1:00:00 --dry-run\n"
                "  landscape submit jobs/cifar10_resnet56.toml --nodes 2 --gpus-per-node 4 "
                "--time 1-00:00:00 --partition gpu data.root=/data/cifar-10-batches-bin")
def submit_command(args: argparse.Namespace) -> int:
    """render a job's sbatch script and submit it to Slurm

    Render the sbatch script that runs 'landscape run JOB' with one MPI rank per GPU (srun --mpi=pmi2), USR1
    before the time limit (every rank saves and the job requeues itself to resume) and --requeue for preemption;
    save it as OUTPUT/submit.sbatch and submit it. A job with a [sweep] becomes an array job.
    """
    # every SlurmOptions field is a flag of the same name; unset flags keep the defaults
    opts = SlurmOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SlurmOptions)
                           if getattr(args, f.name) is not None})
    over = list(args.overrides) + ([f"output={json.dumps(args.output)}"] if args.output else [])
    text, _ = submit(args.job, opts, over, args.dry_run, args.wait, args.workdir,
                     on_submitted=lambda j: print(j, flush=True))
    if args.dry_run:
        print(text, end="")
    return 0


def _train_arguments(p: argparse.ArgumentParser) -> None:
    job_flags(p)
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--lr", type=float, help="train.lr")
    p.add_argument("--optimizer", choices=("sgd", "adam"), help="train.optimizer")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--out", required=True, help="trajectory file to write or resume (e.g. run.h5)")
    common_flags(p)


@command("train", _train_arguments)
def train(args: argparse.Namespace) -> int:
    """train a model and record its trajectory

    Train and save init, per-epoch (and per-N-step) checkpoints and metrics into one HDF5 trajectory store;
    rerunning resumes an interrupted run.
    """
    out = Path(args.out)
    _, store, _ = train_job(load_job(args.job, overrides(args, FLAGS)), out.parent, progress=progress(args),
                            store_name=out.name)
    print(store.describe())
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="file.pt or trajectory.h5:NAME")
    job_flags(p)
    p.add_argument("--split", choices=("train", "test"), help="evaluate.split")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    common_flags(p)


@command("evaluate", _evaluate_arguments)
def evaluate(args: argparse.Namespace) -> int:
    """loss and accuracy of one checkpoint

    Evaluate a checkpoint (file.pt, or run.h5:NAME with NAME init, final, mid, 'epoch N', 'step N') on the job's
    evaluation split.
    """
    job = load_job(args.job, overrides(args, FLAGS))
    res = evaluate_checkpoint(job, args.checkpoint)
    if args.json:
        print(json.dumps({"loss": res.loss, "accuracy": res.accuracy, "n": res.n}))
    else:
        print(f"{args.checkpoint}: loss {res.loss:.6f}  accuracy {res.accuracy:.4f}  "
              f"({res.n} {job.evaluate.split} samples)")
    return 0

