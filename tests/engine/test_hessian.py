import copy

import numpy as np
import pytest
import torch

from conftest import exact_hessian
from landscape.analysis.spectrum import extreme_eigenpairs, hutchinson_trace
from landscape.core.data import load_data
from landscape.core.models import build_model
from landscape.engine.evaluator import Evaluator
from landscape.engine.hessian import HessianOperator


@pytest.fixture(scope="module")
def small():
    tr, te = load_data("spiral", n_per_class=40)
    torch.manual_seed(0)
    model = build_model("mlp", tr.info(), depth=2, width=6, activation="tanh")
    # move away from the initialisation so that the Hessian is not trivial
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tr.x), tr.y).backward()
        opt.step()
    return model, te


@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_hvp_equals_the_exact_hessian(small, ignore):
    model, te = small
    op = HessianOperator(Evaluator(copy.deepcopy(model), te, "cpu", batch_size=37), ignore=ignore)
    h = exact_hessian(model, te, op.names)
    assert h.shape == (op.numel, op.numel)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(op.numel, generator=g, dtype=torch.float64)
        np.testing.assert_allclose(op.matvec(v).numpy(), (h @ v).numpy(), rtol=2e-5, atol=2e-6 * float(h.abs().max()))
    if ignore == "biasbn":
        assert all(n.endswith("weight") for n in op.names)
    else:
        assert any(n.endswith("bias") for n in op.names)


def test_eigenvalues_and_trace_match_the_exact_hessian(small):
    model, te = small
    model64 = copy.deepcopy(model).double()
    data64 = type(te)(te.x.double(), te.y, te.task, te.num_classes)
    op = HessianOperator(Evaluator(model64, data64, "cpu"), ignore="none")
    h = exact_hessian(model, te, op.names)
    exact = torch.linalg.eigvalsh(h).numpy()
    r = extreme_eigenpairs(op.matvec, op.numel, top_k=3, bottom_k=2, tol=1e-9, max_iter=op.numel)
    assert r.converged
    np.testing.assert_allclose(r.values[:3], exact[::-1][:3], rtol=1e-5)
    np.testing.assert_allclose(r.values[3:], exact[:2], rtol=1e-5, atol=1e-5 * abs(exact).max())
    t = hutchinson_trace(op.matvec, op.numel, samples=60, seed=0)
    assert abs(t.value - float(exact.sum())) < 3 * t.stderr
    # float32 model (the default): the largest eigenvalue still to 1e-5
    op32 = HessianOperator(Evaluator(copy.deepcopy(model), te, "cpu"), ignore="none")
    r32 = extreme_eigenpairs(op32.matvec, op32.numel, top_k=1, tol=1e-7, max_iter=op32.numel)
    assert r32.values[0] == pytest.approx(exact.max(), rel=1e-5)


def test_loss_gradient_embed_and_restrict(small):
    model, te = small
    ev = Evaluator(copy.deepcopy(model), te, "cpu")
    op = HessianOperator(ev)
    loss, grad = op.loss_and_gradient()
    assert loss == pytest.approx(ev.evaluate().loss, rel=1e-6)
    x = te.x
    m = copy.deepcopy(model)
    torch.nn.functional.cross_entropy(m(x), te.y).backward()
    expected = torch.cat([dict(m.named_parameters())[n].grad.reshape(-1) for n in op.names]).double()
    assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-7)
    full = op.embed(grad)
    assert full.numel() == ev.spec.numel and torch.allclose(op.restrict(full), grad.float().double())
    offsets = dict(zip(ev.spec.names, ev.spec.offsets[:-1]))
    bias = ev.spec.names.index("net.1.bias")
    assert full[offsets["net.1.bias"]:offsets["net.1.bias"] + ev.spec.numels[bias]].abs().sum() == 0
    before = op.get()
    op.set(before + 1.0)
    assert torch.allclose(op.get(), before + 1.0)


