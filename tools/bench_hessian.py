"""λmax + trace: landscape against the real PyHessian and hessian-eigenthings, side by side in one run.

Each way computes, from a fresh copy of the same trained model on the same data (one batch, eval mode, every
parameter), the largest Hessian eigenvalue to a relative tolerance of 1e-3 and the trace from 30 Rademacher
probes, cold (gradient graphs built inside the timing):

- ours: :class:`~landscape.engine.hessian.HessianOperator` (``ignore="none"``), Lanczos
  (:func:`~landscape.analysis.spectrum.extreme_eigenpairs`, residual ≤ 1e-3·λ, stricter than a relative change),
  Hutchinson with the products taken in blocks (``matmat``: batched backwards);
- PyHessian (``pip install --no-deps pyhessian``): ``hessian(model, criterion, data=(x, y))``,
  ``eigenvalues(tol=1e-3)`` (power iteration) and ``trace(maxIter=30, tol=-inf)`` (all 30 probes: its stop
  test divides by the signed running mean, so ``tol=0`` ends it after two probes when the first is negative);
- hessian-eigenthings (``pip install --no-deps hessian-eigenthings``): its ``HessianOperator`` over the same
  batch, ``power_iteration_one(tol=1e-3)`` and ``hutchinson(num_samples=30)``.

Rounds are interleaved (ours, PyHessian, eigenthings, ours, ...); it prints each way's median seconds with the
spread (min..max) of the rounds, the ratios ours / peer (below 1: faster), the values each found with λmax's
relative error against a tightly converged Lanczos value (not timed), and the load of the machine before and after.

    python tools/bench_hessian.py                           # lenet5 on digits, resnet20 on 500 CIFAR-shaped
    python tools/bench_hessian.py --cases lenet5 --repeats 5 --block 16
"""
from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from benchlib import cifar_shaped, machine_line, write_markdown  # noqa: E402

from landscape.analysis.spectrum import extreme_eigenpairs, hutchinson_trace  # noqa: E402
from landscape.core.data import load_data  # noqa: E402
from landscape.core.models import build_model  # noqa: E402
from landscape.engine.evaluator import Evaluator  # noqa: E402
from landscape.engine.hessian import HessianOperator  # noqa: E402

log = logging.getLogger("bench_hessian")
PROBES = 30
TOL = 1e-3


