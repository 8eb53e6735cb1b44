"""Path engine vs a per-point load_state_dict loop, measured side by side in one run.

For lenet5 on the digits, a linear path at model level and at layer level (every layer): points/s of the
engine (values written in place on the device, nothing reloaded per α) and of the reference-style loop
(θ(α) built on the host, load_state_dict, a DataLoader over the evaluation set, .item() per batch).

    python tools/bench_paths.py
    python tools/bench_paths.py --device cuda --alphas 41
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from benchlib import header, timed
from torch.utils.data import DataLoader, TensorDataset

from landscape.core.data import load_data
from landscape.engine.device import resolve_device
from landscape.engine.evaluator import Evaluator
from landscape.core.models import build_model
from landscape.analysis.interpolation import path_items
from landscape.engine.path import PathEvaluator


def naive(model, data, s0, s1, items, alphas, dev, batch_size):
    for item in items:
        for a in alphas:
            state = {k: v.clone() for k, v in s1.items()}
            for name, lo, hi in item.regions:
                flat = state[name].view(-1)
                flat[lo:hi] = (1 - a) * s0[name].view(-1)[lo:hi] + a * s1[name].view(-1)[lo:hi]
            model.load_state_dict(state)
            model.to(dev).eval()
            total = 0.0
            with torch.no_grad():
                for x, y in DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size):
                    total += F.cross_entropy(model(x.to(dev)), y.to(dev), reduction="sum").item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--alphas", type=int, default=11)
    ap.add_argument("--batch-size", type=int, default=500)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    _, te = load_data("digits")
    torch.manual_seed(0)
    s0 = build_model("lenet5").state_dict()
    s1 = build_model("lenet5").state_dict()
    model = build_model("lenet5")
    ev = Evaluator(model, te, dev, args.batch_size)
    alphas = np.linspace(-0.5, 1.5, args.alphas)
    print(header(dev))
    print(f"{'case':<26} {'points':>7} {'engine/s':>10} {'naive/s':>10} {'speed-up':>9}")
    for level in ("model", "layer"):
        items = path_items(model, [level])
        pe = PathEvaluator(ev, [s0, s0, s1], items, "linear")
        idx = np.repeat(np.arange(len(items)), len(alphas)).astype(float)
        al = np.tile(alphas, len(items))
        pe.evaluate_points(idx[:2], al[:2])  # warm-up
        te_engine = timed(lambda: pe.evaluate_points(idx, al), dev)
        n_naive = min(len(al), 2 * len(alphas))
        t_naive = timed(lambda: naive(build_model("lenet5"), te, s0, s1, items[: max(1, n_naive // len(alphas))],
                                      alphas, dev, args.batch_size), dev)
        n_naive = max(1, n_naive // len(alphas)) * len(alphas)
        e, nv = len(al) / te_engine, n_naive / t_naive
        print(f"{'lenet5/digits, ' + level + ' level':<26} {len(al):>7} {e:>10.1f} {nv:>10.1f} {e / nv:>8.2f}x")


if __name__ == "__main__":
    main()
