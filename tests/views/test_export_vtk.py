import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from landscape.views.vtk_export import export_surface, write_pvd
from conftest import ALPHA, BETA, make_surface, non_blank, pvbatch
from landscape.io.surface_file import read_surface



def read(path):
    reader = vtk.vtkXMLPolyDataReader() if str(path).endswith(".vtp") else vtk.vtkXMLStructuredGridReader()
    reader.SetFileName(str(path))
    reader.Update()
    return reader.GetOutput()


def arrays(data):
    pd = data.GetPointData()
    return {pd.GetArrayName(i): vtk_to_numpy(pd.GetArray(i)) for i in range(pd.GetNumberOfArrays())}


def test_3x5_polydata_round_trips_exactly(tmp_path):
    s = make_surface(tmp_path / "s.h5")
    (vtp,) = export_surface(tmp_path / "s.h5", ["vtp"])
    assert vtp.read_bytes().count(b'format="appended"') >= 1  # XML with appended binary data
    poly = read(vtp)
    assert poly.GetNumberOfPoints() == 15 and poly.GetNumberOfCells() == 8
    pts = vtk_to_numpy(poly.GetPoints().GetData())
    A, B = np.meshgrid(ALPHA, BETA, indexing="ij")
    np.testing.assert_array_equal(pts, np.stack([A.ravel(), B.ravel(), s.loss.ravel()], 1))
    arr = arrays(poly)
    np.testing.assert_array_equal(arr["loss"], s.loss.ravel())
    np.testing.assert_array_equal(arr["accuracy"], s.accuracy.ravel())
    np.testing.assert_allclose(arr["log_loss"], np.log(s.loss.ravel()))
    # the first quad joins (0,0), (1,0), (1,1), (0,1)
    ids = poly.GetCell(0).GetPointIds()
    assert [ids.GetId(i) for i in range(4)] == [0, 5, 6, 1]


def test_structured_grid_uses_vtk_order(tmp_path):
    s = make_surface(tmp_path / "s.h5")
    (vts,) = export_surface(tmp_path / "s.h5", ["vts"], z="accuracy", zscale=2.0)
    grid = read(vts)
    dims = [0, 0, 0]
    grid.GetDimensions(dims)
    assert dims == [3, 5, 1] and grid.GetNumberOfPoints() == 15
    for i in range(3):
        for j in range(5):
            pid = i + 3 * j  # VTK: alpha (x) varies fastest
            assert grid.GetPoint(pid) == pytest.approx((ALPHA[i], BETA[j], 2 * s.accuracy[i, j]))
            assert arrays(grid)["loss"][pid] == s.loss[i, j]


