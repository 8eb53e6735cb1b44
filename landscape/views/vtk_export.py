"""Export surfaces to VTK XML files for ParaView: ``.vtp`` polydata, ``.vts`` structured grids,
trajectory polylines and ``.pvd`` collections, written with the ``vtk`` library (appended binary data).

Point order: in a ``.vtp`` surface, point ``i * nb + j`` is ``(alpha[i], beta[j])`` (the surface file's
C order) and cells are quads; in a ``.vts`` grid VTK's own order applies (``alpha`` varies fastest). The
z coordinate is the chosen array (``loss``, ``accuracy`` or ``log_loss``), optionally ``log``-scaled,
clipped at ``zmax`` and multiplied by ``zscale``; points whose value is not finite get the largest finite
z (their arrays keep inf/NaN). Points not computed yet (a file still being written) are in no cell of a ``.vtp``
and blanked in a ``.vts``: the surface has holes there, never a wall. Point arrays: ``loss``, ``accuracy``,
(with curvature maps also ``lambda_max``, ``lambda_min``, ``trace``, ``convexity`` = |λmin/λmax|),
``log_loss`` (natural log), ``done``, ``alpha``, ``beta``. Field data (one string each): ``model``, ``data``,
``split``, ``norm``, ``directions``, ``center``, ``explained_variance``, ``status``, ``source`` and
``landscape_version``. With ``paraview=True`` a pvpython script ``STEM_view.py`` beside them opens them with a
ready view (:mod:`landscape.views.paraview`).

Example:
    >>> from landscape.io.surface_file import SurfaceData
    >>> import numpy as np
    >>> s = SurfaceData(None, np.array([0., 1.]), np.array([0., 1., 2.]), np.arange(6.).reshape(2, 3) + 1,
    ...                 np.zeros((2, 3)), np.ones((2, 3), np.uint8), {}, {})
    >>> poly = surface_polydata(s)
    >>> poly.GetNumberOfPoints(), poly.GetNumberOfCells(), poly.GetPoint(4)
    (6, 2, (1.0, 1.0, 5.0))
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np


from ..core.errors import ConfigError, StoreError
from ..core.optional import require
from ..core.version import __version__
from ..engine.curvature_map import MAPS
from ..io.hdf5 import ensure_space, replaced_atomically
from ..io.surface_file import CURVATURE_DONE, SurfaceData, read_projected_path, read_surface
from .overlay import path_to_draw, surface_height
from .paraview import surface_script, write_script, write_states

__all__ = ["surface_polydata", "surface_structured", "trajectory_polydata", "write_vtk", "write_pvd",
           "export_surface", "export_files", "resample_surface", "height_problems", "Z_ARRAYS", "field_values"]

_log = logging.getLogger(__name__)

Z_ARRAYS = ("loss", "accuracy", "log_loss")


def _vtk() -> Any:
    return require("vtk", "vtk")


def vtk_numpy() -> tuple[Any, Any]:
    """vtk's ``numpy_to_vtk`` and ``numpy_to_vtkIdTypeArray``."""
    support = require("vtk.util.numpy_support", "vtk")
    return support.numpy_to_vtk, support.numpy_to_vtkIdTypeArray


