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


def test_tied_weights_load_from_a_full_state_and_differing_values_are_refused(tmp_path):
    """A tied model's full state_dict (both names, as torch.save writes a tied Hugging Face model) loads; one
    whose tied tensors differ is of an untied model: refused by name, not loaded with one of them dropped."""
    def tied():
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
        m[1].weight = m[0].weight
        return m

    full = tied().state_dict()
    assert set(full) == {"0.weight", "1.weight"}
    torch.save(full, tmp_path / "full.pt")
    torch.save({k: v.clone() for k, v in full.items()}, tmp_path / "copies.pt")  # equal, no longer shared
    for name in ("full.pt", "copies.pt"):
        m = tied()
        apply_state(m, load_source(str(tmp_path / name), m))
        assert torch.equal(m[1].weight, full["0.weight"]) and m[1].weight is m[0].weight
    bad = {"0.weight": full["0.weight"].clone(), "1.weight": full["0.weight"] + 0.5}
    torch.save(bad, tmp_path / "untied.pt")
    m = tied()
    with pytest.raises(CheckpointError, match=r"1.weight \(differs from 0.weight by up to 0.5\).*untied"):
        load_source(str(tmp_path / "untied.pt"), m)
