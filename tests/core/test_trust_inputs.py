"""Bad model arguments are a ModelError naming them; the streamed-size estimate counts float32 targets as 4 bytes;
a missing trajectory names the --center way out."""
import numpy as np
import pytest
import torch

from landscape.core.errors import ModelError, StoreError
from landscape.core.models import build_model
from landscape.core.streams import ArrayPair, StreamedData
from landscape.io.trajectory import TrajectoryStore


def test_model_arguments_that_do_not_build_are_a_model_error():
    info = {"vocab": 32, "context": 8}
    with pytest.raises(ModelError, match=r"n_head.*multiple of n_head \(5\).*Check model.kwargs"):
        build_model("gpt", info, n_head=5, d_model=64)
    with pytest.raises(ModelError, match=r"negative dimension.*Check model.kwargs"):
        build_model("gpt", info, d_model=-8)


def test_streamed_size_counts_float32_targets_as_four_bytes(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    np.save(tmp_path / "y.npy", np.zeros((10, 2), np.float32))
    s = StreamedData(ArrayPair(str(tmp_path / "x.npy"), str(tmp_path / "y.npy")), "regression", None, "a", workers=0)
    assert s.nbytes() == 10 * (4 * 3 + 4 * 2)


def test_a_missing_trajectory_names_the_center_option(tmp_path):
    with pytest.raises(StoreError, match="--center my.pt"):
        TrajectoryStore(tmp_path / "trajectory.h5")
