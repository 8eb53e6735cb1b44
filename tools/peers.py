"""Faithful re-implementations of the peers' surface loops, run as their own processes by tools/bench_peer.py.

- ``reference``: tomgoldstein/loss-landscape's ``crunch`` loop. Directions are random, filter-normalised, biases
  and BatchNorm left at zero; for each point of a static split of the grid over the MPI ranks: θ built on the
  host tensor by tensor, ``net.load_state_dict``, one pass of its ``DataLoader`` over the evaluation set (batch 128
  and ``num_workers`` 2, its ``--batch_size`` and ``--threads`` defaults: the loader is made once and its workers,
  not persistent, start again for every pass, as in its ``crunch``), loss ``criterion(out, y).item() * batch`` and correct counts per batch; after every point every rank joins a
  reduction of the full loss and accuracy arrays, and rank 0 rewrites the whole HDF5 datasets and flushes.
- ``snake``: loss-landscapes' ``random_plane``: the model's parameters are walked in place over the plane in a
  snake order (one step along d2 per point, along d1 at the end of each row), the metric evaluated on the whole
  evaluation set as one batch with ``.item()`` per point; a single process.

The model is built by landscape's own factory (the same module as ours, weights from the same file); the time
that importing landscape takes is measured and reported so that the bench can leave it out of the peers' wall time,
and so is the time of the loop itself (directions and the grid, ``grid_seconds``).

    python tools/peers.py reference --model lenet5 --state c.pt --data d.pt --grid 11 --out ref.h5
"""
from __future__ import annotations

import argparse
import json
import time

T0 = time.perf_counter()
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

T1 = time.perf_counter()
from landscape.core.models import build_model  # noqa: E402 - not part of a peer's cost: measured and left out

IMPORT_LANDSCAPE = time.perf_counter() - T1


def filter_normalised(net: torch.nn.Module, seed: int) -> list[torch.Tensor]:
    """The reference's random direction: Gaussian, each filter scaled to the norm of the weights' filter,
    1-D tensors (biases, BatchNorm) zero."""
    torch.manual_seed(seed)
    out = []
    for p in net.parameters():
        d = torch.randn(p.shape)
        if p.dim() <= 1:
            d.fill_(0)
        else:
            for df, wf in zip(d, p.data):
                df.mul_(wf.norm() / (df.norm() + 1e-10))
        out.append(d)
    return out


def reference(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, grid: int, out: str, batch: int,
              threads: int = 2) -> int:
    comm = None
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None
    except ImportError:
        pass
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    w = [p.data.clone() for p in net.parameters()]
    d1, d2 = filter_normalised(net, 1), filter_normalised(net, 2)
    names = [n for n, _ in net.named_parameters()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    coords = np.linspace(-1, 1, grid)
    losses, accs = -np.ones((grid, grid)), -np.ones((grid, grid))
    f = None
    if rank == 0:
        f = h5py.File(out, "w")
        f["train_loss"], f["train_acc"] = losses, accs
    points = np.array_split(np.arange(grid * grid), size)[rank]  # static split
    counts = max(len(p) for p in np.array_split(np.arange(grid * grid), size))
    criterion = torch.nn.CrossEntropyLoss()
    net.eval()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False, num_workers=threads)
    for k in range(counts):
        if k < len(points):
            i, j = divmod(int(points[k]), grid)
            for n, wi, a, b in zip(names, w, d1, d2):  # θ on the host, then load_state_dict
                state[n] = wi + float(coords[i]) * a + float(coords[j]) * b
            net.load_state_dict(state)
            total, correct, seen = 0.0, 0, 0
            with torch.no_grad():
                for xb, yb in loader:
                    o = net(xb)
                    total += criterion(o, yb).item() * len(yb)
                    correct += int(o.argmax(1).eq(yb).sum().item())
                    seen += len(yb)
            losses[i, j], accs[i, j] = total / seen, correct / seen
        if comm is not None:  # every point: the full arrays reduced over the ranks
            from mpi4py import MPI
            comm.Allreduce(MPI.IN_PLACE, losses, op=MPI.MAX)
            comm.Allreduce(MPI.IN_PLACE, accs, op=MPI.MAX)
        if f is not None:  # and the whole datasets rewritten
            f["train_loss"][:] = losses
            f["train_acc"][:] = accs
            f.flush()
    if f is not None:
        f.close()
    return len(points) if rank == 0 else -1


def snake(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, grid: int, out: str) -> int:
    params = [p for p in net.parameters()]
    d1, d2 = filter_normalised(net, 1), filter_normalised(net, 2)
    step = 2.0 / (grid - 1)
    criterion = torch.nn.CrossEntropyLoss()
    net.eval()
    losses = np.empty((grid, grid))
    with torch.no_grad():
        for p, a, b in zip(params, d1, d2):  # start at the corner (-1, -1)
            p.sub_(a).sub_(b)
        for i in range(grid):
            cols = range(grid) if i % 2 == 0 else range(grid - 1, -1, -1)
            for n, j in enumerate(cols):
                losses[i, j] = criterion(net(x), y).item()
                if n < grid - 1:
                    for p, b in zip(params, d2):
                        p.add_(b, alpha=step if i % 2 == 0 else -step)
            for p, a in zip(params, d1):
                p.add_(a, alpha=step)
    np.save(out, losses)
    return grid * grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("loop", choices=("reference", "snake"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--kwargs", default="{}", help="model factory arguments (JSON)")
    ap.add_argument("--state", required=True, help="the centre's state dict (.pt)")
    ap.add_argument("--data", required=True, help="(x, y) tensors (.pt)")
    ap.add_argument("--grid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="the reference's DataLoader workers (its --threads)")
    args = ap.parse_args()
    x, y = torch.load(args.data, weights_only=True)
    info = {"in_channels": int(x.shape[1]) if x.dim() == 4 else 1, "num_classes": int(y.max()) + 1,
            "input_dim": int(x.shape[1]) if x.dim() == 2 else None}
    net = build_model(args.model, info, **json.loads(args.kwargs))
    net.load_state_dict(torch.load(args.state, weights_only=True))
    t = time.perf_counter()
    n = (reference(net, x, y, args.grid, args.out, args.batch, args.threads) if args.loop == "reference"
         else snake(net, x, y, args.grid, args.out))
    if n >= 0:  # rank 0 reports
        print(json.dumps({"points": n, "seconds": time.perf_counter() - T0, "import_landscape": IMPORT_LANDSCAPE,
                          "grid_seconds": time.perf_counter() - t}), flush=True)


if __name__ == "__main__":
    main()
