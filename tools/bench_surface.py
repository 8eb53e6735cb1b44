"""Surface engine vs a straightforward per-point loop, measured side by side in one run.

For each case it prints, over the same grid points:
  * forward ms   — one pure forward pass over the evaluation set (data on the device, no_grad);
  * engine pts/s — the PlaneEvaluator one point at a time (θ formed in place, one host sync per point),
                   and its time per point divided by the forward time (target on CPU for resnet20: <= 1.15);
  * batched pts/s — several points at once: stacked with vmap (P points per batch) and, on a CPU with several
                   threads, concurrently on T threads (one model replica each); each with its ratio to the
                   one-point mode (the better of the two is what points_per_batch="auto" finds);
  * naive pts/s  — the reference-implementation loop: θ built on the host, load_state_dict,
                   a DataLoader over the evaluation set and .item() per batch.

    python tools/bench_surface.py
    python tools/bench_surface.py --device cuda --points 64
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from benchlib import cifar_shaped, header, interleaved, pure_forward, timed
from torch.utils.data import DataLoader, TensorDataset

from landscape.core.data import TensorData, load_data
from landscape.engine.device import resolve_device
from landscape.engine.evaluator import Evaluator
from landscape.core.models import build_model
from landscape.core.params import unflatten_state
from landscape.engine.plane import PlaneEvaluator


def naive_loop(model: torch.nn.Module, data: TensorData, center: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor,
               alphas: np.ndarray, betas: np.ndarray, dev: torch.device, batch_size: int) -> None:
    from landscape.core.params import StateSpec, model_state

    spec = StateSpec.from_state(model_state(model))
    c, a1, b1 = center.cpu(), d1.cpu(), d2.cpu()
    for a, b in zip(alphas, betas):
        state = unflatten_state(c + float(a) * a1 + float(b) * b1, spec)
        model.load_state_dict(state)
        model.to(dev).eval()
        loader = DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size)
        total, correct = 0.0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(dev), y.to(dev)
                out = model(x)
                total += F.cross_entropy(out, y, reduction="sum").item()
                correct += (out.argmax(1) == y).sum().item()


def bench(name: str, model: torch.nn.Module, data: TensorData, dev: torch.device, points: int, batched: int,
          batch_size: int, repeats: int) -> None:
    ev = Evaluator(model, data, dev, batch_size)
    center = ev.get_flat()
    g = torch.Generator().manual_seed(0)
    d1 = torch.randn(center.numel(), generator=g).to(dev) * 0.01
    d2 = torch.randn(center.numel(), generator=g).to(dev) * 0.01
    plane = PlaneEvaluator(ev, center, d1, d2, 1)
    alphas, betas = np.linspace(-1, 1, points), np.linspace(1, -1, points)
    forward = pure_forward(ev)
    threads = torch.get_num_threads() if dev.type == "cpu" else 1

    def mode(kind: str, p: int):
        def run() -> None:
            plane.batch_mode, plane.points_per_batch = kind, p
            plane.evaluate_points(alphas, betas)
        return run

    fns = [forward, mode("one", 1), mode("vmap", batched)] + ([mode("threads", threads)] if threads > 1 else [])
    f, o, b, *t = interleaved(fns, dev, repeats)
    naive_pts = min(points, 8)
    tn = timed(lambda: naive_loop(model, data, center, d1, d2, alphas[:naive_pts], betas[:naive_pts], dev,
                                   batch_size), dev)
    plane.ev.set_flat(center)
    thr = f"{points / t[0]:>10.1f} {threads:>3} {o / t[0]:>7.2f}" if t else f"{'-':>10} {'-':>3} {'-':>7}"
    print(f"{name:<24} {len(data):>5} {f * 1e3:>10.2f} {points / o:>10.1f} {o / points / f:>8.3f} "
          f"{points / b:>10.1f} {batched:>3} {o / b:>7.2f} {thr} {naive_pts / tn:>10.1f} "
          f"{tn / naive_pts / (o / points):>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--points", type=int, default=16, help="grid points per timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=500, help="evaluation batch size (and the naive DataLoader's)")
    ap.add_argument("--n-cifar", type=int, default=2000)
    ap.add_argument("--cases", default="resnet20,lenet5,mlp", help="comma-separated subset of resnet20,lenet5,mlp")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    torch.manual_seed(0)
    cifar = cifar_shaped(args.n_cifar)
    _, digits = load_data("digits")
    _, spiral = load_data("spiral")
    print(header(dev))
    print(f"{'case':<24} {'n':>5} {'forward ms':>10} {'engine/s':>10} {'eng/fwd':>8} {'vmap/s':>10} {'P':>3} "
          f"{'v/one':>7} {'threads/s':>10} {'T':>3} {'t/one':>7} {'naive/s':>10} {'speedup':>8}")
    cases = args.cases.split(",")
    if "resnet20" in cases:
        bench("resnet20 / CIFAR-shaped", build_model("resnet20"), cifar, dev, max(4, args.points // 4), 4,
              args.batch_size, args.repeats)
    if "lenet5" in cases:
        bench("lenet5 / digits", build_model("lenet5"), digits, dev, args.points, 8, args.batch_size, args.repeats)
    if "mlp" in cases:
        bench("mlp / spiral", build_model("mlp", spiral.info(), depth=5, width=20), spiral, dev, args.points * 8, 32,
              args.batch_size, args.repeats)
    print("eng/fwd: engine time per point / pure forward time; v/one, t/one: batched points/s (vmap, threads) /\n"
          "one-point points/s; speedup: engine points/s / naive points/s")


if __name__ == "__main__":
    main()