def test_kept_gradient_graphs_give_the_same_products_and_follow_every_write(small):
    model, te = small
    ev = Evaluator(copy.deepcopy(model), te, "cpu", batch_size=37)
    op = HessianOperator(ev, ignore="none")
    fresh = HessianOperator(Evaluator(copy.deepcopy(model), te, "cpu", batch_size=37), ignore="none",
                            keep_graph=False)
    g = torch.Generator().manual_seed(3)
    vs = [torch.randn(op.numel, generator=g, dtype=torch.float64) for _ in range(3)]
    first = op.matvec(vs[0])
    assert op.graph_kept and op.graph_builds == 1
    for v in vs:  # products through the kept graphs: bitwise those of a rebuilt graph
        assert torch.equal(op.matvec(v), fresh.matvec(v))
    assert op.graph_builds == 1 and fresh.graph_builds == 3 and not fresh.graph_kept
    assert torch.equal(op.matvec(vs[0]), first)
    # a write through the operator, and one the engine makes in place, both drop the graphs
    op.set(op.get() * 1.01)
    fresh.set(fresh.get() * 1.01)
    assert not op.graph_kept
    assert torch.equal(op.matvec(vs[1]), fresh.matvec(vs[1])) and op.graph_builds == 2
    flat = ev.get_flat()
    ev.set_flat(flat * 0.99)
    fresh.ev.set_flat(fresh.ev.get_flat() * 0.99)
    assert not op.graph_kept
    assert torch.equal(op.matvec(vs[2]), fresh.matvec(vs[2])) and op.graph_builds == 3
    op.release()
    assert not op.graph_kept


@pytest.mark.parametrize("model_name", ["mlp", "lenet5"])
def test_batched_products_are_each_vectors_own_product_bitwise_and_the_trace_is_unchanged(model_name):
    from landscape.core.data import TensorData

    if model_name == "mlp":
        _, te = load_data("spiral", n_per_class=20)
    else:
        full = load_data("digits")[1]
        te = TensorData(full.x[:64], full.y[:64], "classification", 10, name="digits64")
    torch.manual_seed(0)
    ev = Evaluator(build_model(model_name, te.info()), te, "cpu", batch_size=40)  # two batches
    op = HessianOperator(ev, batched=True)  # (on a CPU only when asked: it is no faster there)
    g = torch.Generator().manual_seed(1)
    v = torch.randn(5, op.numel, generator=g, dtype=torch.float64)
    block = op.matmat(v)
    assert op.batched_products  # the check passed: batched backwards give the products bitwise
    for row, vi in zip(block, v):
        assert torch.equal(row, op.matvec(vi))
    fresh = HessianOperator(Evaluator(copy.deepcopy(ev.model), te, "cpu", batch_size=40), keep_graph=False,
                            batched=True)
    assert torch.equal(fresh.matmat(v), block)  # graphs built batch by batch give them too
    default = HessianOperator(ev)  # on a CPU: the rows one by one
    assert torch.equal(default.matmat(v), block) and default.batched_products is False
    for method in ("hutchinson", "hutch++"):
        one = hutchinson_trace(op.matvec, op.numel, 12, seed=3, method=method)
        blocks = hutchinson_trace(op.matvec, op.numel, 12, seed=3, method=method, matmat=op.matmat, block=5)
        assert (blocks.value, blocks.stderr, blocks.matvecs) == (one.value, one.stderr, one.matvecs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_data_convolutions_patch_gradient_gives_the_exact_hessian_and_no_data_gradient(dtype):
    from torch import nn
    from landscape.core.data import TensorData
    from landscape.engine.data_conv import PatchedConv

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.Tanh(), nn.Conv2d(3, 2, 2), nn.Tanh(),
                        nn.Flatten(), nn.Linear(2 * 3 * 3, 4)).to(dtype)
    data = TensorData(torch.randn(30, 2, 8, 8, dtype=dtype), torch.arange(30) % 4, "classification", 4, name="t")
    op = HessianOperator(Evaluator(net, data, "cpu", batch_size=16), ignore="none")  # two batches
    h = exact_hessian(net, data, op.names)
    g = torch.Generator().manual_seed(1)
    v = torch.randn(op.numel, generator=g, dtype=torch.float64)
    hv = op.matvec(v)
    np.testing.assert_allclose(hv.numpy(), (h @ v).numpy(), rtol=2e-5, atol=2e-5 * float(h.abs().max()))
    assert isinstance(op._data_conv, PatchedConv) and op._data_conv.conv is net[0]
    plain = HessianOperator(Evaluator(net, data, "cpu", batch_size=16), ignore="none")
    plain._data_conv = None  # the convolution's own double backward
    np.testing.assert_allclose(hv.numpy(), plain.matvec(v).numpy(), rtol=1e-6 if dtype == torch.float32 else 1e-12,
                               atol=1e-6 * float(hv.abs().max()))
    # the double backward of a product computes no transposed convolution back onto the data
    with torch.profiler.profile(record_shapes=True) as prof:
        op.matvec(v)
    shapes = [e.input_shapes for e in prof.events() if e.name == "aten::convolution" and e.input_shapes]
    # (conv1's output gradient [16, 3, 4, 4] through its weight [3, 2, 3, 3] back to the data's shape)
    assert shapes and not any(list(s[0]) == [16, 3, 4, 4] and list(s[1]) == [3, 2, 3, 3] for s in shapes)


