"""2-D loss surfaces θ(α, β) = θ* + α·d₁ + β·d₂: the plane evaluator and the serial runner.

:class:`PlaneEvaluator` keeps θ*, d₁ and d₂ on the device and forms each point in place with
fused multi-tensor ops; for small models it evaluates several points at once with
``torch.func.functional_call`` + ``vmap`` over stacked parameters (``points_per_batch``,
chosen by timing real grid points when ``"auto"``). :func:`compute_surface` drives it over the
pending points of a :class:`SurfaceStore`, flushing in batches; rerunning resumes.

Example:
    >>> import torch
    >>> from landscape.data import load_data
    >>> from landscape.evaluate import Evaluator
    >>> from landscape.models import build_model
    >>> _, te = load_data("spiral", n_per_class=30)
    >>> ev = Evaluator(build_model("mlp", te.info()), te, "cpu")
    >>> c = ev.get_flat(); d1 = torch.randn_like(c); d2 = torch.randn_like(c)
    >>> pe = PlaneEvaluator(ev, c, d1, d2)
    >>> loss, acc = pe.evaluate_points(np.array([0.0, 0.5]), np.array([0.0, -0.5]))
    >>> bool(abs(loss[0] - ev.evaluate(pe.state_at(0.0, 0.0)).loss) < 1e-5)
    True
"""
from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from pathlib import Path

    from .config import JobConfig, SurfaceConfig
    from .trajectory import TrajectoryStore

from .errors import (ConfigError, Interrupted, LandscapeError, check_interrupted,  # noqa: F401
                     interrupt_pending, interruptible)
from .evaluate import Evaluator
from .store import SurfaceStore, open_hdf5

__all__ = ["PlaneEvaluator", "compute_surface", "parse_points_per_batch", "Interrupted", "interruptible", "run_surface_job",
           "plan_directions", "resolve_center", "project_onto"]

log = logging.getLogger(__name__)

# parameter-count limit under which the batched (vmap) mode is considered
_VMAP_MAX_NUMEL = 5_000_000


