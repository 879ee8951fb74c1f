"""Tests for nas.data: CIFAR-10 readers, location and download, splits, DataSpec, image folders."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import shlex
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas import data
from nas.data import DataError, DataSpec, ImageSet, batches, core, decode
from nas.data import cifar as data_cifar
from nas.data import decode as data_decode
from nas.data import splits as data_splits

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TEST_CLASS_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]  # from the subset's README


# ---------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="session")
def bin_dir(cifar_dir: Path) -> Path:
    """The shared subset's cifar-10-batches-bin folder."""
    found = batches.find_batches_dir(cifar_dir)
    assert found is not None and found.layout == "bin", f"no binary CIFAR-10 under {cifar_dir}"
    return found.path


@pytest.fixture(scope="session")
def cifar(bin_dir: Path) -> tuple[ImageSet, ImageSet]:
    """The shared subset, loaded once: (train, test)."""
    return data.load_cifar10(bin_dir, download=False)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $NAS_DATA_DIR and a per-user cache inside tmp_path; returns that cache folder."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "spectrum-nas"


@pytest.fixture
def bin_copy(tmp_path: Path, bin_dir: Path) -> Path:
    """A writable copy of the binary batches folder."""
    return Path(shutil.copytree(bin_dir, tmp_path / "copy" / batches.BIN_DIRNAME))


def md5_of(path: Path) -> str:
    """Hex MD5 of a file."""
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> tuple[Path, str]:
    """A tar.gz shaped like the official binary archive, and its MD5."""
    path = tmp_path_factory.mktemp("served") / "cifar-10-binary.tar.gz"
    # Level 1 keeps the test fast; the reader does not care how hard it was compressed.
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name in sorted(os.listdir(bin_dir)):
            tar.add(bin_dir / name, arcname=f"{batches.BIN_DIRNAME}/{name}")
    return path, md5_of(path)


def dump(obj: object, path: Path, protocol: int | str) -> None:
    """Pickle `obj`; protocol "2-numpy1" names numpy 1.x modules, as the official files do."""
    if protocol == "2-numpy1":
        # Protocol 2 spells globals out as text, so the module path can be rewritten in place.
        blob = pickle.dumps(obj, protocol=2).replace(b"numpy._core.", b"numpy.core.")
    else:
        blob = pickle.dumps(obj, protocol=int(protocol))
    path.write_bytes(blob)


def write_py_layout(folder: Path, bin_dir: Path, protocol: int | str) -> Path:
    """Write a cifar-10-batches-py folder from the binary files, as the official pickles are."""
    folder.mkdir(parents=True)
    for name in (*batches.CIFAR_TRAIN_BATCHES, batches.CIFAR_TEST_BATCH):
        images, labels = batches.read_cifar_bin_batch(bin_dir / f"{name}.bin")
        batch = {
            b"batch_label": f"{name} of 5".encode(),
            b"labels": [int(x) for x in labels],
            b"data": images.reshape(len(labels), -1).copy(),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
        }
        dump(batch, folder / name, protocol)
    meta = {
        b"label_names": [n.encode() for n in CLASS_NAMES],
        b"num_cases_per_batch": 1000,
        b"num_vis": 3072,
    }
    dump(meta, folder / "batches.meta", protocol)
    return folder


