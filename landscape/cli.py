"""The ``landscape`` command: a thin layer over the Python API.

Example:
    $ landscape demo                         # train LeNet-5 on digits and run every analysis
    $ landscape run jobs/demo.toml train.epochs=5
    $ landscape train --model mlp --data spiral --epochs 20 --out spiral.h5 model.kwargs.depth=5
    $ landscape evaluate spiral.h5:final --model mlp --data spiral model.kwargs.depth=5
    $ landscape info spiral.h5
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import LandscapeError

__all__ = ["main", "build_parser"]

log = logging.getLogger("landscape")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=5 model.kwargs.depth=5 data.root=/data/mnist")
    p.add_argument("--output", "-o", help="output folder (job.output)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (evaluate.device)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _job_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--job", help="TOML job file to start from (default: built-in defaults)")
    p.add_argument("--model", help="model name or module:callable (model.name)")
    p.add_argument("--data", help="data set name (data.name)")
    p.add_argument("--root", help="local folder of the data set files (data.root)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``landscape`` command."""
    parser = argparse.ArgumentParser(
        prog="landscape", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Loss surfaces, interpolation paths and training trajectories of neural networks.",
        epilog="Job files are TOML (see jobs/); any key can be overridden as section.key=value.\n"
               "Run 'landscape COMMAND --help' for each command's options.")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", default=False, help="only warnings and errors")
    # the same flags after the command name; SUPPRESS keeps the values given before it
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                           help="more log output (-vv for debug)")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser = functools.partial(sub.add_parser, parents=[verbosity])  # type: ignore[method-assign]

    p = sub.add_parser("demo", help="run the demo job (LeNet-5 on the embedded digits)",
                       description="Train LeNet-5 on scikit-learn's digits and run every analysis; "
                                   "prints the output folder at the end.")
    _common(p)

    p = sub.add_parser("run", help="run a job file",
                       description="Run every stage of a TOML job file. A job with a [sweep] runs every "
                                   "combination (outputs OUTPUT/000, OUTPUT/001, ... listed in OUTPUT/sweep.json), "
                                   "or only --task K (default: $SLURM_ARRAY_TASK_ID when set).")
    p.add_argument("job", help="path of the TOML job file")
    p.add_argument("--task", type=int, help="run only combination K of the job's [sweep]")
    _common(p)

    p = sub.add_parser("submit", help="render a job's sbatch script and submit it to Slurm",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Render the sbatch script that runs 'landscape run JOB' with one MPI rank per "
                                   "GPU (srun --mpi=pmi2), USR1 before the time limit (every rank saves and the "
                                   "job requeues itself to resume) and --requeue for preemption; save it as "
                                   "OUTPUT/submit.sbatch and submit it. A job with a [sweep] becomes an array job.",
                       epilog="examples:\n"
                              "  landscape submit jobs/demo.toml --gpus-per-node 4 --time 1:00:00 --dry-run\n"
                              "  landscape submit jobs/cifar10_resnet56.toml --nodes 2 --gpus-per-node 4 "
                              "--time 1-00:00:00 --partition gpu data.root=/data/cifar-10-batches-bin")
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

    p = sub.add_parser("train", help="train a model and record its trajectory",
                       description="Train and save init, per-epoch (and per-N-step) checkpoints and metrics into "
                                   "one HDF5 trajectory store; rerunning resumes an interrupted run.")
    _job_flags(p)
    p.add_argument("--epochs", type=int, help="train.epochs")
    p.add_argument("--lr", type=float, help="train.lr")
    p.add_argument("--optimizer", choices=("sgd", "adam"), help="train.optimizer")
    p.add_argument("--batch-size", type=int, help="train.batch_size")
    p.add_argument("--seed", type=int, help="train.seed")
    p.add_argument("--out", required=True, help="trajectory file to write or resume (e.g. run.h5)")
    _common(p)

    p = sub.add_parser("evaluate", help="loss and accuracy of one checkpoint",
                       description="Evaluate a checkpoint (file.pt, or run.h5:NAME with NAME init, final, mid, "
                                   "'epoch N', 'step N') on the job's evaluation split.")
    p.add_argument("checkpoint", help="file.pt or trajectory.h5:NAME")
    _job_flags(p)
    p.add_argument("--split", choices=("train", "test"), help="evaluate.split")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _common(p)

    p = sub.add_parser("surface", help="compute (or resume) a 2-D loss surface or 1-D line",
                       description="Loss and accuracy on the grid θ* + α·d₁ + β·d₂, stored in one HDF5 file. "
                                   "Rerunning the same command computes only the points not done; other inputs "
                                   "on an existing file are refused.")
    _job_flags(p)
    p.add_argument("--center", help="θ*: run.h5:NAME, file.pt, or a checkpoint name of the job's trajectory")
    p.add_argument("--alpha", help="MIN:MAX:NUM (default -1:1:25)")
    p.add_argument("--beta", help="MIN:MAX:NUM; omit it together with --alpha given for a 1-D line")
    p.add_argument("--directions", choices=("random", "checkpoints", "file"), help="surface.directions")
    p.add_argument("--norm", choices=("filter", "layer", "model", "none"), help="surface.norm (default filter)")
    p.add_argument("--ignore", choices=("biasbn", "none"), help="surface.ignore (default biasbn)")
    p.add_argument("--dir-type", choices=("weights", "states"), help="surface.dir_type (default weights)")
    p.add_argument("--seed", type=int, help="surface.seed")
    p.add_argument("--target1", help="θ₁ for --directions checkpoints")
    p.add_argument("--target2", help="θ₂ for --directions checkpoints")
    p.add_argument("--directions-from", help="surface file whose directions to reuse")
    p.add_argument("--points-per-batch", help="'auto' (timed on the first points), N points stacked with vmap, "
                                              "or threads:N (N points on concurrent CPU threads)")
    p.add_argument("--split", choices=("train", "test"), help="evaluate.split")
    p.add_argument("--subset", type=int, help="evaluate on N samples (surface.subset)")
    p.add_argument("--out", help="surface file to write or resume (default OUTPUT/surface.h5)")
    _common(p)

    p = sub.add_parser("path", help="linear/quadratic paths between checkpoints (model, layer, parameter level)",
                       description="Loss and accuracy along θ(α) between checkpoints: linear (1−α)θ₀ + αθ₁ or the "
                                   "quadratic Lagrange path through θ₀, θ_mid, θ₁; for the whole model, each layer "
                                   "(the final model with that layer interpolated) or single parameters. Writes "
                                   "OUTPUT/path_<kind>.h5, the robust/ambient layer report and figures.")
    _job_flags(p)
    p.add_argument("--kind", action="append", choices=("linear", "quadratic"), help="repeatable (default both)")
    p.add_argument("--level", action="append", choices=("model", "layer", "parameter"),
                   help="repeatable (default model and layer)")
    p.add_argument("--layer", action="append", help="restrict to these layers (repeatable)")
    p.add_argument("--params-per-layer", type=int, help="parameter level: scalars sampled per layer")
    p.add_argument("--parameter", action="append", help="parameter level: e.g. fc1.weight[3,7] (repeatable)")
    p.add_argument("--start", help="θ₀ (default init)")
    p.add_argument("--mid", help="θ_mid of the quadratic path (default mid)")
    p.add_argument("--end", help="θ₁ (default final)")
    p.add_argument("--mid-position", choices=("half", "true"), help="α of θ_mid: 0.5 or its training fraction")
    p.add_argument("--alpha", help="MIN:MAX:NUM (default -0.5:1.5:41)")
    p.add_argument("--subset", type=int, help="evaluate on N samples")
    p.add_argument("--split", choices=("train", "test"), help="evaluate.split")
    p.add_argument("--threshold", type=float, help="robust if resetting the layer costs this much accuracy")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    _common(p)

    p = sub.add_parser("export", help="write .vtp/.vts files of surfaces for ParaView",
                       description="VTK XML files (binary, appended) of one or more surface files: polydata with "
                                   "quads (.vtp) and/or structured grids (.vts), the projected trajectory as a "
                                   "polyline when present, and a .pvd collection when several files are given.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", action="append", choices=("vtp", "vts"), help="repeatable; default vtp")
    p.add_argument("--z", default="loss", choices=("loss", "accuracy", "log_loss"), help="height array")
    p.add_argument("--log", action="store_true", help="log10 heights")
    p.add_argument("--zmax", type=float, help="clip heights above this value")
    p.add_argument("--zscale", type=float, default=1.0, help="multiply heights by this factor")
    p.add_argument("--resample", type=int, default=1, help="export on a grid N times finer (linear)")
    p.add_argument("--out", help="output folder (default: next to each file)")

    p = sub.add_parser("plot", help="PNG/PDF figures of surfaces",
                       description="Contour (labelled levels), filled contour, heatmap and 3-D figures with loss "
                                   "and accuracy panels, the trajectory overlaid when present; line plots for "
                                   "1-D surfaces.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--formats", default="png,pdf", help="comma-separated: png, pdf, svg")
    p.add_argument("--figures", default="contour,filled,heatmap,3d", help="comma-separated subset")
    p.add_argument("--log", action="store_true", help="log colour scale for the loss")
    p.add_argument("--zmax", type=float, help="mask loss values above this")
    p.add_argument("--out", help="output folder (default: next to each file)")

    p = sub.add_parser("project", help="project another run onto a surface's plane (fixed planes)",
                       description="Project every checkpoint of a trajectory onto the plane (θ*, d₁, d₂) of an "
                                   "existing surface, so runs (e.g. SGD and Adam from the same initialisation) "
                                   "are compared on the same slice; stored as /projections/LABEL and drawn by "
                                   "'landscape plot'.")
    p.add_argument("surface")
    p.add_argument("trajectory")
    p.add_argument("--label", help="name of the projection (default: the trajectory's folder name)")
    p.add_argument("--method", choices=("lstsq", "cos"), default="lstsq")

    p = sub.add_parser("reduce", help="merge highly correlated conv filters; accuracy before and after",
                       description="Merge the pairs of a conv layer's filters whose correlation (of activations "
                                   "over evaluation data, or of weights) reaches the threshold: the pair's "
                                   "average replaces one filter, the other is removed and the next layer absorbs "
                                   "its input weights. Prints the accuracy before and after.")
    _job_flags(p)
    p.add_argument("--checkpoint", help="state to reduce (default: the job's trajectory final)")
    p.add_argument("--layer", default="conv1")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--source", choices=("activations", "weights"), default="activations")
    p.add_argument("--batch", type=int, default=256, help="evaluation samples for activation correlations")
    p.add_argument("--save", help="write the reduced model's state dict here")
    _common(p)

    p = sub.add_parser("animate", help="animated GIF of the projected path over a surface",
                       description="The projected training path moving over the surface's filled contour, with "
                                   "the current epoch, loss and accuracy; with --job on 2-D data (spiral), the "
                                   "decision regions of each checkpoint beside it. Pillow writes the GIF.")
    p.add_argument("surface")
    p.add_argument("--out", help="GIF file (default SURFACE_path.gif)")
    p.add_argument("--fps", type=float, default=3.0)
    p.add_argument("--job", help="job file of the run, to draw decision regions for 2-D data")

    p = sub.add_parser("status", help="what a surface or trajectory file holds",
                       description="Grid, progress (done/total), inputs, and the minimum loss with its location.")
    p.add_argument("file")

    p = sub.add_parser("info", help="describe a trajectory file",
                       description="Print a trajectory store's checkpoints and per-epoch metrics.")
    p.add_argument("file")

    sub.add_parser("list", help="list built-in models and data sets")
    return parser


