"""Functions on model objects (ls.surface, ls.path, ls.curvature, ls.curve): the same values as the job path, every
data kind, the given model left as it was, files that resume and that the commands read, clear errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape as ls
from landscape.core.errors import DataError, ModelError, StoreError
from landscape.engine.evaluator import Evaluator
from landscape.io.status import describe_file

from conftest import mpi_env, run_cli

MPIEXEC = str(Path(sys.executable).with_name("mpiexec"))


def _mlp(seed=0, din=2, classes=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(din, 16), torch.nn.ReLU(), torch.nn.Linear(16, classes))


@pytest.fixture(scope="module")
def spiral():
    return ls.load_data("spiral", n_per_class=40)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
            [m.training for m in model.modules()], {p.device for p in model.parameters()})


def _same(model, snap):
    state, flags, devices = snap
    return (all(torch.equal(state[k], v) for k, v in model.state_dict().items())
            and [m.training for m in model.modules()] == flags and {p.device for p in model.parameters()} == devices)


def test_surface_equals_the_job_files_surface_bitwise(tmp_path, spiral):
    tr, te = spiral
    model = ls.build_model("mlp", tr.info(), depth=1, width=8)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    job = ls.load_job(None, ["data.name=spiral", "data.kwargs.n_per_class=40", "model.name=mlp",
                             "model.kwargs.depth=1", "model.kwargs.width=8", f"model.checkpoint='{tmp_path / 'm.pt'}'",
                             "surface.alpha=-1:1:7", "surface.beta=-1:1:5", "surface.seed=3",
                             f"output='{tmp_path / 'job'}'"])
    ref = ls.io.surface_file.read_surface(ls.run_surface_job(job, progress=False))
    s = ls.surface(model, (te.x, te.y), alpha=(-1, 1, 7), beta=(-1, 1, 5), seed=3, progress=False)
    assert s.loss.shape == (7, 5) and s.done.all()
    np.testing.assert_array_equal(s.loss, ref.loss)  # bitwise, every point
    np.testing.assert_array_equal(s.accuracy, ref.accuracy)
    np.testing.assert_array_equal(s.alpha, ref.alpha)


def test_every_data_kind_gives_the_same_values_and_the_model_is_left_as_it_was(spiral):
    _, te = spiral
    model = _mlp()
    model.train()
    snap = _snapshot(model)
    kw = dict(alpha=(-1, 1, 3), beta=(-1, 1, 3), progress=False)
    ref = ls.surface(model, (te.x, te.y), **kw)
    ds = torch.utils.data.TensorDataset(te.x, te.y)
    kinds = {"numpy": (te.x.numpy(), te.y.numpy()), "loader": torch.utils.data.DataLoader(ds, batch_size=7),
             "dataset": ds, "iterable": [(te.x[i:i + 10], te.y[i:i + 10]) for i in range(0, len(te), 10)],
             "generator": ((te.x[i:i + 10], te.y[i:i + 10]) for i in range(0, len(te), 10))}
    for name, data in kinds.items():
        s = ls.surface(model, data, **kw)
        np.testing.assert_array_equal(s.loss, ref.loss, err_msg=name)
    assert _same(model, snap)


class DictNet(torch.nn.Module):
    """A model that takes keyword inputs, as Hugging Face models do."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)

    def forward(self, features, mask):
        return self.fc(features * mask)


def test_dict_batches_call_the_model_with_keywords(spiral):
    _, te = spiral
    net = DictNet()
    batches = [{"features": te.x[i:i + 16], "mask": torch.ones(len(te.x[i:i + 16]), 2), "labels": te.y[i:i + 16]}
               for i in range(0, len(te), 16)]
    s = ls.surface(net, batches, alpha=(-1, 1, 3), beta=None, progress=False)
    plain = torch.nn.Linear(2, 3)
    plain.load_state_dict(net.fc.state_dict())
    ref = ls.surface(plain, (te.x, te.y), alpha=(-1, 1, 3), beta=None, progress=False)
    np.testing.assert_array_equal(s.loss, ref.loss)


def test_losses_callable_and_step_agree_with_the_named_loss(spiral):
    _, te = spiral
    model = _mlp()
    kw = dict(alpha=(-1, 1, 3), beta=(-0.5, 0.5, 2), progress=False)
    named = ls.surface(model, (te.x, te.y), **kw)
    summed = ls.surface(model, (te.x, te.y), loss=lambda out, y: F.cross_entropy(out, y, reduction="sum"), **kw)
    step = ls.surface(model, (te.x, te.y), **kw,
                      loss=lambda model, b: (F.cross_entropy(model(b[0]), b[1], reduction="sum"), len(b[1])))
    np.testing.assert_allclose(summed.loss, named.loss, rtol=1e-6)
    np.testing.assert_allclose(step.loss, named.loss, rtol=1e-6)
    np.testing.assert_array_equal(summed.accuracy, named.accuracy)
    assert step.accuracy is None  # a step has no predictions to count