class Exploit:
    """Pickles as a call to os.system: what a tampered CIFAR pickle could carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


def assert_same(a: ImageSet, b: ImageSet) -> None:
    """Two image sets hold identical images, labels and class names."""
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)
    assert a.classes == b.classes


# ---------------------------------------------------------------------------
# CIFAR-10 readers


def test_binary_subset_shapes_labels_and_classes(cifar: tuple[ImageSet, ImageSet]) -> None:
    train, test = cifar
    assert train.images.shape == (5000, 3, 32, 32)
    assert test.images.shape == (1000, 3, 32, 32)
    assert train.images.dtype == test.images.dtype == torch.uint8
    assert train.labels.dtype == test.labels.dtype == torch.int64
    assert train.images.is_contiguous() and test.images.is_contiguous()
    assert int(train.labels.min()) >= 0 and int(train.labels.max()) <= 9
    assert train.classes == test.classes == CLASS_NAMES
    assert torch.bincount(test.labels, minlength=10).tolist() == TEST_CLASS_COUNTS
    assert len(train) == 5000 and len(test) == 1000


def test_binary_record_layout_is_planar_rgb(
    bin_dir: Path, cifar: tuple[ImageSet, ImageSet]
) -> None:
    record = np.fromfile(bin_dir / "test_batch.bin", dtype=np.uint8, count=batches.CIFAR_RECORD)
    image = cifar[1].images[0].numpy()
    assert cifar[1].labels[0] == record[0]
    assert np.array_equal(image[0], record[1:1025].reshape(32, 32))  # red plane first
    assert np.array_equal(image[2], record[2049:].reshape(32, 32))  # blue plane last


@pytest.mark.parametrize("protocol", ["2-numpy1", 2, 4, 5])  # 5: Python 3.14's default
def test_python_layout_equals_binary(
    tmp_path: Path, bin_dir: Path, cifar: tuple[ImageSet, ImageSet], protocol: int | str
) -> None:
    folder = write_py_layout(tmp_path / batches.PY_DIRNAME, bin_dir, protocol)
    if protocol == "2-numpy1":
        assert b"cnumpy.core.multiarray\n_reconstruct" in (folder / "test_batch").read_bytes()
    found = batches.find_batches_dir(tmp_path)
    assert found == batches.BatchesDir("py", folder)
    train, test = data.load_cifar10(tmp_path, download=False)
    assert_same(train, cifar[0])
    assert_same(test, cifar[1])


def test_unpickler_refuses_arbitrary_objects(tmp_path: Path, bin_dir: Path) -> None:
    folder = write_py_layout(tmp_path / batches.PY_DIRNAME, bin_dir, pickle.DEFAULT_PROTOCOL)
    marker = tmp_path / "pwned"
    payload = {b"data": Exploit(f"touch {shlex.quote(str(marker))}"), b"labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(payload))
    with pytest.raises(data.UnsafePickleError) as caught:
        data.load_cifar10(folder, download=False)
    message = str(caught.value)
    assert "data_batch_3" in message and "system" in message
    assert isinstance(caught.value, pickle.UnpicklingError) and isinstance(caught.value, DataError)
    assert not marker.exists(), "the pickled command ran"


def test_python_layout_damaged_pickle(tmp_path: Path, bin_dir: Path) -> None:
    folder = write_py_layout(tmp_path / batches.PY_DIRNAME, bin_dir, pickle.DEFAULT_PROTOCOL)
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="test_batch"):
        data.load_cifar10(folder, download=False)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2, 3], b"labels": [1]}))
    with pytest.raises(DataError, match=r"test_batch.*uint8 array"):
        data.load_cifar10(folder, download=False)


def truncate(path: Path) -> None:
    """Cut the last 100 bytes off a file."""
    path.write_bytes(path.read_bytes()[:-100])


def set_label(path: Path, record: int, label: int) -> None:
    """Overwrite one record's label byte."""
    raw = bytearray(path.read_bytes())
    raw[record * batches.CIFAR_RECORD] = label
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("file", "damage", "expected"),
    [
        ("data_batch_2.bin", truncate, "multiple of the 3073-byte"),
        ("data_batch_4.bin", lambda p: set_label(p, 7, 10), "record 7 has label 10"),
        ("test_batch.bin", lambda p: p.write_bytes(b""), "0 bytes"),
        ("data_batch_3.bin", Path.unlink, "missing CIFAR-10 file"),
        ("batches.meta.txt", Path.unlink, "missing CIFAR-10 file"),
        ("batches.meta.txt", lambda p: p.write_text("cat\ndog\n"), "10 distinct class names"),
    ],
)
def test_corrupt_binary_files(
    bin_copy: Path, file: str, damage: Callable[[Path], object], expected: str
) -> None:
    damage(bin_copy / file)
    with pytest.raises(DataError) as caught:
        data.load_cifar10(bin_copy, download=False)
    assert file in str(caught.value)
    assert expected in str(caught.value)


