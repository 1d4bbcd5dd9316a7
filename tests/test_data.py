"""Datasets: the real loaders on files in the real formats, splits, and batched augmentation."""

from __future__ import annotations

import re

import pytest
import torch
from formats import use_checksums, write_cifar, write_imagefolder, write_mnist

from nas_res import ResnasError
from nas_res.data import published
from nas_res.data.batches import DeviceBatches, FileBatches, augment, batches
from nas_res.data.dataset import load_data
from nas_res.data.splits import Split, carve, with_train_size
from nas_res.data.subset import balanced_indices, parse_train_size

CPU = torch.device("cpu")


def test_digits_is_real_offline_data_with_fixed_splits():
    d = load_data("digits", test=True)
    assert (d.channels, d.classes, d.size) == (1, 10, 8)
    assert len(d.train) + len(d.val) + len(d.test) == 1797  # scikit-learn's bundled set, all of it
    assert len(d.test) == 359 and len(d.val) == round(0.1 * 1438)
    assert d.train.images.dtype == torch.uint8 and d.train.images.max() == 255
    assert set(d.train.labels.tolist()) == set(range(10))
    assert (d.pad, d.flip) == (1, False)  # a mirrored digit is another symbol
    again = load_data("digits", test=True)
    assert torch.equal(again.val.images, d.val.images) and torch.equal(again.test.labels, d.test.labels)
    assert load_data("digits").test is None  # search never loads the test split


def test_validation_split_is_disjoint_deterministic_and_configurable():
    whole = Split(torch.arange(1000), torch.arange(1000).view(-1, 1, 1, 1).to(torch.uint8))
    tr, va = carve(whole, 0.2, seed=3)
    assert (len(tr), len(va)) == (800, 200)
    assert set(tr.labels.tolist()).isdisjoint(va.labels.tolist())
    assert sorted(tr.labels.tolist() + va.labels.tolist()) == list(range(1000))
    _, va2 = carve(whole, 0.2, seed=3)
    assert torch.equal(va.labels, va2.labels)
    assert not torch.equal(carve(whole, 0.2, seed=4)[1].labels, va.labels)
    assert len(carve(whole, 137, seed=0)[1]) == 137
    for bad in (0, 1000, 1.5e6, -1, True):
        with pytest.raises(ResnasError, match="val_size"):
            carve(whole, bad, seed=0)


def test_cifar10_pickles_through_torchvision(tmp_path, monkeypatch):
    w = write_cifar(tmp_path, n_train=50, n_test=20)
    use_checksums(monkeypatch, w["md5"])
    d = load_data("cifar10", data_dir=tmp_path, val_size=10, test=True, download=False)
    assert (d.channels, d.classes, d.size, len(d.train), len(d.val), len(d.test)) == (3, 10, 32, 40, 10, 20)
    # the test split is the file's images in order, converted from HWC to CHW without a pixel changed
    assert torch.equal(d.test.images, torch.from_numpy(w["x_test"]).permute(0, 3, 1, 2))
    assert d.test.labels.tolist() == w["y_test"]
    # train + val together are exactly the training batches, labels still attached to their images
    seen = torch.cat([d.train.images, d.val.images]).flatten(1)
    written = torch.from_numpy(w["x_train"]).permute(0, 3, 1, 2).flatten(1)
    labels = torch.cat([d.train.labels, d.val.labels])
    for img, y in zip(seen, labels):
        j = int((written == img).all(1).nonzero()[0])
        assert w["y_train"][j] == y
    assert (d.pad, d.flip) == (4, True)


def test_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    w = write_cifar(tmp_path, n_train=110, n_test=10, classes=100)
    use_checksums(monkeypatch, w["md5"], classes=100)
    d = load_data("cifar100", data_dir=tmp_path, val_size=5, test=True, download=False)
    assert d.classes == 100 and d.test.labels.tolist() == w["y_test"]


