import math

import pytest
import torch

from landscape.analysis.directions import (cosine, direction_between, movable_names, normalize_direction,
                                           random_directions)
from landscape.core.errors import ConfigError
from landscape.core.models import build_model


def test_filter_normalisation_by_hand():
    # two filters of a conv weight (2, 1, 2, 1): w rows (3, 4) and (0, 2); d rows (1, 1) and (0, -3)
    w = {"c.weight": torch.tensor([[[[3.], [4.]]], [[[0.], [2.]]]])}
    d = {"c.weight": torch.tensor([[[[1.], [1.]]], [[[0.], [-3.]]]])}
    n = normalize_direction(d, w, "filter", "biasbn")["c.weight"].reshape(2, 2)
    s = 5 / math.sqrt(2)
    assert n.flatten().tolist() == pytest.approx([s, s, 0.0, -2.0])


def test_layer_model_none_by_hand():
    w = {"a": torch.tensor([[3., 4.]]), "b": torch.tensor([[0., 12.]])}
    d = {"a": torch.tensor([[2., 0.]]), "b": torch.tensor([[0., 1.]])}
    layer = normalize_direction(d, w, "layer", "none")
    assert layer["a"].tolist() == [[5.0, 0.0]] and layer["b"].tolist() == [[0.0, 12.0]]
    model = normalize_direction(d, w, "model", "none")  # ||w|| = 13, ||d|| = sqrt(5)
    k = 13 / math.sqrt(5)
    assert model["a"].tolist()[0] == pytest.approx([2 * k, 0]) and model["b"].tolist()[0] == pytest.approx([0, k])
    assert normalize_direction(d, w, "none", "none")["a"].tolist() == [[2.0, 0.0]]
    with pytest.raises(ConfigError, match="norm: expected one of"):
        normalize_direction(d, w, "unit")


def test_ignore_biasbn_and_one_dimensional_filters():
    w = {"w": torch.ones(2, 2), "b": torch.tensor([2., -3.])}
    d = {"w": torch.ones(2, 2), "b": torch.tensor([-0.5, 4.])}
    assert normalize_direction(d, w, "filter", "biasbn")["b"].tolist() == [0.0, 0.0]
    # with ignore=none a 1-D tensor's direction is the tensor itself, as in the reference: d = w, whatever the
    # random values and the norm (not ±|w| with a random sign)
    for norm in ("filter", "layer", "model", "none"):
        assert normalize_direction(d, w, norm, "none")["b"].tolist() == [2.0, -3.0]


def test_weights_vs_states_and_integer_buffers():
    m = build_model("resnet20")
    center = m.state_dict()
    params = [n for n, _ in m.named_parameters()]
    w = movable_names(center, params, "weights", "none")
    s = movable_names(center, params, "states", "none")
    assert "bn1.running_mean" in s and "bn1.running_mean" not in w and "bn1.weight" in w
    assert not any(n.endswith("num_batches_tracked") for n in s)
    assert all(center[n].dim() > 1 for n in movable_names(center, params, "states", "biasbn"))
    d1, = random_directions(center, params, seed=0, dir_type="states", ignore="none", count=1)
    assert d1["bn1.running_var"].abs().sum() > 0 and d1["bn1.num_batches_tracked"].abs().sum() == 0
    d1w, = random_directions(center, params, seed=0, count=1)
    assert d1w["bn1.running_var"].abs().sum() == 0 and d1w["bn1.weight"].abs().sum() == 0
    # filter-normalised: every filter of every conv has the norm of the model's filter
    wt, dt = center["layers.0.conv1.weight"], d1w["layers.0.conv1.weight"]
    assert torch.allclose(dt.flatten(1).norm(dim=1), wt.flatten(1).norm(dim=1), rtol=1e-5)


def test_seeds_reproducible_and_distinct():
    m = build_model("lenet5")
    c, params = m.state_dict(), [n for n, _ in m.named_parameters()]
    a1, a2 = random_directions(c, params, seed=4)
    b1, _ = random_directions(c, params, seed=4)
    e1, _ = random_directions(c, params, seed=5)
    assert all(torch.equal(a1[k], b1[k]) for k in a1)
    assert not torch.equal(a1["fc1.weight"], e1["fc1.weight"]) and not torch.equal(a1["fc1.weight"], a2["fc1.weight"])


def test_between_and_cosine():
    d = direction_between({"w": torch.tensor([1., 1.]), "n": torch.tensor(3)}, {"w": torch.tensor([2., 0.]),
                                                                               "n": torch.tensor(9)})
    assert d["w"].tolist() == [1.0, -1.0] and d["n"].item() == 0
    assert cosine(torch.tensor([1., 0.]), torch.tensor([0., 2.])) == 0.0
    assert cosine(torch.tensor([1., 1.]), torch.tensor([2., 2.])) == pytest.approx(1.0)
    assert cosine(torch.tensor([3., 4.]), torch.tensor([4., 3.])) == pytest.approx(24 / 25)
    assert cosine(torch.zeros(2), torch.ones(2)) == 0.0
