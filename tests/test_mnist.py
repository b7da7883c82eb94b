"""seq-mnist and datasets/mnist_files.py on tiny MNIST files written in the official raw IDX layout
(``<data_path>/MNIST/raw/``); nothing here reaches the network."""
import gzip
import re
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from datasets import get_all_datasets
from datasets.mnist_files import load_idx_dataset
from utils.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
PER_CLASS = {"train": 20, "t10k": 5}
FINAL = re.compile(r"^Accuracy for (\d) task\(s\): \[Class-IL\]: ([\d.]+) % \[Task-IL\]: ([\d.]+) %$", re.M)


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX of unsigned bytes written by hand: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(raw: Path, gzipped: bool, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The four official files in ``raw``: labels shuffled, dim noise plus one bright row per class
    (row 2 * label + 4), so that a run can learn the classes."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, per_class in PER_CLASS.items():
        labels = np.array([c for _ in range(per_class) for c in range(10)], dtype=np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
        images[np.arange(len(labels)), 2 * labels + 4, 4:24] = 255
        arrays[split] = (images, labels)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            content = _idx_bytes(array)
            name = f"{split}-{kind}-ubyte"
            if gzipped:
                (raw / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (raw / name).write_bytes(content)
    return arrays


def _args(data_path, **overrides) -> Namespace:
    args = Namespace(data_path=str(data_path), validation=False, debug_mode=False, loader="tensor",
                     batch_size=5, num_workers=0, offline=True)
    vars(args).update(overrides)
    return args


def _argv(tmp_path: Path, *extra: str, offline: bool = True) -> list[str]:
    return ["--model", "sgd", "--dataset", "seq-mnist", "--lr", "0.1", "--batch_size", "10", "--n_epochs", "1",
            "--seed", "0", "--device", "cpu", "--debug_mode", "--data_path", str(tmp_path / "data"),
            "--results_path", str(tmp_path / "results"), *(["--offline"] if offline else []), *extra]


def _error_line(capsys, argv: list[str]) -> str:
    """Run main.main, which must exit 2 with exactly one stderr line, and return that line."""
    assert main.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("main.py: error: ") and "Traceback" not in captured.err
    return lines[0]


# --- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzipped"])
def test_load_idx_dataset_reads_the_official_layout(tmp_path, gzipped):
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gzipped)
    train_x, train_y, test_x, test_y = load_idx_dataset(_args(tmp_path), "MNIST")
    assert train_x.shape == (200, 1, 28, 28) and test_x.shape == (50, 1, 28, 28)
    assert train_x.dtype == test_x.dtype == torch.uint8
    assert train_y.dtype == test_y.dtype == torch.int64
    assert torch.equal(train_x[:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(test_x[:, 0], torch.from_numpy(arrays["t10k"][0]))
    assert train_y.tolist() == arrays["train"][1].tolist() and test_y.tolist() == arrays["t10k"][1].tolist()
    assert get_all_datasets()["seq-mnist"](_args(tmp_path), CPU).load()[1].tolist() == train_y.tolist()


def test_mnist_ignores_the_fashion_mnist_fallback_folder(tmp_path, monkeypatch):
    """The Debian folder is Fashion-MNIST's: MNIST-named data is never taken from it."""
    write_mnist(tmp_path / "debian", gzipped=False)
    monkeypatch.setattr("datasets.mnist_files.DEBIAN_DIR", tmp_path / "debian")
    assert len(load_idx_dataset(_args(tmp_path / "data"), "FashionMNIST")[0]) == 200
    with pytest.raises(UserError, match="MNIST not found"):
        load_idx_dataset(_args(tmp_path / "data"), "MNIST")


# --- tasks -----------------------------------------------------------------------------------


def test_seq_mnist_tasks_hold_two_classes_in_label_order(tmp_path):
    arrays = write_mnist(tmp_path / "MNIST" / "raw", gzipped=True)
    dataset = get_all_datasets()["seq-mnist"](_args(tmp_path), CPU)
    assert (dataset.SETTING, dataset.N_TASKS, dataset.N_CLASSES_PER_TASK) == ("class-il", 5, 2)
    for task in range(5):
        classes = [2 * task, 2 * task + 1]
        assert list(dataset.task_classes(task)) == classes
        train_labels = []
        for x, y, raw in dataset.train_loader([task]):
            assert torch.equal(x, raw), "seq-mnist does not augment"
            train_labels += y.tolist()
        assert sorted(train_labels) == sorted(classes * PER_CLASS["train"])
        (x, y, raw), = list(dataset.test_loader(task))
        keep = [i for i, v in enumerate(arrays["t10k"][1]) if v in classes]
        assert y.tolist() == [int(arrays["t10k"][1][i]) for i in keep]
        assert torch.equal(x, raw) and torch.equal(raw[:, 0], torch.from_numpy(arrays["t10k"][0][keep]) / 255)
    net = dataset.get_backbone()
    assert net(x).shape == (len(x), 10)
    assert [p.shape for p in net.parameters()] == [(100, 784), (100,), (100, 100), (100,), (10, 100), (10,)]


# --- missing, failed download, damaged -------------------------------------------------------


def test_offline_without_files_says_where_to_put_them(tmp_path, capsys):
    line = _error_line(capsys, _argv(tmp_path))
    assert "MNIST not found and --offline forbids downloading" in line
    assert f"{tmp_path / 'data' / 'MNIST' / 'raw'}/" in line and "train-images-idx3-ubyte" in line
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("data_exists", [False, True], ids=["new-data-path", "existing-data-path"])
def test_failed_download_leaves_no_folder(tmp_path, capsys, monkeypatch, data_exists):
    import torchvision.datasets

    calls = []

    def fail_half_way(root, **kwargs):
        calls.append((root, kwargs))
        raw = Path(root) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b half")
        raise ConnectionError("no network")

    if data_exists:
        (tmp_path / "data").mkdir()
    monkeypatch.setattr(torchvision.datasets, "MNIST", fail_half_way)
    line = _error_line(capsys, _argv(tmp_path, offline=False))
    assert calls == [(str(tmp_path / "data"), {"train": True, "download": True})]
    assert line.startswith("main.py: error: MNIST not found and the download failed (ConnectionError)")
    assert str(tmp_path / "data" / "MNIST" / "raw") in line
    assert (tmp_path / "data").exists() == data_exists and not (tmp_path / "data" / "MNIST").exists()
    assert not (tmp_path / "results").exists()


def test_download_puts_the_files_where_they_are_read(tmp_path, monkeypatch):
    import torchvision.datasets

    def download_fixture(root, train, download):
        assert train and download
        write_mnist(Path(root) / "MNIST" / "raw", gzipped=True, seed=3)

    monkeypatch.setattr(torchvision.datasets, "MNIST", download_fixture)
    labels = load_idx_dataset(_args(tmp_path / "data", offline=False), "MNIST")[1]
    assert labels.tolist() == write_mnist(tmp_path / "again", gzipped=True, seed=3)["train"][1].tolist()


def _truncated_gzip(content: bytes) -> bytes:
    packed = gzip.compress(content)
    return packed[: len(packed) // 2]


@pytest.mark.parametrize("file,damage,message", [
    ("train-images-idx3-ubyte", lambda b: b[:-100], "is truncated (156700 of 156800 bytes)"),
    ("t10k-labels-idx1-ubyte", lambda b: b[:6], "is truncated (incomplete header)"),
    ("train-labels-idx1-ubyte.gz", lambda b: _truncated_gzip(gzip.decompress(b)), "is unreadable or corrupted"),
    ("t10k-images-idx3-ubyte.gz", lambda b: gzip.compress(b"\x08\x03" + gzip.decompress(b)[2:]),
     "is not an IDX file of unsigned bytes"),
], ids=["body", "header", "gzip-stream", "magic"])
def test_damaged_file_gives_one_line_naming_it(tmp_path, capsys, file, damage, message):
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_mnist(raw, gzipped=file.endswith(".gz"))
    (raw / file).write_bytes(damage((raw / file).read_bytes()))
    line = _error_line(capsys, _argv(tmp_path))
    assert line.startswith(f"main.py: error: MNIST file {raw / file} {message}")


# --- end to end ------------------------------------------------------------------------------


def test_seq_mnist_end_to_end(tmp_path, capsys):
    """sgd on the fixture (4 steps of 10 a task): the bright rows are learnt, so task-IL is high."""
    write_mnist(tmp_path / "data" / "MNIST" / "raw", gzipped=False)
    assert main.main(_argv(tmp_path)) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    found = FINAL.findall(captured.out)
    assert [int(t) for t, _, _ in found] == [1, 2, 3, 4, 5], captured.out
    assert float(found[0][1]) > 90 and float(found[-1][2]) > 90, found  # chance: 50 (task 1), 50 (task-IL)
