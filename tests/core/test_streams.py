"""Streamed data: image folders decoded with Pillow, arrays read by slices, user Datasets; resident and streamed
evaluation give the same values bitwise, and a streamed set is read once per chunk of points."""
import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from landscape.core.data import TensorData, load_data, resident, subset
from landscape.core.errors import DataError
from landscape.core.models import build_model
from landscape.core.streams import ArrayPair, ImageFolder, StreamedData
from landscape.engine.evaluator import Evaluator
from landscape.engine.plane import PlaneEvaluator


def make_image_folder(root, classes=3, per_class=8, size=(40, 48), seed=0, splits=("train", "val")):
    rng = np.random.default_rng(seed)
    for split in splits:
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
                img[..., c % 3] = 200 + c  # a class-dependent channel: the classes differ
                ext = "png" if i % 4 == 0 else "JPEG"
                Image.fromarray(img).save(folder / f"img{i}.{ext}")
    return root


def test_image_folder_decodes_resizes_crops_and_normalises(tmp_path):
    make_image_folder(tmp_path)
    tr, te = load_data("imagefolder", str(tmp_path), resize=36, crop=32, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3],
                       workers=0)
    assert isinstance(te, StreamedData) and len(te) == 24 and te.num_classes == 3 and te.name == "imagefolder/test"
    assert te.info() == {"input_dim": 3 * 32 * 32, "in_channels": 3, "num_classes": 3}
    x, y = te.dataset[9]
    path, label = te.dataset.files[9]
    assert label == y == 1 and path.parent.name == "n00000001"
    with Image.open(path) as im:  # by hand: shorter side 40 -> 36 (48 -> 43), centre crop 32
        im = im.convert("RGB").resize((43, 36), Image.BILINEAR)
        ref = np.asarray(im.crop((5, 2, 37, 34)), dtype=np.float32) / 255.0
    ref = (ref - np.array([0.5, 0.4, 0.3], np.float32)) / np.array([0.2, 0.25, 0.3], np.float32)
    np.testing.assert_allclose(x.numpy(), ref.transpose(2, 0, 1), rtol=1e-6, atol=1e-6)
    with pytest.raises(DataError, match="class sub-folders"):
        ImageFolder(tmp_path / "nowhere")


def test_streamed_evaluation_equals_resident_bitwise_and_reads_once_per_chunk(tmp_path, monkeypatch):
    make_image_folder(tmp_path, per_class=10)
    _, te = load_data("imagefolder", str(tmp_path), crop=32, workers=2)
    torch.manual_seed(0)
    model = build_model("resnet20", te.info())
    ev_res = Evaluator(model, te, "cpu", batch_size=8)  # fits: read once, resident
    ev_str = Evaluator(model, te, "cpu", batch_size=8, max_resident_bytes=0)  # streamed
    assert ev_res.resident and ev_res.stream is None and ev_str.stream is not None
    c = ev_res.get_flat().cpu()
    g = torch.Generator().manual_seed(1)
    d1, d2 = torch.randn(c.shape, generator=g) * 0.05, torch.randn(c.shape, generator=g) * 0.05
    a, b = np.linspace(-1, 1, 7), np.linspace(1, -1, 7)
    reads = []
    real = ImageFolder.__getitem__
    monkeypatch.setattr(ImageFolder, "__getitem__", lambda self, i: reads.append(i) or real(self, i))
    want = PlaneEvaluator(ev_res, c, d1, d2, 1).evaluate_points(a, b)
    streamed_plane = PlaneEvaluator(ev_str, c, d1, d2, "auto", points_per_pass=4)
    assert streamed_plane.chunk_unit == 4
    ev_str.stream.workers = 0  # count the reads in this process
    got = streamed_plane.evaluate_points(a, b)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # both combine the first convolution's tables (by default): the resident ones once, the streamed ones per batch
    assert ev_res.transforms() == ev_str.transforms() == {"input_tables": "conv1"}
    assert ev_res.input_tables.computed == 1 and ev_str.input_tables.computed == 2 * 4  # 2 passes × 4 batches
    assert len(reads) == 2 * len(te)  # 7 points in chunks of 4 and 3: two passes over the 30 images


def test_arrays_npy_npz_h5_and_subsets(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    y = rng.normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    outs = []
    for xs, ys in ((f"{tmp_path}/x.npy", f"{tmp_path}/d.npz:y"), (f"{tmp_path}/d.h5:/x", f"{tmp_path}/d.h5:/y")):
        tr, te = load_data("arrays", x=xs, y=ys, workers=0)
        assert te.task == "regression" and te.info()["num_classes"] == 3
        outs.append(resident(te))
        np.testing.assert_array_equal(outs[-1].x.numpy(), x)
        np.testing.assert_array_equal(outs[-1].y.numpy(), y)
    sub = subset(te, 10, "random", seed=3)
    ref = subset(TensorData(torch.from_numpy(x), torch.from_numpy(y), "regression"), 10, "random", seed=3)
    assert isinstance(sub, StreamedData) and torch.equal(resident(sub).x, ref.x)
    with pytest.raises(DataError, match="data.kwargs.x"):
        load_data("arrays")
    with pytest.raises(DataError, match="no dataset"):
        ArrayPair(f"{tmp_path}/d.h5:/nope", f"{tmp_path}/d.h5:/y")


class _Squares(torch.utils.data.Dataset):
    classes = ["even", "odd"]

    def __len__(self):
        return 40

    def __getitem__(self, i):
        return torch.full((2,), float(i)), i % 2


def user_dataset(split):
    return _Squares()


def user_iterable(split):
    return ((torch.tensor([float(i), 1.0]), i % 3) for i in range(12))


def test_user_datasets_and_iterables():
    tr, te = load_data("test_streams:user_dataset", workers=0)
    assert isinstance(te, StreamedData) and te.num_classes == 2 and len(te) == 40
    model = build_model("mlp", te.info(), depth=1, width=4)
    ev_s = Evaluator(model, te, "cpu", batch_size=16, max_resident_bytes=0)
    ev_r = Evaluator(model, resident(te), "cpu", batch_size=16)
    assert ev_s.evaluate() == ev_r.evaluate()
    tr, te = load_data("test_streams:user_iterable")
    assert isinstance(te, TensorData) and len(te) == 12 and te.num_classes == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_or_corrupt_image_is_named(tmp_path, workers):
    """A truncated JPEG (Pillow: OSError without the file's name) and a file that is no image
    (UnidentifiedImageError) give a DataError naming the file, also from the loader's worker processes."""
    make_image_folder(tmp_path, per_class=2, splits=("val",))
    _, te = load_data("imagefolder", str(tmp_path), workers=workers)
    bad = [p for p, _ in te.dataset.files if p.suffix == ".JPEG"]
    data = bad[0].read_bytes()
    bad[0].write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError) as got:
        list(te.batches(4))
    message = str(got.value)
    assert str(bad[0]) in message and "truncated" in message and "Traceback" not in message, message
    bad[0].write_bytes(data)
    bad[1].write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=f"image {bad[1]}: cannot be read .UnidentifiedImageError") as got:
        list(te.batches(4))
    assert "Traceback" not in str(got.value)
