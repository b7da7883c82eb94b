"""MNIST and Fashion-MNIST in torchvision's layout: the four IDX files (plain or gzipped) in
``<data_path>/<name>/raw/``; Fashion-MNIST may also come from Debian's dataset-fashion-mnist; else
torchvision downloads them (unless --offline)."""
import gzip
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

from datasets.continual_dataset import as_tensors, download
from utils.errors import UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Fashion-MNIST only
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
LABELS = {"MNIST": "MNIST", "FashionMNIST": "Fashion-MNIST"}  # folder (torchvision class) -> name in messages


def load_idx_dataset(args: Namespace, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images uint8 N x 1 x 28 x 28, train labels int64, test images, test labels) of ``name``
    ("MNIST" or "FashionMNIST"), read from ``args.data_path``; raises a one-line UserError when the
    files are missing (and cannot be downloaded) or damaged."""
    label = LABELS[name]
    raw = Path(args.data_path) / name / "raw"
    paths = _find_files(raw)
    if paths is None and name == "FashionMNIST":
        paths = _find_files(DEBIAN_DIR)
    if paths is None:
        paths = _download(args, name, raw)
    train_x, train_y, test_x, test_y = (read_idx(p, label) for p in paths)
    return (*as_tensors(train_x, train_y), *as_tensors(test_x, test_y))


def read_idx(path: Path, label: str = "IDX") -> np.ndarray:
    """Read an IDX file of unsigned bytes (plain or gzipped); errors name ``label``'s file."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # EOFError: a truncated gzip stream
        raise UserError(f"{label} file {path} is unreadable or corrupted ({e})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"{label} file {path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise UserError(f"{label} file {path} is truncated (incomplete header)")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{label} file {path} is truncated ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


def _find_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder``, plain or gzipped, or None if any is missing."""
    found = []
    for file in FILES:
        path = next((p for p in (folder / file, folder / f"{file}.gz") if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


def _download(args: Namespace, name: str, raw: Path) -> list[Path]:
    """Download ``name`` with torchvision into ``<data_path>/<name>/raw``; the folders a failed download
    made are removed (``raw`` is given to ``download`` so that this holds when data_path exists)."""
    def fetch() -> None:
        import torchvision.datasets  # imported on use: it takes seconds, and --offline never needs it

        getattr(torchvision.datasets, name)(str(args.data_path), train=True, download=True)

    label = LABELS[name]
    where = f"put the four IDX files ({', '.join(FILES)}; plain or .gz) in {raw}/"
    if name == "FashionMNIST":
        where += " or install Debian's dataset-fashion-mnist"
    download(label, raw, fetch, where, args.offline)
    paths = _find_files(raw)
    if paths is None:
        raise UserError(f"{label} download finished without the four IDX files: {where}")
    return paths
