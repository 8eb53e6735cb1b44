import gzip

import numpy as np
import pytest
import torch

from landscape.core.data import TensorData, load_data, read_cifar10_bin, read_idx, subset
from landscape.core.errors import DataError


def test_digits_shapes_split_and_determinism():
    tr, te = load_data("digits")
    assert tr.x.shape == (1437, 1, 32, 32) and te.x.shape == (360, 1, 32, 32)
    assert tr.task == "classification" and tr.num_classes == 10
    assert sorted(te.y.unique().tolist()) == list(range(10))
    tr2, te2 = load_data("digits")
    assert torch.equal(tr.x, tr2.x) and torch.equal(te.y, te2.y)
    # standardised with the training statistics
    assert abs(float(tr.x.mean())) < 1e-5 and abs(float(tr.x.std()) - 1) < 1e-4
    # real digit images: the pixels of a digit vary
    assert float(te.x[0].std()) > 0.1


def test_spiral_seeded():
    a, _ = load_data("spiral", seed=3)
    b, _ = load_data("spiral", seed=3)
    c, _ = load_data("spiral", seed=4)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert a.x.shape[1] == 2 and sorted(a.y.unique().tolist()) == [0, 1, 2]
    r = a.x.norm(dim=1)
    assert float(r.max()) <= 1.0 + 1e-6


def test_subsets():
    d = TensorData(torch.arange(20.).reshape(20, 1), torch.arange(20), "classification", 20, "d")
    assert subset(d, 5).y.tolist() == [0, 1, 2, 3, 4]
    r1, r2, r3 = subset(d, 5, "random", 1), subset(d, 5, "random", 1), subset(d, 5, "random", 2)
    assert r1.y.tolist() == r2.y.tolist() != r3.y.tolist()
    assert r1.y.tolist() == sorted(r1.y.tolist()) and len(set(r1.y.tolist())) == 5
    with pytest.raises(DataError, match="1 <= n <= 20"):
        subset(d, 21)
    with pytest.raises(DataError, match="'first' or 'random'"):
        subset(d, 3, "middle")


def _idx(arr: np.ndarray, code: int = 0x08) -> bytes:
    head = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def test_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 6), ("t10k", 4))}
    labels = {s: rng.integers(0, 10, len(imgs[s])) for s in imgs}
    for s in imgs:
        (tmp_path / f"{s}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(imgs[s])))
        (tmp_path / f"{s}-labels-idx1-ubyte").write_bytes(_idx(labels[s]))
    tr, te = load_data("mnist", root=str(tmp_path))
    assert tr.x.shape == (6, 1, 32, 32) and te.x.shape == (4, 1, 32, 32)
    assert te.y.tolist() == labels["t10k"].tolist()
    expect = (imgs["train"][2, 5, 7] / 255.0 - 0.1307) / 0.3081
    assert float(tr.x[2, 0, 5 + 2, 7 + 2]) == pytest.approx(expect, abs=1e-5)
    assert float(tr.x[0, 0, 0, 0]) == pytest.approx(-0.1307 / 0.3081, abs=1e-6)  # zero padding


def test_idx_errors(tmp_path):
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(_idx(np.arange(10))[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(DataError, match="magic"):
        read_idx(p)
    with pytest.raises(DataError, match="data.root"):
        load_data("mnist", root=str(tmp_path / "nope"))
    with pytest.raises(DataError, match="data.root"):
        load_data("mnist")


def test_cifar10_from_binary_batches(tmp_path):
    rng = np.random.default_rng(1)
    files = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (3, 3073)).astype(np.uint8)
        rec[:, 0] %= 10
        files[name] = rec
        (tmp_path / name).write_bytes(rec.tobytes())
    tr, te = load_data("cifar10", root=str(tmp_path))
    assert tr.x.shape == (15, 3, 32, 32) and te.x.shape == (3, 3, 32, 32)
    assert tr.y[:3].tolist() == files["data_batch_1.bin"][:, 0].tolist()
    # record layout: 1024 red, 1024 green, 1024 blue bytes, row-major
    raw = files["test_batch.bin"][1]
    assert float(te.x[1, 1, 2, 3]) == pytest.approx((raw[1 + 1024 + 2 * 32 + 3] / 255 - 0.4822) / 0.2435, abs=1e-5)
    (tmp_path / "short.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="3073"):
        read_cifar10_bin(tmp_path / "short.bin")


def test_user_and_regression_data():
    tr, te = load_data("userdefs:blobs", n=12)
    assert tr.x.shape == (12, 2) and tr.task == "classification" and tr.num_classes == 2
    assert not torch.equal(tr.x, te.x)
    tr, _ = load_data("userdefs:pairs")
    assert tr.x.shape == (10, 2) and tr.y.tolist() == [i % 2 for i in range(10)]
    tr, te = load_data("sine")
    assert tr.task == "regression" and tr.y.dtype == torch.float32 and tr.info()["num_classes"] == 1
    with pytest.raises(DataError, match="unknown data set"):
        load_data("imagenet")
