"""landscape's default surface against the peers' loops, side by side in one run, whole processes.

For each case (model, data) and grid (N x N) it runs, in interleaved rounds, as separate processes:

- ours: ``landscape surface`` at its defaults (``points_per_batch = auto``, the evaluation batch tuned), on the
  same arrays, with 1 and 2 MPI ranks (``mpiexec -n 2``);
- reference: tomgoldstein/loss-landscape's loop (tools/peers.py ``reference``: θ on the host,
  ``load_state_dict``, a pass of its DataLoader per point (2 workers started each pass, its defaults), a static
  split over the ranks, a full-array reduce and an HDF5
  rewrite after every point), with 1 and 2 ranks;
- snake: loss-landscapes' in-place snake walk (tools/peers.py ``snake``), one process.

The case ``objects`` times the functions on objects in one process, in interleaved rounds: ``ls.surface(model,
loader)`` (a DataLoader of the digits test set, LeNet-5) against the real loss-landscapes package's
``random_plane(model, Loss(...), steps=N)`` on the same model object and data (``pip install --no-deps
loss-landscapes``), as the package documents it and inside ``torch.no_grad()``; whole calls (data, directions, the
grid; ours also its HDF5 file), median of the rounds.

Wall time covers the whole process (imports, data, directions, the grid, the file); the peers' time leaves out
the import of landscape's model factory, which they use only to build the same model. It prints the seconds of
each and the ratios ours / peer (below 1: faster), then the points/s of the grid alone (ours: the run
record's, calibration and the file's writes included; the peers': their loops) and their ratios (above 1:
faster). 2 ranks on this 2-core machine share its cores: ours with 2 ranks is compared with the reference with
2 ranks, and with ours and the snake walk on 1.

    python tools/bench_peer.py                                      # mlp, lenet5 at 3, 11, 51; resnet20 at 3
    python tools/bench_peer.py --cases lenet5 --grids 3 11 --repeats 3
    python tools/bench_peer.py --cases objects --grids 25 51          # ls.surface vs loss-landscapes
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bytecode goes to a temporary prefix, never into the source tree (this process and the ones it starts)
PYCACHE = tempfile.mkdtemp(prefix="landscape-bench-pycache-")
sys.pycache_prefix = PYCACHE

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from benchlib import cifar_shaped, header, machine_line, write_markdown  # noqa: E402

from landscape.core.data import load_data  # noqa: E402
from landscape.core.models import build_model  # noqa: E402
from landscape.run.mpi import matching_mpiexec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name: (model, model kwargs, data, grids by default)
    "mlp": ("mlp", {"depth": 5, "width": 20}, "spiral", (3, 11, 51)),
    "lenet5": ("lenet5", {}, "digits", (3, 11, 51)),
    "resnet20": ("resnet20", {}, "cifar-shaped", (3,)),
    "objects": ("lenet5", {}, "digits", (25, 51)),  # in one process: ls.surface against loss-landscapes
}


def objects_call(way: str, n: int) -> float:
    """One whole call in this process (a fresh one): ``ours`` is ``ls.surface(model, loader)``, ``peer`` and
    ``peer-no-grad`` loss-landscapes' ``random_plane`` as documented and inside ``torch.no_grad()``; the model and
    the data are built first and not timed. Returns the call's seconds."""
    import logging

    import landscape as ls
    logging.getLogger("landscape").setLevel(logging.WARNING)
    _, test = load_data("digits")
    torch.manual_seed(0)
    model = build_model("lenet5", test.info()).eval()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(test.x, test.y), batch_size=128)
    if way == "ours":
        t = time.perf_counter()
        ls.surface(model, loader, alpha=(-1, 1, n), beta=(-1, 1, n), progress=False)
        return time.perf_counter() - t
    if way == "forward":  # n² eager forwards over the data (the loader's batches, resident), the model as it is
        xs = [x for x, _ in loader]
        seconds = []
        with torch.no_grad():
            for k in range(25):
                t = time.perf_counter()
                for x in xs:
                    model(x)
                if k >= 5:  # after a warm-up
                    seconds.append(time.perf_counter() - t)
        return statistics.median(seconds) * n * n
    import loss_landscapes
    import loss_landscapes.metrics
    t = time.perf_counter()
    x, y = next(iter(torch.utils.data.DataLoader(loader.dataset, batch_size=len(loader.dataset))))
    metric = loss_landscapes.metrics.Loss(torch.nn.CrossEntropyLoss(), x, y)
    with torch.no_grad() if way == "peer-no-grad" else torch.enable_grad():
        loss_landscapes.random_plane(model, metric, distance=2, steps=n, normalization="filter", deepcopy_model=True)
    return time.perf_counter() - t


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def objects_case(grids: list[int], repeats: int, env: dict, markdown: str | None = None) -> None:
    """``ls.surface(model, loader)`` against loss-landscapes' ``random_plane`` on the same model and data, each
    call in a process of its own (neither inherits the other's process state), in interleaved rounds."""
    try:
        import loss_landscapes  # noqa: F401
    except ImportError:
        raise SystemExit("the objects case needs the real package: pip install --no-deps loss-landscapes")
    ways = ("ours", "peer", "peer-no-grad", "forward")
    print(f"\n{'objects':<10} {'grid':>7} " + " ".join(f"{k:>22}" for k in ways)
          + "   (seconds of the whole call, lenet5/digits, median (min-max) of interleaved rounds)")
    rows = []
    for n in grids:
        times: dict[str, list[float]] = {k: [] for k in ways}
        for _ in range(repeats):
            for k in ways:
                r = subprocess.run([sys.executable, __file__, "--objects-call", k, str(n)], env=env,
                                   capture_output=True, text=True)
                if r.returncode:
                    raise SystemExit(f"{k} {n} failed:\n{r.stderr[-3000:]}")
                times[k].append(float(r.stdout.split()[-1]))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{'objects':<10} {f'{n}x{n}':>7} " + " ".join(
            f"{med[k]:.2f} ({min(times[k]):.2f}-{max(times[k]):.2f})".rjust(22) for k in ways), flush=True)
        print(f"{'':<10} {'ratio':>7} ours / loss-landscapes {med['ours'] / med['peer']:.2f}, "
              f"in no_grad {med['ours'] / med['peer-no-grad']:.2f}  (below 1: faster); ours / {n * n} eager "
              f"forwards {med['ours'] / med['forward']:.2f}", flush=True)
        rows.append((f"{n}×{n}", *(f"{med[k]:.2f} ({min(times[k]):.2f}–{max(times[k]):.2f})" for k in ways),
                     f"{med['ours'] / med['peer']:.2f}", f"{med['ours'] / med['peer-no-grad']:.2f}",
                     f"{med['ours'] / med['forward']:.2f}"))
    if markdown:
        write_markdown(markdown, "python tools/bench_peer.py --cases objects", (
            "grid", "ls.surface(model, loader), s", "random_plane, s", "random_plane in no_grad, s",
            "N² eager forwards, s", "ours / random_plane", "ours / no_grad", "ours / N² forwards"), rows,
            f"LeNet-5 on the 360 test digits; each call a fresh process, the model and data built first and not "
            f"timed; median (min–max) of {repeats} interleaved rounds; N² eager forwards: the median time of one "
            f"forward over the loader's batches (no_grad, after a warm-up) times the points. "
            f"loss-landscapes {_version('loss-landscapes')}, "
            "the real package (pip install --no-deps loss-landscapes).")


