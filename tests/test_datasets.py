"""Tests of datasets/*.py on the tiny CIFAR-10 of conftest.py and on tiny IDX files."""
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import functional as TF

from datasets.mnist_files import read_idx
from datasets.seq_cifar10 import read_cifar_batches
from tests.conftest import CIFAR_DIR, CIFAR_PER_CLASS, CIFAR_TRAIN_BATCHES, REPO, read_cifar_fixture
from tests.reference_helpers import make_dataset
from utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)


def _fixture_images(data_path, names) -> tuple[np.ndarray, list[int]]:
    """(N x 3072 uint8, labels) of the given fixture batches, read with plain pickle."""
    data, labels = [], []
    for name in names:
        entry = read_cifar_fixture(data_path, name)
        data.append(entry["data"])
        labels += entry["labels"]
    return np.concatenate(data), labels


def _keys(raw: torch.Tensor) -> list[bytes]:
    """Identity of each [0, 1] image of a batch: its bytes once scaled back to uint8."""
    as_bytes = (raw * 255).round().to(torch.uint8).reshape(len(raw), -1).numpy()
    return [row.tobytes() for row in as_bytes]


def _vector_keys(data: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in data]


def _collect(loader) -> tuple[list[torch.Tensor], list[int], list[bytes]]:
    augmented, labels, keys = [], [], []
    for x, y, raw in loader:
        assert x.shape == raw.shape and len(y) == len(raw)
        assert y.dtype == torch.long
        augmented.append(x)
        labels += y.tolist()
        keys += _keys(raw)
    return augmented, labels, keys


# --- the CIFAR-10 reader ---------------------------------------------------------------


def test_cifar_reader_returns_the_written_pixels(cifar10_path):
    folder = Path(cifar10_path) / "CIFAR10" / CIFAR_DIR
    images, labels = read_cifar_batches(folder, ["data_batch_2"])
    entry = read_cifar_fixture(cifar10_path, "data_batch_2")
    n = 10 * CIFAR_PER_CLASS["data_batch_2"]
    assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.long and labels.tolist() == entry["labels"]
    data = entry["data"]
    for k in (0, 1, 77, n - 1):  # the 3072-vector: 1024 red, 1024 green, 1024 blue, row-major
        for channel in range(3):
            expected = [[int(data[k][channel * 1024 + r * 32 + c]) for c in range(32)] for r in range(32)]
            assert images[k, channel].tolist() == expected, (k, channel)
    for channel in range(3):
        block = torch.from_numpy(data[:, channel * 1024:(channel + 1) * 1024].copy()).view(n, 32, 32)
        assert torch.equal(images[:, channel], block)


def test_cifar_load_concatenates_the_batches_in_order(cifar10_path):
    train_x, train_y, test_x, test_y = make_dataset("seq-cifar10", cifar10_path).load()
    data, labels = _fixture_images(cifar10_path, CIFAR_TRAIN_BATCHES)
    assert train_x.shape == (len(labels), 3, 32, 32) and train_y.tolist() == labels
    assert _vector_keys(data) == [x.numpy().tobytes() for x in train_x]
    test_data, test_labels = _fixture_images(cifar10_path, ["test_batch"])
    assert test_y.tolist() == test_labels
    assert _vector_keys(test_data) == [x.numpy().tobytes() for x in test_x]


# --- tasks -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", range(5))
def test_cifar_tasks_hold_exactly_their_classes(cifar10_path, task):
    dataset = make_dataset("seq-cifar10", cifar10_path)
    classes = {2 * task, 2 * task + 1}
    assert list(dataset.task_classes(task)) == sorted(classes)
    data, labels = _fixture_images(cifar10_path, CIFAR_TRAIN_BATCHES)
    expected = sorted(k for k, y in zip(_vector_keys(data), labels, strict=True) if y in classes)
    per_class = sum(CIFAR_PER_CLASS[n] for n in CIFAR_TRAIN_BATCHES)
    loader = dataset.train_loader([task])  # 200 images, batch 8: 25 full batches
    assert len(loader) == 2 * per_class // 8
    augmented, got_labels, keys = _collect(loader)
    assert sorted(got_labels) == [2 * task] * per_class + [2 * task + 1] * per_class
    assert sorted(keys) == expected
    assert all(x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) for x in augmented)

    test_data, test_labels = _fixture_images(cifar10_path, ["test_batch"])
    keep = [i for i, y in enumerate(test_labels) if y in classes]
    (x, y, raw), *rest = list(dataset.test_loader(task))
    assert rest == []
    assert y.tolist() == [test_labels[i] for i in keep]  # file order, not shuffled
    assert _keys(raw) == [test_data[i].tobytes() for i in keep]
    expected_x = torch.stack([TF.normalize(r, MEAN, STD) for r in raw])
    torch.testing.assert_close(x, expected_x)


