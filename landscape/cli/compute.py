"""Commands that compute one analysis: ``surface``, ``sample``, ``path``, ``curvature``, ``project`` and ``reduce``.

Example:
    >>> sorted(n for n in COMMANDS if n in ("surface", "path", "curvature", "project", "reduce"))
    ['curvature', 'path', 'project', 'reduce', 'surface']
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..analysis.interpolation import KINDS
from ..io.surface_file import read_surface
from ..engine.curvature_map import MAPS
from ..io.sample_file import read_sample
from ..run.config import CurvatureConfig, ExportConfig, PathsConfig, SampleConfig, SurfaceConfig
from ..run.jobfile import load_job
from ..run.mpi import mpi_comm
from ..run.projection import project_onto
from ..stages.api import reduce_filters
from ..stages.curvature import run_curvature
from ..stages.paths import run_paths
from ..stages.sample import run_sample_job
from ..stages.surface import run_surface_job
from .common import COMMANDS  # noqa: F401 - the doctest lists the registry
from .common import FLAGS, command, common_flags, is_root, job_flags, out_file, overrides, progress

__all__: list[str] = []

_SURFACE_FLAGS = {**{k: v for k, v in FLAGS.items() if k != "seed"}, "center": "surface.center",
                  "alpha": "surface.alpha", "beta": "surface.beta", "directions": "surface.directions",
                  "norm": "surface.norm", "ignore": "surface.ignore", "dir_type": "surface.dir_type",
                  "seed": "surface.seed", "target1": "surface.target1", "target2": "surface.target2",
                  "directions_from": "surface.directions_file", "subset": "surface.subset",
                  "trajectory": "surface.trajectory",
                  "hessian_pair": "surface.hessian_pair"}


def _surface_arguments(p: argparse.ArgumentParser) -> None:
    job_flags(p)
    p.add_argument("--center", help="θ*: run.h5:NAME, file.pt, or a checkpoint name of the job's trajectory")
    p.add_argument("--alpha", help="MIN:MAX:NUM (default -1:1:25)")
    p.add_argument("--beta", help="MIN:MAX:NUM; omit it together with --alpha given for a 1-D line")
    p.add_argument("--directions", choices=("random", "checkpoints", "file", "pca", "hessian"),
                   help="surface.directions (pca: the trajectory's top principal components; hessian: eigenvectors "
                        "of the Hessian at the centre)")
    p.add_argument("--hessian-pair", choices=("top", "extremes"),
                   help="--directions hessian: the two largest eigenvalues' eigenvectors, or λmax's and λmin's")
    p.add_argument("--curvature", action="append", choices=MAPS,
                   help="also map this at every grid point (repeatable): lambda_max, lambda_min, trace")
    p.add_argument("--trajectory", help="trajectory store for pca and the projected path (surface.trajectory)")
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
    common_flags(p)


@command("surface", _surface_arguments)
def surface(args: argparse.Namespace) -> int:
    """compute (or resume) a 2-D loss surface or 1-D line

    Loss and accuracy on the grid θ* + α·d₁ + β·d₂, stored in one HDF5 file. Rerunning the same command computes
    only the points not done; other inputs on an existing file are refused.
    """
    over = overrides(args, _SURFACE_FLAGS)
    if args.curvature:
        over.append(f"surface.curvature={json.dumps(args.curvature)}")
    if args.directions_from and not args.directions:
        over.append("surface.directions=file")
    if args.alpha and not args.beta:
        over.append("surface.beta=none")
    if args.points_per_batch:
        ppb = args.points_per_batch
        over.append(f"surface.points_per_batch={ppb if ppb.isdigit() else json.dumps(ppb)}")
    over += out_file(args, "surface.output")
    job = load_job(args.job, over)
    job.surface = job.surface or SurfaceConfig()  # no [surface] in the job and no surface.* override: defaults
    comm = mpi_comm()
    path = run_surface_job(job, progress=progress(args), comm=comm)
    if is_root(comm):
        print(read_surface(path).describe())
    return 0


_PATH_FLAGS = {"output": "output", "device": "evaluate.device", "model": "model.name", "data": "data.name",
               "root": "data.root", "split": "evaluate.split", "start": "paths.start", "mid": "paths.mid",
               "end": "paths.end", "mid_position": "paths.mid_position", "alpha": "paths.alpha",
               "subset": "paths.subset", "params_per_layer": "paths.params_per_layer",
               "threshold": "paths.robust_threshold"}


def _path_arguments(p: argparse.ArgumentParser) -> None:
    job_flags(p)
    p.add_argument("--kind", action="append", choices=KINDS,
                   help="repeatable (default linear and quadratic); bezier and polychain are learned curves, trained "
                        "first ([paths.curve] settings)")
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
    common_flags(p)


@command("path", _path_arguments)
def path(args: argparse.Namespace) -> int:
    """linear/quadratic paths and learned curves between checkpoints (model, layer, parameter level)

    Loss and accuracy along θ(α) between checkpoints: linear (1−α)θ₀ + αθ₁, the quadratic Lagrange path
    through θ₀, θ_mid, θ₁, or a learned Bézier/polychain curve through a bend θ_b trained to keep the loss low
    (Garipov et al. 2018); for the whole model, each layer (the final model with that layer interpolated) or
    single parameters. Writes OUTPUT/path_<kind>.h5 (curves: also path_<kind>_curve.h5), the robust/ambient
    layer report and figures.
    """
    over = overrides(args, _PATH_FLAGS)
    for attr, key in (("kind", "kinds"), ("level", "levels"), ("layer", "layers"), ("parameter", "parameters")):
        if getattr(args, attr):
            over.append(f"paths.{key}={json.dumps(getattr(args, attr))}")
    job = load_job(args.job, over)
    job.paths = job.paths or PathsConfig()
    job.export = None if args.no_plots else (job.export or ExportConfig(vtk=[]))
    comm = mpi_comm()
    result = run_paths(job, progress(args), comm)
    if is_root(comm):
        if result.report:
            print(result.report)
        print("\n".join(str(p) for p in result.files.values()))
    return 0


def _project_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("surface")
    p.add_argument("trajectory")
    p.add_argument("--label", help="name of the projection (default: the trajectory's folder name)")
    p.add_argument("--method", choices=("lstsq", "cos"), default="lstsq")


@command("project", _project_arguments)
def project(args: argparse.Namespace) -> int:
    """project another run onto a surface's plane (fixed planes)

    Project every checkpoint of a trajectory onto the plane (θ*, d₁, d₂) of an existing surface, so runs (e.g.
    SGD and Adam from the same initialisation) are compared on the same slice; stored as /projections/LABEL and
    drawn by 'landscape plot'.
    """
    label = args.label or Path(args.trajectory).resolve().parent.name
    coords = project_onto(args.surface, args.trajectory, label, args.method)
    print(f"{len(coords)} checkpoints of {args.trajectory} projected onto {args.surface} as {label!r}: "
          f"start ({coords[0, 0]:.4g}, {coords[0, 1]:.4g}), end ({coords[-1, 0]:.4g}, {coords[-1, 1]:.4g})")
    return 0


def _reduce_arguments(p: argparse.ArgumentParser) -> None:
    job_flags(p)
    p.add_argument("--checkpoint", help="state to reduce (default: the job's trajectory final)")
    p.add_argument("--layer", default="conv1")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--source", choices=("activations", "weights"), default="activations")
    p.add_argument("--batch", type=int, default=256, help="evaluation samples for activation correlations")
    p.add_argument("--save", help="write the reduced model's state dict here")
    common_flags(p)


@command("reduce", _reduce_arguments)
def reduce(args: argparse.Namespace) -> int:
    """merge highly correlated conv filters; accuracy before and after

    Merge the pairs of a conv layer's filters whose correlation (of activations over evaluation data, or of
    weights) reaches the threshold: the pair's average replaces one filter, the other is removed and the next
    layer absorbs its input weights. Prints the accuracy before and after.
    """
    job = load_job(args.job, overrides(args, FLAGS))
    result = reduce_filters(job, args.layer, args.source, args.threshold, args.batch, args.checkpoint, args.save)
    print(result.describe())
    return 0


def _curvature_arguments(p: argparse.ArgumentParser) -> None:
    job_flags(p)
    p.add_argument("--center", help="the point: a checkpoint name of the job's trajectory, file.pt or run.h5:NAME")
    p.add_argument("--top-k", type=int, help="largest eigenpairs (curvature.top_k, default 5)")
    p.add_argument("--bottom-k", type=int, help="smallest eigenpairs (curvature.bottom_k, default 1)")
    p.add_argument("--tol", type=float, help="Lanczos tolerance (relative residual, default 1e-3)")
    p.add_argument("--trace", action="store_true", help="estimate the trace (the default in a [curvature] section)")
    p.add_argument("--no-trace", action="store_true", help="skip the trace")
    p.add_argument("--density", action="store_true", help="spectral density by stochastic Lanczos quadrature")
    p.add_argument("--split", choices=("train", "test"), help="evaluate.split")
    p.add_argument("--subset", type=int, help="use N samples of the split (curvature.subset)")
    p.add_argument("--out", help="curvature file (default OUTPUT/curvature.h5)")
    common_flags(p)


@command("curvature", _curvature_arguments)
def curvature(args: argparse.Namespace) -> int:
    """Hessian spectrum, trace, density and sharpness at a centre

    The largest and smallest Hessian eigenvalues of the loss (mean over the evaluation split) by Lanczos with full
    reorthogonalisation, the trace by Hutchinson's estimator with its standard error, optionally the spectral
    density (SLQ), and the sharpness summary: λmax, λmin, trace, ε-sharpness and the basin width along the
    surface directions. Written to OUTPUT/curvature.h5 and printed.
    """
    over = overrides(args, {**FLAGS, "center": "curvature.center", "top_k": "curvature.top_k",
                            "bottom_k": "curvature.bottom_k", "tol": "curvature.tol", "split": "evaluate.split",
                            "subset": "curvature.subset"})
    if args.trace or args.no_trace:
        over.append(f"curvature.trace={'false' if args.no_trace else 'true'}")
    if args.density:
        over.append("curvature.density=true")
    over += out_file(args, "curvature.output")
    job = load_job(args.job, over)
    job.curvature = job.curvature or CurvatureConfig()
    comm = mpi_comm()
    if is_root(comm):  # one point: rank 0 computes it
        print(run_curvature(job, progress(args)).text)
    return 0


_SAMPLE_FLAGS = {**{k: v for k, v in FLAGS.items() if k != "seed"}, "center": "sample.center", "k": "sample.k",
                 "directions": "sample.directions", "design": "sample.design", "points": "sample.points",
                 "region": "sample.region", "design_seed": "sample.design_seed", "norm": "sample.norm",
                 "ignore": "sample.ignore", "seed": "sample.seed", "subset": "sample.subset",
                 "trajectory": "sample.trajectory"}


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    job_flags(p)
    p.add_argument("--center", help="θ*: run.h5:NAME, file.pt, or a checkpoint name of the job's trajectory")
    p.add_argument("--k", type=int, help="number of directions (default 3)")
    p.add_argument("--directions", choices=("random", "checkpoints", "pca", "hessian"), help="sample.directions")
    p.add_argument("--target", action="append", help="--directions checkpoints: a target (repeat k times)")
    p.add_argument("--design", choices=("grid", "sobol", "halton"), help="sample.design (default grid)")
    p.add_argument("--range", action="append", dest="ranges",
                   help="grid: MIN:MAX:NUM for every axis, or repeated once per axis; sobol/halton: MIN:MAX")
    p.add_argument("--points", type=int, help="sobol/halton: number of points (default 1024)")
    p.add_argument("--region", choices=("box", "ball"), help="sobol/halton: box or ball (radius MAX)")
    p.add_argument("--design-seed", type=int, help="sobol/halton: scrambling seed")
    p.add_argument("--norm", choices=("filter", "layer", "model", "none"), help="sample.norm (default filter)")
    p.add_argument("--ignore", choices=("biasbn", "none"), help="sample.ignore (default biasbn)")
    p.add_argument("--seed", type=int, help="sample.seed (random directions)")
    p.add_argument("--trajectory", help="trajectory store for --directions pca")
    p.add_argument("--subset", type=int, help="evaluate on N samples (sample.subset)")
    p.add_argument("--out", help="sample file to write or resume (default OUTPUT/sample.h5)")
    common_flags(p)


@command("sample", _sample_arguments)
def sample(args: argparse.Namespace) -> int:
    """compute (or resume) a k-dimensional sample of the loss

    Loss and accuracy at θ* + Σ cᵢ·dᵢ for k directions, on a k-D grid or a Sobol/Halton design, stored in one
    HDF5 file. Rerunning the same command computes only the points not done; other inputs are refused.
    """
    over = overrides(args, _SAMPLE_FLAGS)
    if args.ranges:
        over.append(f"sample.ranges={json.dumps(args.ranges)}")
    if args.target:
        over.append(f"sample.targets={json.dumps(args.target)}")
    over += out_file(args, "sample.output")
    job = load_job(args.job, over)
    job.sample = job.sample or SampleConfig()
    comm = mpi_comm()
    path = run_sample_job(job, progress=progress(args), comm=comm)
    if is_root(comm):
        print(read_sample(path).describe())
    return 0
