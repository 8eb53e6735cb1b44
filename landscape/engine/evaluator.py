"""The evaluation engine: loss and accuracy of one model at given parameter values on one data set.

The evaluation set is moved to the device once (streamed in batches from pinned
host memory only when it does not fit), the model stays in eval mode, parameter
values are written in place, and results are accumulated on the device with a
single host synchronisation per evaluation.

Example:
    >>> from landscape.core.models import build_model
    >>> from landscape.core.data import load_data
    >>> _, test = load_data("digits")
    >>> ev = Evaluator(build_model("lenet5"), test, device="cpu")
    >>> r = ev.evaluate()
    >>> 0.0 <= r.accuracy <= 1.0 and r.n == 360
    True
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from ..core.data import TensorData, resident
from ..core.streams import StreamedData
from ..core.errors import CheckpointError, ConfigError
from ..core.params import StateSpec, model_state
from .compiled import CompiledNet
from .device import autocast_context, default_budget, keep_freed_memory, resolve_device
from .fastpool import ExactPooling
from .input_tables import InputTables
from .folding import FoldedNet
from .losses import IGNORE_INDEX, correct_count, logits, loss_function, per_sample_loss, target_count
from .objective import OBJECTIVE_LOSSES, Objective

__all__ = ["EvalResult", "Evaluator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Mean loss and accuracy (NaN for regression) over ``n`` samples (for the ``language`` task: per target
    token, over ``n`` sequences; ``perplexity`` is exp(loss))."""

    loss: float
    accuracy: float
    n: int

    @property
    def perplexity(self) -> float:
        """exp(loss): the perplexity of a language model (inf beyond exp's range)."""
        return math.exp(self.loss) if self.loss < 700 else math.inf