def fixtures(tmp: Path, name: str, n_cifar: int) -> dict:
    model, kwargs, data, _ = CASES[name]
    test = cifar_shaped(n_cifar) if data == "cifar-shaped" else load_data(data)[1]
    x, y = test.x.contiguous(), test.y.contiguous()
    torch.save((x, y), tmp / f"{name}_data.pt")
    np.save(tmp / f"{name}_x.npy", x.numpy())
    np.save(tmp / f"{name}_y.npy", y.numpy())
    torch.manual_seed(0)
    torch.save(build_model(model, test.info(), **kwargs).state_dict(), tmp / f"{name}_c.pt")
    return {"n": len(y)}


def commands(tmp: Path, name: str, grid: int, mpiexec: str) -> dict[str, list[str]]:
    model, kwargs, _, _ = CASES[name]
    kw = [f"model.kwargs.{k}={v}" for k, v in kwargs.items()]
    ours = [sys.executable, "-m", "landscape", "surface", "--model", model, "--data", "arrays",
            f"data.kwargs.x={tmp / f'{name}_x.npy'}", f"data.kwargs.y={tmp / f'{name}_y.npy'}",
            "--center", str(tmp / f"{name}_c.pt"), "--alpha", f"-1:1:{grid}", "--beta", f"-1:1:{grid}",
            "--out", str(tmp / "ours.h5"), "--no-progress", "--device", "cpu", *kw]
    peer = [sys.executable, str(ROOT / "tools" / "peers.py"), "--model", model, "--kwargs", json.dumps(kwargs),
            "--state", str(tmp / f"{name}_c.pt"), "--data", str(tmp / f"{name}_data.pt"), "--grid", str(grid)]
    return {"ours 1 rank": ours, "ours 2 ranks": [mpiexec, "-n", "2", *ours],
            "reference 1 rank": [*peer[:2], "reference", *peer[2:], "--out", str(tmp / "ref.h5")],
            "reference 2 ranks": [mpiexec, "-n", "2", *peer[:2], "reference", *peer[2:], "--out", str(tmp / "ref.h5")],
            "snake": [*peer[:2], "snake", *peer[2:], "--out", str(tmp / "snake.npy")]}


