import math

import pytest
import torch
import torch.nn.functional as F

from landscape.core.data import TensorData, load_data, subset
from landscape.core.errors import CheckpointError, ConfigError
from landscape.engine.device import resolve_device
from landscape.engine.evaluator import Evaluator
from landscape.core.models import build_model
from landscape.core.params import flatten_state


@pytest.fixture(scope="module")
def digits_test():
    return load_data("digits")[1]


def reference(model, data):
    model.eval()
    with torch.no_grad():
        out = model(data.x)
    return F.cross_entropy(out, data.y).item(), (out.argmax(1) == data.y).float().mean().item()


def test_matches_direct_computation_and_batch_size_free(digits_test):
    torch.manual_seed(1)
    m = build_model("lenet5")
    loss, acc = reference(m, digits_test)
    for bs in (7, 64, 1000):
        r = Evaluator(m, digits_test, "cpu", batch_size=bs).evaluate()
        assert r.loss == pytest.approx(loss, rel=1e-5) and r.accuracy == pytest.approx(acc) and r.n == 360


def test_streaming_equals_resident(digits_test):
    m = build_model("lenet5")
    a = Evaluator(m, digits_test, "cpu", 50).evaluate()
    ev = Evaluator(m, digits_test, "cpu", 50, max_resident_bytes=0)
    assert not ev.resident
    b = ev.evaluate()
    assert a.loss == pytest.approx(b.loss, rel=1e-6) and a.accuracy == b.accuracy


def test_parameters_written_in_place(digits_test):
    torch.manual_seed(0)
    m, other = build_model("lenet5"), build_model("lenet5")
    ev = Evaluator(m, digits_test, "cpu")
    ptrs = [t.data_ptr() for t in ev.state.values()]
    ev.set_flat(flatten_state(other.state_dict()))
    assert [t.data_ptr() for t in ev.state.values()] == ptrs
    assert torch.equal(m.fc1.weight, other.fc1.weight)
    r = ev.evaluate()
    assert r.loss == pytest.approx(reference(other, digits_test)[0], rel=1e-5)
    ev.evaluate({k: torch.zeros_like(v) for k, v in other.state_dict().items()})
    assert [t.data_ptr() for t in ev.state.values()] == ptrs and float(m.fc1.weight.detach().abs().sum()) == 0
    with pytest.raises(CheckpointError, match="fc1.weight: model shape"):
        ev.set_state({"fc1.weight": torch.zeros(3)}, strict=False)
    with pytest.raises(CheckpointError, match="lacks"):
        ev.set_state({"fc1.weight": m.fc1.weight})
    with pytest.raises(CheckpointError, match="expects 81194"):
        ev.set_flat(torch.zeros(5))


def test_batchnorm_uses_running_statistics():
    torch.manual_seed(0)
    m = build_model("resnet20", {"in_channels": 1, "num_classes": 10})
    data = subset(load_data("digits")[1], 40)
    m.bn1.running_mean.fill_(0.5)
    r = Evaluator(m, data, "cpu").evaluate()
    assert r.loss == pytest.approx(reference(m, data)[0], rel=1e-5)
    assert not m.training


def test_regression_and_nll():
    tr, te = load_data("sine")
    m = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    r = Evaluator(m, te, "cpu", 10).evaluate()
    with torch.no_grad():
        assert r.loss == pytest.approx(F.mse_loss(m(te.x), te.y).item(), rel=1e-5)
    assert math.isnan(r.accuracy)
    d = TensorData(torch.randn(30, 2), torch.randint(0, 3, (30,)), "classification", 3)
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LogSoftmax(1))
    r = Evaluator(m, d, "cpu", loss="nll").evaluate()
    with torch.no_grad():
        assert r.loss == pytest.approx(F.nll_loss(m(d.x), d.y).item(), rel=1e-5)
    with pytest.raises(ConfigError, match="does not suit"):
        Evaluator(m, te, "cpu", loss="cross_entropy")


def test_device_and_precision_checks(digits_test):
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="expected 'auto'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        Evaluator(build_model("lenet5"), digits_test, "cpu", precision="fp16")


@pytest.mark.gpu
def test_cuda_matches_cpu(digits_test):
    torch.manual_seed(0)
    m = build_model("lenet5")
    a = Evaluator(m, digits_test, "cpu").evaluate()
    b = Evaluator(m, digits_test, "cuda").evaluate()
    c = Evaluator(m, digits_test, "cuda", precision="bf16").evaluate()
    assert b.loss == pytest.approx(a.loss, rel=1e-4) and b.accuracy == a.accuracy
    assert c.loss == pytest.approx(a.loss, rel=5e-2)


def test_evaluate_uses_eval_mode_even_if_a_training_loop_left_train_mode():
    """Evaluating a BatchNorm model left in training mode must neither use nor update batch statistics
    (per-epoch test evaluations during training once leaked the test set into the running statistics)."""
    from torch import nn

    from landscape.core.data import TensorData

    torch.manual_seed(0)
    x, y = torch.randn(40, 3) * 3 + 1, torch.randint(0, 2, (40,))
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    ev = Evaluator(model, TensorData(x, y, num_classes=2), "cpu")
    expected = ev.evaluate()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert ev.evaluate() == expected
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_channels_last_layout_gives_the_same_values_up_to_rounding(digits_test):
    torch.manual_seed(3)
    m = build_model("resnet20", digits_test.info())
    ref = Evaluator(m, digits_test, "cpu", batch_size=100).evaluate()
    ev = Evaluator(m, digits_test, "cpu", batch_size=100, channels_last=True)
    assert all(p.is_contiguous() for p in ev.model.parameters())  # flat views of the parameters stay valid
    assert ev._batches[0][0].is_contiguous(memory_format=torch.channels_last)
    r = ev.evaluate()
    assert r.loss == pytest.approx(ref.loss, rel=1e-5) and r.accuracy == ref.accuracy
    assert ev.transforms() == {"channels_last": True}
    flat = ev.get_flat()  # the flat state is in logical order whatever the layout
    ev.set_flat(flat)
    assert torch.equal(ev.get_flat(), flat) and torch.equal(flat, Evaluator(m, digits_test, "cpu").get_flat())


def test_bf16_autocast_on_cpu_reports_its_difference_to_fp32(digits_test):
    torch.manual_seed(4)
    m = build_model("lenet5", digits_test.info())
    ev = Evaluator(m, digits_test, "cpu", precision="bf16")
    gap = ev.precision_gap()
    fp32 = Evaluator(m, digits_test, "cpu").evaluate().loss
    assert gap["fp32"] == fp32 and gap["bf16"] == ev.evaluate().loss
    assert gap["difference"] == gap["bf16"] - fp32 and 0 < abs(gap["difference"]) < 0.02 * fp32
