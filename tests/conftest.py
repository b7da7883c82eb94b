"""Shared fixtures: a tiny CIFAR-10 in the official layout, and the Fashion-MNIST files of Debian."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_ALL_BATCHES = [*CIFAR_TRAIN_BATCHES, "test_batch"]
CIFAR_PER_CLASS = {**{name: 20 for name in CIFAR_TRAIN_BATCHES}, "test_batch": 5}

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


# Module fixtures that start main.py or cifar.py as processes: every test that uses one is slow.
SLOW_FIXTURES = {"e2e", "runs", "fmnist_grid"}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (pyproject.toml runs one worker per core) each worker computes with its
    share of the cores, so that the workers' threads together do not outnumber them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // workers))


def pytest_collection_modifyitems(items: list) -> None:
    """The slow tier: tests marked slow, and those that use a SLOW_FIXTURES fixture."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def subprocess_env() -> dict:
    """Environment of a ``main.py`` (or script) subprocess: one intra-op thread, since tests run
    several at once on a small machine, and no bytecode files written into the tree."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def fmnist_data_path(folder: Path) -> Path:
    """``folder`` as a --data_path with the installed Fashion-MNIST files linked in (skip when absent)."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FMNIST_FILES:
        found = next((p for p in (FMNIST_DIR / name, FMNIST_DIR / f"{name}.gz") if p.is_file()), None)
        if found is None:
            pytest.skip("Fashion-MNIST is not installed")
        (raw / found.name).symlink_to(found)
    return folder


def write_cifar10(data_path: Path, seed: int = 0) -> Path:
    """Write ``data_path/CIFAR10/cifar-10-batches-py`` with every class in every batch (random
    pixels, so that every image is unique; labels interleaved so no batch is sorted)."""
    rng = np.random.default_rng(seed)
    folder = data_path / "CIFAR10" / CIFAR_DIR
    folder.mkdir(parents=True)
    for name in CIFAR_ALL_BATCHES:
        labels = [c for _ in range(CIFAR_PER_CLASS[name]) for c in range(10)]
        rng.shuffle(labels)
        labels = [int(v) for v in labels]
        data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        entry = {
            "batch_label": f"{name} of the tiny test CIFAR-10",
            "labels": labels,
            "data": data,
            "filenames": [f"{name}_{i:05d}.png" for i in range(len(labels))],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    return data_path


def read_cifar_fixture(data_path: str | Path, name: str) -> dict:
    """Read one batch written by ``write_cifar10`` back with plain pickle."""
    with open(Path(data_path) / "CIFAR10" / CIFAR_DIR / name, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="session")
def cifar10_path(tmp_path_factory) -> str:
    """Data path (``--data_path``) of a tiny CIFAR-10: 20 images per class in each training batch,
    5 per class in the test batch. Session-wide: tests must not modify it (copy it first)."""
    return str(write_cifar10(tmp_path_factory.mktemp("cifar_data")))


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    """The folder holding the four Fashion-MNIST IDX files (plain or gzipped), else skip."""
    missing = [n for n in FMNIST_FILES if not (FMNIST_DIR / n).is_file() and not (FMNIST_DIR / f"{n}.gz").is_file()]
    if missing:
        pytest.skip(f"Fashion-MNIST is not installed in {FMNIST_DIR} (missing {', '.join(missing)}); "
                    "install Debian's dataset-fashion-mnist package")
    return FMNIST_DIR


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread: on a small shared machine, several threads of tiny
    convolutions mostly wait for each other."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
