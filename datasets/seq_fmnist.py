"""Sequential Fashion-MNIST: 5 tasks of 2 classes in label order, no augmentation, and the
784-100-100-10 MLP mammoth uses for seq-mnist."""
import gzip
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backbone.mlp import MLP
from datasets.continual_dataset import ContinualDataset, as_tensors, download
from utils.errors import UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (plain or gzipped)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # EOFError: a truncated gzip stream
        raise UserError(f"Fashion-MNIST file {path} is unreadable or corrupted ({e})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"Fashion-MNIST file {path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise UserError(f"Fashion-MNIST file {path} is truncated (incomplete header)")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"Fashion-MNIST file {path} is truncated ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


def find_files(folder: Path) -> list[Path] | None:
    """The four IDX files in ``folder``, plain or gzipped, or None if any is missing."""
    found = []
    for name in FILES:
        candidates = [folder / name, folder / f"{name}.gz"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


class SequentialFMNIST(ContinualDataset):
    NAME = "seq-fmnist"
    N_TASKS = 5
    N_CLASSES_PER_TASK = 2

    def load(self) -> tuple[torch.Tensor, ...]:
        raw = Path(self.args.data_path) / "FashionMNIST" / "raw"
        paths = find_files(raw) or find_files(DEBIAN_DIR) or self._download(raw)
        train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
        return (*as_tensors(train_x, train_y), *as_tensors(test_x, test_y))

    def _download(self, raw: Path) -> list[Path]:
        from torchvision.datasets import FashionMNIST

        root = raw.parent.parent
        download("Fashion-MNIST", root, lambda: FashionMNIST(str(root), train=True, download=True),
                 f"put the four IDX files in {raw}/ or install Debian's dataset-fashion-mnist", self.args.offline)
        return find_files(raw)

    @staticmethod
    def get_backbone() -> nn.Module:
        return MLP(28 * 28, 10)
