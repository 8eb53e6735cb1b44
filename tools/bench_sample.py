"""A k-dimensional sample against a 2-D grid of the same number of points, side by side in one run.

Both run as ``landscape sample`` / ``landscape surface`` processes on ``mpiexec -n RANKS`` (the mpiexec that
matches mpi4py), on the same model and data, in interleaved rounds; it prints the points/s of each grid (from the
files' run records: calibration and writes included) and the ratio sample / plane (1.0: as fast). The issue's
case is a 4-D grid of 21⁴ points against 441 × 441.

    python tools/bench_sample.py                           # mlp on spiral, 21^4 vs 441^2, 2 ranks
    python tools/bench_sample.py --n 11 --model lenet5 --data digits --ranks 2 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py

sys.dont_write_bytecode = True
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.run.mpi import matching_mpiexec  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from benchlib import write_markdown  # noqa: E402

log = logging.getLogger("bench_sample")


def _rate(path: Path) -> float:
    with h5py.File(path, "r") as f:
        runs = json.loads(f.attrs["runs"])
    return sum(r["points"] for r in runs) / sum(r["seconds"] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=21, help="points per axis of the k-D grid")
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--data", default="spiral")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--markdown", help="also write the table here (docs/bench/sample.md is the documentation's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    side = round((args.n ** args.k) ** 0.5)
    mpiexec = matching_mpiexec()
    rates: dict[str, list[float]] = {"sample": [], "plane": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        common = ["--model", args.model, "--data", args.data, "--output", str(out), "--no-progress", "-q"]
        subprocess.run([sys.executable, "-m", "landscape", "train", "--out", str(out / "trajectory.h5"),
                        "--model", args.model, "--data", args.data, "--no-progress", "-q", "train.epochs=2"],
                       check=True, cwd=ROOT)
        for r in range(args.repeats):
            for kind in ("sample", "plane"):
                target = out / f"{kind}{r}.h5"
                cmd = (["sample", "--k", str(args.k), f"--range=-1:1:{args.n}"] if kind == "sample" else
                       ["surface", f"--alpha=-1:1:{side}", f"--beta=-1:1:{side}"])
                subprocess.run([mpiexec, "-n", str(args.ranks), sys.executable, "-m", "landscape", *cmd, *common,
                                "--out", str(target)], check=True, cwd=ROOT)
                rates[kind].append(_rate(target))
                log.info("round %d %s: %.0f points/s", r + 1, kind, rates[kind][-1])
    s, p = statistics.median(rates["sample"]), statistics.median(rates["plane"])
    print(f"{args.model}/{args.data}, {args.ranks} ranks: {args.k}-D grid {args.n}^{args.k} = {args.n ** args.k} points "
          f"{s:.0f} points/s ({min(rates['sample']):.0f}..{max(rates['sample']):.0f}); 2-D grid {side}x{side} = "
          f"{side * side} points {p:.0f} points/s ({min(rates['plane']):.0f}..{max(rates['plane']):.0f}); "
          f"ratio sample/plane {s / p:.3f} (median of {args.repeats} interleaved rounds)")
    if args.markdown:
        write_markdown(args.markdown, "python tools/bench_sample.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:]
                                                                         else ""),
                       ("grid", "points", f"points/s on mpiexec -n {args.ranks}", "sample / plane"),
                       [(f"{args.k}-D sample, {args.n}^{args.k}", args.n ** args.k,
                         f"{s:.0f} ({min(rates['sample']):.0f}–{max(rates['sample']):.0f})", f"{s / p:.2f}"),
                        (f"2-D surface, {side}×{side}", side * side,
                         f"{p:.0f} ({min(rates['plane']):.0f}–{max(rates['plane']):.0f})", "1")],
                       f"{args.model} on {args.data}; median (min–max) of {args.repeats} interleaved rounds, each a "
                       "whole `landscape sample` / `landscape surface` process (points/s from the file's run "
                       "record: calibration and writes included).")


if __name__ == "__main__":
    main()
