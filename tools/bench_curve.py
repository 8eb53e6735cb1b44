"""A learned Bézier curve's training against dnn-mode-connectivity's ``train.py --curve Bezier``, side by side.

Both train the bend of a 3-point Bézier curve between the same two LeNet-5 states on the same digits data (the
project's ``lenet5``, 1×32×32), batch 128, SGD with momentum 0.9, for ``--epochs`` epochs, and evaluate the test
split after every epoch (theirs at a random t, as its ``utils.test`` does for a net without BatchNorm; ours at
t = 0.5). Theirs is its real code, imported from a checkout (``--dmc``): ``curves.CurveNet`` and ``curves.Bezier``
with a LeNet-5 written with its ``curves.Conv2d``/``curves.Linear`` (its models have none), its ``utils.train`` and
``utils.test`` with ``.cuda(async=True)`` removed (the only change: that line is a syntax error on Python ≥ 3.7
and there is no GPU), its learning-rate schedule, regulariser and checkpoint saves, and its DataLoader settings
(``--num-workers`` 4, ``pin_memory``; also measured with 0 workers, its loop alone). Ours is
:func:`landscape.run.curves.train_curve` (checkpoint per epoch in an HDF5 trajectory, resumable).

Each round runs every case in a fresh process (interleaved); the time is the training alone (after imports and
data loading: from the curve's construction to its last checkpoint), median and range of the rounds.

    python tools/bench_curve.py --dmc /path/to/dnn-mode-connectivity --epochs 20 --repeats 3
    python tools/bench_curve.py --dmc /path/to/dnn-mode-connectivity --busy 2     # loaded: 2 busy processes beside

With ``--busy``, ours runs with the OpenMP wait policy that landscape's command line chooses on a loaded machine
(passive: ``landscape/__init__.py``; the child imports torch before landscape, so it is set in its environment),
theirs as shipped.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from benchlib import machine_line, write_markdown  # noqa: E402


def _data():
    import torch

    from landscape.core.data import load_data

    tr, te = load_data("digits")
    torch.manual_seed(0)
    from landscape.core.models import build_model

    a, b = build_model("lenet5").state_dict(), build_model("lenet5").state_dict()
    return tr, te, a, b


def run_ours(epochs: int, out: Path) -> float:
    from landscape.core.models import build_model
    from landscape.run.config import CurveConfig
    from landscape.run.curves import train_curve

    tr, te, a, b = _data()
    cfg = CurveConfig(epochs=epochs, lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=128)
    t = time.perf_counter()
    train_curve(build_model("lenet5"), "bezier", a, b, tr, te, cfg, out / "ours.h5", device="cpu", progress=False)
    return time.perf_counter() - t


def _their_modules(dmc: Path):
    """Their curves.py as it is; their utils.py with ``.cuda(async=True)`` removed (CPU, Python 3)."""
    sys.path.insert(0, str(dmc))
    import curves  # noqa: F401 - theirs

    utils = types.ModuleType("utils")
    source = (dmc / "utils.py").read_text()
    for name in ("input", "target"):
        source = source.replace(f"{name} = {name}.cuda(async=True)", f"{name} = {name}")
    exec(compile(source, str(dmc / "utils.py"), "exec"), utils.__dict__)
    sys.modules["utils"] = utils
    return curves, utils


def run_theirs(epochs: int, out: Path, dmc: Path, workers: int) -> float:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from landscape.core.models import build_model

    curves, utils = _their_modules(dmc)

    class LeNet5Curve(nn.Module):  # the project's lenet5 in their curve layers
        def __init__(self, num_classes, fix_points):
            super().__init__()
            self.conv1 = curves.Conv2d(1, 6, kernel_size=3, fix_points=fix_points)
            self.conv2 = curves.Conv2d(6, 16, kernel_size=3, fix_points=fix_points)
            self.fc1 = curves.Linear(16 * 6 * 6, 120, fix_points=fix_points)
            self.fc2 = curves.Linear(120, 84, fix_points=fix_points)
            self.fc3 = curves.Linear(84, num_classes, fix_points=fix_points)

        def forward(self, x, coeffs_t):
            x = F.max_pool2d(F.relu(self.conv1(x, coeffs_t)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x, coeffs_t)), 2)
            x = torch.flatten(x, 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x, coeffs_t)), coeffs_t)), coeffs_t)

    tr, te, a, b = _data()
    loaders = {name: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(d.x, d.y), batch_size=128,
                                                 shuffle=name == "train", num_workers=workers, pin_memory=True)
               for name, d in (("train", tr), ("test", te))}
    t = time.perf_counter()  # from the curve's construction on, as ours
    torch.manual_seed(1)  # train.py's default --seed
    model = curves.CurveNet(10, curves.Bezier, LeNet5Curve, 3, True, True)
    for state, k in ((a, 0), (b, 2)):
        base = build_model("lenet5")
        base.load_state_dict(state)
        model.import_base_parameters(base, k)
    model.init_linear()
    lr, wd = 0.01, 1e-4

    def schedule(epoch: int) -> float:  # train.py's learning_rate_schedule
        alpha = epoch / epochs
        factor = 1.0 if alpha <= 0.5 else (1.0 - (alpha - 0.5) / 0.4 * 0.99 if alpha <= 0.9 else 0.01)
        return factor * lr

    regularizer = curves.l2_regularizer(wd)
    optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=lr, momentum=0.9,
                                weight_decay=0.0)
    utils.save_checkpoint(str(out), 0, model_state=model.state_dict(), optimizer_state=optimizer.state_dict())
    for epoch in range(1, epochs + 1):
        utils.adjust_learning_rate(optimizer, schedule(epoch))
        utils.train(loaders["train"], model, optimizer, F.cross_entropy, regularizer)
        utils.test(loaders["test"], model, F.cross_entropy, regularizer)
    utils.save_checkpoint(str(out), epochs, model_state=model.state_dict(), optimizer_state=optimizer.state_dict())
    return time.perf_counter() - t


def child(case: str, epochs: int, out: str, dmc: str) -> None:
    import importlib

    importlib.import_module("torch._dynamo")  # imported by the first optimiser either side: an import, not training

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    seconds = (run_ours(epochs, o) if case == "ours" else
               run_theirs(epochs, o, Path(dmc), int(case.split(":")[1])))
    print(json.dumps({"seconds": seconds}))


def checkout(dmc: Path, tmp: Path) -> Path:
    """A checkout, or a git directory (bare or mirror) exported to a temporary folder."""
    if (dmc / "curves.py").is_file():
        return dmc
    dest = tmp / "dmc"
    dest.mkdir()
    archive = subprocess.run(["git", "--git-dir", str(dmc), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dmc", required=False, help="a checkout (or git directory) of timgaripov/dnn-mode-connectivity")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown", help="also write the table here (docs/bench/curve.md is the documentation's)")
    ap.add_argument("--busy", type=int, default=0, help="CPU-bound processes of someone else running beside every "
                                                        "measurement (a loaded machine)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2], args.child[3])
        return
    if not args.dmc:
        raise SystemExit("--dmc: a checkout of https://github.com/timgaripov/dnn-mode-connectivity is needed")
    tmp = Path(tempfile.mkdtemp())
    dmc = checkout(Path(args.dmc), tmp)
    cases = {"ours": "landscape train_curve", "theirs:4": "dnn-mode-connectivity, 4 loader workers (default)",
             "theirs:0": "dnn-mode-connectivity, 0 loader workers"}
    times: dict[str, list[float]] = {c: [] for c in cases}
    print(f"before: {machine_line()}" + (f"; {args.busy} busy process(es) beside every measurement"
                                          if args.busy else ""), flush=True)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        _rounds(args, cases, times, tmp, dmc)
    finally:
        for b in busy:
            b.kill()
    print(f"after: {machine_line()}", flush=True)
    med = {c: statistics.median(v) for c, v in times.items()}
    rows = [(label, f"{med[c]:.2f} ({min(times[c]):.2f}–{max(times[c]):.2f})",
             f"{med['ours'] / med[c]:.2f}" if c != "ours" else "1")
            for c, label in cases.items()]
    print(f"\n{'case':<52} {'seconds (min-max)':>22} {'ours / this':>12}")
    for row in rows:
        print(f"{row[0]:<52} {row[1]:>22} {row[2]:>12}")
    if args.markdown:
        write_markdown(args.markdown, "python tools/bench_curve.py --dmc DMC " + " ".join(
            a for a in sys.argv[1:] if not a.startswith("--dmc") and a != args.dmc),
            ("training", "seconds, median (min–max)", "ours / this"), rows,
            f"Bézier curve (3 points) between two LeNet-5 states on digits, {args.epochs} epochs, batch 128, "
            f"a test evaluation per epoch; {args.repeats} interleaved rounds, each case in a fresh process, "
            "the training alone timed" + (f"; {args.busy} CPU-bound processes running beside every measurement."
                                          if args.busy else "."))


def _rounds(args: argparse.Namespace, cases: dict[str, str], times: dict[str, list[float]], tmp: Path,
            dmc: Path) -> None:
    for r in range(args.repeats):
        for c in cases:
            out = tmp / f"{c.replace(':', '')}-{r}"
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            if c == "ours" and args.busy and "OMP_WAIT_POLICY" not in os.environ:
                env["OMP_WAIT_POLICY"] = "PASSIVE"  # what landscape's command line chooses on a loaded machine
            p = subprocess.run([sys.executable, __file__, "--child", c, str(args.epochs), str(out), str(dmc)],
                               capture_output=True, text=True, env=env)
            if p.returncode:
                raise SystemExit(f"{c} failed:\n{p.stderr}")
            times[c].append(json.loads(p.stdout.strip().splitlines()[-1])["seconds"])
            print(f"round {r + 1}: {c:<9} {times[c][-1]:7.2f} s", flush=True)


if __name__ == "__main__":
    main()