# ---------------------------------------------------------------------------
# Location, download, the offline message


def test_location_precedence(
    cache: Path, monkeypatch: pytest.MonkeyPatch, cifar_dir: Path, bin_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(cifar_dir))
    assert data_cifar.locate_cifar10(download=False) == batches.BatchesDir("bin", bin_dir)
    # --data-dir beats the environment, even when it is wrong: no silent fallback.
    wrong = tmp_path / "not-here"
    with pytest.raises(DataError, match="--data-dir") as caught:
        data_cifar.locate_cifar10(wrong, download=False)
    assert str(wrong / batches.BIN_DIRNAME) in str(caught.value)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(wrong))
    with pytest.raises(DataError, match=r"\$NAS_DATA_DIR"):
        data_cifar.locate_cifar10(download=False)
    # The batches folder itself is accepted as well as its parent.
    assert data_cifar.locate_cifar10(bin_dir, download=False).path == bin_dir


def test_download_from_file_url(
    cache: Path, archive: tuple[Path, str], cifar: tuple[ImageSet, ImageSet]
) -> None:
    path, md5 = archive
    train, test = data.load_cifar10(url=path.as_uri(), md5=md5)
    assert_same(train, cifar[0])
    assert_same(test, cifar[1])
    assert (cache / batches.BIN_DIRNAME / "test_batch.bin").is_file()
    assert md5_of(cache / path.name) == md5
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp leftovers
    # The next load must come from the cache alone: the URL now points nowhere.
    gone = (path.parent / "gone.tar.gz").as_uri()
    assert_same(data.load_cifar10(url=gone, md5=md5)[1], cifar[1])


def test_download_with_wrong_md5_keeps_nothing(cache: Path, archive: tuple[Path, str]) -> None:
    with pytest.raises(DataError, match="MD5") as caught:
        data.load_cifar10(url=archive[0].as_uri(), md5="0" * 32)
    assert "0" * 32 in str(caught.value)
    assert list(cache.iterdir()) == []


