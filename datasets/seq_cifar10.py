"""Sequential CIFAR-10: 5 tasks of 2 classes in label order, ResNet-18 (docs/method.md, "Setting and protocol")."""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backbone.resnet18 import ResNet18
from datasets.cifar_pickle import CifarUnpickler, Refused, shown
from datasets.continual_dataset import CropFlipImages, as_tensors, download
from utils.errors import UserError

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)
BATCHES_DIR = "cifar-10-batches-py"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def read_cifar_batches(folder: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read pickled batches of the official ``cifar-10-batches-py`` layout, with ``CifarUnpickler``."""
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                entry = CifarUnpickler(f, encoding="latin1").load()
            data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            target = np.asarray(entry["labels"])
            if target.size and target.dtype.kind not in "iu":  # e.g. strings, or objects a crafted file left there
                raise ValueError(f"labels of dtype {shown(str(target.dtype))}")
        except FileNotFoundError:
            raise UserError(f"CIFAR-10 file {path} is missing") from None
        except Refused as e:
            why = f"it needs {e}, which the official files never contain"
            raise UserError(f"CIFAR-10 file {path} is refused: {why}") from None
        except Exception as e:  # any unpickling or reshaping failure means the file is damaged
            raise UserError(f"CIFAR-10 file {path} is corrupted ({type(e).__name__}: {e})") from None
        if len(target) != len(data):
            raise UserError(f"CIFAR-10 file {path} is corrupted ({len(data)} images, {len(target)} labels)")
        images.append(data)
        labels.append(target)
    return as_tensors(np.concatenate(images), np.concatenate(labels))


class SequentialCIFAR10(CropFlipImages):
    MEAN, STD, SIZE = MEAN, STD, 32
    NAME = "seq-cifar10"
    N_TASKS = 5
    N_CLASSES_PER_TASK = 2
    NUM_FILTERS = 64

    def load(self) -> tuple[torch.Tensor, ...]:
        root = Path(self.args.data_path) / "CIFAR10"
        folder = root / BATCHES_DIR
        if not folder.is_dir():
            self._download(root)
        train = read_cifar_batches(folder, [f"data_batch_{i}" for i in range(1, 6)])
        test = read_cifar_batches(folder, ["test_batch"])
        return (*train, *test)

    def _download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR10  # imported on use: it takes seconds, and --offline never needs it

        download("CIFAR-10", root, lambda: CIFAR10(str(root), train=True, download=True),
                 f"put the official {BATCHES_DIR} folder in {root}/ (unpack {URL} there)", self.args.offline)

    def get_backbone(self) -> nn.Module:
        return ResNet18(num_classes=10, num_filters=self.num_filters(), classifier=self.classifier())