CALIBRATION: dict[str, list[float]] = {}  # ours: the seconds its calibrations took, per launch


def wall(cmd: list[str], tmp: Path, env: dict) -> tuple[float, float]:
    """Seconds of the whole process, and the seconds of its grid alone (ours: the run record's, which include
    calibration and the file's writes; a peer's: its loop, directions included)."""
    for f in ("ours.h5", "ours.h5.lock", "ref.h5"):
        (tmp / f).unlink(missing_ok=True)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    if "peers.py" in " ".join(cmd):  # leave out the import of landscape's model factory
        report = json.loads(re.findall(r"\{[^{}]*\}", r.stdout)[-1])
        return seconds - report["import_landscape"], report["grid_seconds"]
    spent = [max(0.0, float(v)) for v in re.findall(r"([-0-9.]+) s more than that way takes", r.stderr)]
    CALIBRATION.setdefault("1 rank" if cmd[0] == sys.executable else f"{cmd[2]} ranks", []).append(sum(spent))
    with h5py.File(tmp / "ours.h5", "r") as f:
        return seconds, float(json.loads(f.attrs["last_run"])["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--grids", nargs="+", type=int, help="grid sizes N (N x N); default: per case")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds (the median is printed)")
    ap.add_argument("--n-cifar", type=int, default=1000)
    ap.add_argument("--busy", type=int, default=0, help="CPU-bound processes of someone else running beside every "
                                                       "measurement (a loaded machine)")
    ap.add_argument("--objects-call", nargs=2, metavar=("WAY", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--markdown", help="the objects case: also write its table to this Markdown file "
                                       "(docs/bench/objects.md is the one the documentation shows)")
    args = ap.parse_args()
    if args.objects_call:
        print(f"{objects_call(args.objects_call[0], int(args.objects_call[1])):.6f}")
        return
    print(header(torch.device("cpu")))
    print(f"before: {machine_line()}")
    mpiexec = matching_mpiexec()  # not Debian's Open MPI mpiexec, first on PATH, with the MPICH wheel's mpi4py
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install mpi4py mpich")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               PYTHONPYCACHEPREFIX=PYCACHE)
    # an installed package has its bytecode cached; where PYTHONDONTWRITEBYTECODE is set, every process would
    # compile landscape's sources again (~0.2 s here), a cost no user pays: cache it (under the temporary
    # prefix, not in the source tree), as for torch
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-c", "import compileall, landscape, os; "
                    "compileall.compile_dir(os.path.dirname(landscape.__file__), quiet=1)"], env=env, check=True)
    tmp = Path(tempfile.mkdtemp())
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        _cases(args, tmp, env, mpiexec)
    finally:
        for b in busy:
            b.kill()
    print(f"after: {machine_line()}")