def test_corrupt_cifar_is_one_clear_error(tmp_path):
    write_cifar(tmp_path)  # real checksums expected: these files do not match them
    with pytest.raises(ResnasError) as e:
        load_data("cifar10", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "cifar-10-batches-py" in msg and "all are there but unreadable" in msg and "data_batch_1" in msg


@pytest.mark.parametrize(
    "name,folder,spec", [("MNIST", "MNIST", "mnist"), ("FashionMNIST", "FashionMNIST", "fashion-mnist")]
)
def test_mnist_idx_files_through_torchvision(tmp_path, name, folder, spec):
    w = write_mnist(tmp_path, name, n_train=60, n_test=20)
    d = load_data(spec, data_dir=tmp_path, val_size=12, test=True, download=False)
    assert (d.channels, d.classes, d.size, len(d.train), len(d.val)) == (1, 10, 28, 48, 12)
    assert torch.equal(d.test.images[:, 0], torch.from_numpy(w["x_test"]))
    assert d.test.labels.tolist() == w["y_test"].tolist()
    assert d.flip == (spec == "fashion-mnist")


def test_missing_dataset_names_the_files_and_where(tmp_path, monkeypatch):
    monkeypatch.setitem(published.SYSTEM_DIRS, "mnist", tmp_path / "system")  # as if no package had them
    with pytest.raises(ResnasError) as e:
        load_data("mnist", data_dir=tmp_path, download=False)
    msg = str(e.value)
    for f in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", str(tmp_path / "MNIST" / "raw"), "--data-dir"):
        assert f in msg
    assert "none of them is there" in msg


def test_imagefolder_in_memory_and_from_files(tmp_path):
    colours = write_imagefolder(tmp_path, per_class=6, size=16)
    d = load_data(f"imagefolder:{tmp_path}", val_size=3, test=True, image_size=16)
    assert d.in_memory and (d.channels, d.classes, d.size) == (3, 3, 16)
    assert (len(d.train), len(d.val), len(d.test)) == (15, 3, 18)
    names = d.extra["class_names"]
    for split in (d.train, d.val, d.test):
        for img, y in zip(split.images, split.labels):
            assert tuple(img[:, 8, 8].tolist()) == colours[names[y]]  # each label still on its own image
    lazy = load_data(f"imagefolder:{tmp_path}", val_size=3, test=True, image_size=16, memory_limit=0)
    assert not lazy.in_memory and lazy.train.files is not None
    assert lazy.val.labels.tolist() == d.val.labels.tolist()  # same split either way
    assert lazy.mean == pytest.approx(d.mean, abs=0.05)


def test_imagefolder_mistakes_name_the_folder(tmp_path):
    with pytest.raises(ResnasError, match="train/<class>"):
        load_data(f"imagefolder:{tmp_path}")
    write_imagefolder(tmp_path / "a", classes=("x", "y"), splits=("train",))
    write_imagefolder(tmp_path / "a", classes=("x", "z"), splits=("val",))
    with pytest.raises(ResnasError, match="must be the same"):
        load_data(f"imagefolder:{tmp_path / 'a'}", val_size=2, test=True, image_size=16)
    (tmp_path / "a" / "train" / "x" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ResnasError, match="broken.png"):
        load_data(f"imagefolder:{tmp_path / 'a'}", val_size=2, image_size=16)


def test_synthetic_shapes_and_bad_specs():
    d = load_data("synthetic:1x12x12:7:100", val_size=10, test=True)
    assert (d.channels, d.size, d.classes, len(d.train), len(d.val), len(d.test)) == (1, 12, 7, 90, 10, 20)
    assert load_data("synthetic").describe()["train"] == 45_000  # CIFAR-10's shape by default
    for bad in ("synthetic:3x32", "synthetic:3x32x16", "synthetic:3x8x8:1", "synthetic:a", "synthetic:1x8x8:2:9:9"):
        with pytest.raises(ResnasError, match="synthetic"):
            load_data(bad)
    with pytest.raises(ResnasError, match="unknown dataset 'imagenet'.*cifar10"):
        load_data("imagenet")


def _shifts(img: torch.Tensor, pad: int):
    padded = torch.nn.functional.pad(img, (pad,) * 4)
    h, w = img.shape[-2:]
    return [padded[..., dy : dy + h, dx : dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


def test_augment_is_a_padded_crop_and_a_mirror_of_each_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = augment(x, 2, False, g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for src, got in zip(x, out):
        assert any(torch.equal(got, s) for s in _shifts(src, 2))
    assert not torch.equal(out, x)
    flipped = augment(x, 0, True, g)
    mirrored = [torch.equal(f, s.flip(-1)) for f, s in zip(flipped, x)]
    assert all(m or torch.equal(f, s) for m, f, s in zip(mirrored, flipped, x))
    assert 10 < sum(mirrored) < 54


def _labelled_data(n: int = 96, classes: int = 8):
    """Each image's pixels equal 10 * its label, so a batch shows whether labels stayed with images."""
    d = load_data(f"synthetic:3x8x8:{classes}:{n}", val_size=16)
    for part in (d.train, d.val):
        part.images = (part.labels * 10 + 5).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    d.mean, d.std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    return d


def _pixels(x: torch.Tensor, d) -> torch.Tensor:
    mean = torch.tensor(d.mean).view(1, -1, 1, 1)
    std = torch.tensor(d.std).view(1, -1, 1, 1)
    return (x * std + mean) * 255


def test_device_batches_keep_labels_with_images_and_are_seeded():
    d = _labelled_data()
    src = batches(d, "train", batch_size=32, device=CPU, train=True, seed=1, channels_last=True)
    assert isinstance(src, DeviceBatches) and len(src) == 2  # 80 images, last partial batch dropped
    seen = []
    for x, y in src:
        assert x.dtype == torch.float32 and x.shape == (32, 3, 8, 8)
        assert x.is_contiguous(memory_format=torch.channels_last)
        brightest = _pixels(x, d).amax((1, 2, 3)).round()  # a crop keeps >= 4x4 image pixels; padding is 0
        assert torch.equal(brightest, (y * 10 + 5).float())
        seen += y.tolist()
    assert len(seen) == 64
    state = src.state()
    first = [y.tolist() for _, y in src]
    src.load_state(state)
    assert [y.tolist() for _, y in src] == first  # restored shuffling state replays the epoch
    val = batches(d, "val", batch_size=10, device=CPU, train=False)
    ys = torch.cat([y for _, y in val])
    assert ys.tolist() == d.val.labels.tolist()  # evaluation: every image once, in order
    x, y = next(iter(val))
    assert torch.allclose(_pixels(x, d), (y * 10 + 5).float().view(-1, 1, 1, 1).expand_as(x), atol=1e-3)


def test_nchw_batches_of_one_channel_crops_have_nchw_strides():
    """A 1-channel crop is contiguous in both layouts; its strides must still read NCHW, or every
    convolution after it runs NHWC (the oneDNN path that corrupts the heap on one CPU thread)."""
    d = load_data("synthetic:1x8x8:4:100")
    for train, layout in ((True, False), (False, False), (True, True)):
        x, _ = next(iter(batches(d, "train", batch_size=16, device=CPU, train=train, seed=0, channels_last=layout)))
        nchw = torch.empty(x.shape).stride()
        assert (x.stride() == nchw) != layout, (train, layout, x.stride())
        conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        assert conv(x).is_contiguous() != layout  # the layout the first convolution hands on


def test_file_batches_apply_the_same_augmentations(tmp_path):
    colours = write_imagefolder(tmp_path, per_class=8, size=16)
    d = load_data(f"imagefolder:{tmp_path}", val_size=4, image_size=16, memory_limit=0)
    names = d.extra["class_names"]
    src = batches(d, "train", batch_size=8, device=CPU, train=True, seed=0)
    assert isinstance(src, FileBatches) and len(src) == 2
    for x, y in src:
        assert x.shape == (8, 3, 16, 16)
        px = _pixels(x, d)[:, :, 8, 8].round()  # the centre survives a crop with padding 2
        want = torch.tensor([colours[names[i]] for i in y], dtype=torch.float32)
        assert torch.allclose(px, want, atol=1)


# ---- training subsets (a search's proxy) ----------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, None),
        ("all", None),
        (" ALL ", None),
        (1.0, None),
        ("1.0", None),
        (500, 500),
        ("500", 500),
        ("0.25", 0.25),
    ],
)
def test_train_size_as_written(value, expected):
    got = parse_train_size(value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "value,needle",
    [(0, "got 0"), (-5, "got -5"), ("0.0", "got 0.0"), (2.5, "got 2.5"), (2.0, "write 2"), ("abc", "'abc'"),
     (True, "True"), ("nan", "nan"), ([1], "[1]")],
)  # fmt: skip
def test_train_size_that_is_neither_count_nor_fraction_nor_all(value, needle):
    with pytest.raises(ResnasError, match=re.escape(needle)) as e:
        parse_train_size(value, field="--train-size")
    assert str(e.value).startswith("--train-size: ") and "'all'" in str(e.value)
    with pytest.raises(ResnasError, match="train_size"):
        load_data("digits", train_size=value)


def test_train_subset_is_seeded_class_balanced_and_keeps_the_validation_split():
    whole = load_data("digits")
    d = load_data("digits", train_size=205)
    assert (len(d.train), d.train_size, d.train_full, len(whole.train)) == (205, 205, 1294, 1294)
    assert d.describe()["train_size"] == 205 and d.describe()["train_full"] == 1294
    assert whole.describe()["train_size"] is None and whole.describe()["train_full"] == 1294
    counts = torch.bincount(d.train.labels, minlength=10)
    assert counts.sum() == 205 and counts.max() - counts.min() == 1 and sorted(counts.tolist())[-5:] == [21] * 5
    # proxy and final training are judged on the same validation images
    assert torch.equal(d.val.images, whole.val.images) and torch.equal(d.val.labels, whole.val.labels)
    # the subset is images of the training split, each with its own label
    rows = {bytes(x.flatten().tolist()): int(y) for x, y in zip(whole.train.images, whole.train.labels)}
    assert all(rows[bytes(x.flatten().tolist())] == y for x, y in zip(d.train.images, d.train.labels))
    # same seed, same images; another seed, others; a smaller subset is part of a larger one
    assert torch.equal(load_data("digits", train_size=205).train.images, d.train.images)
    idx = balanced_indices(whole.train.labels, 205, seed=0, classes=10)
    assert torch.equal(idx, idx.sort().values) and torch.equal(whole.train.labels[idx], d.train.labels)
    assert not torch.equal(balanced_indices(whole.train.labels, 205, seed=1, classes=10), idx)
    small = set(balanced_indices(whole.train.labels, 50, seed=0, classes=10).tolist())
    assert small < set(idx.tolist())
    # a fraction is of what validation left; the normalisation stays the whole split's, as evaluate and
    # export recompute it
    half = load_data("digits", train_size=0.5)
    assert len(half.train) == 647 and (half.mean, half.std) == (whole.mean, whole.std)
    assert with_train_size(whole, 205).train.labels.tolist() == d.train.labels.tolist()
    assert with_train_size(whole, 205).mean == d.mean and with_train_size(whole, "all") is whole


def test_train_subset_of_unbalanced_classes_spreads_what_a_small_class_lacks():
    labels = torch.tensor([0] * 2 + [1] * 50 + [2] * 50 + [3] * 9)
    for n, want in [(29, [2, 9, 9, 9]), (31, [2, 10, 10, 9]), (61, [2, 25, 25, 9]), (111, [2, 50, 50, 9])]:
        idx = balanced_indices(labels, n, seed=7, classes=5)  # class 4 has no items at all
        assert len(idx) == len(set(idx.tolist())) == n
        assert torch.bincount(labels[idx], minlength=5).tolist() == [*want, 0]
    odd = [torch.bincount(labels[balanced_indices(labels, 32, seed=s, classes=4)]).tolist() for s in range(8)]
    assert all(c[0] == 2 and c[3] == 9 and sorted(c[1:3]) == [10, 11] for c in odd)
    assert {c[1] for c in odd} == {10, 11}  # which class gets the one more is the seed's choice


def test_train_subset_larger_than_the_split_or_smaller_than_the_classes_is_refused():
    with pytest.raises(ResnasError, match="train_size: 1,295 training images.*only 1,294.*at most 1,294"):
        load_data("digits", train_size=1295)
    with pytest.raises(ResnasError, match="train_size: 9 training images.*one per class.*at least 10"):
        load_data("digits", train_size=9)
    with pytest.raises(ResnasError, match=r"0\.001 of the 1,294 training images is 1, fewer than one per class"):
        load_data("digits", train_size=0.001)
    assert len(load_data("digits", train_size=1294).train) == 1294


def test_train_subset_of_an_imagefolder_in_memory_and_from_files(tmp_path):
    write_imagefolder(tmp_path, per_class=6, size=16)
    d = load_data(f"imagefolder:{tmp_path}", val_size=3, image_size=16, train_size=7)
    lazy = load_data(f"imagefolder:{tmp_path}", val_size=3, image_size=16, train_size=7, memory_limit=0)
    assert d.in_memory and not lazy.in_memory and lazy.train.files is not None and len(lazy.train.files) == 7
    assert sorted(torch.bincount(d.train.labels).tolist()) == [2, 2, 3] and d.train_full == 15
    assert lazy.train.labels.tolist() == d.train.labels.tolist() and lazy.val.labels.tolist() == d.val.labels.tolist()
    # too large whole, small enough as a proxy: the proxy is decoded, normalised as the whole split is
    whole = load_data(f"imagefolder:{tmp_path}", val_size=3, image_size=16, memory_limit=8000)
    proxy = load_data(f"imagefolder:{tmp_path}", val_size=3, image_size=16, memory_limit=8000, train_size=7)
    assert not whole.in_memory and proxy.in_memory and (proxy.mean, proxy.std) == (whole.mean, whole.std)
    assert proxy.train.labels.tolist() == d.train.labels.tolist()
