"""Ready ParaView views: pvpython scripts written beside exported VTK files that open them with a good view.

A surface's script shows the surface with normals (smooth shading), a log colour map (Viridis) with its colour bar,
contour lines at geometric levels, axis titles (α, β, loss) on a labelled axes grid, an oblique camera and a z
scale that makes the surface about half as tall as it is wide; the projected training path is a tube draped on the
surface and coloured by epoch. A filter series' script plays the ``.pvd`` time series with one symmetric colour
range over all frames (fixed at export time) and a z scale. Open a script in the GUI (View → Python Shell → Run
Script) or render it headless: ``pvbatch SCRIPT --png OUT.png`` (``--frames DIR`` writes every frame of a series,
``--state VIEW.pvsm`` saves a ParaView state file of the view).
A ParaView built for X only (Debian's package) needs a display: ``xvfb-run -a pvbatch SCRIPT --png OUT.png``.
The scripts name their files relative to themselves, so the folder can be moved or copied to another machine.

Example:
    >>> text = surface_script("surface.vtp", "surface_trajectory.vtp", (0.1, 2.3))
    >>> compile(text, "surface_view.py", "exec") is not None and "UseLogScale = 1" in text
    True
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.version import __version__
from ..io.hdf5 import writes_to

__all__ = ["surface_script", "filters_script", "write_script", "contour_levels", "write_states", "state_path"]

log = logging.getLogger(__name__)

_HEAD = '''"""ParaView view of {what}, written by landscape {version}.

