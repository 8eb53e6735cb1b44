"""Streamed evaluation of an image folder vs the same images resident vs a per-point DataLoader loop, side by side.

Writes a folder of N JPEGs (10 classes, default 5,000 of 40x40 pixels, centre-cropped to 32) and, for each
model, times grid points of a filter-normalised plane three ways in one run:

- resident: the images decoded once and kept in memory (what fits the device budget gets);
- streamed: read by DataLoader workers in batches, each batch once per chunk of P points
  (``surface.points_per_pass``), for several P;
- per-point loop: what the reference does for every point: θ built on the host, ``load_state_dict``, a
  DataLoader over the folder, every image decoded again.

It prints points/s of each and the ratios streamed/resident and streamed/per-point. Both cannot be high at the
same P for one model: with a forward costing f per pass and decoding d, streamed/resident = f/(f + d/P) and
per-point/streamed = (f + d)/(f + d/P); a compute-bound model (resnet20) shows the first, a decode-bound one
(lenet5) the second.

    python tools/bench_stream.py                        # resnet20 and lenet5, P = 1, 8, 32, 64
    python tools/bench_stream.py --images 5000 --models resnet20 --passes 8 16
    python tools/bench_stream.py --regression           # seed 004's shape from memory-mapped arrays

``--regression`` writes synthetic arrays of seed 004's gene-expression regression (52,407 samples, 942 inputs,
4,759 outputs; 1.2 GB as float32) as ``.npy`` files and computes a 3x3 surface of an MLP (MSE) through the job
API with the arrays memory-mapped and streamed (a 256 MiB resident budget), printing points/s and the process's
peak memory.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import header
from PIL import Image
from torch.utils.data import DataLoader

from landscape.analysis.directions import random_directions
from landscape.core.data import load_data
from landscape.core.models import build_model
from landscape.core.params import flatten_state, unflatten_state
from landscape.core.streams import ImageFolder
from landscape.engine.device import resolve_device
from landscape.engine.evaluator import Evaluator
from landscape.engine.losses import per_sample_loss
from landscape.engine.plane import PlaneEvaluator


def write_folder(root: Path, n: int, size: int) -> float:
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for k in range(n):
        folder = root / f"n{k % 10:08d}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{k}.JPEG",
                                                                                   quality=90)
    return time.perf_counter() - t


def per_point_loop(model: torch.nn.Module, center: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, spec,
                   folder: Path, crop: int, batch: int, workers: int, points: int) -> float:
    """Seconds per point of the reference's loop."""
    loss_fn = per_sample_loss("cross_entropy")
    t = time.perf_counter()
    for k in range(points):
        a, b = -1.0 + k * 0.1, 0.5
        theta = center + a * d1 + b * d2  # on the host
        model.load_state_dict(unflatten_state(theta, spec))
        loader = DataLoader(ImageFolder(folder, crop=crop), batch_size=batch, shuffle=False, num_workers=workers)
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loader:
                out = model(x)
                total += float(loss_fn(out, y).sum())
                correct += int((out.argmax(1) == y).sum())
                n += len(y)
    return (time.perf_counter() - t) / points


