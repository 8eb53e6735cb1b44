"""Hessian-vector products of the mean evaluation loss, exact by double backward.

H·v = ∇(∇L(θ)·v) for L the mean per-sample loss over the evaluation set (the loss the surfaces show), with
respect to the parameters a direction may move (``ignore``/``dir_type`` as for directions; BatchNorm running
statistics are buffers, not parameters, and never take part). The model stays in eval mode, the data resident
(or streamed) as the evaluator holds it; each batch's product is accumulated in float64. Vectors are flat over
the moved parameters in the evaluator's state order; :meth:`HessianOperator.embed` places them in the whole
state (``StateSpec`` order, zeros elsewhere), as surface directions are stored.

The first product at a point builds each batch's gradient graph (forward, then backward with
``create_graph``); when those graphs fit in memory (a quarter of what the device has free, measured on the
first batch; ``keep_graph``), they are kept, and every further product at the same parameters is one backward
through them — what Lanczos, Hutchinson and the spectral density pay per iteration. Writing any parameter or
buffer (the engine's in-place moves, :meth:`HessianOperator.set`) drops them: tensors' version counters say so.
Eval-mode BatchNorms after convolutions are folded into them inside the forward (``fold_bn``,
:class:`~landscape.engine.folding.GraphFold`): the same function of the same parameters, without BatchNorm's
double backward.

Example:
    >>> from landscape.core.data import load_data
    >>> from landscape.core.models import build_model
    >>> _, te = load_data("spiral", n_per_class=10)
    >>> op = HessianOperator(Evaluator(build_model("mlp", te.info(), depth=1, width=4), te, "cpu"))
    >>> op.names, op.numel
    (['net.1.weight', 'net.3.weight'], 20)
    >>> op.matvec(torch.zeros(20, dtype=torch.float64)).abs().sum().item()
    0.0
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterable, Iterator

import torch

from ..analysis.directions import movable_names
from ..core.errors import ConfigError
from .device import available_memory
from .evaluator import Evaluator
from .data_conv import PatchedConv
from .folding import FoldedNet
from .input_tables import find_input_conv
from .losses import logits, per_sample_loss

__all__ = ["HessianOperator"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _saved_bytes(exclude: set[int]) -> Iterator[list[int]]:
    """Count the bytes autograd saves for backward inside the block (distinct tensors, not ``exclude``'s
    data pointers: parameters and buffers, which are not new memory)."""
    seen: set[tuple[int, int]] = set()
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.data_ptr(), t.numel() * t.element_size())
        if key[0] not in exclude and key not in seen:
            seen.add(key)
            total[0] += key[1]
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


class HessianOperator:
    """H·v, the loss and its gradient at the evaluator's current parameters, over the moved parameters."""

    def __init__(self, evaluator: Evaluator, names: Iterable[str] | None = None, ignore: str = "biasbn",
                 dir_type: str = "weights", keep_graph: bool | None = None, memory_fraction: float = 0.25,
                 fold_bn: bool = True, batched: bool | None = None):
        """``batched``: :meth:`matmat` by batched backwards (None: on accelerators only)."""
        self.ev = evaluator
        fold_bn = fold_bn and evaluator.objective is None  # an objective's forward may take dict batches
        self._net = (FoldedNet.build(evaluator.model, differentiable=True) if fold_bn else None) or evaluator.model
        self.keep_graph, self.memory_fraction = keep_graph, float(memory_fraction)
        self._graphs: list[tuple[torch.Tensor, ...]] | None = None
        self._key: tuple[int, ...] | None = None
        self._bytes_per_sample: float | None = None
        self.graph_builds = 0
        params = dict(evaluator.model.named_parameters())
        if names is None:
            names = movable_names(evaluator.state, params, dir_type, ignore) & set(params)
        wanted = set(names)
        self.names = [n for n in evaluator.state if n in wanted and n in params]
        if not self.names:
            raise ConfigError(f"curvature: no parameter to differentiate (ignore={ignore!r}, dir_type={dir_type!r}); "
                              "use ignore = \"none\"")
        self.params = [params[n] for n in self.names]
        self.sizes = [p.numel() for p in self.params]
        self.numel = sum(self.sizes)
        self.device = evaluator.device
        self._loss = per_sample_loss(evaluator.loss_name) if evaluator.objective is None else None
        self.matvecs = 0
        self.batched = batched
        self.batched_products: bool | None = None if batched is not False else False  # bitwise (checked once)
        self._data_conv: PatchedConv | None | bool = False  # the data's convolution (False: not looked for yet)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One batch's summed loss, differentiable."""
        if self.ev.objective is not None:
            return self.ev.objective.terms(self._net, x, y)[0].float()
        with self._data_conv_patched(x):
            return self._loss(logits(self._net(x)).float(), y).sum()

    @contextlib.contextmanager
    def _data_conv_patched(self, x: torch.Tensor) -> Iterator[None]:
        """The convolution applied to the data takes its gradient from the data's patches (engine/data_conv.py:
        its double backward then computes no gradient for the data)."""
        if self._data_conv is False:  # not looked for yet: the first convolution on a data batch, if eligible
            conv = find_input_conv(self._net, x[:1], PatchedConv.KINDS) \
                if x.dim() == 4 and x.is_floating_point() else None
            self._data_conv = PatchedConv(conv) if conv is not None else None
        if self._data_conv is None or not self._data_conv.usable(x):
            yield
            return
        patched = self._data_conv
        handle = patched.module.register_forward_hook(
            lambda module, args, out: patched.output(out, x) if args and args[0] is x else None)
        try:
            yield
        finally:
            handle.remove()

    @property
    def batches(self) -> bool:
        """Whether :meth:`matmat` takes several vectors per backward (on accelerators, or ``batched=True``) rather
        than one at a time; block methods pay only then."""
        return self.batched_products is not False and (bool(self.batched) or self.device.type != "cpu")

    @property
    def block_matmat(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """:meth:`matmat` where it :attr:`batches` products, else None (for block Lanczos and SLQ's lockstep)."""
        return self.matmat if self.batches else None

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        return [c.view_as(p).to(p.dtype) for c, p in zip(torch.split(v.to(self.device), self.sizes), self.params)]

    def _eval_mode(self) -> None:
        if self.ev.model.training:
            self.ev.model.eval()
        for p in self.params:
            p.requires_grad_(True)

    def _state_key(self) -> tuple[int, ...]:
        return tuple(t._version for t in self.ev.state.values())

    @property
    def graph_kept(self) -> bool:
        """Whether the gradient graphs of the current parameters are held (further products are cheaper)."""
        return self._graphs is not None and self._key == self._state_key()

    def release(self) -> None:
        """Drop the kept gradient graphs (their memory is freed)."""
        self._graphs, self._key = None, None

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H·v (float64, flat over :attr:`names`) of the mean loss at the current parameters."""
        self._eval_mode()
        out = torch.zeros(self.numel, dtype=torch.float64, device=self.device)
        self._accumulate(self._split(v), out)
        self.matvecs += 1
        return out / self.ev.count

    def _accumulate(self, vs: list[torch.Tensor], out: torch.Tensor) -> None:
        """The products along ``vs`` summed over the batches into ``out``: through the kept gradient graphs of
        the current parameters, or building them (and keeping them when they fit)."""
        key = self._state_key()
        with torch.enable_grad():
            if self._graphs is not None and self._key == key:
                for grads in self._graphs:
                    self._add_product(out, grads, vs, keep=True)
            else:
                self.release()
                graphs = self._build(vs, out)
                self._graphs, self._key = graphs, (key if graphs is not None else None)

    def _add_product(self, out: torch.Tensor, grads: tuple[torch.Tensor, ...], vs: list[torch.Tensor],
                     keep: bool) -> None:
        """One batch's H·v, the backward of its gradient ``grads`` along ``vs``, added to ``out`` in float64
        (rows of H·V when ``out`` is ``[m, n]`` and ``vs`` carry a leading dimension of m: one batched backward)."""
        batched = out.dim() == 2
        hv = torch.autograd.grad(grads, self.params, grad_outputs=vs, retain_graph=keep, is_grads_batched=batched)
        if batched:
            out += torch.cat([h.reshape(len(out), -1) for h in hv], dim=1).double()
        else:
            out += torch.cat([h.reshape(-1) for h in hv]).double()

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """H·vᵢ for the rows of ``vectors`` ``[m, n]`` (float64 ``[m, n]``), by one batched backward per batch
        (autograd's ``is_grads_batched``: vmap over the products) instead of m, on accelerators (on a CPU it is
        no faster: the rows one by one, unless ``batched=True`` was given). Each row is checked once against
        :meth:`matvec`: where a model's batched backward rounds differently, the rows are computed one by one,
        so the values never depend on the block size.

        Example:
            >>> from landscape.core.data import load_data
            >>> from landscape.core.models import build_model
            >>> _, te = load_data("spiral", n_per_class=10)
            >>> op = HessianOperator(Evaluator(build_model("mlp", te.info(), depth=1, width=4), te, "cpu"),
            ...                      batched=True)
            >>> v = torch.randn(3, op.numel, dtype=torch.float64)
            >>> bool((op.matmat(v)[1] == op.matvec(v[1])).all())
            True
        """
        vectors = vectors.to(self.device, torch.float64)
        if self.batched_products is None and self.device.type == "cpu" and not self.batched:
            self.batched_products = False  # a CPU's batched backward is no faster (bench_hessian); forced: batched
        if self.batched_products is None and len(vectors) > 1:
            first = self._products(vectors[:2])
            self.batched_products = bool(torch.equal(first[0], self.matvec(vectors[0])))
            self.matvecs -= 1  # the check's own product
            if not self.batched_products:
                log.info("batched Hessian-vector products round differently for this model: one at a time")
            elif len(vectors) == 2:
                return first
            else:
                return torch.cat([first, self.matmat(vectors[2:])])
        if not self.batched_products or len(vectors) == 1:
            return torch.stack([self.matvec(v) for v in vectors])
        return self._products(vectors)

    def _products(self, vectors: torch.Tensor) -> torch.Tensor:
        """The rows' products by batched backwards (the graphs kept, or built, as :meth:`matvec` does)."""
        self._eval_mode()
        m = len(vectors)
        vs = [c.reshape((m,) + p.shape).to(p.dtype) for c, p in zip(torch.split(vectors, self.sizes, dim=1),
                                                                      self.params)]
        out = torch.zeros(m, self.numel, dtype=torch.float64, device=self.device)
        self._accumulate(vs, out)
        self.matvecs += m
        return out / self.ev.count

    def _fits(self) -> bool:
        need = self._bytes_per_sample * self.ev.count
        free = available_memory(self.device)
        ok = need <= self.memory_fraction * free
        (log.info if self.graph_builds == 0 else log.debug)(
            "Hessian-vector products: gradient graphs need %.0f MB, %.0f MB free: %s", need / 2**20, free / 2**20,
            "kept between products" if ok else "rebuilt for every product")
        return ok

    def _build(self, vs: list[torch.Tensor], out: torch.Tensor) -> list[tuple[torch.Tensor, ...]] | None:
        """One product, batch by batch, into ``out``; returns the batches' gradient graphs when they are kept."""
        # forced either way, or measured on this build's first batch, or known from an earlier build
        keep = self.keep_graph if self.keep_graph is not None else (self._bytes_per_sample is None or self._fits())
        exclude = {t.data_ptr() for t in self.ev.state.values()}
        graphs: list[tuple[torch.Tensor, ...]] = []
        for x, y in self.ev.batches():
            measure = keep and self._bytes_per_sample is None
            with _saved_bytes(exclude) if measure else contextlib.nullcontext() as saved:
                loss = self._batch_loss(x, y)
                grads = torch.autograd.grad(loss, self.params, create_graph=True)
            if measure:
                self._bytes_per_sample = (saved[0] + 4 * self.numel) / max(len(y), 1)
                keep = bool(self.keep_graph) or self._fits()
            self._add_product(out, grads, vs, keep)
            if keep:
                graphs.append(grads)
        self.graph_builds += 1
        return graphs if keep else None

    def loss_and_gradient(self) -> tuple[float, torch.Tensor]:
        """The mean loss and its gradient (float64, flat over :attr:`names`) at the current parameters."""
        self._eval_mode()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        grad = torch.zeros(self.numel, dtype=torch.float64, device=self.device)
        with torch.enable_grad():
            for x, y in self.ev.batches():
                loss = self._batch_loss(x, y)
                g = torch.autograd.grad(loss, self.params)
                grad += torch.cat([t.reshape(-1) for t in g]).double()
                total += loss.detach().double()
        return float(total) / self.ev.count, grad / self.ev.count

    def forward_backward(self) -> None:
        """One forward and backward pass over the evaluation set (the benchmarks' unit of cost)."""
        self.loss_and_gradient()

    def get(self) -> torch.Tensor:
        """The moved parameters' current values, flat (float64)."""
        return torch.cat([p.detach().reshape(-1) for p in self.params]).double()

    @torch.no_grad()
    def set(self, flat: torch.Tensor) -> None:
        """Write flat values into the moved parameters in place (kept gradient graphs are dropped)."""
        self.release()
        for p, c in zip(self.params, self._split(flat)):
            p.copy_(c)

    def embed(self, flat: torch.Tensor) -> torch.Tensor:
        """A flat vector over :attr:`names` placed in the whole state (``StateSpec`` order, float32, zeros
        elsewhere), as surface directions and stored eigenvectors are laid out."""
        out = torch.zeros(self.ev.spec.numel, dtype=torch.float32)
        for n, part in zip(self.names, torch.split(flat.detach().cpu().float(), self.sizes)):
            out[self.ev.spec.slice(n)] = part
        return out

    def restrict(self, full: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`embed`: the moved parameters' entries of a whole-state vector (float64)."""
        return torch.cat([full[self.ev.spec.slice(n)].double() for n in self.names]).to(self.device)
