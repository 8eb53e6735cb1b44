import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from landscape.core.data import load_data, subset
from landscape.core.models import build_model
from landscape.engine.evaluator import Evaluator
from landscape.engine.folding import FoldedNet, fold_conv_bn
from landscape.engine.plane import PlaneEvaluator


def randomise_statistics(model, seed=0):
    """Running statistics and affine parameters far from their initial values, so folding is not trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
    return model


def test_fold_conv_bn_by_hand_and_against_torch():
    # one channel by hand: s = 3 / sqrt(8 + 1) = 1; w = 2, b = (0.5 - 1.5) * 1 + 4 = 3
    w, b = fold_conv_bn(torch.tensor([[[[2.0]]]]), torch.tensor([0.5]), torch.tensor([1.5]), torch.tensor([8.0]),
                        1.0, torch.tensor([3.0]), torch.tensor([4.0]))
    assert w.item() == 2.0 and b.item() == 3.0 and w.dtype == torch.float32
    # no conv bias, no affine: s = 1 / sqrt(var + eps), b = -mean * s
    w, b = fold_conv_bn(torch.ones(1, 1, 1, 1), None, torch.tensor([2.0]), torch.tensor([3.0]), 1.0, None, None)
    assert w.item() == 0.5 and b.item() == -1.0
    g = torch.Generator().manual_seed(0)
    cw, cb = torch.randn(8, 3, 3, 3, generator=g), torch.randn(8, generator=g)
    mean, var = torch.randn(8, generator=g), torch.rand(8, generator=g) + 0.1
    gamma, beta = torch.randn(8, generator=g), torch.randn(8, generator=g)
    ours = fold_conv_bn(cw, cb, mean, var, 1e-5, gamma, beta)
    theirs = fuse_conv_bn_weights(cw, cb, mean, var, 1e-5, gamma, beta)
    for a, t in zip(ours, theirs):
        torch.testing.assert_close(a, t.detach(), rtol=1e-6, atol=1e-6)


def test_folded_resnet_equals_unfolded_and_follows_parameters_written_in_place():
    torch.manual_seed(0)
    model = randomise_statistics(build_model("resnet20", {"in_channels": 3, "num_classes": 10})).eval()
    folded = FoldedNet.build(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert folded is not None and folded.pairs == n_bn == 21  # 19 conv-bn pairs and 2 shortcut ones
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.net.modules() if m not in set(model.modules()))
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(folded.refresh()(x), ref, rtol=1e-4, atol=1e-4)
        for p in model.parameters():  # a new point, written into the original in place
            p.add_(torch.randn_like(p) * 0.01)
        moved = model(x)
        assert not torch.allclose(moved, ref, atol=1e-3)
        torch.testing.assert_close(folded.refresh()(x), moved, rtol=1e-4, atol=1e-4)
    # the original model is untouched: still its BatchNorms, still its parameters
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 21


def test_what_is_not_folded():
    class Shared(nn.Module):  # the conv's output is used twice: folding would change the other use
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    class Branchy(nn.Module):  # data-dependent control flow: not traceable
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x

    assert FoldedNet.build(Shared().eval()) is None
    assert FoldedNet.build(Branchy().eval()) is None
    assert FoldedNet.build(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))) is None
    assert FoldedNet.build(nn.Sequential(nn.ConvTranspose2d(1, 2, 3), nn.BatchNorm2d(2))) is None
    assert FoldedNet.build(build_model("mlp", {"input_dim": 4, "num_classes": 2})) is None


def test_evaluator_with_folding_matches_and_planes_are_bitwise_the_same_in_every_mode():
    _, te = load_data("digits")
    te = subset(te, 120)
    torch.manual_seed(0)
    model = randomise_statistics(build_model("resnet20", te.info()))
    plain = Evaluator(model, te, "cpu", batch_size=50)
    ev = Evaluator(model, te, "cpu", batch_size=50, fold_bn=True)
    assert ev.transforms() == {"fold_bn": 21} and plain.transforms() == {}
    a, b = plain.evaluate(), ev.evaluate()
    assert b.loss == pytest.approx(a.loss, rel=1e-5) and b.accuracy == a.accuracy
    center = ev.get_flat()
    g = torch.Generator().manual_seed(1)
    d1, d2 = torch.randn(center.shape, generator=g) * 0.02, torch.randn(center.shape, generator=g) * 0.02
    alphas, betas = np.linspace(-1, 1, 5), np.linspace(0.5, -0.5, 5)
    one = PlaneEvaluator(ev, center, d1, d2, 1).evaluate_points(alphas, betas)
    threads = PlaneEvaluator(ev, center, d1, d2, "threads:2").evaluate_points(alphas, betas)
    np.testing.assert_array_equal(threads[0], one[0])
    unfolded = PlaneEvaluator(plain, center, d1, d2, 1).evaluate_points(alphas, betas)
    np.testing.assert_allclose(one[0], unfolded[0], rtol=1e-5)
    assert len(set(one[0].tolist())) == 5  # the points differ: each was folded afresh