def test_batched_products_that_round_otherwise_fall_back_to_one_at_a_time(small, monkeypatch):
    model, te = small
    op = HessianOperator(Evaluator(copy.deepcopy(model), te, "cpu"), batched=True)
    real = op._products
    monkeypatch.setattr(op, "_products", lambda v: real(v) * (1 + 1e-12))  # a backend that rounds otherwise
    v = torch.randn(3, op.numel, dtype=torch.float64)
    got = op.matmat(v)
    assert op.batched_products is False
    assert all(torch.equal(r, op.matvec(vi)) for r, vi in zip(got, v))


def test_graphs_are_not_kept_when_they_do_not_fit(small):
    model, te = small
    op = HessianOperator(Evaluator(copy.deepcopy(model), te, "cpu"), memory_fraction=0.0)
    v = torch.ones(op.numel, dtype=torch.float64)
    a = op.matvec(v)
    assert not op.graph_kept and op._bytes_per_sample > 0
    assert torch.equal(op.matvec(v), a) and op.graph_builds == 2


def test_batchnorm_folded_inside_the_forward_gives_the_exact_hessian():
    from torch import nn
    from landscape.core.data import subset
    from test_folding import randomise_statistics
    _, te = load_data("digits")
    data = subset(te, 64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(18, 10))
    randomise_statistics(model).eval()
    folded = HessianOperator(Evaluator(copy.deepcopy(model), data, "cpu", batch_size=40), ignore="none")
    plain = HessianOperator(Evaluator(copy.deepcopy(model), data, "cpu", batch_size=40), ignore="none",
                            fold_bn=False)
    assert folded.names == plain.names and "1.weight" in folded.names  # BatchNorm's γ moves too
    assert folded._net.pairs == 1 and plain._net is plain.ev.model
    h = exact_hessian(model, data, folded.names)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(folded.numel, generator=g, dtype=torch.float64)
        exact = (h @ v).numpy()
        for op in (folded, plain):
            np.testing.assert_allclose(op.matvec(v).numpy(), exact, rtol=1e-4, atol=1e-5 * float(h.abs().max()))
    # both take the data convolution's gradient from its patches: folded (through the fold) and plain
    assert type(folded._data_conv.module).__name__ == "GraphFold" and plain._data_conv.module is plain.ev.model[0]
    loss, grad = folded.loss_and_gradient()
    loss0, grad0 = plain.loss_and_gradient()
    assert loss == pytest.approx(loss0, rel=1e-6) and torch.allclose(grad, grad0, rtol=1e-4, atol=1e-6)


def test_block_methods_batch_products_only_where_a_backward_takes_several():
    _, te = load_data("spiral", n_per_class=10)
    ev = Evaluator(build_model("mlp", te.info(), depth=1, width=4), te, "cpu")
    assert not HessianOperator(ev).batches  # a CPU: one product per backward
    assert HessianOperator(ev, batched=True).batches
    assert not HessianOperator(ev, batched=False).batches
