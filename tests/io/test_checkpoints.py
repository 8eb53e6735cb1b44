import collections

import pytest
import torch

from landscape.io.checkpoints import apply_state, load_source, load_state_file, split_source
from landscape.run.config import TrainConfig
from landscape.core.data import load_data
from landscape.core.errors import CheckpointError
from landscape.core.models import build_model
from landscape.run.training import train


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return build_model("lenet5")


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "dataparallel"])
def test_user_checkpoint_layouts(lenet, tmp_path, layout):
    sd = lenet.state_dict()
    obj = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3}, "model": {"model": sd},
           "dataparallel": {"state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())}}[layout]
    p = tmp_path / "c.pt"
    torch.save(obj, p)
    m = build_model("lenet5")
    apply_state(m, load_source(str(p), m))
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), sd.values()))


def test_mismatch_names_keys(lenet, tmp_path):
    sd = dict(lenet.state_dict())
    sd.pop("fc3.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["fc1.weight"] = torch.zeros(5, 5)
    p = tmp_path / "bad.pt"
    torch.save(sd, p)
    with pytest.raises(CheckpointError) as info:
        load_source(str(p), build_model("lenet5"))
    msg = str(info.value)
    assert "missing keys ['fc3.bias']" in msg and "unexpected keys ['extra.weight']" in msg
    assert "fc1.weight (model (120, 576)" in msg and "(5, 5)" in msg


class Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, p)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_state_file(p)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_file(tmp_path / "none.pt")


def test_trajectory_sources(tmp_path):
    tr, te = load_data("spiral", n_per_class=20)
    torch.manual_seed(0)
    model = build_model("mlp", tr.info())
    store = train(model, tr, te, TrainConfig(epochs=2), tmp_path / "run.h5", "cpu", progress=False)
    assert split_source(str(tmp_path / "run.h5")) == (tmp_path / "run.h5", "final")
    s = load_source(f"{tmp_path}/run.h5:epoch 1", build_model("mlp", tr.info()))
    assert torch.equal(s["net.1.weight"], store.state("epoch 1")["net.1.weight"])
    with pytest.raises(CheckpointError, match="does not fit"):
        load_source(f"{tmp_path}/run.h5:init", build_model("mlp", tr.info(), width=7))
