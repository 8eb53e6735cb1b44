import dataclasses
import json
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, copy_of
from landscape.core.data import load_data
from landscape.core.errors import ConfigError
from landscape.engine.evaluator import Evaluator
from landscape.core.models import build_model
from landscape.analysis.interpolation import lagrange_weights, linear_weights, path_items
from landscape.engine.path import PathEvaluator
from landscape.io.path_file import read_path
from landscape.io.trajectory import TrajectoryStore


def test_lagrange_basis_exact_values():
    assert lagrange_weights(0.0, 0.5) == pytest.approx((1, 0, 0)) and lagrange_weights(1.0, 0.5) == pytest.approx((0, 0, 1))
    assert lagrange_weights(0.5, 0.5) == pytest.approx((0, 1, 0))
    assert lagrange_weights(0.3, 0.3) == pytest.approx((0, 1, 0))
    assert lagrange_weights(2.0, 0.5) == pytest.approx((3, -8, 6))  # (1.5*1/0.5, 2*1/(-0.25), 2*1.5/0.5)
    assert lagrange_weights(0.25, 0.5) == pytest.approx((0.375, 0.75, -0.125))
    for a in np.linspace(-1, 2, 7):
        assert sum(lagrange_weights(a, 0.4)) == pytest.approx(1.0)
    assert linear_weights(0.25) == (0.75, 0.0, 0.25)
    with pytest.raises(ConfigError, match="strictly between"):
        lagrange_weights(0.5, 1.0)


@pytest.fixture(scope="module")
def three():
    _, te = load_data("spiral", n_per_class=30)
    states = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        states.append({k: v.clone() for k, v in build_model("mlp", te.info(), depth=2).state_dict().items()})
    model = build_model("mlp", te.info(), depth=2)
    return model, te, states


def current(ev):
    return {k: v.detach().clone() for k, v in ev.state.items()}


def test_model_level_hits_checkpoints_exactly(three):
    model, te, (s0, sm, s1) = three
    ev = Evaluator(model, te, "cpu")
    items = path_items(model, ["model"])
    for kind in ("linear", "quadratic"):
        pe = PathEvaluator(ev, [s0, sm, s1], items, kind)
        for a, target in ((0.0, s0), (1.0, s1)) + (((0.5, sm),) if kind == "quadratic" else ()):
            pe.set_point(0, a)
            assert all(torch.equal(current(ev)[k], target[k]) for k in target), (kind, a)
    pe = PathEvaluator(ev, [s0, sm, s1], items, "linear")
    pe.set_point(0, 0.5)
    assert all(torch.allclose(current(ev)[k], (s0[k] + s1[k]) / 2) for k in s0)
    assert pe.distance[0] == pytest.approx(float(torch.sqrt(sum(((s1[k] - s0[k]) ** 2).sum() for k in s0))), rel=1e-6)


def test_quadratic_through_collinear_points_is_linear(three):
    model, te, (s0, _, s1) = three
    mid = {k: 0.5 * (s0[k] + s1[k]) for k in s0}
    ev = Evaluator(model, te, "cpu")
    items = path_items(model, ["model", "layer"])
    lin, quad = PathEvaluator(ev, [s0, mid, s1], items, "linear"), PathEvaluator(ev, [s0, mid, s1], items, "quadratic")
    idx, alphas = np.repeat(np.arange(len(items)), 5), np.tile(np.linspace(-0.5, 1.5, 5), len(items))
    l1, a1 = lin.evaluate_points(idx, alphas)
    l2, a2 = quad.evaluate_points(idx, alphas)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    np.testing.assert_allclose(a1, a2)


def test_layer_and_parameter_levels_change_only_their_values(three):
    model, te, (s0, sm, s1) = three
    ev = Evaluator(model, te, "cpu")
    items = path_items(model, ["layer", "parameter"], parameters=["net.3.weight[2,5]"])
    names = [i.name for i in items]
    assert names == ["net.1", "net.3", "net.5", "net.3.weight[2,5]"]
    pe = PathEvaluator(ev, [s0, sm, s1], items, "quadratic")
    pe.set_point(1, 0.3)  # layer net.3
    w = lagrange_weights(0.3)
    now = current(ev)
    for k in s1:
        if k.startswith("net.3."):
            assert torch.allclose(now[k], w[0] * s0[k] + w[1] * sm[k] + w[2] * s1[k], atol=1e-6), k
        else:
            assert torch.equal(now[k], s1[k]), k
    pe.set_point(3, 0.0)  # one scalar; the layer set before is restored to the final values
    now = current(ev)
    diff = {k: (now[k] != s1[k]).nonzero().tolist() for k in s1}
    assert diff["net.3.weight"] == [[2, 5]] and all(not v for k, v in diff.items() if k != "net.3.weight")
    assert now["net.3.weight"][2, 5] == s0["net.3.weight"][2, 5]
    with pytest.raises(ConfigError, match="index out of range"):
        path_items(model, ["parameter"], parameters=["net.3.weight[99,0]"])
    with pytest.raises(ConfigError, match="do not exist"):
        path_items(model, ["layer"], layers=["conv9"])
    sampled = path_items(model, ["parameter"], params_per_layer=3, seed=1)
    assert len(sampled) == 9 and len({i.name for i in sampled}) == 9
    assert [i.name for i in sampled] == [i.name for i in path_items(model, ["parameter"], params_per_layer=3, seed=1)]


