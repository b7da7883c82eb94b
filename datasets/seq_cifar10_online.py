"""Online Split CIFAR-10: the class-incremental stream of seq-cifar10 seen once, in batches of 10, without
augmentation, by GEM's reduced ResNet-18 (docs/method.md, "Online Split CIFAR-10")."""
from collections.abc import Callable

import torch

from datasets.seq_cifar10 import SequentialCIFAR10


class OnlineSequentialCIFAR10(SequentialCIFAR10):
    NAME = "seq-cifar10-online"
    NUM_FILTERS = 20  # GEM's reduced ResNet-18

    # No augmentation: training images and buffer draws are normalised only, as test images are.
    def train_transform(self, images: torch.Tensor) -> torch.Tensor:
        return self.test_transform(images)

    def pil_train_transform(self) -> Callable:
        return self.pil_test_transform()