GUI: View > Python Shell > Run Script.  Headless: pvbatch {name} --png OUT.png [--size 1600x1000]
(a ParaView built for X only, as Debian's, needs a display: xvfb-run -a pvbatch {name} --png OUT.png).
--state VIEW.pvsm saves a ParaView state file of this view (File > Load State opens it).
"""
import argparse
import os

from paraview.simple import *  # noqa: F401,F403

HERE = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser()
parser.add_argument("--png", help="render to this PNG file and exit")
parser.add_argument("--size", default="1600x1000", help="image size WxH")
parser.add_argument("--state", help="save a ParaView state file (.pvsm) of the view")
{extra_args}args, _ = parser.parse_known_args()
W, H = (int(v) for v in args.size.lower().split("x"))
view = GetActiveViewOrCreate("RenderView")
view.ViewSize = [W, H]
view.Background = [1.0, 1.0, 1.0]
try:
    view.UseColorPaletteForBackground = 0
except AttributeError:
    pass
view.OrientationAxesVisibility = 1
'''

_CAMERA = '''

def oblique(view, bounds, scale):
    """Camera from the front-right, above: the whole surface in view."""
    (x0, x1, y0, y1, z0, z1) = bounds
    cx, cy, cz = (x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2 * scale
    span = max(x1 - x0, y1 - y0, (z1 - z0) * scale, 1e-12)
    camera = GetActiveCamera()
    camera.SetFocalPoint(cx, cy, cz)
    camera.SetPosition(cx + 1.5 * span, cy - 1.7 * span, cz + 1.3 * span)
    camera.SetViewUp(0.0, 0.0, 1.0)
    view.ResetCamera()
    camera.Zoom(1.15)


def axes(view, titles, scale):
    grid = view.AxesGrid
    grid.Visibility = 1
    grid.XTitle, grid.YTitle, grid.ZTitle = titles
    grid.DataScale = [1.0, 1.0, scale]
    for name in ("XTitleColor", "YTitleColor", "ZTitleColor", "XLabelColor", "YLabelColor", "ZLabelColor",
                 "GridColor"):
        setattr(grid, name, [0.15, 0.15, 0.15])
'''

_SURFACE = '''
SURFACE = os.path.join(HERE, {surface!r})
TRAJECTORY = {trajectory}
ARRAY, LOW, HIGH, LEVELS = {array!r}, {low!r}, {high!r}, {levels!r}
LOG = LOW > 0 and HIGH > LOW

reader = (XMLPolyDataReader if SURFACE.endswith(".vtp") else XMLStructuredGridReader)(FileName=[SURFACE])
surface = GenerateSurfaceNormals(Input=ExtractSurface(Input=reader))
reader.UpdatePipeline()
bounds = reader.GetDataInformation().GetBounds()
SCALE = 0.5 * max(bounds[1] - bounds[0], bounds[3] - bounds[2]) / max(bounds[5] - bounds[4], 1e-12)
shown = Show(surface, view)
ColorBy(shown, ("POINTS", ARRAY))
lut = GetColorTransferFunction(ARRAY)
lut.ApplyPreset("Viridis (matplotlib)", True)
if LOG:
    lut.UseLogScale = 1
lut.RescaleTransferFunction(LOW, HIGH)
lut.AutomaticRescaleRangeMode = "Never"
shown.SetScalarBarVisibility(view, True)
bar = GetScalarBar(lut, view)
bar.Title, bar.ComponentTitle = ARRAY + (" (log scale)" if LOG else ""), ""
bar.TitleColor = bar.LabelColor = [0.1, 0.1, 0.1]
bar.RangeLabelFormat = "%-#.3g"
bar.WindowLocation = "Any Location"  # placed: two bars at their default place overlap, one cut at the top
bar.Position, bar.ScalarBarLength = [0.89, 0.06], 0.4
shown.Scale = [1.0, 1.0, SCALE]
shown.Specular = 0.3

lines = Contour(Input=surface, ContourBy=["POINTS", ARRAY], Isosurfaces=LEVELS)
shown_lines = Show(lines, view)
ColorBy(shown_lines, None)
shown_lines.AmbientColor = shown_lines.DiffuseColor = [1.0, 1.0, 1.0]
shown_lines.LineWidth = 2.0
shown_lines.Scale = [1.0, 1.0, SCALE]
# lifted a little above the surface: lines lying in it flicker in and out of the depth test (broken lines)
shown_lines.Position = [0.0, 0.0, 0.004 * max(bounds[5] - bounds[4], 1e-12) * SCALE]

if TRAJECTORY:
    path = XMLPolyDataReader(FileName=[os.path.join(HERE, TRAJECTORY)])
    tube = Tube(Input=path)
    tube.Radius = 0.008 * max(bounds[1] - bounds[0], bounds[3] - bounds[2])
    shown_path = Show(tube, view)
    shown_path.Scale = [1.0, 1.0, SCALE]
    if "epoch" in path.PointData.keys():
        ColorBy(shown_path, ("POINTS", "epoch"))
        epoch_lut = GetColorTransferFunction("epoch")
        epoch_lut.ApplyPreset("Reds", True)
        shown_path.SetScalarBarVisibility(view, True)
        epoch_bar = GetScalarBar(epoch_lut, view)
        epoch_bar.Title, epoch_bar.ComponentTitle = "epoch", ""
        epoch_bar.TitleColor = epoch_bar.LabelColor = [0.1, 0.1, 0.1]
        epoch_bar.RangeLabelFormat = "%-#.3g"
        epoch_bar.WindowLocation = "Any Location"
        epoch_bar.Position, epoch_bar.ScalarBarLength = [0.89, 0.54], 0.36
    else:
        ColorBy(shown_path, None)
        shown_path.DiffuseColor = [0.86, 0.08, 0.24]

axes(view, {titles!r}, SCALE)
oblique(view, bounds, SCALE)
Render(view)
if args.png:
    SaveScreenshot(args.png, view, ImageResolution=[W, H])
if args.state:
    SaveState(args.state)
'''

_FILTERS = '''
SERIES = os.path.join(HERE, {series!r})
LIMIT, ZSCALE = {limit!r}, {zscale!r}
FILTERS, CHANNELS = {filters!r}, {channels!r}

reader = PVDReader(FileName=SERIES)
shown = Show(reader, view)
ColorBy(shown, ("CELLS", "weight"))
lut = GetColorTransferFunction("weight")
lut.ApplyPreset("Cool to Warm", True)
lut.RescaleTransferFunction(-LIMIT, LIMIT)  # one symmetric range over every frame: colours compare across time
lut.AutomaticRescaleRangeMode = "Never"
shown.SetScalarBarVisibility(view, True)
bar = GetScalarBar(lut, view)
bar.Title, bar.ComponentTitle = "weight", ""
bar.TitleColor = bar.LabelColor = [0.1, 0.1, 0.1]
bar.RangeLabelFormat = "%-#.3g"
shown.Scale = [1.0, 1.0, ZSCALE]
scene = GetAnimationScene()
scene.UpdateAnimationUsingDataTimeSteps()
times = list(reader.TimestepValues) if hasattr(reader.TimestepValues, "__len__") else [reader.TimestepValues]
reader.UpdatePipeline(times[-1])
bounds = reader.GetDataInformation().GetBounds()
axes(view, ("filter", "input channel", "weight"), ZSCALE)
grid = view.AxesGrid  # a tick per filter and per input channel, at the centre of its block
grid.XAxisUseCustomLabels, grid.XAxisLabels = 1, list(range(FILTERS))
grid.YAxisUseCustomLabels, grid.YAxisLabels = 1, list(range(CHANNELS))
grid.XLabelFontSize = grid.YLabelFontSize = 14
oblique(view, (bounds[0], bounds[1], bounds[2], bounds[3], -LIMIT, LIMIT), ZSCALE)
text = Text(Text="")
shown_text = Show(text, view)
shown_text.Color = [0.1, 0.1, 0.1]
if args.frames:
    os.makedirs(args.frames, exist_ok=True)
    for k, t in enumerate(times):
        scene.AnimationTime = t
        text.Text = "step %g" % t
        Render(view)
        SaveScreenshot(os.path.join(args.frames, "frame_%04d.png" % k), view, ImageResolution=[W, H])
scene.AnimationTime = times[-1]
text.Text = "step %g" % times[-1]
Render(view)
if args.png:
    SaveScreenshot(args.png, view, ImageResolution=[W, H])
if args.state:
    SaveState(args.state)
'''


def contour_levels(low: float, high: float, n: int = 12) -> list[float]:
    """``n`` contour levels strictly inside (low, high): geometric for a positive range, else linear.

    Example:
        >>> contour_levels(1.0, 1000.0, 2)
        [10.0, 100.0]
    """
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        return [float(low)] if np.isfinite(low) else []
    pts = np.geomspace(low, high, n + 2) if low > 0 else np.linspace(low, high, n + 2)
    return [float(f"{v:.6g}") for v in pts[1:-1]]


def surface_script(surface: str, trajectory: str | None, value_range: tuple[float, float], array: str = "loss",
                   titles: Sequence[str] = ("alpha", "beta", "loss")) -> str:
    """The pvpython script of one exported surface (file names relative to the script's folder). Axis titles are
    ASCII: ParaView's own font has no Greek letters (an α title would not be drawn)."""
    low, high = (float(v) for v in value_range)
    return (_HEAD.format(what=surface, version=__version__, name=Path(surface).stem + "_view.py", extra_args="")
            + _CAMERA + _SURFACE.format(surface=surface, trajectory=repr(trajectory), array=array, low=low, high=high,
                                        levels=contour_levels(low, high), titles=tuple(titles)))


def filters_script(series: str, limit: float, zscale: float | None = None, filters: int = 1,
                   channels: int = 1) -> str:
    """The pvpython script of a filter evolution series (``.pvd``) with one colour range ±``limit`` for all frames;
    boxes drawn ``zscale`` times their value high (default: the largest weight half a filter's block tall). The
    blocks sit at x = filter, y = input channel: the axes are labelled with those indices."""
    limit = max(float(limit), 1e-12)
    zscale = float(zscale) if zscale else 0.5 / limit
    extra = 'parser.add_argument("--frames", help="write every time step as DIR/frame_NNNN.png")\n'
    return (_HEAD.format(what=series, version=__version__, name=Path(series).stem + "_view.py", extra_args=extra)
            + _CAMERA + _FILTERS.format(series=series, limit=limit, zscale=zscale, filters=int(filters),
                                        channels=int(channels)))


def write_script(text: str, path: str | Path) -> Path:
    """Write a view script (a full disk or read-only folder gives a clear error)."""
    path = Path(path)
    with writes_to(path):
        path.write_text(text, encoding="utf-8")
    return path


_STATES = """import runpy, sys
from paraview.simple import ResetSession
for script, state in {pairs!r}:
    sys.argv = [script, "--state", state]
    runpy.run_path(script, run_name="__main__")
    ResetSession()
"""


def state_path(script: str | Path) -> Path:
    """Where the state file of a view script goes: ``surface_view.py`` → ``surface.pvsm`` (beside the data).

    Example:
        >>> state_path("out/surface_pca_view.py").as_posix()
        'out/surface_pca.pvsm'
    """
    script = Path(script)
    return script.with_name(script.name.removesuffix("_view.py").removesuffix(".py") + ".pvsm")


def write_states(scripts: Sequence[str | Path], timeout: float = 600) -> list[Path]:
    """The ParaView state file (:func:`state_path`) of each view script, written by running the scripts in one
    ``pvbatch`` process: File > Load State in ParaView's GUI then opens the same view as the script (a ``.vtp``
    opened alone shows a grey top-down view). The states name the data files by absolute path; after moving the
    folder, choose "Search files under specified directory" when loading. Without pvbatch on PATH (or without a
    display or ``xvfb-run`` for a ParaView built for X) nothing is written and the command to run is logged.

    Example:
        >>> write_states([]) == []
        True
    """
    scripts = [Path(p).resolve() for p in scripts]
    if not scripts:
        return []
    states = [state_path(p) for p in scripts]
    by_hand = "; ".join(f"pvbatch {p.name} --state {q.name}" for p, q in zip(scripts, states))
    exe = shutil.which("pvbatch")
    if exe is None:
        log.info("no ParaView state files: pvbatch is not installed (with ParaView: %s)", by_hand)
        return []
    cmd = [exe]
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        if shutil.which("xvfb-run") is None:  # Debian's ParaView is built for X
            log.info("no ParaView state files: no display and no xvfb-run (with one: %s)", by_hand)
            return []
        cmd = ["xvfb-run", "-a", exe]
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "states.py"
        driver.write_text(_STATES.format(pairs=[(str(p), str(q)) for p, q in zip(scripts, states)]))
        for attempt in range(3):  # a display Xvfb has just announced is now and then refused under load
            try:
                r = subprocess.run(cmd + [str(driver)], capture_output=True, text=True, timeout=timeout,
                                   cwd=scripts[0].parent)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("no ParaView state files: pvbatch failed (%s); run by hand: %s", exc, by_hand)
                return []
            if r.returncode == 0 or "bad X server connection" not in r.stderr:
                break
    written = [q for q in states if q.is_file()]
    if r.returncode != 0 or len(written) < len(states):
        log.warning("ParaView state files: pvbatch exited %d (%s); run by hand: %s", r.returncode,
                    (r.stderr.strip().splitlines() or ["no message"])[-1][:300], by_hand)
    for q in written:
        log.info("wrote %s", q)
    return written
