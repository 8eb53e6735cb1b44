"""The first convolution's outputs as tables: equal to the convolution up to rounding, used only where they hold
the answer, the same values in every batch mode, and recorded in the file."""
import json
import logging

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape.core.data import TensorData, load_data
from landscape.core.models import build_model
from landscape.engine.evaluator import Evaluator
from landscape.engine.input_tables import InputTables, find_input_conv, input_conv
from landscape.engine.plane import PlaneEvaluator


@pytest.mark.parametrize("conv", [nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(1, 2, (3, 2), stride=2, bias=False),
                                  nn.Conv1d(2, 3, 5, padding=2, padding_mode="circular")])
def test_tables_combine_to_the_convolution_of_combined_weights(conv):
    g = torch.Generator().manual_seed(0)
    x = torch.randn((70, conv.in_channels) + (9,) * (conv.weight.dim() - 2), generator=g)
    w0, w1, w2 = (torch.randn(conv.weight.shape, generator=g) for _ in range(3))
    bias = [torch.randn(conv.out_channels, generator=g) if conv.bias is not None else None for _ in range(3)]
    tables = InputTables(conv, x, list(zip((w0, w1, w2), bias)), rows=16)
    for a, b in ((0.5, -0.25), (0.0, 1.5), (-2.0, 0.0)):
        with torch.no_grad():
            conv.weight.copy_(w0).add_(w1, alpha=a).add_(w2, alpha=b)
            if conv.bias is not None:
                conv.bias.copy_(bias[0]).add_(bias[1], alpha=a).add_(bias[2], alpha=b)
            direct = conv(x[10:50])
            tables.point((a, b))
            with tables.active():
                fast = conv(x[10:50])
        torch.testing.assert_close(fast, direct, rtol=1e-5, atol=1e-5)
    assert tables.used == 3 and "forward" not in conv.__dict__  # the module is left as it was


def test_tables_are_used_only_where_they_hold_the_answer():
    conv = nn.Conv2d(1, 2, 3)
    x = torch.randn(8, 1, 6, 6)
    w0 = conv.weight.detach().clone()
    tables = InputTables(conv, x, [(w0, conv.bias.detach().clone()), (torch.ones_like(w0), None)])
    with torch.no_grad():
        conv.weight.add_(torch.ones_like(w0), alpha=0.5)
    tables.point((0.5,))
    with tables.active():
        with torch.no_grad():
            conv(x[2:5])
            assert tables.used == 1
            conv(x.clone()[2:5])  # not the tabled data
            conv(x[:, :, 1:, :])  # a view of it, but not rows of it
            assert tables.used == 1
        out = conv(x[2:5])  # gradients asked: the convolution itself
        assert tables.used == 1 and out.requires_grad
        with torch.no_grad():
            conv.weight.add_(1e-3)  # written by something else: the tables no longer hold it
            torch.testing.assert_close(conv(x[2:5]), type(conv).forward(conv, x[2:5]), rtol=0, atol=0)
            assert tables.used == 1


def test_an_inplace_relu_after_the_layer_leaves_the_tables_intact():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3 * 16, 2)).eval()
    x, y = torch.randn(20, 1, 6, 6), torch.arange(20) % 2
    ev = Evaluator(net, TensorData(x, y, "classification", 2, name="t"), "cpu", batch_size=7, input_tables=True)
    c = ev.get_flat()
    plane = PlaneEvaluator(ev, c, torch.randn_like(c), torch.randn_like(c))
    assert plane.tables is not None
    first = plane.evaluate_points(np.array([0.3, -0.2, 0.3]), np.array([0.1, 0.4, 0.1]))[0]
    assert first[0] == first[2] and plane.tables.used == 9  # 3 points × 3 batches


def test_eligibility(caplog):
    caplog.set_level(logging.INFO, logger="landscape")
    te = load_data("digits")[1]
    assert input_conv(Evaluator(build_model("lenet5", te.info()), te, "cpu", input_tables=True)) == "conv1"
    assert input_conv(Evaluator(build_model("lenet5", te.info()), te, "cpu", precision="bf16", input_tables=True)) is None
    assert input_conv(Evaluator(build_model("lenet5", te.info()), te, "cpu", tables_budget=1 << 20, input_tables=True)) is None
    assert "exceed their budget" in caplog.text
    folded = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 30 * 30, 10)).eval()
    assert input_conv(Evaluator(folded, te, "cpu", fold_bn=True, input_tables=True)) is None  # the net runs a folded copy
    assert input_conv(Evaluator(folded, te, "cpu", input_tables=True)) == "0"
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(1024, 10))
    assert find_input_conv(mlp, te.x[:1]) is None