def unsafe_member(tar: tarfile.TarFile, kind: str) -> None:
    """Add one member that safe extraction must refuse."""
    if kind == "symlink":
        info = tarfile.TarInfo(f"{batches.BIN_DIRNAME}/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
        return
    name = {"parent": "../escaped.txt", "absolute": "/tmp/escaped-nas-test.txt"}[kind]
    info = tarfile.TarInfo(name)
    info.size = 3
    tar.addfile(info, io.BytesIO(b"bad"))


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_download_refuses_unsafe_archive(cache: Path, tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"{batches.BIN_DIRNAME}/batches.meta.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"cat\n"))
        unsafe_member(tar, kind)
    with pytest.raises(DataError, match="refusing archive member"):
        data.load_cifar10(url=archive.as_uri(), md5=md5_of(archive))
    assert list(cache.iterdir()) == []
    assert not (cache.parent / "escaped.txt").exists()


def test_offline_and_absent_message(cache: Path, tmp_path: Path) -> None:
    offline_url = (tmp_path / "nowhere" / "cifar-10-binary.tar.gz").as_uri()
    with pytest.raises(DataError) as caught:
        data.load_cifar10(url=offline_url)
    message = str(caught.value)
    for needle in (
        str(cache / batches.BIN_DIRNAME),
        str(cache / batches.PY_DIRNAME),
        offline_url,
        "--data-dir",
        "NAS_DATA_DIR",
    ):
        assert needle in message
    assert not [p for p in cache.rglob("*") if p.is_file()]
    with pytest.raises(DataError, match="downloading is disabled"):
        data.load_cifar10(download=False)


def test_default_cache_dir_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert core.default_cache_dir() == tmp_path / "spectrum-nas"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert core.default_cache_dir() == Path.home() / ".cache" / "spectrum-nas"


# ---------------------------------------------------------------------------
# Splits


def test_split_sizes_overlap_and_stratification(cifar: tuple[ImageSet, ImageSet]) -> None:
    labels = cifar[0].labels.numpy()
    train_idx, val_idx = data_splits.stratified_split(labels, val_size=500, train_size=2000, seed=0)
    assert len(val_idx) == 500 and len(train_idx) == 2000
    assert len(np.unique(train_idx)) == 2000 and len(np.unique(val_idx)) == 500
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    counts = np.bincount(labels, minlength=10)
    for idx, n in ((val_idx, 500), (train_idx, 2000)):
        got = np.bincount(labels[idx], minlength=10)
        assert np.all(np.abs(got - counts * n / counts.sum()) < 1.0), got


def test_split_is_seeded(cifar: tuple[ImageSet, ImageSet]) -> None:
    labels = cifar[0].labels
    first = data_splits.stratified_split(labels, val_size=0.1, seed=7)
    again = data_splits.stratified_split(labels, val_size=0.1, seed=7)
    other = data_splits.stratified_split(labels, val_size=0.1, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])
    assert len(first[1]) == 500 and len(first[0]) == 4500


def test_make_splits(cifar: tuple[ImageSet, ImageSet]) -> None:
    train, test = cifar
    splits = data_splits.make_splits(train, test, val_size=0.2, train_size=0.5, seed=1)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2000, 1000, 1000)
    assert splits.test is test  # the official test batch is never touched
    train_idx, val_idx = data_splits.stratified_split(train.labels, val_size=0.2, train_size=0.5,
                                                      seed=1)
    assert torch.equal(splits.val.images, train.images[torch.from_numpy(val_idx)])
    assert torch.equal(splits.train.labels, train.labels[torch.from_numpy(train_idx)])
    pixels = splits.train.images.double() / 255
    assert np.allclose(splits.mean, pixels.mean(dim=(0, 2, 3)).tolist(), atol=1e-9)
    assert np.allclose(splits.std, pixels.std(dim=(0, 2, 3), correction=0).tolist(), atol=1e-9)


def test_class_subset_remaps_labels(cifar: tuple[ImageSet, ImageSet]) -> None:
    train, test = cifar
    splits = data_splits.make_splits(train, test, val_size=100, classes=("truck", "cat"), seed=0)
    assert splits.train.classes == splits.val.classes == splits.test.classes == ("cat", "truck")
    original = torch.bincount(train.labels, minlength=10)
    got = torch.bincount(torch.cat([splits.train.labels, splits.val.labels]), minlength=2)
    assert got.tolist() == [original[3], original[9]]
    assert torch.equal(splits.test.images[splits.test.labels == 1], test.images[test.labels == 9])
    assert data_splits.subset_classes(train, 3).classes == CLASS_NAMES[:3]
    assert data_splits.subset_classes(train, [9, 0]).classes == ("airplane", "truck")
    assert data_splits.subset_classes(train, None) is train


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"val_size": 5000}, "leaves no training images"),
        ({"val_size": -1}, "val_size=-1"),
        ({"val_size": 10, "train_size": 10**6}, "train_size=1000000"),
        ({"val_size": 0.1, "classes": ("cat", "zebra")}, "unknown class 'zebra'"),
        ({"val_size": 0.1, "classes": 11}, "classes=11"),
        ({"val_size": 0.1, "classes": ("cat", "cat")}, "duplicates"),
        ({"val_size": 0.1, "classes": "cat"}, "sequence of names"),
    ],
)
def test_make_splits_rejects_bad_options(
    cifar: tuple[ImageSet, ImageSet], kwargs: dict, expected: str
) -> None:
    with pytest.raises(DataError, match=expected):
        data_splits.make_splits(cifar[0], cifar[1], **kwargs)