class Evaluator:
    """Evaluates ``model`` on ``data`` at parameter values written in place.

    ``max_resident_bytes`` caps the evaluation data kept on the device (default: all of it on CPU,
    half the free memory on CUDA); beyond it batches stream from pinned host memory. For sequence data
    (``language``) a batch holds at most as many sequences as keep its logits (T × V floats each) within
    ``logits_budget`` bytes, so a 50,257-token vocabulary never needs the logits of the whole batch at once.
    ``fold_bn`` evaluates with conv–BatchNorm pairs folded (:mod:`landscape.engine.folding`),
    ``channels_last`` with image batches in NHWC layout (convolutions follow their input's layout), ``compile`` through
    ``torch.compile`` (:mod:`landscape.engine.compiled`); each may change values by float32 rounding, so
    :meth:`transforms` names them for a file's inputs.
    """

    def __init__(self, model: nn.Module, data: TensorData | StreamedData, device: str | torch.device = "auto",
                 batch_size: int = 256, loss: str | None = None, precision: str = "fp32",
                 max_resident_bytes: int | None = None, logits_budget: int = 256 << 20, tune_batch: bool = False,
                 fold_bn: bool = False, channels_last: bool = False, compile: bool = False,
                 fields: Mapping[str, torch.Tensor] | None = None, input_tables: bool = True,
                 tables_budget: int = 1 << 30):
        self.device = resolve_device(device)
        # callable losses, steps, next-token losses and dict batches: see landscape.engine.objective
        custom = fields is not None or callable(loss) or loss in OBJECTIVE_LOSSES
        self.objective = Objective(loss, data.task, fields).to(self.device) if custom else None
        if custom:
            fold_bn = compile = False  # folded and compiled nets take one tensor
        keep_freed_memory()  # no page faults for every batch's activations (host memory; once per process)
        self.model = model.to(self.device).eval()
        # channels-last only where it means something: a model with 2-D convolution weights. Only the image
        # batches change layout: convolutions then run channels-last (bitwise as with NHWC weights, as fast),
        # and the parameters stay contiguous, so flat views of them (paths) and training are unaffected
        self.channels_last = bool(channels_last) and any(p.dim() == 4 for p in self.model.parameters())
        self.fold_bn, self.compile = bool(fold_bn), bool(compile)
        # planes may keep the first convolution's outputs as tables (engine/input_tables.py); None until one does
        self.allow_tables, self.tables_budget = bool(input_tables), int(tables_budget)
        self.input_tables: InputTables | None = None
        self.input_tables_layer = ""
        self.state = model_state(self.model, buffers=True)
        self._build_net()
        self.spec = StateSpec.from_state(self.state)
        self.task = data.task
        if self.objective is None:
            self.loss_name = loss_function(loss, data.task)[0]
            self._loss = per_sample_loss(self.loss_name)
        else:
            self.loss_name = self.objective.name
        self.precision = precision
        self._autocast = self._forward_context
        autocast_context(self.device, precision)  # validate now, not at the first evaluation
        if batch_size < 1:
            raise ConfigError(f"evaluation batch_size: expected >= 1, got {batch_size}")
        if data.task == "language" and data.x.dim() == 2 and data.num_classes:
            per_row = 4 * int(data.x.shape[1]) * int(data.num_classes)  # float32 logits of one sequence
            rows = max(1, int(logits_budget) // per_row)
            if rows < batch_size:
                log.info("evaluation batch: %d sequences (logits within %.0f MiB), not %d", rows,
                         logits_budget / 2**20, batch_size)
                batch_size = rows
        self.batch_size = batch_size
        self.tune_batch = tune_batch  # calibration may pick another batch size that gives the same values
        self.n = len(data)
        self.stream: StreamedData | None = None
        if isinstance(data, StreamedData):
            budget = max_resident_bytes if max_resident_bytes is not None else default_budget(self.device)
            if data.nbytes() <= budget:  # it fits: read once and keep it resident, as in-memory data
                data = resident(data)
            else:
                log.info("evaluation data %s (%.1f MiB) exceeds the device budget (%.1f MiB); reading it in "
                         "batches, once per chunk of points", data.name, data.nbytes() / 2**20, budget / 2**20)
                self.stream, self.resident, self._batches = data, False, []
                self.count = self.n if data.task != "language" else sum(
                    target_count(y, "language") for _, y in data.batches(batch_size))
                return
        self.count = target_count(data.y, data.task)  # what means divide by: samples or target tokens
        if self.objective is not None:
            if self.objective.counts_samples:
                self.count = self.n
            elif self.loss_name == "token_cross_entropy":
                self.count = int((data.y[:, 1:] != IGNORE_INDEX).sum())
        nbytes = data.x.element_size() * data.x.numel() + data.y.element_size() * data.y.numel()
        if max_resident_bytes is None:
            max_resident_bytes = (torch.cuda.mem_get_info(self.device)[0] // 2
                                  if self.device.type == "cuda" else 1 << 62)
        self.resident = nbytes <= max_resident_bytes
        if self.resident:
            x, y = data.x.to(self.device), data.y.to(self.device)
        else:
            log.info("evaluation data (%.1f MiB) exceeds the device budget; streaming batches", nbytes / 2**20)
            pin = self.device.type == "cuda"
            x = data.x.pin_memory() if pin else data.x
            y = data.y.pin_memory() if pin else data.y
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)  # batches are views: they keep the layout
        self._x, self._y = x, y
        self._batches = self._split(batch_size)
        if self.objective is not None and self.objective.step is not None:
            self.count = self._run_objective(1, lambda j: None)[0][1]  # what the step's counts add up to

    def _build_net(self) -> None:
        """What a forward runs: the model, with its BatchNorms folded (``fold_bn``), compiled (``compile``)."""
        self._folded = FoldedNet.build(self.model) if self.fold_bn else None
        if self._folded is not None:
            log.info("BatchNorm folded into the convolution before it: %d pair(s)", self._folded.pairs)
        self._compiled = None
        self.set_compile(self.compile)
        # called before every batch (in the evaluating thread): a distributed run changes the thread count there
        self.between_batches: Callable[[], None] | None = None

    def set_compile(self, on: bool) -> None:
        """Run forwards compiled (``on``) or eager from now on; the compiled net is built once and kept (switching
        back and forth compiles nothing again). Compiled forwards use no input tables: switching on drops them,
        and a plane made after it attaches none (``ev.set_compile(True)``: ``ev.transforms()`` has ``compile``)."""
        net = self._folded if self._folded is not None else self.model
        if on and self._compiled is None:
            self._compiled = CompiledNet(net)
        self.compile = bool(on)
        self._net = self._compiled if on else net
        # max pooling by strided maxima on CPUs: the same values bitwise, many times faster (engine/fastpool.py)
        self.exact_pooling = self.device.type == "cpu" and not on
        if on:
            self.input_tables, self.input_tables_layer = None, ""

    @property
    def compiles(self) -> int:
        """Graphs ``torch.compile`` has compiled for this evaluator (0 without ``compile``)."""
        return self._compiled.compiles if self._compiled is not None else 0

    def transforms(self) -> dict[str, Any]:
        """The options that change how a forward is computed (and may change values by rounding), for a
        file's inputs: only those that are on, so that files written without them still compare equal.

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> te = load_data("digits")[1]
            >>> Evaluator(build_model("lenet5", te.info()), te, "cpu", channels_last=True).transforms()
            {'channels_last': True}
            >>> tr, te = load_data("spiral", n_per_class=20)  # no convolution: nothing to change
            >>> Evaluator(build_model("mlp", tr.info(), depth=1, width=4), te, "cpu", channels_last=True).transforms()
            {}
        """
        out: dict[str, Any] = {}
        if self._folded is not None:
            out["fold_bn"] = self._folded.pairs
        if self.channels_last:
            out["channels_last"] = True
        if self.compile:
            out["compile"] = True
        if self.input_tables is not None:
            out["input_tables"] = self.input_tables_layer
        return out

    def precision_gap(self) -> dict[str, float]:
        """Loss at the current parameters in this evaluator's precision and in fp32, and their difference
        (what reduced precision costs, stored beside a surface computed in it).

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> tr, te = load_data("spiral", n_per_class=20)
            >>> gap = Evaluator(build_model("mlp", tr.info(), depth=1, width=4), te, "cpu", precision="bf16").precision_gap()
            >>> sorted(gap), abs(gap["difference"]) < 0.05
            (['bf16', 'difference', 'fp32'], True)
        """
        reduced = self.evaluate().loss
        autocast, self._autocast = self._autocast, contextlib.nullcontext
        try:
            full = self.evaluate().loss
        finally:
            self._autocast = autocast
        return {self.precision: reduced, "fp32": full, "difference": reduced - full}

    def _forward_context(self) -> contextlib.ExitStack:
        """What every forward of an evaluation runs in: autocast (reduced precision) and exact fast pooling."""
        stack = contextlib.ExitStack()
        stack.enter_context(autocast_context(self.device, self.precision))
        if self.exact_pooling:
            stack.enter_context(ExactPooling())
        if self.input_tables is not None:
            stack.enter_context(self.input_tables.active())
        return stack

    def _prepare(self) -> None:
        """Before a forward at newly written parameters: fold them again where BatchNorms are folded."""
        if self._folded is not None:
            self._folded.refresh()

    def set_batch_size(self, batch_size: int) -> None:
        """Evaluate in batches of ``batch_size`` from now on (views of the resident data, nothing copied).

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> tr, te = load_data("spiral", n_per_class=20)
            >>> ev = Evaluator(build_model("mlp", tr.info(), depth=1, width=4), te, "cpu", batch_size=16)
            >>> ev.set_batch_size(60); len(ev._batches), ev.batch_size
            (1, 60)
        """
        if self.stream is not None or batch_size == self.batch_size:
            return
        if batch_size < 1:
            raise ConfigError(f"evaluation batch_size: expected >= 1, got {batch_size}")
        self.batch_size, self._batches = batch_size, self._split(batch_size)

    def _split(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x, y = self._x, self._y
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, self.n, batch_size)]

    def replica(self) -> "Evaluator":
        """Another evaluator of the same data (shared, not copied) with its own copy of the model, so that
        several parameter points can be evaluated concurrently.

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> tr, te = load_data("spiral", n_per_class=20)
            >>> ev = Evaluator(build_model("mlp", tr.info(), depth=1, width=4), te, "cpu")
            >>> r = ev.replica()
            >>> r.model is not ev.model and r._x is ev._x  # the data shared, the model copied
            True
        """
        other = copy.copy(self)
        other.model = copy.deepcopy(self.model)
        other.state = model_state(other.model, buffers=True)
        other._build_net()
        if self._autocast == self._forward_context:  # a bound method: the copy's own context (its own tables)
            other._autocast = other._forward_context
        if self.input_tables is not None:  # the same tables, for the copy's layer
            other.input_tables = self.input_tables.rebind(other.model.get_submodule(self.input_tables_layer))
        return other

    # -- parameters -------------------------------------------------------------------------------
    @torch.no_grad()
    def set_state(self, state: Mapping[str, torch.Tensor], strict: bool = True) -> None:
        """Copy named tensors into the model in place (no reallocation)."""
        if strict:
            missing = [k for k in self.state if k not in state]
            if missing:
                raise CheckpointError(f"state lacks {len(missing)} tensor(s) the model has: {missing[:8]}")
        for name, value in state.items():
            target = self.state.get(name)
            if target is None:
                raise CheckpointError(f"state has tensor {name!r} that the model does not have")
            if tuple(target.shape) != tuple(value.shape):
                raise CheckpointError(f"{name}: model shape {tuple(target.shape)}, given {tuple(value.shape)}")
            target.copy_(value, non_blocking=True)

    @torch.no_grad()
    def set_flat(self, vector: torch.Tensor) -> None:
        """Write a flat state vector (``StateSpec`` order) into the model in place."""
        if vector.numel() != self.spec.numel:
            raise CheckpointError(f"flat state has {vector.numel()} values, the model expects {self.spec.numel}")
        vector = vector.to(self.device, non_blocking=True)
        for (name, t), a, b in zip(self.state.items(), self.spec.offsets[:-1], self.spec.offsets[1:]):
            t.copy_(vector[a:b].view(t.shape))

    @torch.no_grad()
    def get_flat(self) -> torch.Tensor:
        """The current state as one flat float32 vector on the device."""
        return torch.cat([t.reshape(-1).float() for t in self.state.values()])

    # -- evaluation -------------------------------------------------------------------------------
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The evaluation set's (inputs, targets) batches on the device, always in the same order."""
        tables, start, hook = self.input_tables, 0, self.between_batches
        for x, y in self._read_batches():
            if hook is not None:
                hook()
            if tables is not None and not tables.covers(x):  # read in batches: the tables of this one
                tables.load(x, start)
            yield x, y
            start += x.shape[0]

    def _read_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.stream is not None:
            for x, y in self.stream.batches(self.batch_size, pin=self.device.type == "cuda"):
                x = x.to(self.device, non_blocking=True)
                if self.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield x, y.to(self.device, non_blocking=True)
            return
        for x, y in self._batches:
            yield (x, y) if self.resident else (x.to(self.device, non_blocking=True),
                                                y.to(self.device, non_blocking=True))

    @torch.no_grad()
    def forward(self, batches: int | None = None) -> None:
        """One pure forward pass over the evaluation set (no loss), or over its first ``batches`` batches; the
        baseline of the benchmarks."""
        if self.model.training:
            self.model.eval()
        self._prepare()
        with self._autocast():
            for i, (x, _) in enumerate(self.batches()):
                if batches is not None and i >= batches:
                    break
                if self.objective is not None:
                    self.objective.terms(self._net, x, _)
                else:
                    self._net(x)

    @torch.no_grad()
    def evaluate_many(self, set_point: Callable[[int], None], k: int) -> list[EvalResult]:
        """``k`` points in one pass over the data: for each batch, ``set_point(j)`` writes point j's parameters,
        then a forward adds to point j's sums. The data is read once for all k points (streamed sets); each
        point's sums see the same batches in the same order as :meth:`evaluate`, so the values are equal.

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> tr, te = load_data("spiral", n_per_class=20)
            >>> ev = Evaluator(build_model("mlp", tr.info(), depth=1, width=4), te, "cpu")
            >>> ev.evaluate_many(lambda j: None, 2)[0] == ev.evaluate()
            True
        """
        if self.model.training:
            self.model.eval()
        if self.objective is not None:
            return [self._result(*r) for r in self._run_objective(k, set_point)]
        loss_sum = torch.zeros(k, device=self.device, dtype=torch.float64)
        correct = torch.zeros(k, device=self.device, dtype=torch.int64)
        classify = self.task != "regression"
        with self._autocast():
            for x, y in self.batches():
                for j in range(k):
                    set_point(j)
                    self._prepare()
                    out = logits(self._net(x)).float()
                    loss_sum[j] += self._loss(out, y).double().sum()
                    if classify:
                        correct[j] += correct_count(out, y)
        loss, hits = loss_sum.tolist(), correct.double().tolist()  # one host sync
        return [EvalResult(lo / self.count, h / self.count if classify else math.nan, self.n)
                for lo, h in zip(loss, hits)]

    @torch.no_grad()
    def evaluate(self, state: Mapping[str, torch.Tensor] | None = None) -> EvalResult:
        """Loss and accuracy at the current parameters, or at ``state`` written in first (in eval mode: a model
        left in training mode, as a training loop leaves it, would use and update batch statistics)."""
        if self.model.training:
            self.model.eval()
        if state is not None:
            self.set_state(state)
        self._prepare()
        if self.objective is not None:
            return self._result(*self._run_objective(1, lambda j: None)[0])
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        classify = self.task != "regression"
        with self._autocast():
            for x, y in self.batches():
                out = logits(self._net(x)).float()
                loss_sum += self._loss(out, y).double().sum()
                if classify:
                    correct += correct_count(out, y)
        vals = torch.stack([loss_sum, correct.double()]).tolist()  # one host sync
        acc = vals[1] / self.count if classify else math.nan
        return EvalResult(vals[0] / self.count, acc, self.n)

    @torch.no_grad()
    def _run_objective(self, k: int, set_point: Callable[[int], None]) -> list[tuple[float, float, float]]:
        """(loss sum, count, correct or NaN) of ``k`` points through the :class:`Objective` (one pass over the
        data, ``set_point(j)`` before point j's forward on each batch), with one host sync."""
        obj = self.objective
        loss_sum = torch.zeros(k, device=self.device, dtype=torch.float64)
        counts = torch.zeros(k, device=self.device, dtype=torch.float64)
        correct = torch.zeros(k, device=self.device, dtype=torch.float64)
        hits = True
        with self._autocast():
            for x, y in self.batches():
                for j in range(k):
                    set_point(j)
                    self._prepare()
                    lo, c, h = obj.terms(self._net, x, y)
                    loss_sum[j] += lo.detach().double()
                    counts[j] += torch.as_tensor(c, dtype=torch.float64, device=self.device)
                    if h is None:
                        hits = False
                    else:
                        correct[j] += h
        vals = torch.stack([loss_sum, counts, correct]).tolist()  # one host sync
        return [(lo, c, h if hits else math.nan) for lo, c, h in zip(*vals)]

    def _result(self, loss_sum: float, count: float, correct: float) -> EvalResult:
        """The mean loss and accuracy of sums over ``count`` (steps) or over the set's count."""
        count = count if self.objective is not None and self.objective.step is not None else self.count
        if not count:
            raise CheckpointError("the loss was summed over no targets (count 0): the step returned zero counts or "
                                  "every target is padding (-100)")
        acc = correct / count if self.task != "regression" and not math.isnan(correct) else math.nan
        return EvalResult(loss_sum / count, acc, self.n)
