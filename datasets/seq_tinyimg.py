"""Sequential Tiny-ImageNet-200 with the DER protocol: 10 tasks of 20 classes (the order of
``wnids.txt``), 64x64 RGB images, ResNet-18 with 200 outputs; train transform random crop 64
(padding 4) and horizontal flip, normalised with mammoth's Tiny-ImageNet mean and std.

The data is the official ``tiny-imagenet-200`` folder, unzipped into ``<data_path>/TINYIMG/``
(it cannot be downloaded automatically): ``wnids.txt``, ``train/<wnid>/images/*.JPEG`` (500 per
class) and ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt``, which serves as the test
split. Every image is decoded with PIL once and held in memory as uint8: the 100,000 training and
10,000 test images take about 1.3 GB (110,000 x 3 x 64 x 64 bytes = 1.26 GiB), plus the task's copy on
the device for the tensor loader; decoding them takes about 6 s on one core."""
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from backbone.resnet18 import ResNet18
from datasets.continual_dataset import CropFlipImages
from utils.errors import UserError

MEAN, STD = (0.4802, 0.4480, 0.3975), (0.2770, 0.2691, 0.2821)
SIZE = 64
N_CLASSES = 200
FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def read_wnids(path: Path) -> list[str]:
    """The 200 distinct wnids of ``wnids.txt``, in file order (that order gives the labels)."""
    try:
        wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise UserError(f"Tiny-ImageNet file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"Tiny-ImageNet file {path} is unreadable ({type(e).__name__}: {e})") from None
    if len(wnids) != N_CLASSES or len(set(wnids)) != N_CLASSES:
        raise UserError(f"Tiny-ImageNet file {path} is corrupted ({len(set(wnids))} distinct wnids in "
                        f"{len(wnids)} lines, expected {N_CLASSES})")
    return wnids


def jpeg_names(folder: Path) -> list[str]:
    """The sorted names of the ``*.JPEG`` files in ``folder``."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.name.endswith(".JPEG"))
    except OSError:
        raise UserError(f"Tiny-ImageNet folder {folder} is missing or unreadable") from None


def read_images(paths: list[Path]) -> torch.Tensor:
    """The images at ``paths`` as uint8 N x 3 x 64 x 64 (greyscale or other modes converted to RGB)."""
    images = np.empty((len(paths), 3, SIZE, SIZE), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                if image.size != (SIZE, SIZE):
                    raise UserError(f"Tiny-ImageNet image {path} is {image.size[0]}x{image.size[1]}, "
                                    f"expected {SIZE}x{SIZE}")
                pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        except UserError:
            raise
        except Exception as e:  # PIL raises many types on damaged files; all mean "not an image"
            raise UserError(f"Tiny-ImageNet image {path} is not a readable image ({type(e).__name__})") from None
        images[i] = pixels.transpose(2, 0, 1)
    return torch.from_numpy(images)


def read_val_annotations(path: Path, label_of: dict[str, int]) -> dict[str, int]:
    """{file name: label} of ``val_annotations.txt`` (tab-separated: file, wnid, four box numbers)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise UserError(f"Tiny-ImageNet file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"Tiny-ImageNet file {path} is unreadable ({type(e).__name__}: {e})") from None
    labels: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0]:
            raise UserError(f"Tiny-ImageNet file {path} is corrupted (line {number} has no file name and wnid)")
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in label_of:
            raise UserError(f"Tiny-ImageNet file {path} is corrupted (line {number}: wnid {wnid!r} "
                            "is not in wnids.txt)")
        if name in labels:
            raise UserError(f"Tiny-ImageNet file {path} is corrupted (line {number}: {name!r} listed twice)")
        labels[name] = label_of[wnid]
    if not labels:
        raise UserError(f"Tiny-ImageNet file {path} is corrupted (no annotations)")
    return labels


def read_tiny_imagenet(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels) of the official ``tiny-imagenet-200``
    layout; labels are indices into ``wnids.txt``, files in sorted order (class by class for train)."""
    wnids = read_wnids(folder / "wnids.txt")
    train_paths, train_labels = [], []
    for label, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        names = jpeg_names(images)
        if not names:
            raise UserError(f"Tiny-ImageNet folder {images} holds no .JPEG images")
        train_paths += [images / name for name in names]
        train_labels += [label] * len(names)
    annotations = read_val_annotations(folder / "val" / "val_annotations.txt",
                                       {wnid: i for i, wnid in enumerate(wnids)})
    test_names = sorted(annotations)
    test_paths = [folder / "val" / "images" / name for name in test_names]
    return (read_images(train_paths), torch.tensor(train_labels, dtype=torch.int64),
            read_images(test_paths), torch.tensor([annotations[n] for n in test_names], dtype=torch.int64))


class SequentialTinyImagenet(CropFlipImages):
    MEAN, STD, SIZE = MEAN, STD, SIZE
    NAME = "seq-tinyimg"
    N_TASKS = 10
    N_CLASSES_PER_TASK = 20
    NUM_FILTERS = 64

    def load(self) -> tuple[torch.Tensor, ...]:
        root = Path(self.args.data_path) / "TINYIMG"
        folder = root / FOLDER
        if not folder.is_dir():  # with or without --offline: there is no automatic download
            raise UserError(f"Tiny-ImageNet not found: put the official {FOLDER} folder at {folder}/ "
                            f"(unzip {URL} in {root}/; it is not downloaded automatically)")
        return read_tiny_imagenet(folder)

    def get_backbone(self) -> nn.Module:
        return ResNet18(num_classes=N_CLASSES, num_filters=self.num_filters(), classifier=self.classifier())