def test_out_writes_as_it_goes_a_rerun_computes_nothing_and_other_data_is_refused(tmp_path, spiral):
    _, te = spiral
    model = _mlp()
    out = tmp_path / "s.h5"
    calls = []

    def loss(outputs, y):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the grid
        return F.cross_entropy(outputs, y, reduction="sum")

    snap = _snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        ls.surface(model, (te.x, te.y), alpha=(-1, 1, 4), beta=(-1, 1, 3), loss=loss, out=out,
                   points_per_batch=1, progress=False)
    assert _same(model, snap)
    partial = ls.Surface.read(out)
    assert 0 < partial.done.sum() < 12  # the points computed before Ctrl-C are kept
    full = ls.surface(model, (te.x, te.y), alpha=(-1, 1, 4), beta=(-1, 1, 3), loss=loss, out=out, progress=False)
    assert full.done.all()
    runs = json.loads(full.attrs["runs"])
    assert runs[-1]["points"] == 12 - int(partial.done.sum())
    again = ls.surface(model, (te.x, te.y), alpha=(-1, 1, 4), beta=(-1, 1, 3), loss=loss, out=out, progress=False)
    np.testing.assert_array_equal(again.loss, full.loss)
    with pytest.raises(StoreError, match="data_checksum"):
        ls.surface(model, (te.x[:-1], te.y[:-1]), alpha=(-1, 1, 4), beta=(-1, 1, 3), loss=loss, out=out,
                   progress=False)
    assert ls.Surface.read(out).done.all()  # the refused call lost nothing


def test_a_saved_surface_is_read_by_status_plot_and_xarray(tmp_path, spiral):
    _, te = spiral
    s = ls.surface(_mlp(), (te.x, te.y), alpha=(-1, 1, 4), beta=(-1, 1, 3), progress=False)
    p = s.save(tmp_path / "mine.h5")
    text = describe_file(p)
    assert "alpha -1..1 (4)" in text and "12/12" in text.replace(" ", "") or "12" in text
    r = run_cli("plot", str(p), "--formats", "png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mine_contour.png").stat().st_size > 5000
    ds = s.to_xarray()
    np.testing.assert_array_equal(ds["loss"].values, s.loss)
    assert ds["loss"].dims == ("alpha", "beta")
    fig = s.plot("filled")
    assert fig.axes and fig.axes[0].get_title() == "loss"


def test_errors_name_the_shapes_the_kinds_and_the_scalar(spiral):
    _, te = spiral
    with pytest.raises(ModelError, match=r"inputs \(30, 2\).*mat1 and mat2 shapes"):
        ls.surface(_mlp(din=5), (te.x, te.y), alpha=(0, 1, 2), beta=None, progress=False)
    with pytest.raises(DataError, match="Accepted data: a tuple"):
        ls.surface(_mlp(), 42, alpha=(0, 1, 2), beta=None, progress=False)
    with pytest.raises(ModelError, match=r"expected a scalar .* got \(30,\)"):
        ls.surface(_mlp(), (te.x, te.y), loss=lambda o, y: F.cross_entropy(o, y, reduction="none"),
                   alpha=(0, 1, 2), beta=None, progress=False)
    with pytest.raises(ModelError, match="expected a torch.nn.Module"):
        ls.surface(_mlp, (te.x, te.y), alpha=(0, 1, 2), beta=None, progress=False)


def test_paths_pass_through_their_nodes_and_match_the_evaluator(spiral):
    _, te = spiral
    a, m, b = _mlp(0), _mlp(1), _mlp(2)
    ev = Evaluator(_mlp(), te, "cpu")
    at = {k: ev.evaluate(dict(x.state_dict())).loss for k, x in (("a", a), ("m", m), ("b", b))}
    lin = ls.path(a, b.state_dict(), data=(te.x, te.y), alpha=(0, 1, 3), level=["model", "layer"], progress=False)
    assert lin.names == ["model", "0", "2"] and lin.loss.shape == (3, 3)
    assert lin.loss[0, 0] == pytest.approx(at["a"], abs=1e-6) and lin.loss[0, 2] == pytest.approx(at["b"], abs=1e-6)
    quad = ls.path(a, b, mid=m, data=(te.x, te.y), kind="quadratic", alpha=(0, 1, 3), progress=False)
    assert quad.loss[0, 1] == pytest.approx(at["m"], abs=1e-6)  # the parabola passes through mid at t = 0.5