class PlaneEvaluator:
    """Evaluates points of the plane θ* + α·d₁ + β·d₂ (d₂ may be None for a line)."""

    def __init__(self, evaluator: Evaluator, center: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor | None,
                 points_per_batch: int | str = 1):
        self.ev = evaluator
        dev = evaluator.device
        spec = evaluator.spec
        self.center, self.d1 = center.to(dev, torch.float32), d1.to(dev, torch.float32)
        self.d2 = d2.to(dev, torch.float32) if d2 is not None else torch.zeros_like(self.d1)
        for name, v in (("center", self.center), ("d1", self.d1), ("d2", self.d2)):
            if v.numel() != spec.numel:
                raise LandscapeError(f"{name} has {v.numel()} values, the model's state has {spec.numel}")
        evaluator.set_flat(self.center)
        # only tensors some direction moves are rewritten per point
        self.names, self.targets, self.c, self.a, self.b = [], [], [], [], []
        for (name, t), lo, hi in zip(evaluator.state.items(), spec.offsets[:-1], spec.offsets[1:]):
            if not t.is_floating_point():
                continue
            v1, v2 = self.d1[lo:hi].view(t.shape), self.d2[lo:hi].view(t.shape)
            if bool(v1.any()) or bool(v2.any()):
                self.names.append(name)
                self.targets.append(t)
                self.c.append(self.center[lo:hi].view(t.shape).to(t.dtype))
                self.a.append(v1.to(t.dtype))
                self.b.append(v2.to(t.dtype))
        self.numel_moved = sum(t.numel() for t in self.targets)
        self.auto = points_per_batch == "auto"
        self.batch_mode, self.points_per_batch = parse_points_per_batch(points_per_batch)
        self._replicas: list[PlaneEvaluator] = []
        self._pool, self._pool_size = None, 0

    # -- one point at a time ----------------------------------------------------------------------
    @torch.no_grad()
    def set_point(self, alpha: float, beta: float) -> None:
        """Write θ* + α·d₁ + β·d₂ into the model in place."""
        torch._foreach_copy_(self.targets, self.c)
        if alpha:
            torch._foreach_add_(self.targets, self.a, alpha=float(alpha))
        if beta:
            torch._foreach_add_(self.targets, self.b, alpha=float(beta))

    def state_at(self, alpha: float, beta: float) -> dict[str, torch.Tensor]:
        """θ(α, β) as a state dict (for checks and exports; the engine itself never builds one)."""
        v = self.center + alpha * self.d1 + beta * self.d2
        from .params import unflatten_state

        return unflatten_state(v.cpu(), self.ev.spec)

    # -- several points at once -------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate_batched(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from torch.func import functional_call, vmap

        ev, dev = self.ev, self.ev.device
        p = len(alphas)
        a = torch.as_tensor(alphas, dtype=torch.float32, device=dev)
        b = torch.as_tensor(betas, dtype=torch.float32, device=dev)
        stacked = {}
        for name, c, d1, d2 in zip(self.names, self.c, self.a, self.b):
            shape = (p,) + (1,) * c.dim()
            stacked[name] = c.unsqueeze(0) + a.view(shape).to(c.dtype) * d1 + b.view(shape).to(c.dtype) * d2
        model = ev.model

        def run(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(model, params, (x,), strict=False)

        batched = vmap(run, in_dims=(0, None))
        per_loss = vmap(ev._loss, in_dims=(0, None))
        loss_sum = torch.zeros(p, device=dev, dtype=torch.float64)
        correct = torch.zeros(p, device=dev, dtype=torch.int64)
        classify = ev.task == "classification"
        with ev._autocast():
            for x, y in ev._iter():
                out = batched(stacked, x).float()
                loss_sum += per_loss(out, y)
                if classify:
                    correct += (out.argmax(-1) == y).sum(1)
        loss = (loss_sum / ev.n).cpu().numpy()
        acc = (correct.double() / ev.n).cpu().numpy() if classify else np.full(p, np.nan)
        return loss, acc

    def _evaluate_threads(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``points_per_batch`` points at once on CPU threads, each on its own replica of the model with
        ``cores / points`` intra-op threads: for compute-bound models whose single forward does not use the
        cores fully (small convolutions), where stacking parameters (vmap) does not pay."""
        from concurrent.futures import ThreadPoolExecutor

        p = min(self.points_per_batch, len(alphas))
        while len(self._replicas) < self.points_per_batch - 1:
            rep = PlaneEvaluator(self.ev.replica(), self.center, self.d1, self.d2, 1)
            rep.c, rep.a, rep.b = self.c, self.a, self.b  # the same values: share them
            self._replicas.append(rep)
        if self._pool_size < self.points_per_batch:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(self.points_per_batch, thread_name_prefix="landscape-point")
            self._pool_size = self.points_per_batch
        planes = [self] + self._replicas
        threads = max(1, _cpu_threads() // p)
        loss, acc = np.empty(len(alphas)), np.empty(len(alphas))

        def run(k: int) -> None:
            torch.set_num_threads(threads)  # per thread under OpenMP
            plane = planes[k]
            for i in range(k, len(alphas), p):
                if interrupt_pending():  # the main thread has raised already: stop soon
                    return
                plane.set_point(alphas[i], betas[i])
                r = plane.ev.evaluate()
                loss[i], acc[i] = r.loss, r.accuracy

        for f in [self._pool.submit(run, k) for k in range(p)]:
            f.result()
        return loss, acc

    def evaluate_points(self, alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss and accuracy at each (alpha[k], beta[k]), ``points_per_batch`` at a time (stacked with vmap,
        or concurrently on CPU threads); with ``"auto"`` the first call times its first points in several
        ways and keeps the fastest."""
        alphas, betas = np.asarray(alphas, np.float64), np.asarray(betas, np.float64)
        if self.auto:
            self.auto = False
            used, lo, ac = self.calibrate(alphas, betas)
            if used < len(alphas):
                rest = self.evaluate_points(alphas[used:], betas[used:])
                lo, ac = np.concatenate([lo, rest[0]]), np.concatenate([ac, rest[1]])
            return lo, ac
        if self.batch_mode == "threads":
            return self._evaluate_threads(alphas, betas)
        loss, acc = np.empty(len(alphas)), np.empty(len(alphas))
        step = self.points_per_batch
        for s in range(0, len(alphas), step):
            sl = slice(s, s + step)
            if step == 1:
                self.set_point(alphas[s], betas[s])
                r = self.ev.evaluate()
                loss[s], acc[s] = r.loss, r.accuracy
            else:
                loss[sl], acc[sl] = self._evaluate_batched(alphas[sl], betas[sl])
        return loss, acc

    def calibrate(self, alphas: np.ndarray, betas: np.ndarray, candidates: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
                  ) -> tuple[int, np.ndarray, np.ndarray]:
        """Time real points one at a time, stacked with vmap (``candidates``) and, on a CPU with several
        threads, concurrently on threads; keep the fastest. Returns (points used, loss, accuracy)."""
        used, losses, accs = 0, [], []
        best, best_rate = ("one", 1), 0.0
        dev = self.ev.device
        vmap_sizes = tuple(c for c in candidates if c > 1) if self.numel_moved <= _VMAP_MAX_NUMEL else ()
        cores = _cpu_threads() if dev.type == "cpu" else 1
        thread_sizes = tuple(t for t in (2, 4, 8, 16, 32, 64) if t <= cores)
        sequences = [(("one", 1), ("one", 1))] + [tuple(("vmap", c) for c in vmap_sizes)] + [
            tuple(("threads", t) for t in thread_sizes)]
        first = True
        for seq in sequences:
            seq_best = 0.0
            for mode, p in seq:
                n = p * (2 if mode == "threads" else 1)  # threads: two rounds, the first warms the replicas
                if used + n > len(alphas):
                    break
                self.batch_mode, self.points_per_batch = mode, p
                sl = slice(used, used + n)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t = time.perf_counter()
                try:
                    lo, ac = self.evaluate_points(alphas[sl], betas[sl])
                except (RuntimeError, NotImplementedError) as exc:  # no vmap rule, or out of memory
                    log.info("%s evaluation of %d points failed (%s)", mode, p, str(exc)[:120])
                    if dev.type == "cuda":
                        torch.cuda.empty_cache()
                    break
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                rate = n / (time.perf_counter() - t)
                losses.append(lo), accs.append(ac)
                used += n
                if first:  # the very first run warms up
                    first = False
                    continue
                if rate > best_rate * 1.05:
                    best, best_rate = (mode, p), rate
                if rate < seq_best * 0.8:
                    break
                seq_best = max(seq_best, rate)
        self.batch_mode, self.points_per_batch = best
        log.info("points per batch: %d (%s; %.1f points/s while calibrating)", best[1],
                 {"one": "one at a time", "vmap": "stacked with vmap", "threads": "concurrent threads"}[best[0]],
                 best_rate)
        return used, (np.concatenate(losses) if losses else np.empty(0)), (
            np.concatenate(accs) if accs else np.empty(0))


def _cpu_threads() -> int:
    return max(1, torch.get_num_threads())


def parse_points_per_batch(value: int | str) -> tuple[str, int]:
    """``"auto"`` → ("one", 1) until calibrated; N → ("vmap", N) (N = 1: one at a time); ``"threads:N"`` →
    ("threads", N).

    Example:
        >>> parse_points_per_batch(1), parse_points_per_batch(8), parse_points_per_batch("threads:2")
        (('one', 1), ('vmap', 8), ('threads', 2))
    """
    if value == "auto":
        return "one", 1
    if isinstance(value, str) and value.startswith("threads:") and value[8:].isdigit() and int(value[8:]) >= 1:
        return ("threads", int(value[8:])) if int(value[8:]) > 1 else ("one", 1)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return ("vmap", value) if value > 1 else ("one", 1)
    raise ConfigError(f"points_per_batch: expected 'auto', an integer >= 1 (stacked with vmap) or 'threads:N' "
                      f"(N points on concurrent CPU threads), got {value!r}")


def compute_surface(plane: PlaneEvaluator, store: SurfaceStore, progress: bool = True,
                    chunk: int | None = None) -> int:
    """Evaluate every pending point of ``store``; returns the number computed. SIGTERM/SIGUSR1 flush and
    raise :class:`Interrupted`; the store is closed (partial or complete) in every case."""
    pending = store.pending()
    computed = 0
    bar = tqdm(total=store.grid.size, initial=store.grid.size - len(pending), desc="surface", unit="pt",
               disable=not progress)
    try:
        with interruptible():
            pos, rate = 0, None
            while pos < len(pending):
                check_interrupted()
                ppb = plane.points_per_batch
                if chunk:
                    n = chunk
                elif rate is None:  # the first chunk: enough points for the auto calibration
                    n = 96 if plane.auto else ppb
                else:  # about 2 s of work in whole batches, so an interruption loses little
                    n = max(ppb, min(256, int(rate * 2.0) // ppb * ppb))
                part = pending[pos:pos + n]
                pos += len(part)
                a, b = store.grid.coords(part)
                t = time.perf_counter()
                lo, ac = plane.evaluate_points(a, b)
                rate = len(part) / max(time.perf_counter() - t, 1e-6)
                store.write(part, lo, ac)
                bar.update(len(part))
                computed += len(part)
    finally:
        bar.close()
        store.close()
    return computed


# -- jobs -----------------------------------------------------------------------------------------

def _projection_datasets(store: "TrajectoryStore", coords: np.ndarray, group: str = "trajectory"
                         ) -> dict[str, np.ndarray]:
    """``group/{alpha,beta,epoch,step,loss,accuracy}`` of projected checkpoints (recorded test metrics at
    epoch checkpoints, NaN at step checkpoints)."""
    t, m = store.table(), store.metrics()
    loss, acc = np.full(len(coords), np.nan), np.full(len(coords), np.nan)
    for i, (kind, ep) in enumerate(zip(t["kind"], t["epoch"])):
        hit = np.flatnonzero(np.isclose(m["epoch"], ep))
        if kind != "step" and len(hit):
            loss[i], acc[i] = m["test_loss"][hit[0]], m["test_accuracy"][hit[0]]
    return {f"{group}/alpha": coords[:, 0], f"{group}/beta": coords[:, 1], f"{group}/epoch": t["epoch"],
            f"{group}/step": t["step"].astype(np.float64), f"{group}/loss": loss, f"{group}/accuracy": acc}


def project_onto(surface: "Path | str", trajectory: "Path | str", label: str, method: str = "lstsq") -> np.ndarray:
    """Project another run's checkpoints onto a surface's plane (its θ*, d₁, d₂): a fixed plane on which
    runs can be compared. Stored as ``/projections/<label>/...``; returns the (n, 2) coordinates."""
    from .pca import projected_path
    from .store import read_surface
    from .trajectory import TrajectoryStore

    s = read_surface(surface)
    other = TrajectoryStore(trajectory)
    with open_hdf5(s.path) as f:
        if "center" not in f["directions"]:
            raise ConfigError(f"{s.path}: holds no centre vector (written by an older landscape); recompute it")
        c = torch.from_numpy(f["directions/center"][:])
        d1 = torch.from_numpy(f["directions/d1"][:])
        d2 = torch.from_numpy(f["directions/d2"][:]) if "d2" in f["directions"] else None
    if other.spec.numel != c.numel() or json.loads(s.attrs["state_spec"]) != other.spec.to_json():
        raise ConfigError(f"{trajectory}: its model's state layout differs from the surface's; a plane can only "
                          "be shared by runs of the same model")
    coords = projected_path(other.vector, len(other), c, d1, d2, method)
    with open_hdf5(s.path, "r+") as f:
        g = f.require_group("projections")
        if label in g:
            del g[label]
        for key, arr in _projection_datasets(other, coords, f"projections/{label}").items():
            f.create_dataset(key, data=arr)
        g[label].attrs["trajectory"] = str(trajectory)
        g[label].attrs["method"] = method
    return coords


def _is_source(ref: str) -> bool:
    from pathlib import Path

    from .checkpoints import split_source

    path, name = split_source(ref)
    return name is not None or Path(ref).suffix in (".pt", ".pth", ".bin") or Path(ref).is_file()


def resolve_center(job: "JobConfig", ref: str, model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], str]:
    """A state for ``ref``: a file/``run.h5:NAME`` source, or a checkpoint name in the job's trajectory."""
    from pathlib import Path

    from .checkpoints import load_source

    if _is_source(ref):
        return load_source(ref, model), ref
    if job.model.checkpoint and ref == "final":
        return load_source(job.model.checkpoint, model), job.model.checkpoint
    source = f"{Path(job.output) / 'trajectory.h5'}:{ref}"
    return load_source(source, model), source


def _trajectory_store(job: "JobConfig", sf: "SurfaceConfig") -> "TrajectoryStore | None":
    from pathlib import Path

    from .trajectory import TrajectoryStore

    path = Path(sf.trajectory) if sf.trajectory else Path(job.output) / "trajectory.h5"
    if sf.trajectory is None and not path.exists():
        return None
    return TrajectoryStore(path)


def plan_directions(job: "JobConfig", model: torch.nn.Module, center: dict[str, torch.Tensor],
                    sf: "SurfaceConfig | None" = None) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Flat d₁, d₂ (None for a line) and the description of how they were made."""
    from .directions import direction_between, movable_names, random_directions
    from .errors import StoreError
    from .params import StateSpec, flatten_state, state_checksum

    sf = sf or job.surface
    spec = StateSpec.from_state(center)
    count = 1 if sf.beta is None else 2
    params = [n for n, _ in model.named_parameters()]
    info: dict = {"directions": sf.directions}
    if sf.directions == "pca":
        from .pca import pca_directions

        store = _trajectory_store(job, sf)
        if store is None:
            raise StoreError("directions=pca needs a trajectory store: train first or set surface.trajectory")
        if store.spec != spec:
            raise StoreError(f"{store.path}: its checkpoints do not fit this model's state layout")
        movable = movable_names(center, params, sf.dir_type, sf.ignore)
        mask = flatten_state({n: torch.full(t.shape, float(n in movable)) for n, t in center.items()}, spec)
        c = flatten_state(center, spec)
        t = store.table()
        rows = [i for i in range(len(t["kind"])) if sf.pca_checkpoints == "all" or t["kind"][i] != "step"]
        rows = [i for i in rows if not torch.equal(store.vector(i), c)]  # the centre itself adds nothing
        (a, b), ratio = pca_directions(lambda k: (store.vector(rows[k]) - c) * mask, len(rows), count)
        info.update(norm="none", ignore=sf.ignore, dir_type=sf.dir_type, trajectory=str(store.path),
                    pca_rows=len(rows), explained_variance=[float(r) for r in ratio[:10]])
        return a, (b if count == 2 else None), info
    if sf.directions == "random":
        dirs = random_directions(center, params, sf.seed, sf.norm, sf.ignore, sf.dir_type, count)
        info.update(norm=sf.norm, ignore=sf.ignore, dir_type=sf.dir_type, seed=sf.seed)
    elif sf.directions == "checkpoints":
        movable = movable_names(center, params, sf.dir_type, "none")
        dirs = []
        for ref in [sf.target1, sf.target2][:count]:
            target, source = resolve_center(job, ref, model)
            dirs.append(direction_between(center, target, movable))
            info[f"target{len(dirs)}"] = source
            info[f"target{len(dirs)}_checksum"] = state_checksum(target)
        info.update(norm="none", ignore="none", dir_type=sf.dir_type)
    else:
        from .store import read_surface

        src = read_surface(sf.directions_file)
        with open_hdf5(src.path) as f:
            vecs = [torch.from_numpy(f["directions"][k][:]) for k in ("d1", "d2")[:count] if k in f["directions"]]
        if len(vecs) < count:
            raise StoreError(f"{src.path}: holds {len(vecs)} direction(s), this surface needs {count}")
        stored_spec = src.attrs.get("state_spec")
        if stored_spec is not None and json.loads(stored_spec) != spec.to_json():
            raise StoreError(f"{src.path}: its directions belong to a model with another state layout; "
                             "directions can be reused only for the same model")
        if src.inputs.get("center_checksum") != state_checksum(center):
            raise StoreError(f"{src.path}: its directions were made around a centre with checksum "
                             f"{src.inputs.get('center_checksum')}, this centre has {state_checksum(center)}; "
                             "reuse directions only around the same model")
        info.update({k: src.inputs.get(k) for k in ("norm", "ignore", "dir_type", "seed")})
        info.update(directions_file=str(src.path))
        return vecs[0], vecs[1] if count == 2 else None, info
    flat = [flatten_state(d, spec) for d in dirs]
    return flat[0], flat[1] if count == 2 else None, info


def run_surface_job(job: "JobConfig", progress: bool = True, comm: object | None = None,
                    sf: "SurfaceConfig | None" = None) -> "Path":
    """Compute (or resume) the job's ``[surface]``; returns the surface file's path.

    With an MPI communicator every rank evaluates (each on its own device) and rank 0 alone writes the file.
    """
    from dataclasses import asdict
    from pathlib import Path

    from .data import subset
    from .directions import cosine
    from .job import prepare_data, prepare_model
    from .params import StateSpec, flatten_state, state_checksum

    sf = sf or job.surface
    tr, te = prepare_data(job.data)
    data = te if job.evaluate.split == "test" else tr
    data = subset(data, sf.subset, job.data.subset_mode, job.data.subset_seed)
    model = prepare_model(job, tr)
    center, center_src = resolve_center(job, sf.center, model)
    d1, d2, dir_info = plan_directions(job, model, center, sf)
    model.load_state_dict(center)
    from .parallel import agree, on_root, pick_device

    device = pick_device(comm, job.evaluate.device) if comm is not None else job.evaluate.device
    ev = Evaluator(model, data, device, job.evaluate.batch_size, job.train.loss, job.evaluate.precision)
    spec = StateSpec.from_state(center)
    from .grid import Grid, parse_range

    # the training path in the plane: every checkpoint of the trajectory, projected
    traj_store = _trajectory_store(job, sf) if sf.directions in ("pca", "random", "checkpoints") else None
    projected = None
    if traj_store is not None and traj_store.spec == StateSpec.from_state(center):
        from .pca import projected_path

        cvec = flatten_state(center, spec)
        coords = projected_path(traj_store.vector, len(traj_store), cvec, d1, d2, sf.projection)
        projected = _projection_datasets(traj_store, coords)

    def axis(text: str | None, k: int) -> np.ndarray | None:
        if text is None:
            return None
        if text.startswith("auto"):
            from .pca import auto_range

            if projected is None:
                raise ConfigError("surface: auto grid ranges need the projected trajectory (a trajectory store)")
            return parse_range(auto_range(projected[("trajectory/alpha", "trajectory/beta")[k]],
                                          int(text[5:]) if text.startswith("auto:") else 25))
        return parse_range(text)

    grid = Grid(axis(sf.alpha, 0), axis(sf.beta, 1))
    dir_sum = state_checksum(torch.cat([d1] + ([d2] if d2 is not None else [])))
    inputs = {"model": job.model.name, "model_kwargs": job.model.kwargs, "data": asdict(job.data),
              "split": job.evaluate.split, "subset": sf.subset, "center": center_src,
              "center_checksum": state_checksum(center), "directions_checksum": dir_sum,
              "loss": ev.loss_name, "precision": job.evaluate.precision, **dir_info}
    cos = cosine(d1, d2) if d2 is not None else float("nan")
    if d2 is not None:
        log.info("cos(d1, d2) = %.4g", cos)
    attrs = {"model": job.model.name, "center_checksum": inputs["center_checksum"], "directions_checksum": dir_sum,
             "norm": dir_info.get("norm") or "none", "ignore": dir_info.get("ignore") or "none",
             "dir_type": dir_info.get("dir_type") or "weights", "seed": int(dir_info.get("seed") or 0),
             "data": job.data.name, "split": job.evaluate.split, "subset": sf.subset or 0,
             "cosine_d1_d2": cos, "state_spec": json.dumps(spec.to_json()), "loss_name": ev.loss_name}
    if "explained_variance" in dir_info:
        attrs["explained_variance"] = json.dumps(dir_info["explained_variance"])
    datasets = {"directions/d1": d1.numpy(), "directions/center": flatten_state(center, spec).numpy()}
    if projected is not None:
        datasets.update(projected)
        inputs["projection"] = sf.projection
    if d2 is not None:
        datasets["directions/d2"] = d2.numpy()
    path = Path(sf.output) if Path(sf.output).is_absolute() else Path(job.output) / sf.output
    agree(comm, "the centre and directions checksums", (inputs["center_checksum"], dir_sum))
    store = on_root(comm, lambda: SurfaceStore.open(path, grid, inputs, attrs, datasets, flush_every=sf.flush_every))
    plane = PlaneEvaluator(ev, ev.get_flat(), d1, d2, sf.points_per_batch)
    run_points(plane, store, path, comm, progress, sf.chunk, str(ev.device))
    return path


def run_points(plane: PlaneEvaluator, store: SurfaceStore | None, path: "Path", comm: object | None,
               progress: bool, chunk: int = 0, device: str = "") -> int:
    """Compute the store's pending points (serially, or over the ranks of ``comm``; ``store`` is None on
    ranks other than 0) and append the run's record to the file, also when it is interrupted or fails.
    Returns the points computed (on rank 0)."""
    from .parallel import run_distributed
    from .store import append_run, batch_context

    root = comm is None or comm.Get_rank() == 0
    before = int(store.done.sum()) if root else 0
    t, status = time.perf_counter(), "failed"
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        if comm is None:
            n = compute_surface(plane, store, progress, chunk=chunk or None)
        else:
            n = run_distributed(comm, plane, store, progress and root, chunk=chunk)
        status = "complete"
    except Interrupted:
        status = "interrupted"
        raise
    finally:
        dt = time.perf_counter() - t
        if root:
            from .store import read_surface

            try:
                points = int(read_surface(path).done.sum()) - before
                if points or status != "complete":
                    append_run(path, {"started": started, "points": points, "seconds": round(dt, 4),
                                      "points_per_second": points / max(dt, 1e-9), "status": status,
                                      "ranks": comm.Get_size() if comm is not None else 1,
                                      "points_per_batch": getattr(plane, "points_per_batch", 1),
                                      "batch_mode": getattr(plane, "batch_mode", "one"), "device": device,
                                      **batch_context()})
            except Exception as exc:  # noqa: BLE001 - the record must never hide the run's own outcome
                log.warning("could not record the run in %s: %s", path, exc)
    if root and n:
        log.info("%s: %d points in %.1f s (%.1f points/s, %d per batch, %s)", path, n, dt, n / dt,
                 getattr(plane, "points_per_batch", 1), getattr(plane, "batch_mode", "one"))
    return n
