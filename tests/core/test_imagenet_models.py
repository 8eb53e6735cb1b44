"""ImageNet-style models with torchvision's parameter names. The key lists in tests/core/data/ were written from
these models once and checked then against torchvision's source (torchvision/models/resnet.py, densenet.py:
module names conv1/bn1/layerN.M.{conv,bn}K/downsample.{0,1}/fc and features.{conv0,norm0,denseblockN.denselayerM.
{norm1,conv1,norm2,conv2},transitionN.{norm,conv},norm5}/classifier); the parameter counts are torchvision's
published ones."""
from pathlib import Path

import pytest
import torch

from landscape.core.models import build_model
from landscape.io.checkpoints import load_source

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name,count", [("resnet18", 11_689_512), ("resnet50", 25_557_032),
                                        ("densenet121", 7_978_856)])
def test_parameter_counts_and_keys_equal_torchvision(name, count):
    model = build_model(name)
    assert sum(p.numel() for p in model.parameters()) == count
    assert list(model.state_dict()) == (DATA / f"{name}_keys.txt").read_text().split()


@pytest.mark.parametrize("name", ["resnet18_noskip", "resnet50_noskip"])
def test_noskip_variants_drop_the_shortcuts(name):
    model = build_model(name)
    keys = list(model.state_dict())
    assert keys == (DATA / f"{name}_keys.txt").read_text().split() and not any("downsample" in k for k in keys)
    skip = build_model(name.removesuffix("_noskip"))
    assert set(keys) < set(skip.state_dict())  # the same network minus the projection shortcuts


def test_small_inputs_and_data_arguments():
    x = torch.randn(2, 1, 64, 64)
    for name in ("resnet18", "resnet50_noskip", "densenet121"):
        model = build_model(name, {"in_channels": 1, "num_classes": 7}).eval()
        assert tuple(model(x).shape) == (2, 7), name


def test_torchvision_checkpoint_files_load_with_weights_only(tmp_path):
    """A torchvision checkpoint is a plain state dict; DenseNet's published files use the older 'norm.1' key
    names, which are renamed on loading."""
    ref = build_model("densenet121")
    old = {k.replace("norm1.", "norm.1.").replace("conv1.", "conv.1.").replace("norm2.", "norm.2.")
           .replace("conv2.", "conv.2.") if ".denselayer" in k else k: v for k, v in ref.state_dict().items()
           if not k.endswith("num_batches_tracked")}  # published before BatchNorm counted batches
    assert any(".norm.1." in k for k in old)
    torch.save(old, tmp_path / "densenet121-a639ec97.pth")
    state = load_source(str(tmp_path / "densenet121-a639ec97.pth"), build_model("densenet121"))
    assert all(torch.equal(state[k], v) for k, v in ref.state_dict().items())
    r18 = build_model("resnet18")
    torch.save({k: v for k, v in r18.state_dict().items() if not k.endswith("num_batches_tracked")},
               tmp_path / "resnet18-f37072fd.pth")
    state = load_source(str(tmp_path / "resnet18-f37072fd.pth"), build_model("resnet18"))
    assert sorted(state) == sorted(r18.state_dict())
