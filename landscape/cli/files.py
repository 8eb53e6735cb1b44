"""Commands that read result files: ``export``, ``plot``, ``report``, ``animate``, ``topology``, ``status``,
``info`` and ``list``.

Example:
    >>> sorted(n for n in COMMANDS if n in ("export", "plot", "report", "animate", "status", "info", "list"))
    ['animate', 'export', 'info', 'list', 'plot', 'report', 'status']
"""
from __future__ import annotations

import argparse

from ..core.data import DATASETS
from ..core.errors import ConfigError
from ..core.models import MODELS
from ..io.status import describe_file
from ..run.jobfile import load_job
from ..stages.job import decision_regions
from ..stages.topology import RELATIVE_THRESHOLD, distance_table, landscape_topology
from ..views.animation import animate_path
from ..views.figures import plot_files
from ..views.report import write_report
from ..views.topology_plots import plot_topology
from ..views.vtk_export import export_files
from .common import COMMANDS  # noqa: F401 - the doctest lists the registry
from .common import command

__all__: list[str] = []


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", action="append", choices=("vtp", "vts"), help="repeatable; default vtp")
    p.add_argument("--z", default="loss", choices=("loss", "accuracy", "log_loss"), help="height array")
    p.add_argument("--log", action="store_true", help="log10 heights")
    p.add_argument("--zmax", type=float, help="clip heights above this value")
    p.add_argument("--zscale", type=float, default=1.0, help="multiply heights by this factor")
    p.add_argument("--resample", type=int, default=1, help="export on a grid N times finer (linear)")
    p.add_argument("--paraview", action="store_true",
                   help="also write STEM_view.py: a pvpython script opening the files with a ready view "
                        "(pvbatch STEM_view.py --png OUT.png renders it)")
    p.add_argument("--no-state", dest="state", action="store_false",
                   help="with --paraview, no ParaView state file (.pvsm; written by pvbatch where it is installed)")
    p.add_argument("--out", help="output folder (default: next to each file)")


@command("export", _export_arguments)
def export(args: argparse.Namespace) -> int:
    """write .vtp/.vts files of surfaces for ParaView

    VTK XML files (binary, appended) of one or more surface files: polydata with quads (.vtp) and/or structured
    grids (.vts), the projected trajectory as a polyline when present, and a .pvd collection when several files
    are given; with --paraview a pvpython script per surface that opens them with a ready view (log colour map,
    normals, contour lines, axis titles, oblique camera, the training path as a tube coloured by epoch) and, where
    pvbatch is installed, the ParaView state file (.pvsm) of that view for File > Load State.
    """
    written = export_files(args.files, args.format or ["vtp"], args.out, args.z, args.log, args.zmax, args.zscale,
                           args.resample, args.paraview, args.state)
    print("\n".join(str(p) for p in written))
    return 0


def _topology_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="surface, line or path files (finished)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="count basins whose barrier exceeds this loss (besides the relative threshold)")
    p.add_argument("--relative", type=float, default=RELATIVE_THRESHOLD,
                   help=f"count basins whose barrier exceeds this fraction of the loss range (default "
                        f"{RELATIVE_THRESHOLD})")
    p.add_argument("--no-write", action="store_true", help="print only; write no FILE_topology.h5")


