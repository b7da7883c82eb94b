"""Sequential MNIST (mammoth's seq-mnist): 5 tasks of 2 classes in label order, class-IL, no
augmentation, the 784-100-100-10 MLP."""
import torch
from torch import nn

from backbone.mlp import MLP
from datasets.continual_dataset import ContinualDataset
from datasets.mnist_files import load_idx_dataset


class SequentialMNIST(ContinualDataset):
    NAME = "seq-mnist"
    N_TASKS = 5
    N_CLASSES_PER_TASK = 2

    def load(self) -> tuple[torch.Tensor, ...]:
        return load_idx_dataset(self.args, "MNIST")

    def get_backbone(self) -> nn.Module:
        return MLP(28 * 28, 10)
