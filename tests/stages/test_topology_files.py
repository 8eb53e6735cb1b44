"""``landscape topology`` on stored landscapes: a surface and a path computed here, the topology files they
get, the distance table, and what is refused."""
import math

import numpy as np
import pytest
import torch

import landscape as ls
from conftest import non_blank
from landscape.cli import main
from landscape.views.figures import plot_files
from landscape.views.report import build_report
from landscape.core.errors import StoreError
from landscape.io.hdf5 import TOPOLOGY_SCHEMA
from landscape.io.path_file import read_path
from landscape.io.topology_file import read_topology, values_checksum
from landscape.analysis.topology import persistence
from landscape.stages.topology import landscape_topology


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    d = tmp_path_factory.mktemp("topo")
    tr, te = ls.load_data("spiral", n_per_class=30)
    torch.manual_seed(0)
    model = ls.build_model("mlp", tr.info(), depth=1, width=8)
    data = (te.x, te.y)
    ls.surface(model, data, alpha=(-1, 1, 9), beta=(-1, 1, 7), progress=False).save(d / "s.h5")
    ls.surface(model, data, alpha=(-2, 2, 9), beta=(-2, 2, 7), seed=1, progress=False).save(d / "wide.h5")
    other = ls.build_model("mlp", tr.info(), depth=1, width=8)
    ls.path(model, other, data=data, alpha=(-0.25, 1.25, 13), level="model").save(d / "p.h5")
    return d


def test_a_surface_gets_its_topology_file_and_summary(stored, capsys):
    assert main(["topology", str(stored / "s.h5"), str(stored / "wide.h5")]) == 0
    out = capsys.readouterr().out
    assert "basin 0: minimum" in out and "centre: in basin" in out and "bottleneck distances" in out
    t = read_topology(stored / "s_topology.h5")
    s = ls.Surface.read(stored / "s.h5")
    assert t["attrs"]["schema"] == TOPOLOGY_SCHEMA and t["attrs"]["source_checksum"] == values_checksum(s.loss)
    ref = persistence(s.loss)
    np.testing.assert_array_equal(t["persistence"], ref.pairs)
    assert t["basins/minimum"][0] == s.loss.min() and math.isinf(t["basins/saddle"][0])
    at = tuple(t["basins/at"][0])
    assert (s.alpha[at[0]], s.beta[at[1]]) == tuple(t["basins/coords"][0])
    assert 0 < t["attrs"]["centre"]["fraction"] <= 1
    assert non_blank(stored / "s_topology.png")  # the diagram and the outlined basins
    assert non_blank(stored / "s_topology_tree.png")  # the merge tree and the topological profile
    assert plot_files([stored / "s_topology.h5"], stored / "figs", ["png"]) == [
        stored / "figs" / "s_topology.png", stored / "figs" / "s_topology_tree.png"]
    fractions = t["basins/fraction"]
    assert fractions[0] == 1.0 and all(0 < f < 1 for f, m in zip(fractions[1:], t["basins/merges_into"][1:]) if m >= 0)
    page = build_report(stored)  # the report shows the topology beside the surface
    assert "Topology: s_topology.h5" in page and "persistence diagram" in page and "roughness" in page


def test_a_path_gets_one_topology_per_row_with_the_barrier_between_its_ends(stored):
    [row] = landscape_topology(stored / "p.h5")
    stored_path = read_path(stored / "p.h5")
    loss = stored_path["loss"][0]
    alpha = stored_path["alpha"]
    i, j = int(np.argmin(abs(alpha))), int(np.argmin(abs(alpha - 1)))
    assert row.end_barrier == pytest.approx(loss[i:j + 1].max() - max(loss[i], loss[j]))
    assert row.path.exists() and read_topology(row.path)["attrs"]["item"] == row.item


def test_unfinished_and_foreign_files_are_refused(stored, tmp_path):
    import h5py

    (tmp_path / "x.h5").write_bytes((stored / "s.h5").read_bytes())
    with h5py.File(tmp_path / "x.h5", "r+") as f:
        f["done"][0, 0] = False
    with pytest.raises(StoreError, match="not computed yet"):
        landscape_topology(tmp_path / "x.h5")
    with pytest.raises(StoreError, match="topology reads surface, line, path and sample files"):
        landscape_topology(stored / "s_topology.h5")
    assert main(["topology", str(stored / "s.h5"), "--relative", "-1"]) == 2


def test_report_shows_the_merge_tree_and_the_profile_of_a_surface_with_three_wells(tmp_path):
    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore

    g = Grid(np.linspace(0, 1, 31), np.linspace(0, 1, 25))
    st = SurfaceStore.open(tmp_path / "wells.h5", g, {"model": "synthetic", "directions": "random"})
    k = np.arange(g.size)
    a, b = g.coords(k)
    wells = [(0.2, 0.3, 1.0), (0.75, 0.3, 0.7), (0.45, 0.8, 0.5)]  # three Gaussian wells of known depths
    loss = 2.0 - sum(d * np.exp(-((a - x) ** 2 + (b - y) ** 2) / (2 * 0.1 ** 2)) for x, y, d in wells)
    st.write(k, loss, np.full(g.size, 0.5))
    st.close()
    [item] = landscape_topology(tmp_path / "wells.h5")
    assert item.topology.count(relative=0.01) == 3
    page = build_report(tmp_path)
    assert "merge tree" in page and "topological profile" in page
    t = read_topology(tmp_path / "wells_topology.h5")
    assert list(t["basins/merges_into"][1:3]) in ([0, 0], [0, 1], [1, 0])  # each joins an older basin