def _arrays(s: SurfaceData) -> dict[str, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        log_loss = np.log(s.loss)
    out = {"loss": s.loss, "accuracy": s.accuracy, "log_loss": log_loss, "done": s.done.astype(np.float64)}
    if s.beta is not None:
        out["alpha"], out["beta"] = np.meshgrid(s.alpha, s.beta, indexing="ij")
    else:
        out["alpha"] = np.asarray(s.alpha, dtype=np.float64)
    if CURVATURE_DONE in s.maps and s.maps[CURVATURE_DONE].shape == s.loss.shape:  # curvature maps
        done = s.maps[CURVATURE_DONE].astype(bool)
        for k in MAPS:
            if k in s.maps:
                out[k] = np.where(done, s.maps[k], np.nan)
        if "lambda_max" in s.maps and "lambda_min" in s.maps:
            with np.errstate(divide="ignore", invalid="ignore"):
                out["convexity"] = np.where(done, np.abs(s.maps["lambda_min"] / s.maps["lambda_max"]), np.nan)
    return out


def _z(s: SurfaceData, z: str, log: bool, zmax: float | None, zscale: float) -> np.ndarray:
    if z not in Z_ARRAYS:
        raise ConfigError(f"z: expected one of {list(Z_ARRAYS)}, got {z!r}")
    vals = _arrays(s)[z].astype(np.float64)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            vals = np.log10(vals)
    if zmax is not None:
        vals = np.minimum(vals, zmax)
    finite = np.isfinite(vals)
    fill = vals[finite].max() if finite.any() else 0.0
    return np.where(finite, vals, fill) * zscale


def _add_arrays(target: Any, arrays: dict[str, np.ndarray]) -> None:
    numpy_to_vtk = vtk_numpy()[0]
    for name, arr in arrays.items():
        v = numpy_to_vtk(np.ascontiguousarray(arr, dtype=np.float64), deep=True)
        v.SetName(name)
        target.GetPointData().AddArray(v)


def field_values(s: SurfaceData) -> dict[str, str]:
    """What a surface is, as the VTK files' field data: model, data, split, directions, centre, status..."""
    inp = s.inputs
    data = inp.get("data")
    ev = s.attrs.get("explained_variance")
    if ev is not None and not isinstance(ev, str):
        ev = ", ".join(f"{float(v):.4g}" for v in np.ravel(ev))
    values = {"model": inp.get("model"), "data": data.get("name") if isinstance(data, dict) else data,
              "split": inp.get("split"), "norm": inp.get("norm"), "directions": inp.get("directions"),
              "center": inp.get("center"), "explained_variance": ev, "status": s.attrs.get("status"),
              "source": Path(s.path).name if s.path else None, "landscape_version": __version__}
    return {k: str(v) for k, v in values.items() if v is not None}


def _add_fields(target: Any, s: SurfaceData) -> None:
    vtk = _vtk()
    for name, value in field_values(s).items():
        arr = vtk.vtkStringArray()
        arr.SetName(name)
        arr.InsertNextValue(value)
        target.GetFieldData().AddArray(arr)


def _points(xyz: np.ndarray) -> Any:
    pts = _vtk().vtkPoints()
    pts.SetData(vtk_numpy()[0](np.ascontiguousarray(xyz, dtype=np.float64), deep=True))
    return pts


def surface_polydata(s: SurfaceData, z: str = "loss", log: bool = False, zmax: float | None = None,
                     zscale: float = 1.0) -> Any:
    """The surface as polydata: points (alpha, beta, z) in C order, quad cells (a polyline for a 1-D line)."""
    vtk = _vtk()
    zz = _z(s, z, log, zmax, zscale)
    poly = vtk.vtkPolyData()
    if s.beta is None:  # a line: points (alpha, 0, z)
        na = len(s.alpha)
        poly.SetPoints(_points(np.stack([s.alpha, np.zeros(na), zz], 1)))
        line = vtk.vtkCellArray()
        done = s.done.astype(bool)
        for run in np.split(np.arange(na), np.flatnonzero(np.diff(done.astype(int))) + 1):  # done stretches only
            if done[run[0]] and len(run) > 1:
                line.InsertNextCell(len(run), run.tolist())
        poly.SetLines(line)
    else:
        na, nb = s.loss.shape
        a, b = np.meshgrid(s.alpha, s.beta, indexing="ij")
        poly.SetPoints(_points(np.stack([a.ravel(), b.ravel(), zz.ravel()], 1)))
        i, j = np.meshgrid(np.arange(na - 1), np.arange(nb - 1), indexing="ij")
        k = (i * nb + j).ravel()
        quads = np.stack([k, k + nb, k + nb + 1, k + 1], 1)
        quads = quads[s.done.reshape(-1).astype(bool)[quads].all(1)]  # points not computed yet leave holes
        cells = vtk.vtkCellArray()
        numpy_to_vtkIdTypeArray = vtk_numpy()[1]
        offsets = numpy_to_vtkIdTypeArray(np.arange(0, 4 * len(quads) + 1, 4, dtype=np.int64), deep=True)
        conn = numpy_to_vtkIdTypeArray(quads.ravel().astype(np.int64), deep=True)
        cells.SetData(offsets, conn)
        poly.SetPolys(cells)
    _add_arrays(poly, {k: v.ravel() for k, v in _arrays(s).items()})
    _add_fields(poly, s)
    return poly


def surface_structured(s: SurfaceData, z: str = "loss", log: bool = False, zmax: float | None = None,
                       zscale: float = 1.0) -> Any:
    """The surface as a structured grid of dimensions (na, nb, 1); VTK order (alpha fastest)."""
    vtk = _vtk()
    if s.beta is None:
        raise ConfigError("a 1-D surface has no structured-grid form; export it as vtp")
    zz = _z(s, z, log, zmax, zscale)
    na, nb = s.loss.shape
    a, b = np.meshgrid(s.alpha, s.beta, indexing="ij")
    grid = vtk.vtkStructuredGrid()
    grid.SetDimensions(na, nb, 1)
    grid.SetPoints(_points(np.stack([a.T.ravel(), b.T.ravel(), zz.T.ravel()], 1)))
    for pid in np.flatnonzero(~s.done.T.reshape(-1).astype(bool)):  # points not computed yet: blanked (holes)
        grid.BlankPoint(int(pid))
    _add_arrays(grid, {k: v.T.ravel() for k, v in _arrays(s).items()})
    _add_fields(grid, s)
    return grid


def trajectory_polydata(alpha: np.ndarray, beta: np.ndarray, z: np.ndarray, arrays: dict[str, np.ndarray]) -> Any:
    """A polyline through (alpha[k], beta[k], z[k]) with point arrays (e.g. epoch, loss)."""
    vtk = _vtk()
    poly = vtk.vtkPolyData()
    n = len(alpha)
    poly.SetPoints(_points(np.stack([alpha, beta, z], 1)))
    line = vtk.vtkCellArray()
    line.InsertNextCell(n, list(range(n)))
    poly.SetLines(line)
    _add_arrays(poly, arrays)
    return poly


def write_vtk(data: Any, path: str | Path) -> Path:
    """Write polydata (.vtp) or a structured grid (.vts) as VTK XML with appended binary data."""
    vtk = _vtk()
    path = Path(path)
    writer = vtk.vtkXMLPolyDataWriter() if isinstance(data, vtk.vtkPolyData) else vtk.vtkXMLStructuredGridWriter()
    writer.SetInputData(data)
    writer.SetDataModeToAppended()
    writer.EncodeAppendedDataOff()
    with replaced_atomically(path) as tmp:  # a failed write (a full disk) leaves no empty or partial file
        writer.SetFileName(str(tmp))
        if not writer.Write():
            ensure_space(path, 0)  # a full disk is the usual cause: say so
            raise StoreError(f"cannot write {path}: vtk's writer failed; check that the folder exists and is "
                             "writable")
    return path


def write_pvd(entries: Sequence[tuple[float, Path]], path: str | Path) -> Path:
    """A ParaView collection (.pvd) listing files by timestep (relative paths)."""
    path = Path(path)
    rows = "\n".join(f'    <DataSet timestep="{t:g}" group="" part="0" file="{Path(f).name}"/>' for t, f in entries)
    with replaced_atomically(path) as tmp:
        tmp.write_text('<?xml version="1.0"?>\n<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">\n'
                       f"  <Collection>\n{rows}\n  </Collection>\n</VTKFile>\n")
    return path


def resample_surface(s: SurfaceData, factor: int) -> SurfaceData:
    """A copy on a grid ``factor`` times finer along each axis (SciPy RegularGridInterpolator, linear)."""
    if factor <= 1:
        return s
    alpha = np.linspace(s.alpha[0], s.alpha[-1], (len(s.alpha) - 1) * factor + 1)
    axes: tuple = (s.alpha,)
    if s.beta is None:
        pts: np.ndarray = alpha[:, None]
        shape: tuple = (len(alpha),)
        beta = None
    else:
        beta = np.linspace(s.beta[0], s.beta[-1], (len(s.beta) - 1) * factor + 1)
        axes = (s.alpha, s.beta)
        a, b = np.meshgrid(alpha, beta, indexing="ij")
        pts, shape = np.stack([a.ravel(), b.ravel()], 1), a.shape
    interpolator = require("scipy.interpolate").RegularGridInterpolator  # imported when used (slow import)
    out = {}
    for name in ("loss", "accuracy"):
        f = interpolator(axes, getattr(s, name), method="linear")
        out[name] = f(pts).reshape(shape)
    done = interpolator(axes, s.done.astype(float), method="nearest")(pts).reshape(shape)
    return SurfaceData(s.path, alpha, beta, out["loss"], out["accuracy"], done.astype(np.uint8), s.attrs, s.inputs)


def height_problems(z: str = "loss", zmax: float | None = None, zscale: float = 1.0, resample: int = 1
                    ) -> list[str]:
    """What is wrong with the height options of an export, all at once.

    Example:
        >>> height_problems("loss", float("nan"), 0.0, 0)  # doctest: +NORMALIZE_WHITESPACE
        ['--zmax: expected a finite number, got nan', '--zscale: expected a finite non-zero factor, got 0.0',
         '--resample: expected a whole number >= 1, got 0']
    """
    out = []
    if z not in Z_ARRAYS:
        out.append(f"--z: expected one of {list(Z_ARRAYS)}, got {z!r}")
    if zmax is not None and not np.isfinite(zmax):
        out.append(f"--zmax: expected a finite number, got {zmax!r}")
    if not np.isfinite(zscale) or zscale == 0:
        out.append(f"--zscale: expected a finite non-zero factor, got {zscale!r}")
    if isinstance(resample, bool) or not isinstance(resample, (int, np.integer)) or resample < 1:
        out.append(f"--resample: expected a whole number >= 1, got {resample!r}")
    return out


def export_surface(path: str | Path, formats: Sequence[str] = ("vtp",), out_dir: str | Path | None = None,
                   z: str = "loss", log: bool = False, zmax: float | None = None, zscale: float = 1.0,
                   resample: int = 1, paraview: bool = False, state: bool = True) -> list[Path]:
    """Export one surface file: the surface in each format, plus ``*_trajectory.vtp`` when it holds a path, and
    with ``paraview`` the pvpython script ``*_view.py`` that opens them with a ready view and (``state``, where
    pvbatch is installed) the ParaView state file ``*.pvsm`` of that view, for File > Load State in the GUI."""
    problems = [f"export formats: expected 'vtp' and/or 'vts', got {bad}"
                for bad in [[f for f in formats if f not in ("vtp", "vts")]] if bad]
    problems += height_problems(z, zmax, zscale, resample)
    if problems:
        raise ConfigError(problems)
    s = resample_surface(read_surface(path), resample)
    out_dir = Path(out_dir) if out_dir else Path(path).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    written = []
    for fmt in formats:
        data = surface_polydata(s, z, log, zmax, zscale) if fmt == "vtp" else surface_structured(s, z, log, zmax,
                                                                                                  zscale)
        written.append(write_vtk(data, out_dir / f"{stem}.{fmt}"))
    traj, why = path_to_draw(s, read_projected_path(Path(path)))
    if traj is not None:  # on the surface: its height there; what training recorded kept as arrays
        heights = surface_height(s, _z(s, z, log, zmax, zscale), traj["alpha"], traj["beta"])
        arrays = {("recorded_" + k if k in ("loss", "accuracy") else k): v for k, v in traj.items()
                  if k not in ("alpha", "beta")}
        arrays["surface_" + z] = surface_height(s, _arrays(s)[z], traj["alpha"], traj["beta"])
        written.append(write_vtk(trajectory_polydata(traj["alpha"], traj["beta"], heights, arrays),
                                 out_dir / f"{stem}_trajectory.vtp"))
    elif why != "the file holds no projected path":
        _log.info("%s: projected path not exported: %s", path, why)
    if paraview and s.beta is not None:
        colour = "accuracy" if z == "accuracy" else "loss"
        vals = _arrays(s)[colour][s.done.astype(bool)]
        vals = vals[np.isfinite(vals)]
        span = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        height = ("log10 " if log else "") + ("ln loss" if z == "log_loss" else z) + (
            f" x {zscale:g}" if zscale != 1 else "")
        traj_name = f"{stem}_trajectory.vtp" if traj is not None else None
        # ASCII axis titles (ParaView's font has no Greek letters): PC1/PC2 on a PCA plane, alpha/beta otherwise
        titles = ("PC1", "PC2") if "explained_variance" in s.attrs else ("alpha", "beta")
        written.append(write_script(surface_script(written[0].name, traj_name, span, colour, (*titles, height)),
                                    out_dir / f"{stem}_view.py"))
        if state:
            written += write_states([written[-1]])
    for p in written:
        _log.info("wrote %s", p)
    return written


def export_files(files: Sequence[str | Path], formats: Sequence[str] = ("vtp",), out_dir: str | Path | None = None,
                 z: str = "loss", log: bool = False, zmax: float | None = None, zscale: float = 1.0,
                 resample: int = 1, paraview: bool = False, state: bool = True) -> list[Path]:
    """Export several surface files (:func:`export_surface` each) and, for more than one, a ``surfaces.pvd``
    collection of the surfaces in the first format, so ParaView steps through them.

    Example:
        >>> export_files([], ("vtp",))
        []
    """
    written: list[Path] = []
    for f in files:
        written += export_surface(f, formats, out_dir, z, log, zmax, zscale, resample, paraview, state)
    if len(files) > 1:
        fmt = formats[0]
        surfaces = [p for p in written if p.suffix == f".{fmt}" and not p.stem.endswith("_trajectory")]
        written.append(write_pvd(list(enumerate(surfaces)), Path(out_dir or Path(files[0]).parent) / "surfaces.pvd"))
    return written