@pytest.fixture(scope="module")
def lenet_run(short_demo, tmp_path_factory):
    """The shortened demo (4 epochs, 9-point paths; run once for the session), copied: the tests add files."""
    out, job = short_demo
    copy = copy_of(out, tmp_path_factory.mktemp("paths") / "out")
    return copy, dataclasses.replace(job, output=str(copy))


def test_demo_paths_report_agrees_with_direct_reinitialisation(lenet_run):
    out, job = lenet_run
    report = json.loads((out / "layers_robust_ambient.json").read_text())
    store = TrajectoryStore(out / "trajectory.h5")
    init, final = store.state("init"), store.state("final")
    _, te = load_data("digits")
    model = build_model("lenet5")
    ev = Evaluator(model, te, "cpu")
    rows = {r["layer"]: r for r in report["layers"]}
    assert sorted(rows) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    for layer, row in rows.items():
        mixed = {k: (init[k] if k.startswith(layer + ".") else final[k]) for k in final}
        r = ev.evaluate(mixed)
        assert row["accuracy_reset"] == pytest.approx(r.accuracy) and row["loss_reset"] == pytest.approx(r.loss, rel=1e-5)
        assert row["class"] == ("robust" if row["damage"] >= report["threshold"] else "ambient")
    damages = [r["damage"] for r in report["layers"]]
    assert damages == sorted(damages, reverse=True)
    # model level: alpha = 0 and 1 are the recorded init and final test losses
    p = read_path(out / "path_linear.h5")
    a = list(p["alpha"])
    m = store.metrics()
    assert p["loss"][0, a.index(0.0)] == pytest.approx(m["test_loss"][0], rel=1e-5)
    assert p["loss"][0, a.index(1.0)] == pytest.approx(m["test_loss"][-1], rel=1e-5)
    q = read_path(out / "path_quadratic.h5")
    assert q["loss"][0, a.index(0.5)] == pytest.approx(m["test_loss"][2], rel=1e-5)  # mid = epoch 2 of 4
    for name in ("paths_compare.png", "path_linear_layer.png", "path_quadratic_model.png", "paths_compare.csv"):
        assert (out / name).is_file(), name


def test_cli_parameter_level_and_resume(lenet_run, cli):
    out, _ = lenet_run
    args = ["path", "--job", str(ROOT / "jobs" / "demo.toml"), "--output", str(out), "--level", "parameter",
            "--params-per-layer", "2", "--kind", "linear", "--alpha", "0:1:3", "paths.output=\"params\"",
            "train.epochs=4"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    p = read_path(out / "params_linear.h5")
    assert p["level"] == ["parameter"] * 10
    store = TrajectoryStore(out / "trajectory.h5")
    init, final = store.state("init"), store.state("final")
    for name, dist in zip(p["name"], p["distance"]):  # distance travelled by that one scalar
        tensor, idx = name[:-1].split("[")
        pos = tuple(int(v) for v in idx.split(","))
        assert dist == pytest.approx(abs(float(final[tensor][pos] - init[tensor][pos])), rel=1e-5, abs=1e-9), name
    assert (out / "params_linear_parameter.png").is_file()
    r = cli(*args)  # resumes: nothing left to compute
    assert r.returncode == 0 and "points in" not in r.stderr
    r = cli(*args[:-1], "paths.seed=3")
    assert r.returncode == 2 and "other inputs" in r.stderr


@pytest.mark.mpi
def test_paths_under_mpi_equal_serial(lenet_run, tmp_path):
    import shutil
    import subprocess
    from pathlib import Path

    from conftest import mpi_env

    out, _ = lenet_run
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))
    args = [mpiexec, "-n", "2", sys.executable, "-m", "landscape", "path", "--job", str(ROOT / "jobs" / "demo.toml"),
            "--output", str(out), "--kind", "quadratic", "--alpha", "-0.5:1.5:9", "paths.output=\"mpi\"",
            "train.epochs=4", "--no-plots", "surface.chunk=3"]
    r = subprocess.run(args, env=mpi_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = read_path(out / "mpi_quadratic.h5"), read_path(out / "path_quadratic.h5")
    np.testing.assert_array_equal(a["loss"], b["loss"])
