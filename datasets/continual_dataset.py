"""Class-incremental datasets: the full splits live in memory as uint8 tensors and each
task is a view of the classes it owns."""
import shutil
from argparse import Namespace
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from utils.augment import normalize, random_crop_flip
from utils.errors import UserError

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0  # fixed, so that every run seed validates on the same held-out examples
DEBUG_BATCHES = 4
EVAL_BATCH_SIZE = 256  # evaluation runs in eval mode, so its batch size does not change a result


class TensorLoader:
    """Batches of (transformed, label, untransformed) from in-memory uint8 images.

    The transform runs on a whole batch on the device; pixel values are scaled to [0, 1]
    first (what ToTensor does), so the untransformed batch is what the buffer stores.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 transform: Callable[[torch.Tensor], torch.Tensor], train: bool,
                 device: torch.device, max_batches: int | None = None) -> None:
        self.images, self.labels = images.to(device), labels.to(device)
        self.batch_size, self.transform, self.train = batch_size, transform, train
        n_batches = len(labels) // batch_size if train else -(-len(labels) // batch_size)
        self.n_batches = n_batches if max_batches is None else min(n_batches, max_batches)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.labels)
        device = self.images.device
        order = torch.randperm(n, device=device) if self.train else torch.arange(n, device=device)
        for b in range(self.n_batches):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            raw = self.images.index_select(0, index).float().div_(255)
            yield self.transform(raw), self.labels.index_select(0, index), raw


def to_tensor(image: Image.Image) -> torch.Tensor:
    """torchvision's ToTensor, imported on use: torchvision takes seconds to import and runs on the
    tensor data path never need it."""
    from torchvision.transforms.functional import to_tensor as torchvision_to_tensor

    return torchvision_to_tensor(image)


class PILDataset(Dataset):
    """Per-image torchvision pipeline of the released code: (transform(img), label, ToTensor(img))."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.images = images.permute(0, 2, 3, 1).squeeze(-1).numpy()  # HWC (or HW for grey)
        self.labels, self.transform = labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Batch:
        image = Image.fromarray(self.images[i])
        return self.transform(image), self.labels[i], to_tensor(image)


class PILLoader:
    """DataLoader over a ``PILDataset`` that moves each batch to the device."""

    def __init__(self, dataset: PILDataset, batch_size: int, train: bool, device: torch.device,
                 num_workers: int, max_batches: int | None = None) -> None:
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=train,
                                 num_workers=num_workers, pin_memory=device.type == "cuda")
        self.device = device
        self.n_batches = len(self.loader) if max_batches is None else min(len(self.loader), max_batches)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[Batch]:
        for b, batch in enumerate(self.loader):
            if b == self.n_batches:
                break
            yield tuple(t.to(self.device, non_blocking=True) for t in batch)


