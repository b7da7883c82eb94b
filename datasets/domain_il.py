"""Domain-incremental streams (the DER paper's P-MNIST and R-MNIST, and their Fashion-MNIST twins):
20 tasks, each on the whole training set, every task with all 10 classes and its own fixed input
transform, the same for its training and test images. The first task is transformed too (as in
mammoth: no task sees the original images). The transforms are drawn from a generator seeded by
the run's seed, so a seed fixes them, and each task gets its own."""
import secrets
from argparse import Namespace

import torch
from torch import nn

from backbone.mlp import MLP
from datasets.continual_dataset import ContinualDataset
from datasets.mnist_files import load_idx_dataset


class DomainIncremental(ContinualDataset):
    """The common part: 20 tasks x 10 classes of 28x28 grey images from ``SOURCE``, the MLP."""

    SETTING = "domain-il"
    N_TASKS = 20
    N_CLASSES_PER_TASK = 10
    SOURCE = ""  # "MNIST" or "FashionMNIST"

    def __init__(self, args: Namespace, device: torch.device) -> None:
        super().__init__(args, device)
        seed = args.seed if args.seed is not None else secrets.randbits(32)  # never the global generators
        self.generator = torch.Generator().manual_seed(seed)

    def load(self) -> tuple[torch.Tensor, ...]:
        return load_idx_dataset(self.args, self.SOURCE)

    def get_backbone(self) -> nn.Module:
        return MLP(28 * 28, 10)


class Permuted(DomainIncremental):
    """Task t: one fixed random permutation of the 784 pixels."""

    def __init__(self, args: Namespace, device: torch.device) -> None:
        super().__init__(args, device)
        self.permutations = [torch.randperm(28 * 28, generator=self.generator) for _ in range(self.N_TASKS)]

    def task_inputs(self, task: int, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, self.permutations[task]].view_as(images)


class Rotated(DomainIncremental):
    """Task t: a rotation by one fixed angle drawn uniformly from [0, 180) degrees (nearest
    neighbour, corners filled with 0, as torchvision rotates PIL images by default)."""

    def __init__(self, args: Namespace, device: torch.device) -> None:
        super().__init__(args, device)
        self.angles = (torch.rand(self.N_TASKS, generator=self.generator, dtype=torch.float64) * 180).tolist()

    def task_inputs(self, task: int, images: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.functional import InterpolationMode, rotate  # imported on use: seconds

        return rotate(images, self.angles[task], InterpolationMode.NEAREST)


class PermutedMNIST(Permuted):
    NAME, SOURCE = "perm-mnist", "MNIST"


class RotatedMNIST(Rotated):
    NAME, SOURCE = "rot-mnist", "MNIST"


class PermutedFMNIST(Permuted):
    NAME, SOURCE = "perm-fmnist", "FashionMNIST"


class RotatedFMNIST(Rotated):
    NAME, SOURCE = "rot-fmnist", "FashionMNIST"
