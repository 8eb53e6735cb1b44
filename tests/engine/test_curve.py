import numpy as np
import torch
from torch import nn

from landscape.analysis.interpolation import path_items
from landscape.core.data import TensorData, load_data
from landscape.core.models import build_model
from landscape.engine.curve import CurveModule, bend_state, batchnorm_layers, update_bn
from landscape.engine.evaluator import Evaluator
from landscape.engine.path import PathEvaluator


def bn_net(input_dim=2, num_classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(input_dim, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, num_classes))


def states(model, seeds):
    """The model's state perturbed by seeded Gaussian noise, once per seed."""
    out = []
    for s in seeds:
        torch.manual_seed(s)
        out.append({k: (v + torch.randn_like(v) if v.is_floating_point() else v.clone())
                    for k, v in model.state_dict().items()})
    return out


def test_curve_module_hits_the_endpoints_and_trains_only_the_bend():
    _, te = load_data("spiral", n_per_class=10)
    model = build_model("mlp", te.info(), depth=1, width=6)
    s0, s1 = states(model, (1, 2))
    curve = CurveModule(model, "bezier", s0, s1, seed=4)
    for t, target in ((0.0, s0), (1.0, s1)):
        curve.eval_t = t
        model.load_state_dict(target)
        assert torch.allclose(curve.eval()(te.x), model(te.x), atol=1e-6)
    curve.train()
    loss = curve(te.x).square().mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in curve.parameters())
    assert [n for n, _ in curve.named_parameters()] == [f"bend.{n}" for n, _ in model.named_parameters()]
    assert sorted(bend_state(curve.state_dict())) == sorted(model.state_dict())


def test_draws_depend_on_seed_and_count_only():
    model = nn.Linear(2, 1)
    s = model.state_dict()
    a, b = CurveModule(model, "bezier", s, s, seed=5), CurveModule(model, "bezier", s, s, seed=5)
    seq = [a.draw() for _ in range(6)]
    assert all(0.0 <= t < 1.0 for t in seq) and len(set(seq)) == 6
    b.load_state_dict({**b.state_dict(), "draws": torch.tensor(3.0, dtype=torch.float64)})  # a resumed module
    assert [b.draw() for _ in range(3)] == seq[3:]
    c = CurveModule(model, "bezier", s, s, seed=6)
    assert c.draw() != seq[0]


def test_update_bn_gives_the_statistics_of_the_whole_set():
    torch.manual_seed(1)
    x = torch.randn(50, 3) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor([3.0, -1.0, 0.0])
    net = nn.Sequential(nn.BatchNorm1d(3)).eval()
    assert update_bn(net, [x[:20], x[20:45], x[45:]])
    bn = net[0]
    assert torch.allclose(bn.running_mean, x.mean(0), atol=1e-5)
    # the sample-weighted mean of the batches' unbiased variances
    var = (20 * x[:20].var(0) + 25 * x[20:45].var(0) + 5 * x[45:].var(0)) / 50
    assert torch.allclose(bn.running_var, var, atol=1e-5)
    assert not net.training and bn.momentum == 0.1
    assert not update_bn(nn.Linear(2, 2), [x])


def test_path_evaluator_re_estimates_bn_at_every_point_and_restores_it():
    tr, te = load_data("spiral", n_per_class=20)
    model = bn_net()
    s0, s1 = states(model, (1, 2))
    bend = {k: (v + 0.5 if v.is_floating_point() else v) for k, v in s1.items()}
    ev = Evaluator(model, te, "cpu")
    batches = [tr.x[i:i + 16] for i in range(0, len(tr), 16)]
    items = path_items(model, ["model", "layer"])
    pe = PathEvaluator(ev, [s0, bend, s1], items, "bezier", bn_batches=batches)
    bn = batchnorm_layers(ev.model)[0]
    pe.set_point(0, 0.3)
    first = bn.running_mean.clone()
    probe = bn_net()  # by hand: the curve's weights at t = 0.3, then statistics of the training inputs
    w0, wb, w1 = 0.49, 0.42, 0.09
    probe.load_state_dict({k: (w0 * s0[k] + wb * bend[k] + w1 * s1[k]) if v.is_floating_point() else v
                           for k, v in s1.items()})
    update_bn(probe, batches)
    assert torch.allclose(first, probe[1].running_mean, atol=1e-5)
    r1 = ev.evaluate()
    pe.set_point(1, 0.3)  # a layer item: BatchNorm statistics start again from θ₁'s
    pe.set_point(0, 0.3)
    assert torch.equal(bn.running_mean, first) and ev.evaluate() == r1
    assert pe.bn_points == 3 and pe.bn_seconds > 0
    loss, _ = pe.evaluate_points(np.array([0.0, 0.0]), np.array([0.3, 0.3]))
    assert loss[0] == loss[1] == r1.loss
    plain = PathEvaluator(Evaluator(bn_net(), te, "cpu"), [s0, bend, s1], items, "bezier")
    assert plain.bn_points == 0 and plain.evaluate_points(np.array([0.0]), np.array([0.3]))[0][0] != r1.loss


def test_regression_data_curve_output_shapes():
    x = torch.randn(8, 3)
    data = TensorData(x, x @ torch.ones(3, 1), task="regression")
    model = nn.Linear(3, 1)
    s = model.state_dict()
    curve = CurveModule(model, "polychain", s, s)
    assert curve.eval()(data.x).shape == (8, 1)