class ContinualDataset:
    """Base class. Subclasses set NAME, N_TASKS, N_CLASSES_PER_TASK (and NUM_FILTERS, when the backbone
    is a ResNet-18) and implement ``load``, ``get_backbone`` and, when they augment, the transforms.

    SETTING "class-il": task t owns classes t * N_CLASSES_PER_TASK onwards, one head, accuracy is
    reported class-IL and task-IL. "domain-il": every task has every class, its inputs changed by
    ``task_inputs``; one head, accuracy reported domain-IL only (there is no task-IL)."""

    NAME: str = ""
    SETTING = "class-il"
    N_TASKS: int
    N_CLASSES_PER_TASK: int
    NUM_FILTERS: int | None = None  # the base width of the ResNet-18 backbone; None: not a ResNet-18

    def __init__(self, args: Namespace, device: torch.device) -> None:
        self.args, self.device = args, device
        self._data: tuple[torch.Tensor, ...] | None = None

    # --- what a subclass provides -------------------------------------------------------
    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train images uint8 N x C x H x W, train labels, test images, test labels)."""
        raise NotImplementedError

    def get_backbone(self) -> nn.Module:
        """A freshly initialised network for the dataset."""
        raise NotImplementedError

    def num_filters(self) -> int:
        """The ResNet-18 width (``NUM_FILTERS``, or ``--num_filters`` where given) of a dataset whose
        backbone is a ResNet-18."""
        return getattr(self.args, "num_filters", None) or self.NUM_FILTERS

    def classifier(self) -> str:
        """The ResNet-18's classifier (``--classifier``): "linear" unless "cosine" was asked for."""
        return getattr(self.args, "classifier", None) or "linear"

    def train_transform(self, images: torch.Tensor) -> torch.Tensor:
        """Batched train augmentation of [0, 1] images (also applied to buffer draws)."""
        return images

    def test_transform(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def pil_train_transform(self) -> Callable:
        return to_tensor

    def pil_test_transform(self) -> Callable:
        return to_tensor

    def task_inputs(self, task: int, images: torch.Tensor) -> torch.Tensor:
        """The inputs of ``task`` made from uint8 images: in domain-IL, the task's own permutation or
        rotation, the same for its training and test examples; the images themselves otherwise."""
        return images

    # --- tasks --------------------------------------------------------------------------
    def task_classes(self, task: int) -> range:
        if self.SETTING == "domain-il":
            return range(self.N_CLASSES_PER_TASK)
        return range(task * self.N_CLASSES_PER_TASK, (task + 1) * self.N_CLASSES_PER_TASK)

    def prepare(self, data: tuple[torch.Tensor, ...] | None = None) -> None:
        """Load the data (once), or take ``data`` (what ``load`` returns) instead; raises UserError
        when the files are missing or damaged."""
        if data is not None:
            self._data = data
        elif self._data is None:
            self._data = self.load()

    def _split_indices(self, tasks: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices of the given tasks' training examples and of their test examples (into the
        test split, or with --validation into the training split: a fixed 10% of each task's
        training examples, removed from training)."""
        self.prepare()
        _, train_y, _, test_y = self._data
        train_index, test_index = [], []
        for task in tasks:
            classes = torch.tensor(list(self.task_classes(task)))
            in_train = torch.isin(train_y, classes).nonzero().flatten()
            if self.args.validation:
                generator = torch.Generator().manual_seed(VALIDATION_SEED + task)
                in_train = in_train[torch.randperm(len(in_train), generator=generator)]
                n_val = int(round(VALIDATION_FRACTION * len(in_train)))
                test_index.append(in_train[:n_val].sort().values)
                train_index.append(in_train[n_val:].sort().values)
            else:
                train_index.append(in_train)
                test_index.append(torch.isin(test_y, classes).nonzero().flatten())
        return torch.cat(train_index), torch.cat(test_index)

    def _loader(self, images: torch.Tensor, labels: torch.Tensor, train: bool, batch_size: int):
        max_batches = DEBUG_BATCHES if self.args.debug_mode else None
        if self.args.loader == "pil":
            transform = self.pil_train_transform() if train else self.pil_test_transform()
            return PILLoader(PILDataset(images, labels, transform), batch_size, train, self.device,
                             self.args.num_workers, max_batches)
        transform = self.train_transform if train else self.test_transform
        return TensorLoader(images, labels, batch_size, transform, train, self.device, max_batches)

    def train_size(self, task: int) -> int:
        """Number of training examples of ``task`` (after the --validation hold-out)."""
        return len(self._split_indices([task])[0])

    def n_train_batches(self, tasks: Sequence[int]) -> int:
        """Batches of one epoch of ``train_loader(tasks)``, without building it."""
        batches = len(self._split_indices(tasks)[0]) // self.args.batch_size
        return min(batches, DEBUG_BATCHES) if self.args.debug_mode else batches

    def _task_data(self, task: int, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs (``task_inputs``) and labels of ``task``'s training or test examples."""
        train_index, test_index = self._split_indices([task])
        images, labels = self._data[:2] if train or self.args.validation else self._data[2:]
        index = train_index if train else test_index
        return self.task_inputs(task, images[index]), labels[index]

    def train_loader(self, tasks: Sequence[int]) -> TensorLoader | PILLoader:
        """Shuffled batches (last incomplete one dropped) of the union of ``tasks``."""
        images, labels = zip(*(self._task_data(t, train=True) for t in tasks), strict=True)
        return self._loader(torch.cat(images), torch.cat(labels), True, self.args.batch_size)

    def test_loader(self, task: int) -> TensorLoader | PILLoader:
        return self._loader(*self._task_data(task, train=False), False, EVAL_BATCH_SIZE)

    def __repr__(self) -> str:
        return f"{self.NAME} ({self.N_TASKS} tasks x {self.N_CLASSES_PER_TASK} classes)"


class CropFlipImages(ContinualDataset):
    """Colour images under the DER protocol's augmentation: random crop of ``SIZE`` after zero
    padding 4 and a horizontal flip, then per-channel normalisation (``MEAN``, ``STD``); the test
    transform normalises only. Batched on the device, or torchvision's per-image PIL pipeline
    (``--loader pil``)."""

    MEAN: tuple[float, ...]
    STD: tuple[float, ...]
    SIZE: int

    def train_transform(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(random_crop_flip(images, padding=4), self.MEAN, self.STD)

    def test_transform(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images, self.MEAN, self.STD)

    def pil_train_transform(self) -> Callable:
        from torchvision import transforms  # imported on use: it takes seconds, and tensor runs never need it

        return transforms.Compose([transforms.RandomCrop(self.SIZE, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(self.MEAN, self.STD)])

    def pil_test_transform(self) -> Callable:
        from torchvision import transforms  # imported on use, as above

        return transforms.Compose([transforms.ToTensor(), transforms.Normalize(self.MEAN, self.STD)])


def reported_settings(setting: str) -> tuple[str, ...]:
    """The accuracies a dataset of ``setting`` reports: class-IL streams also report task-IL."""
    return ("class-il", "task-il") if setting == "class-il" else (setting,)


def download(name: str, root: Path, fetch: Callable[[], object], where: str, offline: bool) -> None:
    """Run ``fetch`` (a torchvision download into ``root``); when it fails, remove the folders it
    created, so that no empty or half-filled data folder is left, and raise one line saying ``where``
    the files go."""
    if offline:
        raise UserError(f"{name} not found and --offline forbids downloading: {where}")
    created = [folder for folder in (root, *root.parents) if not folder.exists()]
    try:
        fetch()
    except Exception as e:  # network errors come in many types; all mean "no data"
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)  # the topmost folder the download made
        raise UserError(f"{name} not found and the download failed ({type(e).__name__}): {where}") from None


def as_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N x H x W or N x C x H x W) and integer labels as torch tensors."""
    images_t = torch.from_numpy(np.array(images, dtype=np.uint8))  # a writable copy
    if images_t.dim() == 3:
        images_t = images_t.unsqueeze(1)
    return images_t, torch.from_numpy(np.asarray(labels, dtype=np.int64))