def _overrides(args: argparse.Namespace, mapping: dict[str, str]) -> list[str]:
    extra = [f"{key}={json.dumps(v) if isinstance(v, str) else v}" for attr, key in mapping.items()
             if (v := getattr(args, attr, None)) is not None]
    return list(getattr(args, "overrides", [])) + extra


_FLAGS = {"output": "output", "device": "evaluate.device", "model": "model.name", "data": "data.name",
          "root": "data.root", "epochs": "train.epochs", "lr": "train.lr", "optimizer": "train.optimizer",
          "batch_size": "train.batch_size", "seed": "train.seed", "split": "evaluate.split"}
_SURFACE_FLAGS = {**{k: v for k, v in _FLAGS.items() if k != "seed"}, "center": "surface.center",
                  "alpha": "surface.alpha", "beta": "surface.beta", "directions": "surface.directions",
                  "norm": "surface.norm", "ignore": "surface.ignore", "dir_type": "surface.dir_type",
                  "seed": "surface.seed", "target1": "surface.target1", "target2": "surface.target2",
                  "directions_from": "surface.directions_file", "subset": "surface.subset"}


def _dispatch(args: argparse.Namespace) -> int:
    from .config import load_job

    progress = not getattr(args, "no_progress", False)
    if args.command == "list":
        from .data import DATASETS
        from .models import MODELS

        print("models:   " + ", ".join(sorted(MODELS)) + ", or package.module:callable")
        print("datasets: " + ", ".join(sorted(DATASETS)) + ", torchvision:Name, or package.module:callable")
        return 0
    if args.command in ("info", "status"):
        import h5py

        from .store import SURFACE_SCHEMA, read_surface
        from .trajectory import TrajectoryStore

        try:
            with h5py.File(args.file, "r", locking=False) as f:
                kind = f.attrs.get("schema")
        except (OSError, FileNotFoundError):
            kind = SURFACE_SCHEMA  # let the reader raise its clear error
        print(read_surface(args.file).describe() if kind == SURFACE_SCHEMA else TrajectoryStore(args.file).describe())
        return 0
    if args.command == "project":
        from .surface import project_onto

        label = args.label or Path(args.trajectory).resolve().parent.name
        coords = project_onto(args.surface, args.trajectory, label, args.method)
        print(f"{len(coords)} checkpoints of {args.trajectory} projected onto {args.surface} as {label!r}: "
              f"start ({coords[0, 0]:.4g}, {coords[0, 1]:.4g}), end ({coords[-1, 0]:.4g}, {coords[-1, 1]:.4g})")
        return 0
    if args.command == "reduce":
        import torch

        from .checkpoints import apply_state, load_source
        from .dynamics import activation_correlation, correlated_pairs, filter_correlation, merge_filters
        from .evaluate import Evaluator
        from .job import prepare_data, prepare_model

        job = load_job(args.job, _overrides(args, _FLAGS))
        tr, te = prepare_data(job.data)
        data = te if job.evaluate.split == "test" else tr
        model = prepare_model(job, tr)
        src = args.checkpoint or f"{Path(job.output) / 'trajectory.h5'}:final"
        apply_state(model, load_source(src, model), src)
        before = Evaluator(model, data, job.evaluate.device, job.evaluate.batch_size, job.train.loss).evaluate()
        mods = dict(model.named_modules())
        if args.layer not in mods:
            from .errors import ConfigError

            raise ConfigError(f"--layer {args.layer!r} is not a layer of {job.model.name}")
        corr = (activation_correlation(model.cpu(), args.layer, data.x[: args.batch]) if args.source == "activations"
                else filter_correlation(mods[args.layer].weight))
        pairs = correlated_pairs(corr, args.threshold)
        merge_filters(model, args.layer, [(i, j) for i, j, _ in pairs])
        after = Evaluator(model, data, job.evaluate.device, job.evaluate.batch_size, job.train.loss).evaluate()
        n_after = dict(model.named_modules())[args.layer].out_channels
        print(f"{args.layer}: {len(corr)} filters, {len(pairs)} pair(s) with {args.source} correlation >= "
              f"{args.threshold:g}: {[(i, j) for i, j, _ in pairs]}")
        print(f"filters {len(corr)} -> {n_after}; accuracy {before.accuracy:.4f} -> {after.accuracy:.4f}, "
              f"loss {before.loss:.4f} -> {after.loss:.4f}")
        if args.save:
            torch.save(model.state_dict(), args.save)
        return 0
    if args.command == "animate":
        from .plot import animate_path

        regions, points = None, None
        if args.job:
            from .job import decision_regions

            regions, points = decision_regions(load_job(args.job, []))
        print(animate_path(args.surface, args.out, args.fps, regions, points))
        return 0
    if args.command == "path":
        from .config import ExportConfig, PathsConfig
        from .job import run_paths
        from .parallel import mpi_comm

        flags = {"output": "output", "device": "evaluate.device", "model": "model.name", "data": "data.name",
                 "root": "data.root", "split": "evaluate.split", "start": "paths.start", "mid": "paths.mid",
                 "end": "paths.end", "mid_position": "paths.mid_position", "alpha": "paths.alpha",
                 "subset": "paths.subset", "params_per_layer": "paths.params_per_layer",
                 "threshold": "paths.robust_threshold"}
        over = _overrides(args, flags)
        for attr, key in (("kind", "kinds"), ("level", "levels"), ("layer", "layers"), ("parameter", "parameters")):
            if getattr(args, attr):
                over.append(f"paths.{key}={json.dumps(getattr(args, attr))}")
        job = load_job(args.job, over)
        job.paths = job.paths or PathsConfig()
        if not args.no_plots:
            job.export = job.export or ExportConfig(vtk=[])
        else:
            job.export = None
        from .job import check_dependencies

        check_dependencies(job)
        comm = mpi_comm()
        Path(job.output).mkdir(parents=True, exist_ok=True)
        files = run_paths(job, progress, comm)
        if comm is None or comm.Get_rank() == 0:
            summary = json.loads((Path(job.output) / "summary.json").read_text())
            if "report" in summary:
                print(summary["report"])
            print("\n".join(str(p) for p in files.values()))
        return 0
    if args.command == "export":
        from .export_vtk import export_surface, write_pvd

        written = []
        for k, f in enumerate(args.files):
            files = export_surface(f, args.format or ["vtp"], args.out, args.z, args.log, args.zmax, args.zscale,
                                   args.resample)
            written += files
        if len(args.files) > 1:
            fmt = (args.format or ["vtp"])[0]
            surfaces = [p for p in written if p.suffix == f".{fmt}" and not p.stem.endswith("_trajectory")]
            pvd = write_pvd(list(enumerate(surfaces)), Path(args.out or Path(args.files[0]).parent) / "surfaces.pvd")
            written.append(pvd)
        print("\n".join(str(p) for p in written))
        return 0
    if args.command == "plot":
        import h5py

        from .plot import plot_paths, plot_surface
        from .store import PATH_SCHEMA

        def schema(f: str) -> str:
            try:
                with h5py.File(f, "r", locking=False) as h:
                    return str(h.attrs.get("schema"))
            except OSError:
                return ""
        path_files = [f for f in args.files if schema(f) == PATH_SCHEMA]
        if path_files:
            for p in plot_paths(path_files, args.out, [x for x in args.formats.split(",") if x]):
                print(p)
        for f in [f for f in args.files if f not in path_files]:
            for p in plot_surface(f, args.out, [x for x in args.formats.split(",") if x], args.log, args.zmax,
                                  [x for x in args.figures.split(",") if x]):
                print(p)
        return 0
    if args.command == "surface":
        from .surface import run_surface_job

        over = _overrides(args, _SURFACE_FLAGS)
        if args.directions_from and not args.directions:
            over.append("surface.directions=file")
        if args.alpha and not args.beta:
            over.append("surface.beta=none")
        if args.points_per_batch:
            ppb = args.points_per_batch
            over.append(f"surface.points_per_batch={ppb if ppb.isdigit() else json.dumps(ppb)}")
        if args.out:
            out = Path(args.out)
            over += [f"output={json.dumps(str(out.parent))}", f"surface.output={json.dumps(out.name)}"]
        job = load_job(args.job, over)
        if job.surface is None:  # no [surface] in the job and no surface.* override: the defaults
            from .config import SurfaceConfig

            job.surface = SurfaceConfig()
        from .parallel import mpi_comm

        comm = mpi_comm()
        path = run_surface_job(job, progress=progress, comm=comm)
        if comm is None or comm.Get_rank() == 0:
            from .store import read_surface

            print(read_surface(path).describe())
        return 0
    if args.command in ("demo", "run"):
        from .job import demo_job_path, run_job

        from .parallel import mpi_comm

        from .config import expand_sweep

        source = demo_job_path() if args.command == "demo" else args.job
        jobs = expand_sweep(source, _overrides(args, _FLAGS))
        task = getattr(args, "task", None)
        if task is None and len(jobs) > 1 and "SLURM_ARRAY_TASK_ID" in os.environ:
            task = int(os.environ["SLURM_ARRAY_TASK_ID"])
        if len(jobs) > 1:
            root = Path(jobs[0][1].output).parent
            root.mkdir(parents=True, exist_ok=True)
            (root / "sweep.json").write_text(json.dumps([{"task": k, "output": j.output, "settings": st}
                                                         for k, (st, j) in enumerate(jobs)], indent=2))
            if task is not None:
                if not 0 <= task < len(jobs):
                    from .errors import ConfigError

                    raise ConfigError(f"--task {task}: the sweep has {len(jobs)} combinations (0..{len(jobs) - 1})")
                jobs = [jobs[task]]
        comm = mpi_comm()
        for settings, job in jobs:
            if settings:
                log.info("sweep combination %s -> %s", settings, job.output)
            out = run_job(job, progress=progress, comm=comm)
            if comm is None or comm.Get_rank() == 0:
                summary = json.loads((out / "summary.json").read_text())
                if "report" in summary:
                    print(summary["report"])
                print(f"outputs written to {out.resolve()}")
        return 0
    if args.command == "submit":
        import dataclasses

        from .slurm import SlurmOptions, submit

        # every SlurmOptions field is a flag of the same name; unset flags keep the defaults
        opts = SlurmOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SlurmOptions)
                               if getattr(args, f.name) is not None})
        over = list(args.overrides) + ([f"output={json.dumps(args.output)}"] if args.output else [])
        text, job_id = submit(args.job, opts, over, args.dry_run, args.wait, args.workdir,
                              on_submitted=lambda j: print(j, flush=True))
        if args.dry_run:
            print(text, end="")
        return 0
    if args.command == "train":
        from .job import train_job

        job = load_job(args.job, _overrides(args, _FLAGS))
        out = Path(args.out)
        _, store, _ = train_job(job, out.parent, progress=progress, store_name=out.name)
        print(store.describe())
        return 0
    if args.command == "evaluate":
        from .checkpoints import apply_state, load_source
        from .evaluate import Evaluator
        from .job import prepare_data, prepare_model

        job = load_job(args.job, _overrides(args, _FLAGS))
        tr, te = prepare_data(job.data)
        model = prepare_model(job, tr)
        apply_state(model, load_source(args.checkpoint, model), args.checkpoint)
        res = Evaluator(model, te if job.evaluate.split == "test" else tr, job.evaluate.device,
                        job.evaluate.batch_size, job.train.loss, job.evaluate.precision).evaluate()
        if args.json:
            print(json.dumps({"loss": res.loss, "accuracy": res.accuracy, "n": res.n}))
        else:
            print(f"{args.checkpoint}: loss {res.loss:.6f}  accuracy {res.accuracy:.4f}  "
                  f"({res.n} {job.evaluate.split} samples)")
        return 0
    raise AssertionError(args.command)  # argparse guarantees a known command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``landscape`` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1):  # "--alpha -1:1:25": a value that starts with '-'
        if argv[i] in ("--alpha", "--beta") and argv[i + 1].startswith("-"):
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}", ""]
    args, extra = parser.parse_known_args([a for a in argv if a != ""])
    bad = [a for a in extra if a.startswith("-") or "=" not in a]
    if bad or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose < 2 else logging.DEBUG)
    fmt = "%(levelname)s %(name)s: %(message)s"
    from .parallel import in_mpi_launch

    if in_mpi_launch():  # rank 0 reports; the other ranks only warn, unless -vv
        rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMIX_RANK", 0))))
        fmt = f"%(levelname)s [rank {rank}] %(name)s: %(message)s"
        if rank != 0 and args.verbose < 2:
            level = max(level, logging.WARNING)
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)
    from .errors import EXIT_INTERRUPTED, Interrupted, interruptible

    from .parallel import abort_if_parallel, exit_together

    try:
        with interruptible():  # SIGTERM/SIGUSR1 anywhere: save, stop, exit EXIT_INTERRUPTED
            rc = _dispatch(args)
    except Interrupted as exc:
        log.error("%s", exc)
        rc = EXIT_INTERRUPTED
    except LandscapeError as exc:
        log.error("%s", exc)
        abort_if_parallel(exc)  # an error on one rank alone must not leave the others waiting
        rc = 2
    except KeyboardInterrupt:
        log.error("interrupted; rerun the same command to resume")
        return 130
    except Exception as exc:  # a bug or a library failure: under MPI, end every rank, not only this one
        if in_mpi_launch():
            log.exception("unexpected error on this rank; ending the whole job")
            abort_if_parallel(exc)
        raise
    # under MPI, no rank ends while another still saves or works alone, and all exit with one status
    return exit_together(rc, timeout=None if rc == 0 else 60)


if __name__ == "__main__":
    sys.exit(main())
