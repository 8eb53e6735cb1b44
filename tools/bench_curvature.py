"""Curvature engine costs, measured side by side in one run.

1. One Hessian-vector product (double backward, float64 accumulation) against one forward + backward over the
   same data: the ratio (target <= 2.5), for a further product at the same parameters (one backward through
   the kept gradient graphs: what each Lanczos/Hutchinson iteration pays) and for the first one at a point
   (the graphs built too), and the products with graphs never kept. The baseline is the model's own forward +
   backward, as it is (no BatchNorm folded; the products fold eval-mode BatchNorms inside their forward).
2. Time to λmax at tol 1e-3: our Lanczos (full reorthogonalisation) against the reference implementation's
   method, scipy's ``eigsh`` (ARPACK) over an HVP operator, cold-started, on the same model and data.
3. A 9x9 λmax map: warm starts along each row against a cold start at every point.

    python tools/bench_curvature.py
    python tools/bench_curvature.py --model resnet20 --samples 500
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from benchlib import cifar_shaped, header, interleaved

from landscape.analysis.spectrum import extreme_eigenpairs
from landscape.core.data import load_data, subset
from landscape.core.models import build_model
from landscape.engine.curvature_map import CurvatureMap
from landscape.engine.device import resolve_device
from landscape.engine.evaluator import Evaluator
from landscape.engine.hessian import HessianOperator
from landscape.engine.plane import PlaneEvaluator
from landscape.analysis.directions import random_directions
from landscape.core.params import StateSpec, flatten_state

log = logging.getLogger("bench_curvature")


def trained(model, data, steps=60, lr=0.05):
    """A few full-batch SGD steps, so the Hessian is that of a model that has learned something."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet5", help="lenet5 (digits) or resnet20 (CIFAR-shaped images)")
    p.add_argument("--samples", type=int, default=360)
    p.add_argument("--batch-size", type=int, default=256, help="the evaluation batch (the default of job files)")
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--grid", type=int, default=9)
    args = p.parse_args()
    dev = resolve_device(args.device)
    torch.manual_seed(0)
    if args.model == "lenet5":
        tr, te = load_data("digits")
        data = subset(te, args.samples)
        model = trained(build_model("lenet5"), subset(tr, 512))
    else:
        data = cifar_shaped(args.samples)
        model = build_model(args.model).eval()
    ev = Evaluator(model, data, dev, args.batch_size)
    op = HessianOperator(ev)
    log.info("%s", header(dev))
    log.info("%s on %d samples, %d parameters in the Hessian", args.model, len(data), op.numel)

    v = torch.randn(op.numel, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rebuilt = HessianOperator(ev, keep_graph=False)
    plain = HessianOperator(ev, fold_bn=False)

    def first() -> None:
        op.release()
        op.matvec(v)

    fb, further, cold, never = interleaved([plain.forward_backward, lambda: op.matvec(v), first,
                                            lambda: rebuilt.matvec(v)], dev, args.repeats)
    log.info("1. forward+backward %.4f s; Hessian-vector product at the same parameters %.4f s, first at a point "
             "%.4f s, graphs never kept %.4f s: HVP / (forward+backward) = %.2f (first %.2f, never kept %.2f)",
             fb, further, cold, never, further / fb, cold / fb, never / fb)

    scipy_la = __import__("scipy.sparse.linalg", fromlist=["eigsh"])
    count = {"n": 0}

    def mv(x: np.ndarray) -> np.ndarray:
        count["n"] += 1
        return op.matvec(torch.from_numpy(np.asarray(x, dtype=np.float64).ravel())).cpu().numpy()

    operator = scipy_la.LinearOperator((op.numel, op.numel), matvec=mv, dtype=np.float64)
    start = np.random.default_rng(0).standard_normal(op.numel)
    rows = []
    for _ in range(2):  # alternate: drifts of the machine hit both
        count["n"] = 0
        t = time.perf_counter()
        ref = scipy_la.eigsh(operator, k=1, which="LA", tol=1e-3, v0=start)[0][0]
        rows.append(("eigsh", time.perf_counter() - t, count["n"], float(ref)))
        before = op.matvecs
        t = time.perf_counter()
        ours = extreme_eigenpairs(op.matvec, op.numel, 1, 0, tol=1e-3, max_iter=300, seed=0, check_every=1)
        rows.append(("lanczos", time.perf_counter() - t, op.matvecs - before, float(ours.values[0])))
    e = np.median([r[1] for r in rows if r[0] == "eigsh"])
    o = np.median([r[1] for r in rows if r[0] == "lanczos"])
    ne = [r[2] for r in rows if r[0] == "eigsh"][0]
    no = [r[2] for r in rows if r[0] == "lanczos"][0]
    log.info("2. λmax at tol 1e-3: scipy eigsh %.2f s (%d products, λ %.6g), ours %.2f s (%d products, λ %.6g): "
             "ours / eigsh = %.2f", e, ne, rows[0][3], o, no, rows[1][3], o / e)

    center = ev.get_flat().clone()
    state = {k: t.detach().cpu() for k, t in ev.state.items()}
    d1, d2 = random_directions(state, [n for n, _ in model.named_parameters()], 0, "filter", "biasbn", "weights", 2)
    spec = StateSpec.from_state(state)
    plane = PlaneEvaluator(ev, center, flatten_state(d1, spec), flatten_state(d2, spec))
    ax = np.linspace(-0.5, 0.5, args.grid)
    a, b = (m.ravel() for m in np.meshgrid(ax, ax, indexing="ij"))
    times = {}
    for warm in (True, False):
        cm = CurvatureMap(plane, op, ["lambda_max"], args.grid, tol=1e-3, max_iter=300, warm=warm)
        t = time.perf_counter()
        vals = cm.evaluate_points(a, b)[0]
        times[warm] = (time.perf_counter() - t, float(np.mean(cm.iterations)), vals)
    gap = float(np.max(np.abs(times[True][2] - times[False][2]) / np.abs(times[False][2])))
    log.info("3. %dx%d λmax map: warm %.1f s (%.1f iterations/point), cold %.1f s (%.1f iterations/point): "
             "warm / cold = %.2f (largest relative difference of the values %.1e)", args.grid, args.grid,
             times[True][0], times[True][1], times[False][0], times[False][1], times[True][0] / times[False][0], gap)


if __name__ == "__main__":
    main()
