"""Every shipped job file: valid, renders an sbatch script, and runs end to end (on small stand-in data for
the real data sets, which cannot be downloaded here)."""
import gzip
import json
import math

import numpy as np
import pytest

from landscape.run.jobfile import expand_sweep, load_job
from landscape.core.models import build_model, layer_names
from landscape.run.slurm import SlurmOptions, render_script

from conftest import ROOT, run_cli

JOBS = sorted((ROOT / "jobs").glob("*.toml"))


def test_the_expected_job_files_are_shipped():
    names = {p.name for p in JOBS}
    assert {"demo.toml", "mnist_lenet5.toml", "cifar10_resnet56.toml", "spiral_study.toml", "tiny_lm.toml"} <= names


@pytest.mark.parametrize("path", JOBS, ids=lambda p: p.name)
def test_job_file_is_valid_and_renders_a_script(path):
    jobs = expand_sweep(path)
    base = load_job(path)
    assert base.name and base.output and jobs
    for settings, job in jobs:
        assert not job.sweep and (len(jobs) == 1 or job.output.startswith(base.output + "/"))
    text = render_script(path, SlurmOptions(gpus_per_node=2, time="2:00:00"), workdir="/w", job=base,
                         n_tasks=len(jobs))
    assert f"landscape run {path} --no-progress" in text
    assert ("#SBATCH --array=0-%d" % (len(jobs) - 1) in text) == (len(jobs) > 1)
    if base.data.name in ("mnist", "cifar10"):  # real data sets are read from a folder the user names
        assert base.data.root


def test_mnist_job_has_the_seed_papers_layer_sizes():
    job = load_job(ROOT / "jobs" / "mnist_lenet5.toml")
    from landscape.core.data import TensorData
    import torch

    info = TensorData(torch.zeros(1, 1, 32, 32), torch.zeros(1, dtype=torch.long), "classification", 10).info()
    model = build_model(job.model.name, info, **job.model.kwargs)
    sizes = {name: sum(p.numel() for n, p in model.named_parameters() if n.startswith(name + "."))
             for name in layer_names(model)}
    assert sizes == {"conv1": 60, "conv2": 880, "fc1": 69240, "fc2": 10164, "fc3": 850}
    assert job.train.epochs == 14 and "parameter" in job.paths.levels


def test_cifar_job_compares_skip_and_noskip_as_li_et_al():
    jobs = expand_sweep(ROOT / "jobs" / "cifar10_resnet56.toml")
    assert [j.model.name for _, j in jobs] == ["resnet56", "resnet56_noskip"]
    t = jobs[0][1].train
    assert (t.lr, t.momentum, t.weight_decay, t.batch_size, t.epochs, t.lr_milestones, t.augment) == \
        (0.1, 0.9, 5e-4, 128, 300, [150, 225, 275], "crop_flip")
    s = jobs[0][1].surface
    assert (s.alpha, s.beta, s.norm, s.ignore) == ("-1:1:51", "-1:1:51", "filter", "biasbn")


def _fake_mnist(root, n_train=96, n_test=48):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", rng.integers(0, 10, n))):
            head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
            (root / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))


def _fake_cifar(root, per_batch=16):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (per_batch, 3073)).astype(np.uint8)
        rec[:, 0] %= 10
        (root / name).write_bytes(rec.tobytes())