# ---------------------------------------------------------------------------
# DataSpec and load_splits


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (DataSpec(dataset="mnist"), "dataset"),
        (DataSpec(dataset="imagefolder"), "root"),
        (DataSpec(root="/data"), "root"),
        (DataSpec(val_size=1.0), "val_size"),
        (DataSpec(val_size=True), "val_size"),
        (DataSpec(train_size=0), "train_size"),
        (DataSpec(classes=0), "classes"),
        (DataSpec(classes=("cat", "cat")), "classes"),
        (DataSpec(seed=-1), "seed"),
        (DataSpec(per_class=10), "per_class"),
        (DataSpec(resolution=64), "resolution"),
        (DataSpec(dataset="imagefolder", root="/d", per_class=0), "per_class"),
        (DataSpec(dataset="imagefolder", root="/d", resolution=0), "resolution"),
    ],
)
def test_spec_validate_names_the_field(spec: DataSpec, field: str) -> None:
    with pytest.raises(DataError, match=rf"^DataSpec\.{field}: ") as caught:
        spec.validate()
    assert "\n" not in str(caught.value)


def test_spec_normalises_and_accepts_good_values() -> None:
    spec = DataSpec(dataset="imagefolder", root="some/dir", classes=["cat", "dog"], resolution=32)
    assert spec.root == Path("some/dir") and spec.classes == ("cat", "dog")
    spec.validate()
    DataSpec().validate()
    DataSpec(val_size=0, train_size=1.0, classes=3, seed=5).validate()
    same = DataSpec("imagefolder", Path("some/dir"), classes=("cat", "dog"), resolution=32)
    assert spec == same and hash(spec) == hash(same)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"val_size": 1000, "train_size": 4001},
         "train_size=4001 + val_size=1000 asks for 5,001 images; the data holds 5,000 training"
         " images (4,000 left after validation)"),
        ({"val_size": 6000}, "val_size=6000 asks for 6,000 validation images; the data holds"
         " 5,000 training images"),
        ({"val_size": 5000}, "val_size=5000 leaves no training images (the data holds 5,000"
         " training images)"),
    ],
)
def test_oversized_splits_are_one_line_errors(
    cifar: tuple[ImageSet, ImageSet], kwargs: dict, expected: str
) -> None:
    with pytest.raises(DataError) as err:
        data_splits.make_splits(cifar[0], cifar[1], **kwargs)
    assert str(err.value) == expected


def test_a_small_official_layout_copy_is_read_as_cifar10(tmp_path: Path, bin_dir: Path) -> None:
    from tests.cifarkit import write_small_cifar

    copy = write_small_cifar(tmp_path, bin_dir, 200)
    splits = data.load_splits(DataSpec(val_size=100, train_size=800), copy)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (800, 100, 200)
    assert splits.train.classes == CLASS_NAMES
    with pytest.raises(DataError, match=r"^train_size=901 \+ val_size=100 asks for 1,001 images;"
                       r" the data holds 1,000 training images \(900 left after validation\)$"):
        data.load_splits(DataSpec(val_size=100, train_size=901), copy)


def test_load_splits_cifar(
    cache: Path, monkeypatch: pytest.MonkeyPatch, cifar_dir: Path, cifar: tuple[ImageSet, ImageSet]
) -> None:
    spec = DataSpec(val_size=0.2, train_size=1000, classes=5, seed=3)
    splits = data.load_splits(spec, data_dir=cifar_dir)
    in_first_five = int((cifar[0].labels < 5).sum())
    assert (len(splits.train), len(splits.val)) == (1000, round(0.2 * in_first_five))
    assert splits.test is not None and len(splits.test) == sum(TEST_CLASS_COUNTS[:5])
    assert splits.train.classes == CLASS_NAMES[:5]
    monkeypatch.setenv(data.DATA_DIR_ENV, str(cifar_dir))
    again = data.load_splits(spec)
    assert torch.equal(again.val.images, splits.val.images)