def case(name: str, samples: int):
    """A model trained for a few full-batch steps (a Hessian worth measuring) and its data."""
    torch.manual_seed(0)
    data = load_data("digits")[1] if name == "lenet5" else cifar_shaped(samples)
    model = build_model(name, data.info())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(30 if name == "lenet5" else 5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()
    return model.eval(), data


def ours(model, data, block: int) -> tuple[float, float]:
    op = HessianOperator(Evaluator(copy.deepcopy(model), data, "cpu", batch_size=len(data.y)), ignore="none")
    lam = float(extreme_eigenpairs(op.matvec, op.numel, top_k=1, tol=TOL).values[0])
    matmat = op.matmat if block > 1 else None
    tr = hutchinson_trace(op.matvec, op.numel, PROBES, seed=0, matmat=matmat, block=block).value
    return lam, tr


def reference_lambda(model, data) -> float:
    """λmax to a residual of 1e-8·λ (not timed): what each way's value is compared with."""
    op = HessianOperator(Evaluator(copy.deepcopy(model), data, "cpu", batch_size=len(data.y)), ignore="none")
    r = extreme_eigenpairs(op.matvec, op.numel, top_k=1, tol=1e-8, max_iter=500)
    if not r.converged:
        raise SystemExit(f"the reference λmax did not converge in {r.iterations} products")
    return float(r.values[0])


def pyhessian(model, data) -> tuple[float, float]:
    from pyhessian import hessian

    h = hessian(copy.deepcopy(model), torch.nn.CrossEntropyLoss(), data=(data.x, data.y), cuda=False)
    lam = float(h.eigenvalues(maxIter=100, tol=TOL, top_n=1)[0][0])
    probes = h.trace(maxIter=PROBES, tol=float("-inf"))  # its stop test divides by the signed running mean: with
    if len(probes) != PROBES:  # tol=0 a negative mean ends it after 2 probes; -inf never stops early
        raise SystemExit(f"PyHessian's trace used {len(probes)} probes, not {PROBES}")
    tr = float(sum(probes) / PROBES)
    return lam, tr


def eigenthings(model, data) -> tuple[float, float]:
    import hessian_eigenthings as he

    op = he.HessianOperator(copy.deepcopy(model), [(data.x, data.y)],
                            he.supervised_loss(torch.nn.functional.cross_entropy))
    lam = float(he.power_iteration_one(op, max_iter=100, tol=TOL, seed=0)[0])
    tr = float(he.hutchinson(op, num_samples=PROBES, seed=0).estimate)
    return lam, tr


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["lenet5", "resnet20"], choices=["lenet5", "resnet20"])
    ap.add_argument("--samples", type=int, default=500, help="CIFAR-shaped images for resnet20")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--block", type=int, default=10, help="probes per batched backward (1: one at a time)")
    ap.add_argument("--markdown", help="also write the table here (docs/bench/hessian.md is the documentation's)")
    args = ap.parse_args()
    print(f"before: {machine_line()}")
    rows = []
    for name in args.cases:
        model, data = case(name, args.samples)
        ways = {"ours": lambda: ours(model, data, args.block), "PyHessian": lambda: pyhessian(model, data),
                "hessian-eigenthings": lambda: eigenthings(model, data)}
        times: dict[str, list[float]] = {k: [] for k in ways}
        values: dict[str, tuple[float, float]] = {}
        for r in range(args.repeats):
            for k, fn in ways.items():
                t = time.perf_counter()
                values[k] = fn()
                times[k].append(time.perf_counter() - t)
                log.info("%s round %d %s: %.2f s", name, r + 1, k, times[k][-1])
        exact = reference_lambda(model, data)
        n = sum(p.numel() for p in model.parameters())
        print(f"{name} ({n} parameters, {len(data.y)} samples), λmax tol {TOL:g} + trace {PROBES} probes, "
              f"median of {args.repeats} interleaved rounds:")
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            lam, tr = values[k]
            ratio = "" if k == "ours" else f"   ours/{k} = {med['ours'] / med[k]:.2f}"
            err = abs(lam - exact) / abs(exact)
            print(f"  {k:20s} {med[k]:7.2f} s ({min(v):.2f}..{max(v):.2f})  λmax {lam:.6g} (relative error "
                  f"{err:.1e})  trace {tr:.6g}{ratio}")
            rows.append((f"{name}, {len(data.y)} samples, λmax {exact:.6g}" if k == "ours" else "", k,
                         f"{med[k]:.2f} ({min(v):.2f}–{max(v):.2f})", f"{lam:.6g}", f"{err:.1e}", f"{tr:.6g}",
                         "1" if k == "ours" else f"{med['ours'] / med[k]:.2f}"))
    print(f"after: {machine_line()}")
    if args.markdown:
        write_markdown(args.markdown, "python tools/bench_hessian.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:]
                                                                          else ""),
                       ("case", "way", "seconds", "λmax", "its relative error", "trace (30 probes)", "ours / way"),
                       rows,
                       f"λmax to 1e-3 and the trace from {PROBES} Rademacher probes, cold (gradient graphs built "
                       "inside the timing), every parameter; median (min–max) of interleaved rounds in one process. "
                       "The traces are estimates from different probes (PyHessian's are not seeded). The relative "
                       "error is against λmax from Lanczos to a residual of 1e-8·λ (not timed): a power iteration "
                       "stopped by a relative change of 1e-3 can be further off than that.")


if __name__ == "__main__":
    main()