def test_cifar_train_augmentation_is_a_crop_and_flip_of_the_raw_image(cifar10_path):
    torch.manual_seed(0)
    x, _, raw = next(iter(make_dataset("seq-cifar10", cifar10_path).train_loader([1])))
    assert torch.equal(raw, raw.clamp(0, 1))
    for i in range(3):
        unnormalised = x[i] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
        padded = TF.pad(raw[i], [4], fill=0)
        crops = [TF.crop(padded, t, left, 32, 32) for t in range(9) for left in range(9)]
        crops += [TF.hflip(c) for c in crops]
        error = min(float((unnormalised - c).abs().max()) for c in crops)
        assert error < 1e-5


def test_cifar_joint_loader_holds_the_union(cifar10_path):
    dataset = make_dataset("seq-cifar10", cifar10_path, batch_size=50)
    _, labels, _ = _collect(dataset.train_loader(range(5)))
    per_class = sum(CIFAR_PER_CLASS[n] for n in CIFAR_TRAIN_BATCHES)
    assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_last_incomplete_train_batch_is_dropped(cifar10_path):
    dataset = make_dataset("seq-cifar10", cifar10_path, batch_size=64)  # 200 = 3 x 64 + 8
    loader = dataset.train_loader([0])
    assert len(loader) == 3
    assert [len(y) for _, y, _ in loader] == [64, 64, 64]


def test_debug_mode_stops_after_four_batches(cifar10_path):
    dataset = make_dataset("seq-cifar10", cifar10_path, batch_size=4, debug_mode=True)
    loader = dataset.train_loader([2])
    assert len(loader) == 4 and len(list(loader)) == 4