# ---------------------------------------------------------------------------
# ImageFolder subsets

FOLDER_CLASSES = {"airplane": 0, "cat": 3, "dog": 5}
PER_CLASS = 6
VAL_PER_CLASS = 2


def save_image(array: np.ndarray, path: Path) -> None:
    """Save a CHW uint8 image: PNG as is (lossless), JPEG upscaled to a non-square 48x40."""
    image = Image.fromarray(array.transpose(1, 2, 0))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.resize((48, 40), Image.Resampling.BICUBIC).save(path, quality=95)
    else:
        image.save(path)


def image_name(i: int) -> str:
    """img0.png, img1.jpg, img2.JPEG, img3.png, ..."""
    return f"img{i}{('.png', '.jpg', '.JPEG')[i % 3]}"


@pytest.fixture
def folder(tmp_path: Path, cifar: tuple[ImageSet, ImageSet]) -> Path:
    """A small ImageFolder tree of real CIFAR images, with one unreadable file in train/cat."""
    root = tmp_path / "tiny-imagenet"
    train = cifar[0]
    for name, label in FOLDER_CLASSES.items():
        images = train.images[train.labels == label].numpy()
        for split, start, count in (("train", 0, PER_CLASS), ("val", PER_CLASS, VAL_PER_CLASS)):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                save_image(images[start + i], root / split / name / image_name(i))
    (root / "train" / "cat" / "broken.JPEG").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "train" / "cat" / "notes.txt").write_text("ignored: not an image")
    return root


def test_imagefolder_load(folder: Path, tmp_path: Path, cifar: tuple[ImageSet, ImageSet]) -> None:
    loaded = data.load_imagefolder(folder, resolution=32, workers=2, cache_dir=tmp_path / "c")
    readable = 3 * PER_CLASS
    assert loaded.train.images.shape == (readable, 3, 32, 32)
    assert loaded.train.images.dtype == torch.uint8 and loaded.train.labels.dtype == torch.int64
    assert loaded.train.classes == ("airplane", "cat", "dog")
    assert torch.bincount(loaded.train.labels).tolist() == [PER_CLASS] * 3
    assert loaded.skipped == ("train/cat/broken.JPEG",)
    assert loaded.decoded == readable + 1 + 3 * VAL_PER_CLASS
    assert loaded.test is not None and loaded.test.images.shape == (3 * VAL_PER_CLASS, 3, 32, 32)
    # img0.png of each class is lossless at its native size: decoding must give it back exactly.
    train = cifar[0]
    for label, original in enumerate(FOLDER_CLASSES.values()):
        first = loaded.train.images[loaded.train.labels == label][0]
        assert torch.equal(first, train.images[train.labels == original][0])