def regression(root: Path, n: int, n_in: int, n_out: int, width: int) -> None:
    """A 3x3 surface of an MLP on memory-mapped arrays of seed 004's regression shape, streamed."""
    from landscape.run.jobfile import load_job
    from landscape.stages.surface import run_surface_job

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(root / "x.npy", "w+", np.float32, (n, n_in))
    y = np.lib.format.open_memmap(root / "y.npy", "w+", np.float32, (n, n_out))
    w = rng.normal(size=(n_in, 64)).astype(np.float32) / np.sqrt(n_in)
    v = rng.normal(size=(64, n_out)).astype(np.float32) / 8
    for a in range(0, n, 4096):  # written in slices: never the whole arrays in memory
        xb = rng.normal(size=(min(4096, n - a), n_in)).astype(np.float32)
        x[a:a + len(xb)] = xb
        y[a:a + len(xb)] = np.tanh(xb @ w) @ v
    x.flush()
    y.flush()
    del x, y
    print(f"wrote x {n}x{n_in} and y {n}x{n_out} (.npy, float32) in {time.perf_counter() - t:.1f} s")
    torch.manual_seed(0)
    data = load_data("arrays", x=str(root / "x.npy"), y=str(root / "y.npy"), workers=0)[1]
    model = build_model("mlp", data.info(), depth=1, width=width)
    torch.save(model.state_dict(), root / "model.pt")
    job = load_job({"job": {"name": "gex", "output": str(root / "out")},
                    "model": {"name": "mlp", "kwargs": {"depth": 1, "width": width},
                              "checkpoint": str(root / "model.pt")},
                    "data": {"name": "arrays", "kwargs": {"x": str(root / "x.npy"), "y": str(root / "y.npy"),
                                                          "workers": 0}},
                    "evaluate": {"device": "cpu", "batch_size": 2048, "resident_mb": 256},
                    "surface": {"center": "final", "alpha": "-1:1:3", "beta": "-1:1:3", "points_per_pass": 9}}, [])
    t = time.perf_counter()
    path = run_surface_job(job, progress=False)
    sec = time.perf_counter() - t
    from landscape.io.surface_file import read_surface

    s = read_surface(path)
    mem = memory()
    print(f"regression surface 3x3: {s.done.sum()} points in {sec:.1f} s ({s.done.sum() / sec:.3f} points/s), "
          f"MSE {s.loss.min():.4g}..{s.loss.max():.4g}, streamed: {s.runs[-1].get('points')} points in one read; "
          f"process memory after it: {mem.get('RssAnon', 0):.0f} MiB anonymous (the arrays are "
          f"{(n * (n_in + n_out) * 4) / 2**20:.0f} MiB; pages of the memory-mapped files are the kernel's cache: "
          f"{mem.get('RssFile', 0):.0f} MiB)")


def memory() -> dict[str, float]:
    """MiB of this process's resident memory by kind (Linux /proc/self/status)."""
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = float(value.split()[0]) / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--size", type=int, default=40, help="JPEG side in pixels (centre-cropped to 32)")
    ap.add_argument("--models", nargs="+", default=["resnet20", "lenet5"])
    ap.add_argument("--passes", nargs="+", type=int, default=[1, 8, 32, 64], help="points per pass P")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loop-points", type=int, default=2, help="points timed in the per-point loop")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--folder", help="use this image folder instead of writing one")
    ap.add_argument("--regression", action="store_true", help="seed 004's regression shape instead of images")
    ap.add_argument("--samples", type=int, default=52407)
    ap.add_argument("--width", type=int, default=256, help="hidden units of the regression MLP")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    print(header(dev))
    tmp = tempfile.TemporaryDirectory()
    if args.regression:
        regression(Path(tmp.name), args.samples, 942, 4759, args.width)
        return
    folder = Path(args.folder or tmp.name)
    if not args.folder:
        print(f"wrote {args.images} JPEGs of {args.size}x{args.size} in {write_folder(folder, args.images, args.size):.1f} s")
    _, data = load_data("imagefolder", str(folder), crop=32, workers=args.workers)
    print(f"{'model':<10} {'P':>4} {'resident pt/s':>14} {'streamed pt/s':>14} {'per-point pt/s':>15} "
          f"{'str/res':>8} {'str/loop':>9}")
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, data.info())
        ev_res = Evaluator(model, data, dev, args.batch_size)  # decoded once, resident
        ev_str = Evaluator(model, data, dev, args.batch_size, max_resident_bytes=0)
        center = ev_res.get_flat().cpu()
        state = {k: v.detach().cpu() for k, v in ev_res.state.items()}
        d1, d2 = (flatten_state(d, ev_res.spec) for d in random_directions(state, dict(model.named_parameters()),
                                                                             seed=1))
        loop = per_point_loop(model, center, d1, d2, ev_res.spec, folder, 32, args.batch_size, args.workers,
                              args.loop_points)
        ev_res.set_flat(center)
        for p in args.passes:
            a = np.linspace(-1, 1, p)
            b = np.linspace(0.5, -0.5, p)
            plane_r = PlaneEvaluator(ev_res, center, d1, d2, 1)
            plane_s = PlaneEvaluator(ev_str, center, d1, d2, 1, points_per_pass=p)
            t = time.perf_counter()
            r = plane_r.evaluate_points(a, b)
            t_res = time.perf_counter() - t
            t = time.perf_counter()
            s = plane_s.evaluate_points(a, b)
            t_str = time.perf_counter() - t
            same = np.array_equal(r[0], s[0]) and np.array_equal(r[1], s[1])
            print(f"{name:<10} {p:>4} {p / t_res:>14.3f} {p / t_str:>14.3f} {1 / loop:>15.3f} "
                  f"{t_res / t_str:>8.2f} {loop * p / t_str:>9.2f}" + ("" if same else "  VALUES DIFFER"))


if __name__ == "__main__":
    main()