def test_pil_loader_matches_tensor_loader_on_test_data(cifar10_path):
    tensor_batches = list(make_dataset("seq-cifar10", cifar10_path).test_loader(3))
    pil_batches = list(make_dataset("seq-cifar10", cifar10_path, loader="pil").test_loader(3))
    assert len(tensor_batches) == len(pil_batches) == 1
    for a, b in zip(tensor_batches[0], pil_batches[0], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


# --- validation ----------------------------------------------------------------------------


def _tree(root: Path) -> set[str]:
    skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        found.update(os.path.relpath(os.path.join(dirpath, f), root) for f in filenames)
    return found


def _data_files(data_path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in Path(data_path).rglob("*")}


def test_validation_holds_out_ten_percent_of_each_task(cifar10_path):
    repo_before, data_before = _tree(REPO), _data_files(cifar10_path)
    data, labels = _fixture_images(cifar10_path, CIFAR_TRAIN_BATCHES)
    test_data, _ = _fixture_images(cifar10_path, ["test_batch"])
    test_keys = set(_vector_keys(test_data))
    held_out = {}
    for task in range(5):
        classes = {2 * task, 2 * task + 1}
        task_keys = {k for k, y in zip(_vector_keys(data), labels, strict=True) if y in classes}
        assert len(task_keys) == 200
        torch.manual_seed(task)  # the held-out part must not depend on the run's seed
        dataset = make_dataset("seq-cifar10", cifar10_path, validation=True, batch_size=20)
        _, val_labels, val_keys = _collect(dataset.test_loader(task))
        _, train_labels, train_keys = _collect(dataset.train_loader([task]))
        assert len(val_keys) == 20 and len(train_keys) == 180  # 10% of 200
        assert set(val_labels) <= classes and set(train_labels) == classes
        assert set(val_keys).isdisjoint(train_keys)
        assert set(val_keys) | set(train_keys) == task_keys
        assert test_keys.isdisjoint(val_keys), "validation must come from the training files"
        held_out[task] = set(val_keys)
    # a second dataset object, another global seed: the same held-out examples
    torch.manual_seed(12345)
    again = make_dataset("seq-cifar10", cifar10_path, validation=True)
    for task in (0, 4):
        assert set(_collect(again.test_loader(task))[2]) == held_out[task]
    # other engineers may edit sources or write run results meanwhile: ignore those
    new_files = {p for p in _tree(REPO) - repo_before
                 if not p.endswith((".py", ".md")) and not p.startswith(("results" + os.sep, "runs" + os.sep))}
    assert new_files == set(), f"--validation wrote into the source tree: {sorted(new_files)}"
    assert _data_files(cifar10_path) == data_before


# --- missing or damaged CIFAR-10 ------------------------------------------------------------


def test_missing_cifar_offline_raises_user_error(tmp_path):
    dataset = make_dataset("seq-cifar10", tmp_path)
    with pytest.raises(UserError) as error:
        dataset.test_loader(0)
    assert str(tmp_path / "CIFAR10") in str(error.value)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == [], "an offline failure must not create folders"


def _copy_cifar(cifar10_path, tmp_path) -> Path:
    shutil.copytree(Path(cifar10_path) / "CIFAR10", tmp_path / "CIFAR10")
    return tmp_path / "CIFAR10" / CIFAR_DIR


def _damage(folder: Path, how: str) -> str:
    if how == "truncated":
        path = folder / "data_batch_3"
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 2])
    elif how == "missing":
        path = folder / "data_batch_4"
        path.unlink()
    elif how == "garbage":
        path = folder / "test_batch"
        path.write_bytes(b"this is not a pickle" * 10)
    elif how == "labels":
        import pickle

        path = folder / "data_batch_1"
        entry = read_cifar_fixture(folder.parent.parent, "data_batch_1")
        entry["labels"] = entry["labels"][:-1]
        path.write_bytes(pickle.dumps(entry))
    else:  # 3071 bytes per image: cannot be reshaped to 3 x 32 x 32
        import pickle

        path = folder / "data_batch_5"
        entry = read_cifar_fixture(folder.parent.parent, "data_batch_5")
        entry["data"] = entry["data"][:, :-1]
        path.write_bytes(pickle.dumps(entry))
    return str(path)


@pytest.mark.parametrize("how", ["truncated", "missing", "garbage", "labels", "short_rows"])
def test_damaged_cifar_raises_user_error(cifar10_path, tmp_path, how):
    folder = _copy_cifar(cifar10_path, tmp_path)
    path = _damage(folder, how)
    with pytest.raises(UserError) as error:
        make_dataset("seq-cifar10", tmp_path).load()
    assert path in str(error.value)
    assert "\n" not in str(error.value)


# --- Fashion-MNIST ---------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX of unsigned bytes written by hand: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_plain_and_gzipped(tmp_path, gzipped):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    labels = np.array([9, 0, 4], dtype=np.uint8)
    for name, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        content = _idx_bytes(array)
        path = tmp_path / (name + (".gz" if gzipped else ""))
        path.write_bytes(gzip.compress(content) if gzipped else content)
        out = read_idx(path)
        assert out.shape == array.shape and out.dtype == np.uint8
        assert out.tolist() == array.tolist()
    # hand-made header: 2 images of 1 x 2
    path = tmp_path / "hand-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x02"
                     + bytes([1, 2, 3, 4]))
    assert read_idx(path).tolist() == [[[1, 2]], [[3, 4]]]


