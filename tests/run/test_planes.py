"""Plane directions made from plain inputs: what each kind moves."""
import logging

import numpy as np
import pytest
import torch

from landscape.core.data import TensorData
from landscape.core.models import build_model
from landscape.core.params import flatten_state, model_state
from landscape.engine.evaluator import Evaluator
from landscape.engine.plane import PlaneEvaluator
from landscape.run.planes import checkpoint_plane, pca_plane, random_plane


def bn_model_and_data(seed):
    torch.manual_seed(seed)
    model = build_model("resnet20", {"in_channels": 3, "num_classes": 4}, width=4)
    model.train()
    with torch.no_grad():  # running statistics that differ from the defaults and between seeds
        for _ in range(3):
            model(torch.randn(16, 3, 8, 8) * (1 + seed))
    model.eval()
    g = torch.Generator().manual_seed(7)
    data = TensorData(torch.randn(40, 3, 8, 8, generator=g), torch.randint(0, 4, (40,), generator=g), "classification",
                      4, "toy")
    return model, data


def test_checkpoint_direction_reaches_the_target_with_batchnorm():
    """α = 1 is θ₁, BatchNorm running statistics included (dir_type=weights moved only the weights)."""
    center_model, data = bn_model_and_data(0)
    target_model, _ = bn_model_and_data(1)
    center = {k: v.detach().clone() for k, v in model_state(center_model).items()}  # the evaluator's order
    target = {k: v.detach().clone() for k, v in model_state(target_model).items()}
    params = [n for n, _ in center_model.named_parameters()]
    d1, d2, info = checkpoint_plane(center, [(target, "t.pt")], params, "weights")
    assert d2 is None and info["dir_type"] == "states"
    ev = Evaluator(center_model, data, "cpu")
    at_target = Evaluator(target_model, data, "cpu").evaluate()
    loss, acc = PlaneEvaluator(ev, flatten_state(center), d1, None).evaluate_points(np.array([1.0]), np.zeros(1))
    assert loss[0] == pytest.approx(at_target.loss, rel=1e-5) and acc[0] == at_target.accuracy


def test_states_with_biasbn_warns_that_it_changes_nothing(caplog):
    model, _ = bn_model_and_data(0)
    center = {k: v.detach() for k, v in model_state(model).items()}
    params = [n for n, _ in model.named_parameters()]
    with caplog.at_level(logging.WARNING):
        w = random_plane(center, params, 3, dir_type="weights")
        s = random_plane(center, params, 3, dir_type="states")
    assert torch.equal(w[0], s[0]) and "moves nothing more than dir_type=weights" in caplog.text
    caplog.clear()
    moved = random_plane(center, params, 3, ignore="none", dir_type="states")[0]
    assert not caplog.records
    var = [n for n in center if n.endswith("running_var")][0]
    offset = sum(t.numel() for n, t in center.items() if list(center).index(n) < list(center).index(var))
    values = moved[offset:offset + center[var].numel()]
    assert torch.equal(values, center[var].float())  # d = w for 1-D tensors: the variances never cross zero for α > -1


def test_pca_keeps_the_centre_row_as_the_reference_unless_asked(tmp_path):
    from sklearn.decomposition import PCA

    from landscape.core.params import StateSpec
    from landscape.io.trajectory import TrajectoryStore

    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(6, generator=g) for _ in range(4)]  # init, epochs 1..3; the centre is the final one
    spec = StateSpec(("w",), ((2, 3),), ("float32",))
    store = TrajectoryStore.create(tmp_path / "t.h5", spec, {})
    for k, v in enumerate(vecs):
        store.append_checkpoint(v, epoch=k, step=k, kind="init" if k == 0 else "epoch")
    center = {"w": vecs[-1].reshape(2, 3)}
    rows = np.stack([(v - vecs[-1]).numpy() for v in vecs]).astype(np.float64)
    for keep, matrix in ((True, rows), (False, rows[:-1])):
        d1, d2, info = pca_plane(store, center, ["w"], "none", center_row=keep)
        ref = PCA(2).fit(matrix).components_
        for d, r in zip((d1, d2), ref):
            assert abs(float(np.dot(d.numpy(), r))) == pytest.approx(1.0, abs=1e-5)
        assert info["pca_rows"] == len(matrix) and info["pca_center_row"] is keep