def test_curvature_of_a_given_model_matches_the_exact_hessian(spiral):
    _, te = spiral
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().clone() for p in model.parameters()]

    def mean_loss(*flat):
        out = torch.func.functional_call(model, dict(zip(names, flat)), (te.x,))
        return F.cross_entropy(out, te.y)

    h = torch.autograd.functional.hessian(mean_loss, tuple(params))
    sizes = [p.numel() for p in params]
    full = torch.cat([torch.cat([h[i][j].reshape(sizes[i], sizes[j]) for j in range(len(params))], 1)
                      for i in range(len(params))]).double()
    exact = torch.linalg.eigvalsh(full)
    c = ls.curvature(model, (te.x, te.y), top_k=2, bottom_k=1, tol=1e-6, max_iter=60, trace_samples=200)
    np.testing.assert_allclose(c.top, exact.flip(0)[:2].numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(c.bottom, exact[:1].numpy(), rtol=1e-4, atol=1e-6)
    assert abs(c.trace - float(exact.sum())) < 4 * c.trace_stderr + 1e-9


def test_curvature_is_the_same_at_any_launch_thread_count():
    """Hessian products round by the thread count: at the launch's count (threads=0) 1 and 3 threads give other
    bits; at the fixed default they give the same."""
    from landscape.core.data import load_data, subset
    from landscape.core.models import build_model
    te = subset(load_data("digits")[1], 64)
    torch.manual_seed(0)
    model = build_model("lenet5", te.info())
    before = torch.get_num_threads()
    got = {}
    try:
        for threads in (0, 2):
            for launch in (1, 3):
                torch.set_num_threads(launch)
                c = ls.curvature(model, (te.x, te.y), top_k=1, trace_samples=2, max_iter=12, threads=threads)
                got[threads, launch] = (c.top[0], c.trace)
                assert torch.get_num_threads() == launch
    finally:
        torch.set_num_threads(before)
    assert got[2, 1] == got[2, 3]
    assert got[0, 1] != got[0, 3]


def test_curvature_returns_the_multiplicities_of_an_exact_spectrum():
    """A linear model under mse: H = I_out ⊗ 2XᵀX/(N·out). With rank-3 inputs in 6 dimensions and 4 outputs each
    of XᵀX's eigenvalues is 4-fold and zero is 12-fold."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g) @ torch.randn(3, 6, generator=g)
    model = torch.nn.Linear(6, 4, bias=False)
    y = torch.zeros(40, 4)
    exact = np.sort(np.linalg.eigvalsh((2 * x.T.double() @ x.double() / (40 * 4)).numpy()))[::-1]
    # blocks of 5: each eigenspace up to 5 times in one run of 4 blocks; and single vectors (the default on a CPU,
    # where products are not batched) in runs of 12 products, fewer than the 24 parameters, the repeats found by
    # deflated runs
    for block, max_iter in ((5, 20), (0, 12)):
        c = ls.curvature(model, (x, y), top_k=5, bottom_k=3, loss="mse", trace=False, tol=1e-7, max_iter=max_iter,
                         block=block)
        np.testing.assert_allclose(c.top, [exact[0]] * 4 + [exact[1]], rtol=1e-5)
        np.testing.assert_allclose(c.bottom, [0.0] * 3, atol=1e-5 * exact[0])
        with h5py.File(c.path, "r") as f:
            assert f.attrs["lanczos_block"] == (block or 1)
            assert f.attrs["lanczos_iterations"] == 20 or block == 0


def test_curve_trains_between_two_models_with_fixed_ends(spiral):
    tr, te = spiral
    a, b = _mlp(0), _mlp(1)
    c = ls.curve(a, b, (tr.x, tr.y), epochs=2, batch_size=32, progress=False)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(c.state(0.0)[k], v, rtol=0, atol=0)
    for k, v in b.state_dict().items():
        torch.testing.assert_close(c.state(1.0)[k], v, rtol=0, atol=0)


@pytest.mark.mpi
def test_surface_with_a_communicator_equals_the_serial_one(tmp_path, spiral):
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch, numpy as np, landscape as ls\n"
        "from mpi4py import MPI\n"
        "from test_given import _mlp\n"
        "_, te = ls.load_data('spiral', n_per_class=40)\n"
        "s = ls.surface(_mlp(), (te.x, te.y), alpha=(-1, 1, 9), beta=(-1, 1, 7), comm=MPI.COMM_WORLD,\n"
        "               out=sys.argv[1], progress=False)\n"
        "assert s.done.all()\n")
    env = mpi_env()
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env["PYTHONPATH"]])
    r = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script), str(tmp_path / "mpi.h5")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    _, te = spiral
    serial = ls.surface(_mlp(), (te.x, te.y), alpha=(-1, 1, 9), beta=(-1, 1, 7), progress=False)
    mpi = ls.Surface.read(tmp_path / "mpi.h5")
    np.testing.assert_array_equal(mpi.loss, serial.loss)
    assert json.loads(mpi.attrs["runs"])[-1]["ranks"] == 2