def _truncated_gzip(content: bytes) -> bytes:
    packed = gzip.compress(content, mtime=0)
    return packed[: len(packed) // 2]


DAMAGED_IDX_FILES = [
    ("body-idx3-ubyte", _idx_bytes(np.zeros((3, 4, 5)))[:-7]),              # body cut short
    ("body-idx3-ubyte.gz", gzip.compress(_idx_bytes(np.zeros((3, 4, 5)))[:-7], mtime=0)),
    ("stream-idx3-ubyte.gz", _truncated_gzip(_idx_bytes(np.arange(240).reshape(4, 6, 10)))),  # gzip cut
    ("header-idx3-ubyte", _idx_bytes(np.zeros((3, 4, 5)))[:9]),             # dims cut
    ("tiny-idx3-ubyte", b"\x00\x00"),
    ("float-idx1-ubyte", b"\x00\x00\x0d\x01\x00\x00\x00\x01" + b"\x00" * 4),  # type 0x0D (float)
    ("magic-idx1-ubyte", b"\x01\x02\x08\x01\x00\x00\x00\x01\x05"),
    ("notgzip-idx1-ubyte.gz", b"\x00\x00\x08\x01\x00\x00\x00\x01\x05"),
]


@pytest.mark.parametrize("name,content", DAMAGED_IDX_FILES, ids=[name for name, _ in DAMAGED_IDX_FILES])
def test_read_idx_damaged_raises_user_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def _write_tiny_fmnist(raw: Path, per_class_train: int = 6, per_class_test: int = 3) -> dict:
    rng = np.random.default_rng(1)
    raw.mkdir(parents=True)
    arrays = {}
    for split, per_class in (("train", per_class_train), ("t10k", per_class_test)):
        labels = np.array([c for _ in range(per_class) for c in range(10)], dtype=np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        arrays[split] = (images, labels)
        gz = split == "train"  # one split gzipped, the other plain
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            path = raw / f"{split}-{kind}-ubyte{'.gz' if gz else ''}"
            path.write_bytes(gzip.compress(_idx_bytes(array)) if gz else _idx_bytes(array))
    return arrays


def test_fmnist_dataset_on_tiny_files(tmp_path):
    arrays = _write_tiny_fmnist(tmp_path / "FashionMNIST" / "raw")
    dataset = make_dataset("seq-fmnist", tmp_path, batch_size=3)
    train_x, train_y, test_x, test_y = dataset.load()
    assert train_x.shape == (60, 1, 28, 28) and train_x.dtype == torch.uint8
    assert torch.equal(train_x[:, 0], torch.from_numpy(arrays["train"][0]))
    assert train_y.tolist() == arrays["train"][1].tolist() and train_y.dtype == torch.long
    assert test_y.tolist() == arrays["t10k"][1].tolist()
    for task in range(5):
        classes = {2 * task, 2 * task + 1}
        _, labels, _ = _collect(dataset.train_loader([task]))
        assert sorted(labels) == sorted([2 * task] * 6 + [2 * task + 1] * 6)
        (x, y, raw), = list(dataset.test_loader(task))
        keep = [i for i, v in enumerate(arrays["t10k"][1]) if v in classes]
        assert y.tolist() == [int(arrays["t10k"][1][i]) for i in keep]
        assert torch.equal(raw[:, 0], torch.from_numpy(arrays["t10k"][0][keep]).float() / 255)
        assert torch.equal(x, raw), "seq-fmnist has no test transform"
    assert dataset.get_backbone()(x).shape == (len(x), 10)


def test_fmnist_missing_offline_raises_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr("datasets.mnist_files.DEBIAN_DIR", tmp_path / "no-debian")
    dataset = make_dataset("seq-fmnist", tmp_path / "data")
    with pytest.raises(UserError) as error:
        dataset.load()
    assert str(tmp_path / "data" / "FashionMNIST" / "raw") in str(error.value)


def test_fmnist_real_labels(fmnist_dir):
    """The Debian files: 60000 / 10000 labels, 6000 / 1000 of each class."""
    for name, n in (("train-labels-idx1-ubyte", 60000), ("t10k-labels-idx1-ubyte", 10000)):
        path = fmnist_dir / name if (fmnist_dir / name).is_file() else fmnist_dir / f"{name}.gz"
        labels = read_idx(path)
        assert labels.shape == (n,)
        assert np.bincount(labels, minlength=10).tolist() == [n // 10] * 10
