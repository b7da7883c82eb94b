"""ResNet-18 as in the DER/HCR code bases (docs/method.md, "Setting and protocol"), for 32x32
inputs; 64x64 inputs work too, since the final pooling is adaptive."""
import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CosineClassifier(nn.Module):
    """Bias-free classifier on cosine similarities: ``scale`` times the cosine between the feature and
    each class's weight vector (the ER-ACE paper's official head; docs/method.md, "ER-ACE: which
    variant"). The 1e-5 added to each norm keeps an all-zero feature finite."""

    def __init__(self, in_features: int, num_classes: int, scale: float = 10.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.Linear(in_features, num_classes, bias=False).weight.detach().clone())
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x / (x.norm(dim=1, keepdim=True) + 1e-5)
        weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + 1e-5)
        return self.scale * features @ weight.t()


CLASSIFIERS = ("linear", "cosine")


class ResNet18(nn.Module):
    """3x3 stem (no max-pool), [2, 2, 2, 2] BasicBlocks of widths nf, 2nf, 4nf and 8nf (nf =
    ``num_filters``: 64 in the DER/HCR code, 20 in GEM's reduced ResNet-18), global average pool,
    bias-free linear classifier (or, with ``classifier="cosine"``, a CosineClassifier)."""

    def __init__(self, num_classes: int, in_channels: int = 3, num_filters: int = 64,
                 classifier: str = "linear") -> None:
        super().__init__()
        nf = num_filters
        self.conv1 = nn.Conv2d(in_channels, nf, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        layers, in_planes = [], nf
        for planes, stride in ((nf, 1), (2 * nf, 2), (4 * nf, 2), (8 * nf, 2)):
            layers.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        if classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {classifier!r}: one of {', '.join(CLASSIFIERS)}")
        self.classifier = (nn.Linear(8 * nf, num_classes, bias=False) if classifier == "linear"
                           else CosineClassifier(8 * nf, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.classifier(out)
