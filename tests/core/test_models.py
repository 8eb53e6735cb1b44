import pytest
import torch

from landscape.core.errors import ModelError
from landscape.core.models import CifarResNet, MODELS, build_model, layer_names, load_callable


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_lenet5_layer_parameter_counts_match_thesis_table():
    m = build_model("lenet5")
    counts = {name: n_params(mod) for name, mod in m.named_children()}
    assert counts == {"conv1": 60, "conv2": 880, "fc1": 69240, "fc2": 10164, "fc3": 850}
    assert m(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    assert layer_names(m) == ["conv1", "conv2", "fc1", "fc2", "fc3"]


# resnet110 is the same code with more blocks (its block count is checked below); gpt takes token ids
# (tests/core/test_language.py); the ImageNet models have their own tests (tests/core/test_imagenet_models.py)
IMAGENET = ("resnet18", "resnet50", "resnet18_noskip", "resnet50_noskip", "densenet121")


@pytest.mark.parametrize("name", sorted(n for n in MODELS if n not in ("mlp", "gpt") + IMAGENET
                                        and not n.startswith("resnet110")))
@pytest.mark.parametrize("channels", [1, 3])
def test_image_models_forward(name, channels):
    m = build_model(name, {"in_channels": channels, "num_classes": 7, "input_dim": channels * 1024})
    assert m(torch.randn(2, channels, 32, 32)).shape == (2, 7)


def test_resnet_depths_and_noskip():
    r20, r56 = build_model("resnet20"), build_model("resnet56")
    # He et al.: 0.27M and 0.85M parameters
    assert 0.26e6 < n_params(r20) < 0.28e6 and 0.84e6 < n_params(r56) < 0.87e6
    blocks = [m for m in build_model("resnet110").modules() if type(m).__name__ == "_BasicBlock"]
    assert len(blocks) == 54
    ns = build_model("resnet20_noskip")
    assert all(not b.skip for b in ns.modules() if type(b).__name__ == "_BasicBlock")
    assert not any("shortcut.0" in n for n, _ in ns.named_parameters())
    # with identical weights where they exist, the skip changes the output
    r20.load_state_dict(ns.state_dict(), strict=False)
    r20.eval(), ns.eval()
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(r20(x), ns(x))


@pytest.mark.parametrize("depth,width", [(1, 5), (5, 20), (10, 100), (0, 5)])
def test_mlp_depth_width(depth, width):
    m = build_model("mlp", {"input_dim": 2, "num_classes": 3}, depth=depth, width=width)
    linears = [l for l in m.modules() if isinstance(l, torch.nn.Linear)]
    assert len(linears) == depth + 1
    assert all(l.out_features == width for l in linears[:-1])
    assert m(torch.zeros(4, 2)).shape == (4, 3)


def test_user_model_by_callable_with_kwargs():
    m = build_model("userdefs:tiny", {"input_dim": 2, "num_classes": 3, "in_channels": 1}, hidden=9)
    assert m[0].out_features == 9 and m[2].out_features == 3


def test_model_errors_are_clear():
    with pytest.raises(ModelError, match="unknown model 'lenet6'.*lenet5"):
        build_model("lenet6")
    with pytest.raises(ModelError, match="does not take argument.*bogus"):
        build_model("mlp", bogus=1)
    with pytest.raises(ModelError, match="6n\\+2"):
        CifarResNet(21)
    with pytest.raises(ModelError, match="cannot import module"):
        load_callable("no_such_module_xyz:f")
    with pytest.raises(ModelError, match="returned int"):
        build_model("userdefs:not_a_model")