def test_height_options_and_divergent_points(tmp_path):
    s = make_surface(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["loss"][2, 4] = np.inf
    (vtp,) = export_surface(tmp_path / "s.h5", ["vtp"], zmax=2.0, out_dir=tmp_path / "o")
    z = vtk_to_numpy(read(vtp).GetPoints().GetData())[:, 2]
    assert z.max() == 2.0 and z[0] == min(s.loss[0, 0], 2.0)
    assert np.isinf(arrays(read(vtp))["loss"][14])  # the array keeps the divergent value
    (vtp,) = export_surface(tmp_path / "s.h5", ["vtp"], log=True, out_dir=tmp_path / "l")
    z = vtk_to_numpy(read(vtp).GetPoints().GetData())[:, 2]
    assert z[0] == pytest.approx(np.log10(s.loss[0, 0])) and np.isfinite(z).all()


def test_line_trajectory_pvd_and_resampling(tmp_path, cli):
    make_surface(tmp_path / "line.h5", line=True)
    (vtp,) = export_surface(tmp_path / "line.h5", ["vtp"])
    poly = read(vtp)
    assert poly.GetNumberOfPoints() == 3 and poly.GetNumberOfLines() == 1
    make_surface(tmp_path / "t.h5", trajectory=True)
    files = export_surface(tmp_path / "t.h5", ["vtp"], resample=2)
    traj = read(files[-1])
    assert files[-1].name == "t_trajectory.vtp" and traj.GetNumberOfPoints() == 3
    np.testing.assert_array_equal(arrays(traj)["epoch"], [0, 1, 2])
    fine = read(files[0])
    assert fine.GetNumberOfPoints() == 5 * 9  # (3-1)*2+1 by (5-1)*2+1
    coarse = read_surface(tmp_path / "t.h5")
    np.testing.assert_allclose(arrays(fine)["loss"].reshape(5, 9)[::2, ::2], coarse.loss)
    make_surface(tmp_path / "u.h5")
    r = cli("export", str(tmp_path / "t.h5"), str(tmp_path / "u.h5"), "--format", "vtp", "--format", "vts",
            "--out", str(tmp_path / "both"))
    assert r.returncode == 0, r.stderr
    root = ET.parse(tmp_path / "both" / "surfaces.pvd").getroot()
    assert [d.get("file") for d in root.iter("DataSet")] == ["t.vtp", "u.vtp"]
    assert {p.name for p in (tmp_path / "both").iterdir()} >= {"t.vtp", "t.vts", "u.vtp", "u.vts",
                                                                "t_trajectory.vtp"}
    write_pvd([(0.5, tmp_path / "a.vtp")], tmp_path / "c.pvd")
    assert ET.parse(tmp_path / "c.pvd").getroot().find("Collection/DataSet").get("timestep") == "0.5"


PV_SCRIPT = """
import json, sys
from paraview.simple import OpenDataFile
out = []
for p in sys.argv[1:]:
    r = OpenDataFile(p)
    r.UpdatePipeline()
    out.append({"points": r.GetDataInformation().GetNumberOfPoints(), "arrays": sorted(r.PointData.keys())})
print("RESULT " + json.dumps(out))
"""


def test_paraview_opens_every_exported_file(tmp_path):
    pvpython = shutil.which("pvpython")
    if pvpython is None:
        if os.environ.get("CI") or os.environ.get("LANDSCAPE_CI"):
            pytest.fail("pvpython (Debian package paraview) must be installed in CI; .ci/run installs it")
        pytest.skip("pvpython not installed (apt-get install paraview)")
    make_surface(tmp_path / "s.h5", trajectory=True)
    files = export_surface(tmp_path / "s.h5", ["vtp", "vts"])
    (tmp_path / "pv.py").write_text(PV_SCRIPT)
    r = subprocess.run([pvpython, str(tmp_path / "pv.py"), *map(str, files)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    res = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
    for f, got in zip(files, res):
        data = read(f)
        assert got["points"] == data.GetNumberOfPoints(), f
        assert got["arrays"] == sorted(arrays(data)), f
    assert res[0]["points"] == 15 and res[2]["arrays"] == ["epoch", "recorded_loss", "surface_loss"]


def test_a_partial_surface_has_holes_not_walls(tmp_path):
    """A file still being computed: points not done are in no quad (vtp) and blanked (vts); figures say partial."""
    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore
    from landscape.views.surface_plots import plot_surface

    g = Grid(ALPHA, BETA)
    st = SurfaceStore.open(tmp_path / "p.h5", g, {"case": "partial"})
    k = np.arange(9)  # rows 0 and the first four points of row 1 of the 3x5 grid
    a, b = g.coords(k)
    st.write(k, 1.0 + a ** 2 + b ** 2, np.full(9, 0.5))
    st.close()
    vtp, vts = export_surface(tmp_path / "p.h5", ["vtp", "vts"])
    poly = read(vtp)
    assert poly.GetNumberOfCells() == 3  # only quads whose four corners are done: between rows 0 and 1, j = 0..2
    pts = vtk_to_numpy(poly.GetPoints().GetData())
    cell_points = {poly.GetCell(c).GetPointId(i) for c in range(3) for i in range(4)}
    assert cell_points <= set(range(9)) and pts[list(cell_points), 2].max() < 5  # no point lifted to a wall
    grid = read(vts)
    blanked = [pid for pid in range(15) if not grid.IsPointVisible(pid)]
    assert len(blanked) == 6
    figs = plot_surface(tmp_path / "p.h5", formats=("png",), figures=("heatmap",))
    assert figs and figs[0].exists()
    from landscape.views.surface_plots import _title

    assert "partial 9/15 points" in _title(read_surface(tmp_path / "p.h5"))


def test_projected_path_only_where_it_means_something_and_on_the_surface(tmp_path, caplog):
    """Random directions: a path spanning 0.25 % of the grid is left out (and the log says why); a path that
    spans the grid is drawn with the surface's height at each point and the recorded losses as arrays."""
    import logging

    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore

    g = Grid(ALPHA, BETA)
    for name, scale in (("needle", 0.005), ("wide", 1.0)):
        k = np.arange(g.size)
        a, b = g.coords(k)
        path = {"trajectory/alpha": np.array([-1.0, -0.5, 0.0]) * scale,
                "trajectory/beta": np.array([1.0, 0.5, 0.0]) * scale, "trajectory/epoch": np.arange(3.0),
                "trajectory/loss": np.array([9.0, 8.0, 7.0])}
        st = SurfaceStore.open(tmp_path / f"{name}.h5", g, {"directions": "random"}, datasets=path)
        st.write(k, 1.0 + a ** 2 + b ** 2, np.full(g.size, 0.5))
        st.close()
    with caplog.at_level(logging.INFO):
        written = export_surface(tmp_path / "needle.h5", ["vtp"])
    assert [p.name for p in written] == ["needle.vtp"] and "spans 0.25% of the grid" in caplog.text
    written = export_surface(tmp_path / "wide.h5", ["vtp"])
    traj = read(tmp_path / "wide_trajectory.vtp")
    z = vtk_to_numpy(traj.GetPoints().GetData())[:, 2]
    np.testing.assert_allclose(z, [1 + 1 + 1, 1 + 0.5 + 0.25, 1.0])  # the surface (bilinear in alpha: 0.5 at -0.5)
    arr = arrays(traj)
    np.testing.assert_array_equal(arr["recorded_loss"], [9.0, 8.0, 7.0])
    np.testing.assert_allclose(arr["surface_loss"], z)


def test_paraview_view_script_renders_the_surface_and_path(tmp_path, cli):
    make_surface(tmp_path / "s.h5", trajectory=True)
    with h5py.File(tmp_path / "s.h5", "r+") as f:  # what a PCA surface holds
        f.attrs["inputs"] = json.dumps({"model": "lenet5", "data": {"name": "digits"}, "split": "test",
                                        "norm": "none", "directions": "pca", "center": "t.h5:final"})
        f.attrs["explained_variance"] = np.array([0.8, 0.1])
    r = cli("export", str(tmp_path / "s.h5"), "--paraview", "--format", "vtp", "--format", "vts")
    assert r.returncode == 0, r.stderr
    script = tmp_path / "s_view.py"
    assert str(script) in r.stdout.split()
    text = script.read_text()
    for needed in ("UseLogScale = 1", "GenerateSurfaceNormals", "Contour(", "Tube(", '"epoch"', "XTitle",
                   "CameraPosition" if "CameraPosition" in text else "SetPosition",
                   "('PC1', 'PC2', 'loss')",  # a PCA plane's axes
                   "shown_lines.Position",  # contour lines lifted off the surface (they broke in the depth test)
                   "epoch_bar.Position"):  # the two colour bars placed apart (the epoch bar was cut at the top)
        assert needed in text, needed
    moved = tmp_path / "moved"  # the script names its files relative to itself
    moved.mkdir()
    for name in ("s.vtp", "s_trajectory.vtp", "s_view.py"):
        shutil.copy(tmp_path / name, moved / name)
    pvbatch(moved / "s_view.py", "--png", str(tmp_path / "view.png"), "--size", "800x500", "--state",
            str(tmp_path / "view.pvsm"))
    shipped = tmp_path / "s.pvsm"  # the state file written beside the export: it opens the same view
    assert shipped.is_file() and str(shipped) in r.stdout.split()
    loader = tmp_path / "load_state.py"
    loader.write_text("import sys\nfrom paraview.simple import *\nLoadState(sys.argv[1])\n"
                      "SaveScreenshot(sys.argv[2], GetActiveView(), ImageResolution=[800, 500])\n")
    pvbatch(loader, str(shipped), str(tmp_path / "from_state.png"))
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "from_state.png").convert("RGB")).astype(float)
    chroma = img.max(2) - img.min(2)
    assert ((chroma > 60) & (img[..., 1] > img[..., 0])).mean() > 0.03  # the viridis surface, not a grey view
    assert ((img[..., 0] > 120) & (img[..., 0] > img[..., 1] + 60) & (img[..., 0] > img[..., 2] + 60)).sum() > 30
    state = ET.parse(tmp_path / "view.pvsm").getroot()  # a ParaView state file naming the moved files
    assert state.tag == "GenericParaViewApplication" and str(moved / "s.vtp") in (tmp_path / "view.pvsm").read_text()
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "view.png").convert("RGB")).astype(float)
    assert img.shape == (500, 800, 3) and non_blank(tmp_path / "view.png")
    chroma = img.max(2) - img.min(2)
    surface = (chroma > 60) & (img[..., 1] > img[..., 0])  # viridis: the surface
    path = (img[..., 0] > 120) & (img[..., 0] > img[..., 1] + 60) & (img[..., 0] > img[..., 2] + 60)  # red tube
    assert surface.mean() > 0.03 and path.sum() > 30, (surface.mean(), path.sum())


def test_vtk_files_carry_field_data_and_coordinates(tmp_path):
    make_surface(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f.attrs["inputs"] = json.dumps({"model": "mlp", "data": {"name": "spiral"}, "split": "train",
                                        "norm": "filter", "directions": "random", "center": "r.h5:final"})
    for path in export_surface(tmp_path / "s.h5", ["vtp", "vts"]):
        data = read(path)
        fd = data.GetFieldData()
        fields = {fd.GetAbstractArray(i).GetName(): fd.GetAbstractArray(i).GetValue(0)
                  for i in range(fd.GetNumberOfArrays())}
        assert {k: fields[k] for k in ("model", "data", "split", "norm", "directions", "center", "status")} == {
            "model": "mlp", "data": "spiral", "split": "train", "norm": "filter", "directions": "random",
            "center": "r.h5:final", "status": "complete"}
        pts = vtk_to_numpy(data.GetPoints().GetData())
        arr = arrays(data)
        np.testing.assert_array_equal(arr["alpha"], pts[:, 0])
        np.testing.assert_array_equal(arr["beta"], pts[:, 1])
        assert set(np.unique(arr["alpha"])) == set(ALPHA) and set(np.unique(arr["beta"])) == set(BETA)
