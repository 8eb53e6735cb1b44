import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, TESTS, wait_for_points
from landscape.run.jobfile import load_job
from landscape.core.data import load_data
from landscape.core.errors import ConfigError, EXIT_INTERRUPTED, StoreError
from landscape.engine.evaluator import Evaluator
from landscape.stages.job import run_job
from landscape.core.models import build_model
from landscape.core.params import unflatten_state
from landscape.io.surface_file import read_surface
from landscape.engine.plane import PlaneEvaluator
from landscape.stages.surface import run_surface_job


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short spiral run whose trajectory later surfaces are computed around."""
    out = tmp_path_factory.mktemp("run")
    job = load_job(None, ["data.name=spiral", "model.name=mlp", "model.kwargs.depth=2", "train.epochs=3",
                          f"output={out}"])
    run_job(job, progress=False)
    return out


def surface_job(out, *extra):
    return load_job(None, ["data.name=spiral", "model.name=mlp", "model.kwargs.depth=2", "train.epochs=3",
                           f"output={out}", "surface.alpha=-1:1:3", "surface.beta=-0.5:1.5:5", *extra])


@pytest.mark.parametrize("ppb", ["1", "4", '"auto"', '"threads:3"'])
def test_3x5_grid_value_at_ij_is_loss_at_alpha_i_beta_j(trained, ppb):
    name = ppb.strip(chr(34)).replace(":", "")
    path = run_surface_job(surface_job(trained, f"surface.points_per_batch={ppb}", f"surface.output=s{name}.h5"),
                           progress=False)
    s = read_surface(path)
    assert s.loss.shape == (3, 5) and s.alpha.tolist() == [-1, 0, 1] and s.beta.tolist() == [-0.5, 0, 0.5, 1, 1.5]
    assert s.done.all() and s.attrs["status"] == "complete"
    with h5py.File(path) as f:  # coordinates are HDF5 dimension scales of the value arrays
        assert f["loss"].dims[0][0].name == "/alpha" and f["loss"].dims[1][0].name == "/beta"
        d1, d2 = torch.from_numpy(f["directions/d1"][:]), torch.from_numpy(f["directions/d2"][:])
    from landscape.io.trajectory import TrajectoryStore

    store = TrajectoryStore(trained / "trajectory.h5")
    center = store.vector("final")
    _, te = load_data("spiral")
    model = build_model("mlp", te.info(), depth=2)
    for i, a in enumerate(s.alpha):
        for j, b in enumerate(s.beta):
            model.load_state_dict(unflatten_state(center + a * d1 + b * d2, store.spec))
            with torch.no_grad():
                out = model(te.x)
            assert s.loss[i, j] == pytest.approx(F.cross_entropy(out, te.y).item(), rel=1e-5), (i, j)
            assert s.accuracy[i, j] == pytest.approx((out.argmax(1) == te.y).float().mean().item())
    # the centre of the plane is the final model: its loss is the recorded final test loss
    assert s.loss[1, 1] == pytest.approx(store.metrics()["test_loss"][-1], rel=1e-6)
    assert abs(float(s.attrs["cosine_d1_d2"])) < 0.5
    for key in ("schema_version", "package_version", "model", "center_checksum", "directions_checksum", "norm",
                "ignore", "seed", "data", "subset", "created"):
        assert key in s.attrs, key


def test_line_when_beta_omitted(trained):
    path = run_surface_job(surface_job(trained, "surface.beta=none", "surface.output=line.h5"), progress=False)
    s = read_surface(path)
    assert s.beta is None and s.loss.shape == (3,) and s.done.all()
    with h5py.File(path) as f:
        assert "beta" not in f and "d2" not in f["directions"]


def test_resume_after_partial_run_equals_uninterrupted(trained):
    full = read_surface(run_surface_job(surface_job(trained, "surface.output=full.h5"), progress=False))
    job = surface_job(trained, "surface.output=part.h5", "surface.points_per_batch=1", "surface.chunk=4")
    import landscape.engine.plane as surf

    original = surf.PlaneEvaluator.evaluate_points
    calls = {"n": 0}

    def dying(self, a, b):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return original(self, a, b)

    surf.PlaneEvaluator.evaluate_points = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            run_surface_job(job, progress=False)
    finally:
        surf.PlaneEvaluator.evaluate_points = original
    part = read_surface(trained / "part.h5")
    assert 0 < part.done.sum() < 15 and part.attrs["status"] == "partial"
    np.testing.assert_array_equal(part.loss[part.done.astype(bool)], full.loss[part.done.astype(bool)])
    run_surface_job(job, progress=False)
    done = read_surface(trained / "part.h5")
    assert done.done.all() and done.attrs["status"] == "complete"
    np.testing.assert_array_equal(done.loss, full.loss)  # bitwise: chunking and restarts change nothing
    np.testing.assert_array_equal(done.accuracy, full.accuracy)


def test_mismatched_resume_refused_and_nothing_lost(trained):
    path = run_surface_job(surface_job(trained, "surface.output=keep.h5"), progress=False)
    before = read_surface(path)
    for extra, needle in ((["surface.seed=1"], "seed: file has 0, this run has 1"),
                          (["surface.alpha=-1:1:4"], "alpha"),
                          (["surface.norm=layer"], "norm"),
                          (["data.test_subset=20"], "data")):
        with pytest.raises(StoreError, match="other inputs") as info:
            run_surface_job(surface_job(trained, "surface.output=keep.h5", *extra), progress=False)
        assert needle in str(info.value)
    after = read_surface(path)
    np.testing.assert_array_equal(before.loss, after.loss)
    assert after.done.all()


def test_corrupted_files_get_clear_errors(trained, tmp_path):
    path = run_surface_job(surface_job(trained, "surface.output=c.h5"), progress=False)
    data = path.read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError, match="truncated or corrupted"):
        read_surface(bad)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2000))
    with pytest.raises(StoreError, match="truncated or corrupted"):
        read_surface(junk)
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(data)
    with h5py.File(damaged, "r+") as f:
        del f["done"]
    with pytest.raises(StoreError, match="lacks dataset"):
        read_surface(damaged)
    # an unusable file in the way of a run is reported, not overwritten
    with pytest.raises(StoreError, match="truncated or corrupted"):
        run_surface_job(surface_job(trained, f"surface.output={bad}"), progress=False)
    assert bad.read_bytes() == data[: len(data) // 3]


def test_divergent_points_are_stored_and_done():
    _, te = load_data("sine")
    model = torch.nn.Linear(1, 1)
    ev = Evaluator(model, te, "cpu")
    c = ev.get_flat()
    d = torch.tensor([3e38, 0.0])
    plane = PlaneEvaluator(ev, c, d, None)
    loss, _ = plane.evaluate_points(np.array([0.0, 10.0]), np.zeros(2))
    assert np.isfinite(loss[0]) and not np.isfinite(loss[1])
    from landscape.core.grid import Grid
    from landscape.io.surface_file import SurfaceStore
    from landscape.run.runner import compute_surface
    import tempfile

    p = os.path.join(tempfile.mkdtemp(), "div.h5")
    compute_surface(plane, SurfaceStore.open(p, Grid(np.array([0.0, 10.0])), {"case": "divergent"}), progress=False)
    s = read_surface(p)
    assert s.done.all() and np.isfinite(s.loss[0]) and not np.isfinite(s.loss[1])
    assert "divergent 1 point" in s.describe()


def test_directions_reused_from_file(trained):
    a = run_surface_job(surface_job(trained, "surface.output=ra.h5", "surface.seed=7"), progress=False)
    b = run_surface_job(surface_job(trained, "surface.output=rb.h5", "surface.directions=file",
                                    f"surface.directions_file={a}", "surface.alpha=0:1:2"), progress=False)
    sa, sb = read_surface(a), read_surface(b)
    assert sa.attrs["directions_checksum"] == sb.attrs["directions_checksum"] and sb.inputs["seed"] == 7
    np.testing.assert_allclose(sb.loss[:, 1], sa.loss[1:, 1], rtol=1e-6)  # alpha 0, 1 at beta 0
    with pytest.raises(StoreError, match="same model"):
        run_surface_job(surface_job(trained, "surface.output=rc.h5", "surface.directions=file",
                                    f"surface.directions_file={a}", "surface.center=init"), progress=False)


def test_checkpoint_plane_hits_the_checkpoints(trained):
    path = run_surface_job(surface_job(trained, "surface.output=plane.h5", "surface.directions=checkpoints",
                                       "surface.target1=init", "surface.target2=epoch 1", "surface.alpha=0:1:2",
                                       "surface.beta=0:1:2"), progress=False)
    s = read_surface(path)
    from landscape.io.trajectory import TrajectoryStore

    m = TrajectoryStore(trained / "trajectory.h5").metrics()["test_loss"]
    assert s.loss[0, 0] == pytest.approx(m[3], rel=1e-5)  # θ*
    assert s.loss[1, 0] == pytest.approx(m[0], rel=1e-5)  # θ₁ = init
    assert s.loss[0, 1] == pytest.approx(m[1], rel=1e-5)  # θ₂ = epoch 1


def _cli_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_readable_file_and_resumes(tmp_path, sig):
    base = [sys.executable, "-m", "landscape", "surface", "--model", "lenet5", "--data", "digits",
            "--center", str(tmp_path / "init.pt"), "--alpha", "-1:1:21", "--beta", "-1:1:15", "--subset", "100",
            "--no-progress"]
    args = base + ["--points-per-batch", "1", "--out", str(tmp_path / "s.h5"), "surface.flush_every=1"]
    torch.manual_seed(0)
    torch.save(build_model("lenet5").state_dict(), tmp_path / "init.pt")
    ref = subprocess.run(base + ["--out", str(tmp_path / "ref.h5")], env=_cli_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(args, env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_points(tmp_path / "s.h5", 3, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert proc.returncode == EXIT_INTERRUPTED and "SIGTERM" in err and "resume" in err
    part = read_surface(tmp_path / "s.h5")  # readable after any kill
    n = int(part.done.sum())
    assert 3 <= n < 315
    full = read_surface(tmp_path / "ref.h5")
    mask = part.done.astype(bool)
    np.testing.assert_array_equal(part.loss[mask], full.loss[mask])
    if sig == signal.SIGTERM:  # the interrupted run is on record, with what it saved
        assert part.attrs["status"] == "partial"
        assert [(r["status"], r["points"]) for r in part.runs] == [("interrupted", n)]
    again = subprocess.run(args, env=_cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    done = read_surface(tmp_path / "s.h5")
    assert done.done.all() and done.attrs["status"] == "complete"
    np.testing.assert_array_equal(done.loss, full.loss)
    assert done.runs[-1]["status"] == "complete" and done.runs[-1]["points"] == 315 - n  # only what was missing


def test_status_command(cli, trained):
    path = run_surface_job(surface_job(trained, "surface.output=st.h5"), progress=False)
    r = cli("status", str(path))
    assert r.returncode == 0
    s = read_surface(path)
    i, j = np.unravel_index(np.nanargmin(s.loss), s.loss.shape)
    assert "15/15 points done" in r.stdout and f"min loss  {s.loss[i, j]:.6g}" in r.stdout
    assert f"alpha={s.alpha[i]:g}, beta={s.beta[j]:g}" in r.stdout and "filter" in r.stdout
    r = cli("status", str(trained / "nope.h5"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_points_evaluated_concurrently_on_threads_equal_one_at_a_time():
    from landscape.engine.evaluator import Evaluator
    from landscape.engine.calibration import parse_points_per_batch

    _, te = load_data("digits")
    torch.manual_seed(0)
    ev = Evaluator(build_model("lenet5", te.info()), te, "cpu")
    center = ev.get_flat()
    g = torch.Generator().manual_seed(1)
    d1, d2 = torch.randn(center.shape, generator=g) * 0.05, torch.randn(center.shape, generator=g) * 0.05
    a, b = np.linspace(-1, 1, 7), np.linspace(0.5, -0.5, 7)
    one = PlaneEvaluator(ev, center, d1, d2, 1).evaluate_points(a, b)
    plane = PlaneEvaluator(ev, center, d1, d2, "threads:3")
    many = plane.evaluate_points(a, b)  # 7 points over 3 threads: uneven shares
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_array_equal(many[1], one[1])
    assert plane.batch_mode == "threads" and len(plane._replicas) == 2
    assert all(r.ev.model is not ev.model for r in plane._replicas)
    with pytest.raises(ConfigError, match="threads:N"):
        parse_points_per_batch("threads:x")
    with pytest.raises(ConfigError, match="points_per_batch"):
        load_job({"surface": {"points_per_batch": 0}})


def test_stored_values_do_not_depend_on_batch_mode_or_chunks(trained):
    """Calibration results are thrown away and every mode reduces the same values the same way: bitwise equal
    files whatever the batch mode and chunk size."""
    files = {}
    for k, (ppb, chunk) in enumerate([("1", 0), ('"auto"', 0), ('"threads:2"', 3), ("4", 5)]):
        job = surface_job(trained, f"surface.points_per_batch={ppb}", f"surface.chunk={chunk}",
                          f"surface.output=modes{k}.h5")
        files[ppb] = read_surface(run_surface_job(job, progress=False))
    ref = files["1"]
    for ppb, s in files.items():
        np.testing.assert_array_equal(s.loss, ref.loss, err_msg=ppb)
        np.testing.assert_array_equal(s.accuracy, ref.accuracy, err_msg=ppb)


def test_two_runs_on_one_file_never_mix(trained, tmp_path):
    """Two `landscape surface` commands started at once on the same --out: the one that comes second refuses at
    once with a clear message (or resumes a finished file); nothing is lost or mixed."""
    import subprocess
    import sys

    from conftest import ROOT, TESTS

    args = [sys.executable, "-m", "landscape", "surface", "--model", "mlp", "--data", "spiral", "--center",
            f"{trained / 'trajectory.h5'}:final", "--alpha", "-1:1:9", "--beta", "-1:1:9", "--out",
            str(tmp_path / "same.h5"), "--no-progress", "model.kwargs.depth=2", "surface.points_per_batch=1"]
    env = dict(__import__("os").environ, PYTHONPATH=f"{TESTS}:{ROOT}")
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outs
    for p, (_, err) in zip(procs, outs):
        assert "Traceback" not in err, err
        if p.returncode:
            assert p.returncode == 2 and "another landscape run is writing" in err, err
    ref = read_surface(run_surface_job(surface_job(trained, "surface.alpha=-1:1:9", "surface.beta=-1:1:9",
                                                   "surface.output=ref.h5"), progress=False))
    s = read_surface(tmp_path / "same.h5")
    assert s.done.all()
    np.testing.assert_array_equal(s.loss, ref.loss)


def test_surface_command_with_pca_directions(cli, trained, tmp_path):
    """`landscape surface --directions pca`, as the README documents it, equals the [pca] override."""
    common = ["--model", "mlp", "--data", "spiral", "--alpha", "-1:1:3", "--beta", "-1:1:3", "model.kwargs.depth=2",
              "--center", f"{trained / 'trajectory.h5'}:final", "--trajectory", str(trained / "trajectory.h5")]
    r = cli("surface", "--directions", "pca", "--out", str(tmp_path / "p.h5"), *common)
    assert r.returncode == 0, r.stderr
    s = read_surface(tmp_path / "p.h5")
    assert s.inputs["directions"] == "pca" and s.done.all() and "explained_variance" in s.attrs
    r = cli("surface", "surface.directions=pca", "--out", str(tmp_path / "q.h5"), *common)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(read_surface(tmp_path / "q.h5").loss, s.loss)


def test_checkpoint_line_reaches_the_target_for_a_batchnorm_model_from_pt_files(tmp_path):
    """A BatchNorm model's centre and target given as .pt files (state_dict order, buffers interleaved): the line
    θ* + α(θ₁ − θ*) ends at θ₁ with its running statistics (the loss there is θ₁'s)."""
    from landscape.io.checkpoints import load_state_file
    from landscape.stages.api import evaluate_checkpoint

    _, te = load_data("digits")
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = build_model("resnet20", te.info(), width=4).train()
        with torch.no_grad():
            m(te.x[:64] * (1 + seed))  # running statistics of their own
        torch.save(m.state_dict(), tmp_path / f"c{seed}.pt")
    saved = list(load_state_file(tmp_path / "c0.pt"))
    assert saved.index("bn1.running_mean") < saved.index("layers.0.conv1.weight")  # buffers interleaved
    common = ["data.name=digits", "data.test_subset=60", "model.name=resnet20", "model.kwargs.width=4",
              f"output={tmp_path}", f"model.checkpoint={str(tmp_path / 'c0.pt')!r}"]
    job = load_job(None, common + ["surface.directions=checkpoints", f"surface.target1={str(tmp_path / 'c1.pt')!r}",
                                   "surface.alpha=0:1:2", "surface.beta=none", f"surface.center={str(tmp_path / 'c0.pt')!r}"])
    s = read_surface(run_surface_job(job, progress=False))
    ends = [evaluate_checkpoint(job, str(tmp_path / f"c{k}.pt")) for k in (0, 1)]
    assert s.loss[0] == pytest.approx(ends[0].loss, rel=1e-6) and s.loss[1] == pytest.approx(ends[1].loss, rel=1e-5)


def test_forward_options_are_recorded_and_a_resume_with_other_options_is_refused(tmp_path):
    """fold_bn / bf16 change values by rounding: the file's inputs name them (a resume without them is refused,
    nothing lost), and a bf16 surface stores the centre's loss difference to fp32."""
    _, te = load_data("digits")
    torch.manual_seed(0)
    m = build_model("resnet20", te.info(), width=4).train()
    with torch.no_grad():
        m(te.x[:64])
    torch.save(m.state_dict(), tmp_path / "c.pt")
    common = ["data.name=digits", "data.test_subset=60", "model.name=resnet20", "model.kwargs.width=4",
              f"output={tmp_path}", f"model.checkpoint={str(tmp_path / 'c.pt')!r}", "surface.alpha=-1:1:3",
              "surface.beta=-1:1:3", f"surface.center={str(tmp_path / 'c.pt')!r}", "surface.points_per_batch=1"]
    folded = read_surface(run_surface_job(load_job(None, common + ["surface.output=f.h5"]), progress=False))
    plain = read_surface(run_surface_job(load_job(None, common + ["evaluate.fold_bn=false",
                                                                  "evaluate.channels_last=false",
                                                                  "surface.output=p.h5"]), progress=False))
    assert folded.inputs["fold_bn"] == 21 and folded.inputs["channels_last"] is True  # the defaults
    assert "fold_bn" not in plain.inputs and "channels_last" not in plain.inputs
    np.testing.assert_allclose(folded.loss, plain.loss, rtol=1e-5)
    with pytest.raises(StoreError, match="fold_bn"):
        run_surface_job(load_job(None, common + ["surface.output=f.h5", "evaluate.fold_bn=false"]), progress=False)
    assert read_surface(tmp_path / "f.h5").done.all()
    bf16 = read_surface(run_surface_job(load_job(None, common + ["evaluate.precision=bf16", "surface.output=b.h5"]),
                                        progress=False))
    with h5py.File(tmp_path / "b.h5") as f:
        gap = float(f.attrs["precision_loss_difference"])
    assert bf16.inputs["precision"] == "bf16" and gap != 0 and abs(gap) < 0.05 * plain.loss[1, 1]
    assert bf16.loss[1, 1] - folded.loss[1, 1] == pytest.approx(gap, rel=1e-6)  # the same forward options