def _cases(args: argparse.Namespace, tmp: Path, env: dict, mpiexec: str) -> None:
    if args.busy:
        print(f"{args.busy} busy process(es) beside every measurement")
    print(f"{'case':<10} {'grid':>7} {'ours 1':>8} {'ours 2':>8} {'ref 1':>8} {'ref 2':>8} {'snake':>8} "
          f"{'1/ref1':>7} {'2/ref2':>7} {'1/snake':>8} {'2/snake':>8} {'ours2/1':>8}  (seconds, whole processes; "
          "ratios ours/peer, and ours on 2 ranks / on 1)")
    for name in args.cases:
        if name == "objects":
            objects_case(args.grids or list(CASES[name][3]), max(args.repeats, 3), env, args.markdown)
            continue
        fixtures(tmp, name, args.n_cifar)
        for grid in args.grids or CASES[name][3]:
            cmds = commands(tmp, name, grid, mpiexec)
            times: dict[str, list[float]] = {k: [] for k in cmds}
            grids: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(args.repeats):
                for k, cmd in cmds.items():
                    whole, alone = wall(cmd, tmp, env)
                    times[k].append(whole)
                    grids[k].append(alone)
            t = {k: statistics.median(v) for k, v in times.items()}
            g = {k: statistics.median(v) for k, v in grids.items()}
            print(f"{name:<10} {f'{grid}x{grid}':>7} {t['ours 1 rank']:>8.2f} {t['ours 2 ranks']:>8.2f} "
                  f"{t['reference 1 rank']:>8.2f} {t['reference 2 ranks']:>8.2f} {t['snake']:>8.2f} "
                  f"{t['ours 1 rank'] / t['reference 1 rank']:>7.2f} {t['ours 2 ranks'] / t['reference 2 ranks']:>7.2f} "
                  f"{t['ours 1 rank'] / t['snake']:>8.2f} {t['ours 2 ranks'] / t['snake']:>8.2f} "
                  f"{t['ours 2 ranks'] / t['ours 1 rank']:>8.2f}", flush=True)
            print(f"{'':<10} {'spread':>7} " + " ".join(f"{min(v):.2f}..{max(v):.2f}" for v in times.values())
                  + "  (min..max of the rounds, seconds)", flush=True)
            rates = {k: grid * grid / max(v, 1e-9) for k, v in g.items()}
            print(f"{'':<10} {'grid':>7} " + " ".join(f"{rates[k]:>8.0f}" for k in cmds)
                  + f" {rates['ours 1 rank'] / rates['reference 1 rank']:>7.2f}"
                  f" {rates['ours 2 ranks'] / rates['reference 2 ranks']:>7.2f}"
                  f" {rates['ours 1 rank'] / rates['snake']:>8.2f} {rates['ours 2 ranks'] / rates['snake']:>8.2f}"
                  "  (points/s of the grid alone; ratios ours/peer, above 1 is faster)", flush=True)
            print(f"{'':<10} {'calib.':>7} " + ", ".join(
                f"{k}: {statistics.median(v):.2f} s ({100 * statistics.median(v) / max(t['ours 1 rank'], 1e-9):.0f}%"
                " of ours on 1 rank)" for k, v in CALIBRATION.items())
                + "  (calibration's cost: its seconds beyond what its points take the way it chose)",
                flush=True)
            CALIBRATION.clear()


if __name__ == "__main__":
    main()