def test_surfaces_with_tables_match_the_convolution_and_every_batch_mode():
    te = load_data("digits")[1]
    torch.manual_seed(0)
    model = build_model("lenet5", te.info())
    g = torch.Generator().manual_seed(1)
    ev = Evaluator(model, te, "cpu", channels_last=True, input_tables=True)
    c = ev.get_flat()
    d1, d2 = torch.randn(c.shape, generator=g) * 0.05, torch.randn(c.shape, generator=g) * 0.05
    a, b = np.linspace(-1, 1, 6), np.linspace(0.5, -1, 6)
    ref = PlaneEvaluator(ev, c, d1, d2, 1).evaluate_points(a, b)[0]
    assert ev.transforms()["input_tables"] == "conv1"
    threads = PlaneEvaluator(ev, c, d1, d2, "threads:2").evaluate_points(a, b)[0]
    np.testing.assert_array_equal(threads, ref)  # replicas share the tables and combine them alike
    plain = Evaluator(build_model("lenet5", te.info()), te, "cpu", channels_last=True, input_tables=False)
    plain.model.load_state_dict(model.state_dict())
    direct = PlaneEvaluator(plain, c, d1, d2, 1).evaluate_points(a, b)[0]
    assert "input_tables" not in plain.transforms()
    np.testing.assert_allclose(ref, direct, rtol=2e-7)


def test_tables_are_on_by_default_and_the_model_is_left_alone(tmp_path):
    import landscape as ls
    te = load_data("digits")[1]
    model = build_model("lenet5", te.info()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = ls.surface(model, (te.x[:64], te.y[:64]), alpha=(-1, 1, 3), beta=(-1, 1, 3), out=tmp_path / "s.h5",
                   progress=False)
    with h5py.File(tmp_path / "s.h5") as f:
        assert json.loads(f.attrs["inputs"])["input_tables"] == "conv1"
    assert "forward" not in model.conv1.__dict__
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    off = ls.surface(model, (te.x[:64], te.y[:64]), alpha=(-1, 1, 3), beta=(-1, 1, 3), progress=False,
                     input_tables=False)
    np.testing.assert_allclose(s.loss, off.loss, rtol=2e-7)


def _rgb_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(64, 10))


@pytest.mark.parametrize("kind,batch", [("lenet5", 48), ("rgb", 1)])
def test_data_read_in_batches_get_the_same_tables_bitwise(kind, batch):
    """Tables of data beyond the device's budget (read batch by batch) are cut like the resident ones (100
    samples in batches of 48: at 48, 64 and 96 either way), so the values are equal bitwise. With 3 input channels
    a convolution of one row rounds otherwise than of 64 rows here: resident tables cut only at 64 would differ."""
    te = load_data("digits")[1]
    torch.manual_seed(0)
    if kind == "lenet5":
        data, model = TensorData(te.x[:100], te.y[:100], "classification", 10, name="d"), build_model("lenet5", te.info())
    else:
        g = torch.Generator().manual_seed(2)
        data = TensorData(torch.randn(40, 3, 32, 32, generator=g), torch.arange(40) % 10, "classification", 10,
                          name="rgb")
        model = _rgb_net()
    ev_res = Evaluator(model, data, "cpu", batch_size=batch)
    ev_big = Evaluator(model, data, "cpu", batch_size=batch, max_resident_bytes=0)
    assert ev_res.resident and not ev_big.resident
    ev_big._batches = [(x.clone(), y) for x, y in ev_big._batches]  # as on a GPU: each batch a copy, not a view
    c = ev_res.get_flat()
    g = torch.Generator().manual_seed(1)
    d1, d2 = torch.randn(c.shape, generator=g) * 0.05, torch.randn(c.shape, generator=g) * 0.05
    a, b = np.linspace(-1, 1, 5), np.linspace(1, -1, 5)
    want = PlaneEvaluator(ev_res, c, d1, d2, 1).evaluate_points(a, b)[0]
    big = PlaneEvaluator(ev_big, c, d1, d2, 1, points_per_pass=2)
    got = big.evaluate_points(a, b)[0]
    np.testing.assert_array_equal(got, want)
    batches = len(ev_big._batches)
    assert big.passes and ev_big.input_tables.computed == 3 * batches and ev_big.input_tables.used == 5 * batches
