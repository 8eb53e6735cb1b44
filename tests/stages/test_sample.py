"""k-dimensional samples: the design's points in the file, the plane's values bitwise on its slice, resume, the
job/CLI path equal to ls.sample, MPI equal to serial, and the topology of grid and scattered samples."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import landscape as ls
from landscape.core.data import TensorData, load_data
from landscape.core.design import Design
from landscape.core.errors import ConfigError
from landscape.core.models import build_model
from landscape.engine.evaluator import Evaluator
from landscape.engine.plane import PlaneEvaluator
from landscape.engine.sample import SampleEvaluator
from landscape.io.sample_file import read_sample
from landscape.stages.topology import landscape_topology

from conftest import mpi_env, run_cli

MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))


@pytest.fixture(scope="module")
def digits():
    te = load_data("digits")[1]
    return TensorData(te.x[:96], te.y[:96], "classification", 10, name="digits96")


def test_the_planes_slice_of_a_4d_sample_equals_the_plane_bitwise_in_every_mode(digits):
    torch.manual_seed(0)
    model = build_model("lenet5", digits.info())
    ev = Evaluator(model, digits, "cpu", batch_size=40)
    c = ev.get_flat()
    g = torch.Generator().manual_seed(1)
    dirs = [torch.randn(c.shape, generator=g) * 0.05 for _ in range(4)]
    a, b = np.array([-1.0, 0.0, 0.5, 1.0]), np.array([0.25, -1.0, 0.0, 1.0])
    plane = PlaneEvaluator(ev, c, dirs[0], dirs[1], 1).evaluate_points(a, b)
    coeffs = np.array([[x, y, 0.0, 0.0] for x, y in zip(a, b)] + [[0.1, 0.2, 0.3, -0.4]])
    one = SampleEvaluator(ev, c, dirs, coeffs, 1)
    got = one.evaluate_points(np.arange(5.0), np.zeros(5))
    np.testing.assert_array_equal(got[0][:4], plane[0])  # the same ops: the plane's values, bitwise
    np.testing.assert_array_equal(got[1][:4], plane[1])
    threads = SampleEvaluator(ev, c, dirs, coeffs, "threads:2").evaluate_points(np.arange(5.0), np.zeros(5))
    np.testing.assert_array_equal(threads[0], got[0])
    direct = ev.evaluate(one.state_at(4)).loss  # the last point, from its state (the convolution itself)
    np.testing.assert_allclose(got[0][4], direct, rtol=2e-7)
    assert ev.transforms() == {"input_tables": "conv1"} and ev.input_tables.count == 5


@pytest.mark.parametrize("negative_zero", [False, True])
def test_a_sample_stacks_points_with_vmap_and_gives_one_point_at_a_times_values_bitwise(negative_zero):
    torch.manual_seed(0)
    _, te = load_data("spiral", n_per_class=40)
    ev = Evaluator(build_model("mlp", te.info()), te, "cpu")
    c = ev.get_flat()
    if negative_zero:  # -0.0 + 0·d is +0.0: points with a zero coefficient are then formed one by one
        c[-40:] = -0.0
    g = torch.Generator().manual_seed(2)
    dirs = [torch.randn(c.shape, generator=g) * 0.3 for _ in range(3)]
    coeffs = Design.grid(["-1:1:3"] * 3).coefficients()  # 27 points, most with a zero coefficient somewhere
    coeffs = np.concatenate([coeffs, np.random.default_rng(0).uniform(-1, 1, (13, 3))])
    idx = np.arange(float(len(coeffs)))
    one = SampleEvaluator(ev, c, dirs, coeffs, 1).evaluate_points(idx, np.zeros(len(idx)))
    stacked = SampleEvaluator(ev, c, dirs, coeffs, 8)
    got = stacked.evaluate_points(idx, np.zeros(len(idx)))
    assert stacked.batch_mode == "vmap" and stacked.points_per_batch == 8  # the stacking check passed
    assert stacked._zero_adds_exact is (not negative_zero)
    np.testing.assert_array_equal(got[0], one[0])
    np.testing.assert_array_equal(got[1], one[1])
    # the plane's slice (c3 = 0) of the stacked sample equals the stacked plane bitwise
    on_plane = np.flatnonzero(coeffs[:, 2] == 0)
    plane = PlaneEvaluator(ev, c, dirs[0], dirs[1], 8).evaluate_points(coeffs[on_plane, 0], coeffs[on_plane, 1])
    np.testing.assert_array_equal(got[0][on_plane], plane[0])


def test_designs_grid_order_sequences_in_box_and_ball_and_errors():
    d = Design.grid(["0:1:2", "-1:1:3", "5:5:1"])
    c = d.coefficients()
    assert d.shape == (2, 3, 1) and c.shape == (6, 3)
    np.testing.assert_array_equal(c.reshape(2, 3, 1, 3)[1, 2, 0], [1.0, 1.0, 5.0])  # C order, the last axis fastest
    for kind in ("sobol", "halton"):
        s = Design.low_discrepancy(kind, 5, 200, -0.5, 2.0, seed=3)
        x = s.coefficients()
        np.testing.assert_array_equal(x, Design.low_discrepancy(kind, 5, 200, -0.5, 2.0, seed=3).coefficients())
        assert x.shape == (200, 5) and x.min() >= -0.5 and x.max() <= 2.0
        assert not np.array_equal(x, Design.low_discrepancy(kind, 5, 200, -0.5, 2.0, seed=4).coefficients())
        ball = Design.low_discrepancy(kind, 3, 512, hi=2.0, region="ball").coefficients()
        r = np.linalg.norm(ball, axis=1)
        assert r.max() <= 2.0 and abs(np.mean(r < 1.0) - 1 / 8) < 0.03  # uniform in volume: 1/8 within radius 1
    with pytest.raises(ConfigError) as err:
        Design.low_discrepancy("lattice", 2, 0, 1.0, -1.0, region="cube")
    assert len(err.value.problems) == 3  # all at once: design, region, points


def test_ls_sample_resumes_only_missing_points_and_refuses_other_inputs(tmp_path, digits):
    torch.manual_seed(0)
    model = build_model("lenet5", digits.info())
    out = tmp_path / "s.h5"
    first = ls.sample(model, (digits.x, digits.y), k=3, ranges=["-1:1:3", "-1:1:3", "0:1:2"], out=out, progress=False)
    assert first.shape == (3, 3, 2) and first.done.all() and first.k == 3
    with h5py.File(out, "r+") as f:  # as if the run had stopped after 10 points
        f["done"][10:] = 0
        f["loss"][10:] = np.nan
    again = ls.sample(model, (digits.x, digits.y), k=3, ranges=["-1:1:3", "-1:1:3", "0:1:2"], out=out,
                      progress=False)
    np.testing.assert_array_equal(again.loss, first.loss)
    runs = json.loads(again.attrs["runs"])
    assert [r["points"] for r in runs] == [18, 8]
    with pytest.raises(ls.StoreError, match="other inputs"):
        ls.sample(model, (digits.x, digits.y), k=3, ranges="-1:1:3", out=out, progress=False)
    np.testing.assert_array_equal(read_sample(out).loss, first.loss)  # untouched


def test_the_job_and_cli_give_ls_samples_values_and_topology_reads_them(tmp_path, digits):
    torch.manual_seed(0)
    model = build_model("mlp", {"input_dim": 2, "num_classes": 3}, depth=1, width=8)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    _, te = load_data("spiral")
    args = ["sample", "--data", "spiral", "--model", "mlp", "--k", "3", "--range=-1:1:5", "--seed", "2",
            "--out", str(tmp_path / "cli.h5"), "model.kwargs.depth=1", "model.kwargs.width=8",
            f"model.checkpoint='{tmp_path / 'm.pt'}'", "--no-progress"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "k-dimensional sample" in r.stdout and "done: 125/125" in r.stdout
    cli = read_sample(tmp_path / "cli.h5")
    given = ls.sample(model, (te.x, te.y), k=3, ranges="-1:1:5", seed=2, progress=False)
    np.testing.assert_array_equal(cli.loss, given.loss)  # bitwise, every point
    topo = landscape_topology(tmp_path / "cli.h5")[0]
    assert topo.topology.shape == (5, 5, 5) and topo.centre is not None and topo.path.exists()
    sob = ls.sample(model, (te.x, te.y), k=3, design="sobol", points=256, ranges="-1:1", progress=False,
                    out=tmp_path / "sobol.h5")
    t = landscape_topology(tmp_path / "sobol.h5")[0].topology
    assert t.basins[0].minimum == sob.loss.min() and len(t.basins) >= 1


def test_a_sample_on_two_ranks_equals_the_serial_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch, landscape as ls\n"
        "from mpi4py import MPI\n"
        "torch.manual_seed(0)\n"
        "m = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))\n"
        "_, te = ls.load_data('spiral', n_per_class=40)\n"
        "s = ls.sample(m, (te.x, te.y), k=4, ranges='-1:1:4', comm=MPI.COMM_WORLD, out=sys.argv[1], progress=False)\n"
        "assert s.done.all()\n")
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), str(tmp_path / "mpi.h5")], env=mpi_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    _, te = ls.load_data("spiral", n_per_class=40)
    serial = ls.sample(m, (te.x, te.y), k=4, ranges="-1:1:4", progress=False)
    mpi = read_sample(tmp_path / "mpi.h5")
    np.testing.assert_array_equal(mpi.loss, serial.loss)
    assert json.loads(mpi.attrs["runs"])[-1]["ranks"] == 2


def test_a_sample_with_no_trajectory_names_sample_center_in_its_message(tmp_path, caplog):
    from landscape.cli import main

    code = main(["sample", "--data", "spiral", "--model", "mlp", "--k", "2", "--range=-1:1:3", "--output",
                 str(tmp_path), "--no-progress"])
    err = caplog.text
    assert code != 0 and "sample.center = 'final'" in err and "surface.center" not in err, err
    assert "--center my.pt" in err and not list(tmp_path.glob("*.h5"))