@command("topology", _topology_arguments)
def topology(args: argparse.Namespace) -> int:
    """basins, barriers and roughness of landscapes; distances between them

    Sublevel-set persistence of the loss (gudhi's cubical complexes): every basin's minimum and the saddle where
    it merges into a deeper one, the number of basins with a barrier above the thresholds, the centre's basin
    (its share of the grid and its barrier), a roughness summary and, for paths, the barrier between the ends.
    Written to FILE_topology.h5 (schema landscape.topology). With several landscapes: the bottleneck and
    1-Wasserstein distances between their persistence diagrams.
    """
    for name, value in (("--threshold", args.threshold), ("--relative", args.relative)):
        if not (value >= 0 and value == value and value != float("inf")):
            raise ConfigError(f"{name}: expected a finite number >= 0, got {value}")
    items = [t for f in args.files for t in landscape_topology(f, not args.no_write, args.threshold)]
    for t in items:
        print(t.describe(args.threshold, args.relative))
        if t.path is not None:
            figures = plot_topology(t.path, None, ["png"], args.relative)
            print(f"  written to {t.path}, " + ", ".join(str(p) for p in figures))
    if len(items) > 1:
        labels = [f"{t.source.name}" + (f"[{t.item}]" if t.item else "") for t in items]
        width = max(len(x) for x in labels)
        for kind in ("bottleneck", "wasserstein"):
            table = distance_table(items, kind)
            print(f"\n{kind} distances between the persistence diagrams (H0):")
            for label, row in zip(labels, table):
                print(f"  {label:<{width}}  " + "  ".join(f"{v:10.4g}" for v in row))
    return 0


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--formats", default="png,pdf", help="comma-separated: png, pdf, svg")
    p.add_argument("--figures", default="contour,filled,heatmap,3d", help="comma-separated subset")
    p.add_argument("--log", action="store_true", help="log colour scale for the loss")
    p.add_argument("--zmax", type=float, help="mask loss values above this")
    p.add_argument("--vmin", type=float, help="lower end of the loss colour range and contour levels")
    p.add_argument("--vmax", type=float, help="upper end of the loss colour range and contour levels")
    p.add_argument("--levels", type=int, default=20, help="number of contour levels (default 20)")
    p.add_argument("--equal-aspect", action="store_true", help="draw alpha and beta at the same scale")
    p.add_argument("--path-y", default="log", choices=("log", "linear", "clip"),
                   help="loss axis of path figures; clip: limited to the values at 0 <= alpha <= 1")
    p.add_argument("--out", help="output folder (default: next to each file)")


@command("plot", _plot_arguments)
def plot(args: argparse.Namespace) -> int:
    """PNG/PDF figures of surfaces

    Contour (labelled levels), filled contour, heatmap and 3-D figures with loss and accuracy panels, the
    trajectory overlaid when present; line plots for 1-D surfaces.
    """
    split = lambda text: [x for x in text.split(",") if x]  # noqa: E731
    for p in plot_files(args.files, args.out, split(args.formats), args.log, args.zmax, split(args.figures),
                        vmin=args.vmin, vmax=args.vmax, n_levels=args.levels, equal_aspect=args.equal_aspect,
                        path_y=args.path_y):
        print(p)
    return 0


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", metavar="OUTPUT_DIR", help="a job's output folder (or any folder of result files)")
    p.add_argument("--out", help="HTML file to write (default OUTPUT_DIR/report.html)")


@command("report", _report_arguments)
def report(args: argparse.Namespace) -> int:
    """one self-contained HTML page of an output folder

    Interactive 3-D surfaces (rotate, zoom, hover values) with the training path, contours with the projected
    path, 1-D paths at every level, the robust/ambient table, training metrics and norms, filter correlations,
    curvature, the run's provenance and history, and links to every file. It embeds plotly.js, so it opens
    offline; files still being computed show their progress. Prints the page's path.
    """
    print(write_report(args.folder, args.out).resolve())
    return 0


def _animate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("surface")
    p.add_argument("--out", help="GIF file (default SURFACE_path.gif)")
    p.add_argument("--fps", type=float, default=3.0)
    p.add_argument("--job", help="job file of the run, to draw decision regions for 2-D data")


@command("animate", _animate_arguments)
def animate(args: argparse.Namespace) -> int:
    """animated GIF of the projected path over a surface

    The projected training path moving over the surface's filled contour, with the current epoch, loss and
    accuracy; with --job on 2-D data (spiral), the decision regions of each checkpoint beside it. Pillow writes
    the GIF.
    """
    regions, points = decision_regions(load_job(args.job, [])) if args.job else (None, None)
    print(animate_path(args.surface, args.out, args.fps, regions, points))
    return 0


def _file_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")


@command("status", _file_argument)
def status(args: argparse.Namespace) -> int:
    """what a surface or trajectory file holds

    Grid, progress (done/total), inputs, and the minimum loss with its location.
    """
    print(describe_file(args.file))
    return 0


@command("info", _file_argument)
def info(args: argparse.Namespace) -> int:
    """describe a trajectory file

    Print a trajectory store's checkpoints and per-epoch metrics.
    """
    print(describe_file(args.file))
    return 0


@command("list")
def list_builtins(args: argparse.Namespace) -> int:
    """list built-in models and data sets"""
    print("models:   " + ", ".join(sorted(MODELS)) + ", or package.module:callable")
    print("datasets: " + ", ".join(sorted(DATASETS)) + ", torchvision:Name, or package.module:callable")
    return 0
