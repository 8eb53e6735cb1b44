"""Training that records a trajectory: init state, a checkpoint per epoch (and every N steps),
per-epoch metrics, and what resuming needs, all in one :class:`TrajectoryStore`.

Training data stay on the device; each epoch's shuffle comes from a generator
seeded with ``(seed, epoch)``, so a resumed run equals an uninterrupted one.

Example:
    >>> import tempfile, os
    >>> from landscape.run.config import TrainConfig
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> tr, te = load_data("spiral", n_per_class=40)
    >>> torch.manual_seed(0) and None
    >>> store = train(build_model("mlp", tr.info(), depth=1, width=8), tr, te,
    ...               TrainConfig(epochs=2, batch_size=32, lr=0.1), os.path.join(tempfile.mkdtemp(), "t.h5"),
    ...               device="cpu", progress=False)
    >>> len(store), store.metrics()["epoch"].tolist()
    (3, [0.0, 1.0, 2.0])
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..analysis.dynamics import LayerNorms
from ..core.data import TensorData
from ..core.errors import ConfigError, DataError, StoreError
from ..core.params import StateSpec, model_state
from ..core.progress import Progress
from ..core.signals import check_interrupted
from ..core.threads import fixed_threads
from ..engine.device import resolve_device
from ..engine.evaluator import Evaluator
from ..engine.losses import IGNORE_INDEX, correct_count, logits, loss_function, target_count
from ..io.checkpoints import apply_state
from ..io.locks import WriterLock
from ..io.trajectory import TrajectoryStore
from .config import JobConfig, TrainConfig
from .inputs import data_meta, prepare_data, prepare_model

__all__ = ["train", "train_job", "make_optimizer", "learning_rate", "crop_flip"]

log = logging.getLogger(__name__)

# training settings that may change between an interrupted run and its resumption
_RESUMABLE_CHANGES = {"epochs"}


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov, weight decay) or Adam from the config.

    Example:
        >>> type(make_optimizer(torch.nn.Linear(2, 1).parameters(), TrainConfig(optimizer="adam"))).__name__
        'Adam'
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"train.optimizer: expected 'sgd' or 'adam', got {cfg.optimizer!r}")


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of (0-based) ``epoch``: ``lr * lr_gamma ** (milestones <= epoch)``.

    Example:
        >>> cfg = TrainConfig(lr=0.1, lr_milestones=[2, 4], lr_gamma=0.1)
        >>> [round(learning_rate(cfg, e), 6) for e in range(5)]
        [0.1, 0.1, 0.01, 0.01, 0.001]
    """
    return cfg.lr * cfg.lr_gamma ** sum(1 for m in cfg.lr_milestones if m <= epoch)


def crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Crop each image of the zero-padded batch at offset (oy, ox) back to its size, mirrored where ``flip``.

    Example:
        >>> x = torch.arange(4.).reshape(1, 1, 2, 2)
        >>> t = lambda v: torch.tensor([v])
        >>> crop_flip(x, t(1), t(1), t(True), pad=1).tolist(), crop_flip(x, t(1), t(2), t(False), pad=1).tolist()
        ([[[[1.0, 0.0], [3.0, 2.0]]]], [[[[1.0, 0.0], [3.0, 0.0]]]])
    """
    b, c, h, w = x.shape
    rows = oy[:, None] + torch.arange(h, device=x.device)
    cols = ox[:, None] + torch.arange(w, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    xp = xp.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))
    return xp.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def _augment(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    n = len(x)
    oy, ox = (torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device) for _ in range(2))
    flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
    return crop_flip(x, oy, ox, flip, pad)


def _check_resumable(store: TrajectoryStore, cfg: TrainConfig, spec: StateSpec, meta: Mapping[str, Any]) -> None:
    problems = []
    if store.spec != spec:
        problems.append("the model's state layout differs from the stored one")
    old = json.loads(store.attrs.get("train", "{}"))
    new = asdict(cfg)
    problems += [f"train.{k}: stored {old.get(k)!r}, now {new[k]!r}" for k in new
                 if k not in _RESUMABLE_CHANGES and old.get(k) != new[k]]
    for k, v in meta.items():
        stored = store.attrs.get(k)
        if isinstance(v, (dict, list)):
            stored = json.loads(stored) if isinstance(stored, str) else stored
        if stored is not None and stored != v:
            problems.append(f"{k}: stored {stored!r}, now {v!r}")
    if problems:
        raise StoreError(f"{store.path} was written by a different training run; refusing to resume: "
                         + "; ".join(problems) + ". Use another output path, or restore the original settings")


def train(model: nn.Module, train_data: TensorData, test_data: TensorData, cfg: TrainConfig,
          store_path: str | Path, device: str | torch.device = "auto", eval_batch_size: int = 256,
          meta: Mapping[str, Any] | None = None, resume: bool = True, progress: bool = True) -> TrajectoryStore:
    """Train ``model`` and record its trajectory in ``store_path``; resume if the store exists.

    The model's current parameters are the initial state (seed before building it).
    ``meta`` (model and data descriptions) is stored as attributes and must match on resume. The run is the
    store's only writer while it trains (a second run on the same file is refused at once).
    """
    if len(train_data) == 0:
        raise DataError(f"{train_data.name}: the training split is empty (data.kwargs.n_train = 0 leaves it so, for "
                        "evaluations on the test split); give the job a centre checkpoint (surface.center = "
                        "\"my.pt\", or model.checkpoint) or training data")
    with WriterLock(store_path), fixed_threads(cfg.threads):  # the trajectory's bits depend on the thread count
        return _train(model, train_data, test_data, cfg, Path(store_path), device, eval_batch_size, meta, resume,
                      progress)


def _train(model: nn.Module, train_data: TensorData, test_data: TensorData, cfg: TrainConfig, store_path: Path,
           device: str | torch.device, eval_batch_size: int, meta: Mapping[str, Any] | None, resume: bool,
           progress: bool) -> TrajectoryStore:
    dev = resolve_device(device)
    model.to(dev)
    meta = dict(meta or {})
    state = model_state(model)
    spec = StateSpec.from_state(state)
    store_path = Path(store_path)
    optimizer = make_optimizer(model.parameters(), cfg)
    _, loss_sum = loss_function(cfg.loss, train_data.task)
    test_eval = Evaluator(model, test_data, dev, eval_batch_size, cfg.loss)
    start_epoch, step = 0, 0

    if store_path.exists() and resume:
        store = TrajectoryStore(store_path)
        _check_resumable(store, cfg, spec, meta)
        table = store.table()
        payload = store.load_resume()
        # the newest checkpoint that has its optimiser state saved alongside
        if payload is None or len(table["epoch"]) == 0:
            raise StoreError(f"{store_path}: holds no resumable checkpoint; delete it and train again")
        done = int(payload["epoch"])
        if done >= cfg.epochs:
            log.info("%s already holds %d epoch(s); nothing to train", store_path, done)
            if not store.attrs.get("complete"):
                store.set_attrs(complete=True)
            return store
        test_eval.set_state(store.state(f"epoch {done}") if done > 0 else store.state("init"))
        optimizer.load_state_dict(payload["optimizer"])
        start_epoch, step = done, int(payload["step"])
        store.truncate_after(done)  # drop what a run killed mid-epoch wrote past its last commit
        log.info("resuming %s after epoch %d (step %d)", store_path, done, step)
        store.set_attrs(complete=False, train=json.dumps(asdict(cfg)))
    else:
        if store_path.exists():
            raise StoreError(f"{store_path}: exists and resume is off; choose another output path")
        # resumable from the moment it exists: the init checkpoint and its resume record come with the file
        store = TrajectoryStore.create(store_path, spec, {**meta, "train": asdict(cfg), "seed": cfg.seed},
                                       init=test_eval.get_flat(),
                                       resume={"optimizer": optimizer.state_dict(), "epoch": 0, "step": 0})
    if start_epoch == 0 and not len(store.metrics()["epoch"]):  # the init metrics (also after a kill here)
        r0 = Evaluator(model, train_data, dev, eval_batch_size, cfg.loss).evaluate()
        t0 = test_eval.evaluate()
        store.append_metrics(epoch=0, train_loss=r0.loss, train_accuracy=r0.accuracy, test_loss=t0.loss,
                             test_accuracy=t0.accuracy)

    norms = LayerNorms(model) if cfg.norms_every else None
    x, y = train_data.x.to(dev), train_data.y.to(dev)
    if cfg.augment != "none" and x.dim() != 4:
        raise ConfigError(f"train.augment={cfg.augment!r} needs image batches (N, C, H, W); {train_data.name} has "
                          f"shape {tuple(x.shape)}; set train.augment='none'")
    n = len(train_data)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    classify = train_data.task != "regression"
    language = train_data.task == "language"
    total = target_count(train_data.y, train_data.task)  # samples, or target tokens of a language model
    bar = Progress(cfg.epochs, start_epoch, f"train {store_path.name}", "epochs", progress, every=0.0)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        for group in optimizer.param_groups:  # a function of the epoch alone: resuming gives the same schedule
            group["lr"] = learning_rate(cfg, epoch)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g).to(dev)
        g_aug = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + 7_919_000)
        run_loss = torch.zeros((), device=dev, dtype=torch.float64)
        run_correct = torch.zeros((), device=dev, dtype=torch.int64)
        for b in range(steps_per_epoch):
            check_interrupted()
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            if cfg.augment == "crop_flip":
                xb = _augment(xb, g_aug)
            out = logits(model(xb))
            count = (yb != IGNORE_INDEX).sum().clamp_min(1) if language else len(idx)
            loss = loss_sum(out, yb) / count
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            record = norms is not None and (step + 1) % cfg.norms_every == 0
            if record:
                grads = norms.grad_norms()  # of this step's gradient, before the update
            optimizer.step()
            step += 1
            if record:
                norms.record(step, grads)  # weights after the update: they match a checkpoint at this step
            with torch.no_grad():
                run_loss += loss.detach() * count
                if classify:
                    run_correct += correct_count(out, yb)
            if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0 and b + 1 < steps_per_epoch:
                store.append_checkpoint(test_eval.get_flat(), epoch=epoch + (b + 1) / steps_per_epoch,
                                        step=step, kind="step")
        tr_loss, tr_correct = torch.stack([run_loss, run_correct.double()]).tolist()
        if not math.isfinite(tr_loss):
            log.warning("epoch %d: training loss is %s; the run diverged (lower train.lr)", epoch + 1, tr_loss)
        if norms is not None:
            store.append_norms(*norms.flush())  # one host sync per epoch
        te = test_eval.evaluate()  # puts the model in eval mode
        store.append_checkpoint(test_eval.get_flat(), epoch=epoch + 1, step=step, kind="epoch")
        store.append_metrics(epoch=epoch + 1, train_loss=tr_loss / total,
                             train_accuracy=tr_correct / total if classify else math.nan,
                             test_loss=te.loss, test_accuracy=te.accuracy)
        store.save_resume({"optimizer": optimizer.state_dict(), "epoch": epoch + 1, "step": step})
        bar.update(1, loss=f"{tr_loss / total:.4f}", test_loss=f"{te.loss:.4f}",
                   test_acc=f"{te.accuracy:.3f}" if classify else "-")  # a log line per epoch without a terminal
    bar.close()
    model.eval()
    store.set_attrs(complete=True)
    return store


def train_job(job: JobConfig, output: str | Path, progress: bool = True, store_name: str = "trajectory.h5",
              seed: int | None = None) -> tuple[nn.Module, TrajectoryStore, tuple[TensorData, TensorData]]:
    """Train the job's model into ``output/store_name`` (resuming if present), with ``train.seed`` replaced by
    ``seed`` if given; returns (model, store, data).

    Example:
        >>> train_job.__name__  # see the README's Python API section
        'train_job'
    """
    cfg = job.train if seed is None else replace(job.train, seed=seed)
    tr, te = prepare_data(job.data)
    model = prepare_model(job.model, tr, cfg.seed)
    store = train(model, tr, te, cfg, Path(output) / store_name, job.evaluate.device,
                  job.evaluate.batch_size, meta=data_meta(job.model, job.data), progress=progress)
    apply_state(model, store.state("final"), f"{store.path}:final")
    return model, store, (tr, te)