def test_imagefolder_resolution_and_per_class(
    folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        loaded = data.load_imagefolder(
            folder, classes=("dog", "cat"), per_class=4, resolution=20, cache_dir=tmp_path
        )
    assert loaded.train.images.shape == (7, 3, 20, 20)  # cat: broken.JPEG was among its first 4
    assert loaded.train.classes == ("cat", "dog")
    assert torch.bincount(loaded.train.labels).tolist() == [3, 4]
    assert "skipped 1 unreadable image" in caplog.text
    assert "fewer than per_class=4" in caplog.text and "cat (3)" in caplog.text
    first_two = data.load_imagefolder(folder, classes=2, resolution=8, cache_dir=tmp_path)
    assert first_two.train.classes == ("airplane", "cat")


def test_imagefolder_cache_reuse_and_invalidation(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real_decode = decode.decode_image

    def counting_decode(path: Path, resolution: int) -> np.ndarray:
        calls.append(path)
        return real_decode(path, resolution)

    # Patch the module that calls decode_image, not the package's re-export.
    monkeypatch.setattr(data_decode, "decode_image", counting_decode)
    first = data.load_imagefolder(folder, resolution=16, cache_dir=tmp_path / "c")
    assert first.decoded == len(calls) == 3 * (PER_CLASS + VAL_PER_CLASS) + 1
    with np.load(first.cache_file, allow_pickle=False) as npz:
        assert npz["train_images"].shape == (3 * PER_CLASS, 3, 16, 16)

    calls.clear()
    second = data.load_imagefolder(folder, resolution=16, cache_dir=tmp_path / "c")
    assert second.decoded == 0 and calls == []
    assert second.cache_file == first.cache_file and second.skipped == first.skipped
    assert torch.equal(second.train.images, first.train.images)
    assert second.test is not None and first.test is not None
    assert torch.equal(second.test.labels, first.test.labels)

    changed = folder / "train" / "dog" / image_name(3)
    Image.new("RGB", (30, 30), (255, 0, 0)).save(changed)
    third = data.load_imagefolder(folder, resolution=16, cache_dir=tmp_path / "c")
    assert third.decoded == len(calls) > 0 and third.cache_file != first.cache_file
    red = torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None]
    assert (third.train.images[third.train.labels == 2][3] == red).all()

    calls.clear()
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert data.load_imagefolder(folder, resolution=16, cache_dir=tmp_path / "c").decoded > 0


def test_imagefolder_damaged_cache_is_rebuilt(folder: Path, tmp_path: Path) -> None:
    first = data.load_imagefolder(folder, resolution=8, cache_dir=tmp_path)
    first.cache_file.write_bytes(b"not a zip")
    again = data.load_imagefolder(folder, resolution=8, cache_dir=tmp_path)
    assert again.decoded == first.decoded and torch.equal(again.train.images, first.train.images)


def test_imagefolder_errors(folder: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    with pytest.raises(DataError, match=r"unknown class 'zebra'; available: airplane, cat, dog"):
        data.load_imagefolder(folder, classes=("cat", "zebra"), cache_dir=cache_dir)
    (folder / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*empty class folder"):
        data.load_imagefolder(folder, cache_dir=cache_dir)
    dogs = data.load_imagefolder(folder, classes=("dog",), resolution=8, cache_dir=cache_dir)
    assert len(dogs.train) == PER_CLASS
    (folder / "train" / "empty" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"val.empty: missing class folder"):
        data.load_imagefolder(folder, classes=("empty",), resolution=8, cache_dir=cache_dir)
    (folder / "val" / "empty").mkdir()
    shutil.copy(folder / "val" / "cat" / image_name(0), folder / "val" / "empty")
    with pytest.raises(DataError, match=r"train: no readable images for class\(es\) empty"):
        data.load_imagefolder(folder, classes=("empty",), resolution=8, cache_dir=cache_dir)
    with pytest.raises(DataError, match="no train/ folder"):
        data.load_imagefolder(tmp_path / "nothing", cache_dir=cache_dir)


def test_load_splits_imagefolder(folder: Path, cache: Path) -> None:
    spec = DataSpec(dataset="imagefolder", root=folder, val_size=3, resolution=16, seed=0)
    splits = data.load_splits(spec, workers=1)
    assert (len(splits.train), len(splits.val)) == (3 * PER_CLASS - 3, 3)
    assert torch.bincount(splits.val.labels).tolist() == [1, 1, 1]
    assert splits.test is not None and len(splits.test) == 3 * VAL_PER_CLASS
    assert len(splits.mean) == len(splits.std) == 3
    assert any(cache.joinpath("imagefolder").glob("*.npz"))

    # Without val/ there is no test split; validation is still carved from train/.
    shutil.rmtree(folder / "val")
    no_val = data.load_splits(spec, workers=1)
    assert no_val.test is None and len(no_val.val) == 3
