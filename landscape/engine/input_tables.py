"""The first convolution's outputs kept as tables, for points of an affine family of parameters.

On the points θ* + Σᵢ cᵢ·dᵢ of a surface (or any family of points affine in a few coefficients), the
evaluation data x never changes, and a convolution is affine in its own weight and bias:

    conv(x; W* + Σᵢ cᵢ·Wᵢ, b* + Σᵢ cᵢ·bᵢ) = conv(x; W*, b*) + Σᵢ cᵢ·conv(x; Wᵢ, bᵢ)

So the model's first convolution, the one applied to the data themselves, is computed once per table (the centre
and each direction, over the resident data) and every point's output is the tables' combination: ``k`` fused
multiply-adds per output element, in place of the convolution. On CPUs the first convolutions of image models
(1 or 3 input channels, which oneDNN serves badly) cost 3–9 times the combination: 1.9 → 0.5 ms for LeNet-5's
conv1 on 360 digits, 33 → 3.8 ms for ResNet-20's on 500 CIFAR-shaped images.

Values: the combination rounds differently from the convolution of the combined weights (by float32 rounding), the
same way at every point, whatever the batch size, the batch mode, threads or ranks (the tables are computed in
fixed slices of rows, the combination is element-wise). A file computed with tables records it
(``input_tables`` in its inputs); ``evaluate.input_tables = false`` (``Evaluator(input_tables=False)``) turns it
off. Data read in batches (streamed, or beyond the device's budget) get the tables of each batch once per chunk
of points, computed on the same slices of rows as resident data, so values never depend on the resident budget.

A forward uses the tables only when it can be sure they hold its answer: no gradient is asked, the input is a
slice of the tabled data, and the layer's weight and bias are bitwise those the point wrote (anything else that
wrote parameters gets the convolution itself).

Example:
    >>> import torch
    >>> from torch import nn
    >>> conv = nn.Conv2d(1, 2, 3)
    >>> x = torch.randn(5, 1, 6, 6)
    >>> w0, b0 = conv.weight.detach().clone(), conv.bias.detach().clone()
    >>> w1, b1 = torch.randn_like(w0), torch.zeros_like(b0)
    >>> tables = InputTables(conv, x, [(w0, b0), (w1, b1)])
    >>> with torch.no_grad():
    ...     _ = conv.weight.copy_(w0).add_(w1, alpha=0.5)
    >>> tables.point((0.5,))
    >>> with torch.no_grad(), tables.active():
    ...     fast = conv(x[1:4])
    >>> bool(torch.allclose(fast, conv(x[1:4]), atol=1e-5)), tables.used
    (True, 1)
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Iterator, Sequence

import torch
from torch import nn

if TYPE_CHECKING:
    from .evaluator import Evaluator

__all__ = ["InputTables", "find_input_conv", "input_conv", "attach_tables", "TABLE_ROWS"]

log = logging.getLogger(__name__)

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TABLE_ROWS = 64  # rows per convolution call when tables are computed: fixed, so tables never depend on a batch size


def find_input_conv(net: nn.Module, x: torch.Tensor, kinds: tuple[type, ...] = _CONV) -> nn.Module | None:
    """The convolution that a forward of ``net`` applies to the batch ``x`` itself (the tensor given, not a
    transformed copy), or None. Only modules of exactly the types ``kinds`` count (plain ``nn.Conv1d/2d/3d``: a
    subclass may compute otherwise).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
        >>> find_input_conv(net, torch.randn(1, 1, 7, 7)) is net[0]
        True
        >>> find_input_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.randn(1, 4)) is None
        True
    """
    found: list[nn.Module] = []

    def pre(module: nn.Module, args: tuple) -> None:
        if not found and args and args[0] is x:
            found.append(module)

    handles = [m.register_forward_pre_hook(pre) for m in net.modules() if type(m) in kinds]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


class InputTables:
    """Tables of ``module``'s outputs on ``data`` for each ``(weight, bias)`` of ``weights``: the first is the
    centre's, the others the directions'. :meth:`point` says which combination the module's parameters now hold;
    inside :meth:`active` the module's forward answers from the tables.

    ``data`` is either all the evaluation inputs (resident: tables computed once), or one batch at a time
    (:meth:`load`, for data read in batches: its tables are computed at the first forward that needs them, once
    per batch and chunk of points). Either way the convolutions run on the same slices of rows, cut at every
    multiple of ``rows`` and of ``batch`` (the evaluation batch size) counted from the first sample, so the tables
    hold the same values bitwise whether the data are resident or read in batches."""

    def __init__(self, module: nn.Module, data: torch.Tensor | None,
                 weights: Sequence[tuple[torch.Tensor, torch.Tensor | None]], rows: int = TABLE_ROWS,
                 batch: int | None = None):
        if type(module) not in _CONV:
            raise TypeError(f"input tables need a plain convolution, not {type(module).__name__}")
        self.module, self.rows, self.batch = module, int(rows), int(batch) if batch else None
        self.weights = [(w.to(module.weight.dtype), b.to(module.weight.dtype) if b is not None and
                         module.bias is not None else None) for w, b in weights]
        self.data: torch.Tensor | None = None
        self.start = 0  # the global index of data's first row
        self.tables: list[torch.Tensor] | None = None
        self.used = 0  # forwards answered from the tables (for tests and logs)
        self.computed = 0  # times tables were computed (once when resident, once per batch and pass when not)
        if data is not None:
            self.data = data
            self.tables = self._compute()
        self.coeffs: tuple[float, ...] | None = None
        self._expected: tuple[torch.Tensor, torch.Tensor | None] | None = None

    @property
    def count(self) -> int:
        """The number of tables: the centre's and one per direction."""
        return len(self.weights)

    @staticmethod
    def cuts(start: int, n: int, rows: int, batch: int | None) -> list[tuple[int, int]]:
        """The slices (relative to ``start``) of the ``n`` rows from global row ``start`` that tables are computed
        on: cut at every multiple of ``rows`` and of ``batch``.

        Example:
            >>> InputTables.cuts(0, 10, 4, 6)
            [(0, 4), (4, 6), (6, 8), (8, 10)]
            >>> InputTables.cuts(6, 4, 4, 6)  # the second batch of 6 alone: the same slices
            [(0, 2), (2, 4)]
        """
        bounds = {0, n}
        for step in (rows, batch):
            if step:
                bounds.update(range(-start % step, n, step))
        edges = sorted(bounds)
        return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    @torch.no_grad()
    def _compute(self) -> list[torch.Tensor]:
        m, x = self.module, self.data
        slices = self.cuts(self.start, x.shape[0], self.rows, self.batch)
        out = []
        for w, b in self.weights:
            parts = [m._conv_forward(x[lo:hi], w, b) for lo, hi in slices]
            out.append(torch.cat(parts) if len(parts) > 1 else parts[0])
        self.computed += 1
        return out

    def load(self, data: torch.Tensor, start: int) -> None:
        """The next forwards read ``data``, rows ``start…`` of the evaluation set: its tables are computed when a
        forward first needs them."""
        self.data, self.start, self.tables = data, int(start), None

    def covers(self, x: torch.Tensor) -> bool:
        """Whether ``x`` is a slice of rows of the data the tables are for."""
        return self.data is not None and self._rows(x) is not None

    @staticmethod
    def nbytes_for(module: nn.Module, data: torch.Tensor, count: int) -> int:
        """Bytes that ``count`` tables of ``module`` on ``data`` take (one sample's output times the rows).

        Example:
            >>> InputTables.nbytes_for(nn.Conv2d(1, 6, 3), torch.zeros(10, 1, 32, 32), 3)  # 3 · 10 · 6·30·30 · 4
            648000
        """
        with torch.no_grad():
            one = module(data[:1])
        return count * data.shape[0] * one[0].numel() * one.element_size()

    @property
    def nbytes(self) -> int:
        """Bytes the tables take."""
        return sum(t.numel() * t.element_size() for t in self.tables or ())

    def rebind(self, module: nn.Module) -> "InputTables":
        """The same tables (shared, not copied, when resident) for a replica's copy of the module."""
        other = InputTables(module, None, self.weights, self.rows, self.batch)
        other.data, other.start, other.tables = self.data, self.start, self.tables
        return other

    @torch.no_grad()
    def point(self, coeffs: Sequence[float]) -> None:
        """The module's parameters now hold the centre plus ``Σ coeffs[i]·direction[i]`` (as just written)."""
        m = self.module
        self.coeffs = tuple(float(c) for c in coeffs)
        self._expected = (m.weight.detach().clone(), m.bias.detach().clone() if m.bias is not None else None)

    def _rows(self, x: torch.Tensor) -> tuple[int, int] | None:
        """The rows of the tabled data that ``x`` is a view of, or None."""
        d = self.data
        if (d is None or x.device != d.device or x.dtype != d.dtype or x.shape[1:] != d.shape[1:]
                or x.stride() != d.stride()
                or x.untyped_storage().data_ptr() != d.untyped_storage().data_ptr()):
            return None
        step = d.stride(0) * d.element_size()
        offset = x.data_ptr() - d.data_ptr()
        if step <= 0 or offset % step:
            return None
        lo = offset // step
        hi = lo + x.shape[0]
        return (lo, hi) if 0 <= lo and hi <= d.shape[0] else None

    def _fresh(self) -> bool:
        m, expected = self.module, self._expected
        if expected is None:
            return False
        return torch.equal(m.weight, expected[0]) and (m.bias is None or torch.equal(m.bias, expected[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The module's output at the current point: from the tables where they hold it, else the convolution."""
        rows = None if torch.is_grad_enabled() or self.coeffs is None else self._rows(x)
        if rows is None or not self._fresh():
            return type(self.module).forward(self.module, x)
        if self.tables is None:
            self.tables = self._compute()
        lo, hi = rows
        out = None
        for c, table in zip(self.coeffs, self.tables[1:]):
            if c:
                out = torch.add(self.tables[0][lo:hi], table[lo:hi], alpha=c) if out is None \
                    else out.add_(table[lo:hi], alpha=c)
        self.used += 1
        return out if out is not None else self.tables[0][lo:hi].clone()  # never a view: in-place ops follow

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within it the module's forward is :meth:`forward`; the module is left as it was after."""
        m = self.module
        had = "forward" in m.__dict__
        previous = m.__dict__.get("forward")
        m.forward = self.forward
        try:
            yield
        finally:
            if had:
                m.forward = previous
            else:
                del m.forward


def _first_input(ev: "Evaluator") -> torch.Tensor:
    """The evaluation set's first input as a batch of one, on the device."""
    if ev.stream is not None:
        return ev.stream.first_input().to(ev.device)
    return ev._x[:1].to(ev.device)


def input_conv(ev: "Evaluator", tables: int = 3) -> str | None:
    """The name of the convolution ``ev``'s model applies to the evaluation inputs themselves, where a plane may
    keep its outputs as tables: fp32, no compilation, no objective (a callable loss or a step), the layer not
    folded into a BatchNorm, ``tables`` of its outputs on all ``ev.n`` samples within ``ev.tables_budget``
    (whether the data are resident or read in batches, so that the choice never depends on the device's memory);
    else None.

    Example:
        >>> from landscape.core.data import load_data
        >>> from landscape.core.models import build_model
        >>> from landscape.engine.evaluator import Evaluator
        >>> te = load_data("digits")[1]
        >>> input_conv(Evaluator(build_model("lenet5", te.info()), te, "cpu"))
        'conv1'
        >>> input_conv(Evaluator(build_model("lenet5", te.info()), te, "cpu", input_tables=False)) is None
        True
    """
    if not (ev.allow_tables and ev.objective is None and ev.precision == "fp32" and not ev.compile and ev.n):
        return None
    x = _first_input(ev)
    if x.dim() < 3 or not x.is_floating_point():
        return None
    with ev._autocast():
        module = find_input_conv(ev._net, x)
    names = {id(m): name for name, m in ev.model.named_modules()}
    name = names.get(id(module)) if module is not None else None
    if name is None or "forward" in module.__dict__ or module.weight.dtype != x.dtype:
        return None  # folded (the net runs a folded copy), patched by the user, or of another dtype
    if InputTables.nbytes_for(module, x, tables) * ev.n > ev.tables_budget:
        log.info("first convolution %s: %d tables of its outputs on %d samples exceed their budget (%.0f MiB); "
                 "it is computed at every point", name, tables, ev.n, ev.tables_budget / 2**20)
        return None
    return name


def attach_tables(ev: "Evaluator", center: torch.Tensor, directions: Sequence[torch.Tensor]) -> InputTables | None:
    """Keep ``ev``'s input convolution's outputs (:func:`input_conv`) for the flat ``center`` and each flat
    direction; ``ev``'s forwards then answer from them at points announced with :meth:`InputTables.point`.
    Data on the device get their tables now; data read in batches get them per batch (:meth:`InputTables.load`,
    done by ``ev.batches()``). Returns the tables, or None where the model has no such layer (and ``ev`` keeps
    none).

    Example:
        >>> from landscape.core.data import load_data
        >>> from landscape.core.models import build_model
        >>> from landscape.engine.evaluator import Evaluator
        >>> te = load_data("digits")[1]
        >>> ev = Evaluator(build_model("lenet5", te.info()), te, "cpu")
        >>> c = ev.get_flat()
        >>> attach_tables(ev, c, [torch.ones_like(c)]).count, ev.transforms()
        (2, {'input_tables': 'conv1'})
    """
    ev.input_tables = None
    name = input_conv(ev, 1 + len(directions))
    if name is None:
        return None
    module = ev.model.get_submodule(name)
    index = {n: (lo, hi) for n, lo, hi in zip(ev.state, ev.spec.offsets[:-1], ev.spec.offsets[1:])}

    def part(vector: torch.Tensor, what: str) -> torch.Tensor | None:
        t = getattr(module, what)
        if t is None:
            return None
        lo, hi = index[f"{name}.{what}"]
        return vector[lo:hi].view(t.shape).to(ev.device)

    started = time.perf_counter()
    on_device = ev.stream is None and ev.resident
    tables = InputTables(module, ev._x if on_device else None,
                         [(part(v, "weight"), part(v, "bias")) for v in (center, *directions)], batch=ev.batch_size)
    ev.input_tables, ev.input_tables_layer = tables, name
    if on_device:
        log.info("first convolution %s kept as %d tables (%.1f MiB, %.2f s): each point combines them", name,
                 tables.count, tables.nbytes / 2**20, time.perf_counter() - started)
    else:
        log.info("first convolution %s: %d tables of its outputs per batch read, for each chunk of points", name,
                 tables.count)
    return tables