@pytest.mark.slow
def test_mnist_job_runs_end_to_end(tmp_path):
    _fake_mnist(tmp_path / "my mnist")
    out = tmp_path / "out"
    r = run_cli("run", str(ROOT / "jobs" / "mnist_lenet5.toml"), f"data.root={tmp_path / 'my mnist'}",
                "--output", str(out), "train.epochs=3", "surface.alpha=-1:1:3", "surface.beta=-1:1:3",
                "pca.alpha=\"auto:3\"", "pca.beta=\"auto:3\"", "paths.alpha=0:1:3", "paths.params_per_layer=1",
                "--no-progress", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    for key in ("trajectory", "surface", "surface_pca", "path_linear", "path_quadratic", "layers_report"):
        assert (out / summary["outputs"][key]).is_file(), key
    assert (out / "surface.vtp").is_file() and (out / "surface.vts").is_file()


@pytest.mark.slow
def test_cifar_job_runs_one_sweep_task(tmp_path):
    _fake_cifar(tmp_path / "cifar", per_batch=8)  # resnet56's Hessian products cost per image: few of them
    out = tmp_path / "out"
    r = run_cli("run", str(ROOT / "jobs" / "cifar10_resnet56.toml"), "--task", "1", f"data.root={tmp_path / 'cifar'}",
                "--output", str(out), "train.epochs=2", "train.lr_milestones=[1]", "surface.alpha=-1:1:3",
                "surface.beta=-1:1:2", "curvature.top_k=1", "curvature.bottom_k=0", "curvature.max_iter=6",
                "curvature.trace_samples=2", "curvature.ascent_steps=1", "curvature.subset=none", "--no-progress",
                "--device", "cpu", timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "sweep.json").read_text())[1]["settings"] == {"model.name": "resnet56_noskip"}
    summary = json.loads((out / "001" / "summary.json").read_text())
    assert summary["outputs"]["surface"] == "surface.h5" and not (out / "000").exists()
    # the sharpness of the noskip model, in the sweep's status beside its settings
    assert summary["outputs"]["curvature"] == "curvature.h5" and summary["curvature"]["lambda_max"] > 0
    r = run_cli("status", str(out / "sweep.json"))
    assert r.returncode == 0 and "λmax" in r.stdout and "resnet56_noskip" in r.stdout.split("sharpness:")[1]


def test_tiny_lm_job_runs_end_to_end(tmp_path):
    """The language job, shortened: the built-in GPT on the embedded corpus, random and PCA surfaces, linear and
    quadratic paths at model and layer level (attention vs MLP blocks), figures and the report."""
    out = tmp_path / "lm"
    r = run_cli("run", str(ROOT / "jobs" / "tiny_lm.toml"), "--output", str(out), "train.epochs=2",
                "data.kwargs.n_train=128", "data.kwargs.n_test=32", "data.kwargs.context=32",
                "surface.alpha=-1:1:3", "surface.beta=-1:1:3", "pca.alpha=\"auto:3\"", "pca.beta=\"auto:3\"",
                "paths.alpha=0:1:3", "--no-progress", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    for key in ("trajectory", "surface", "surface_pca", "path_linear", "path_quadratic", "layers_report", "report"):
        assert (out / summary["outputs"][key]).is_file(), key
    assert summary["final"]["loss"] < math.log(256)  # per token, below the uniform guess over bytes
    items = json.loads(open(out / "layers_robust_ambient.json").read())["layers"]
    assert {"blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp"} <= {row["layer"] for row in items}
    status = run_cli("status", str(out / "surface.h5"))
    assert status.returncode == 0 and "perplexity" in status.stdout
    assert (out / "surface_contour.png").is_file() and (out / "path_linear_layer.png").is_file()


def test_imagenet_job_runs_end_to_end_on_a_generated_image_folder(tmp_path):
    """The ImageNet job on a small generated folder in its layout, a torchvision-style checkpoint file as the
    centre, the validation images streamed (resident_mb=0) through the surface."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        folder = tmp_path / "imagenet" / "val" / f"n0000000{c}"
        folder.mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)).save(folder / f"ILSVRC_{i}.JPEG")
    torch.manual_seed(0)
    ckpt = tmp_path / "resnet50-0676ba61.pth"
    torch.save(build_model("resnet50", {"num_classes": 3}).state_dict(), ckpt)
    out = tmp_path / "out"
    r = run_cli("run", str(ROOT / "jobs" / "imagenet_resnet50.toml"), f"data.root={tmp_path / 'imagenet'}",
                f"model.checkpoint={ckpt}", "--output", str(out), "data.kwargs.resize=36", "data.kwargs.crop=32",
                "data.kwargs.workers=2", "evaluate.precision=fp32", "evaluate.resident_mb=0", "evaluate.batch_size=5",
                "surface.alpha=-1:1:3", "surface.beta=-1:1:3", "surface.points_per_pass=4", "--no-progress",
                "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "reading it in batches, once per chunk of points" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"] == str(ckpt) and summary["final"]["n"] == 12
    from landscape.io.surface_file import read_surface

    s = read_surface(out / "surface.h5")
    assert s.done.all() and s.loss[1, 1] == pytest.approx(summary["final"]["loss"], rel=1e-6)
    assert (out / "surface.vtp").is_file() and (out / "surface_view.py").is_file() and (out / "report.html").is_file()
