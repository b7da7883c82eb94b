"""Base classes of the continual learners: a network, its loss, one plain SGD optimiser
kept across tasks, and ``observe`` for one training batch."""
import argparse
from argparse import Namespace
from collections.abc import Iterable

import torch
from torch import nn

from datasets.continual_dataset import ContinualDataset
from utils.args import CLIParser, positive_int
from utils.buffer import Buffer


class FastForward(nn.Module):
    """The backbone with the opt-in speed flags: channels-last memory format (same values,
    another layout for convolutions) and bf16 autocast of the forward pass (lower precision;
    outputs are returned in float32, so losses and the optimiser stay in float32)."""

    def __init__(self, backbone: nn.Module, channels_last: bool, amp: bool, device: torch.device) -> None:
        super().__init__()
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.backbone = backbone.to(device, memory_format=self.memory_format)
        self.amp, self.device_type = amp, device.type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.memory_format)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.amp):
            return self.backbone(x).float()


def build_network(backbone: nn.Module, args: Namespace, device: torch.device) -> nn.Module:
    """The backbone on ``device``, wrapped only when a speed flag asks for it."""
    if getattr(args, "channels_last", False) or getattr(args, "amp", False):
        return FastForward(backbone, args.channels_last, args.amp, device)
    return backbone.to(device)


class PlainSGD:
    """Plain SGD, ``p -= lr * p.grad``: the update of ``torch.optim.SGD`` with its defaults
    (no momentum, no weight decay), op for op, and so without state to checkpoint.

    Not ``torch.optim.SGD`` itself: building one imports ``torch._dynamo`` (3 s of a one-minute
    run here), and its step and zero_grad wrappers cost about 0.1 ms on steps of a few ms."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr = lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.lr)


def has_batch_statistics(net: nn.Module) -> bool:
    """Whether an output row depends on the other rows of its batch in train mode (BatchNorm)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


class ContinualModel(nn.Module):
    NAME: str = ""
    COMPATIBILITY: tuple[str, ...] = ("class-il", "task-il")
    TRAINS_ON_STREAM = True  # False: the training loop trains on all tasks after the last one

    def __init__(self, backbone: nn.Module, args: Namespace, dataset: ContinualDataset,
                 device: torch.device) -> None:
        super().__init__()
        self.args, self.dataset, self.device = args, dataset, device
        self.loss = nn.CrossEntropyLoss()
        self.last_terms: dict[str, torch.Tensor] = {}
        self.set_network(backbone)

    def set_network(self, backbone: nn.Module) -> None:
        """Train ``backbone`` from now on, with a plain SGD optimiser (kept across tasks)."""
        self.net = build_network(backbone, self.args, self.device)
        fuse = getattr(self.args, "fuse_forward", None)
        self.fuse_forward = not has_batch_statistics(backbone) if fuse is None else fuse
        self.opt = PlainSGD(self.net.parameters(), lr=self.args.lr)

    def forward_batches(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        """The network's outputs for each batch, in order: one pass per batch as the released
        code does, or (``fuse_forward``) one pass over their concatenation: fewer, larger kernels
        and one weight-gradient product instead of one per batch. Without BatchNorm every output
        row is the same function of its input either way; with it, the fused pass normalises
        with the statistics of the whole concatenation."""
        if self.fuse_forward:
            return list(self.net(torch.cat(batches)).split([len(b) for b in batches]))
        return [self.net(b) for b in batches]

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        """Register the model's own command-line arguments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        """One training step on a stream batch; returns the detached loss value."""
        raise NotImplementedError

    def total_loss(self, **terms: torch.Tensor) -> torch.Tensor:
        """The sum of the (weighted) loss terms, added left to right in the given order. Keeps
        them detached in ``last_terms`` so that a non-finite total can be traced to its term."""
        self.last_terms = {name: value.detach() for name, value in terms.items()}
        values = iter(terms.values())
        total = next(values)
        for value in values:
            total = total + value
        return total

    def sgd_step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def begin_task(self, task: int) -> None:
        """Called before the first batch of ``task``."""

    def end_task(self, task: int) -> None:
        """Called after the last epoch of ``task``, before its evaluation."""


class ReplayModel(ContinualModel):
    """A learner with a reservoir buffer of (non-augmented input, label, logits)."""

    BEST_ARGS_BY_BUFFER = True

    def __init__(self, backbone: nn.Module, args: Namespace, dataset: ContinualDataset,
                 device: torch.device) -> None:
        super().__init__(backbone, args, dataset, device)
        self.buffer = Buffer(args.buffer_size, device)

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        parser.add_hyperparameter("buffer_size", positive_int, "Reservoir buffer capacity.")
        parser.add_hyperparameter("minibatch_size", positive_int, "Size of each buffer draw.")
        parser.add_argument("--fuse_forward", action=argparse.BooleanOptionalAction, default=None,
                            help="One forward pass over the stream batch and all buffer draws instead of one "
                                 "per batch. Default: fuse only networks without BatchNorm, where it computes the "
                                 "same function (up to float rounding); forcing it with BatchNorm changes the "
                                 "batch statistics (not the reference's).")

    def draw(self, count: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """``count`` independent buffer draws of ``minibatch_size``, augmented with the dataset's
        train transform."""
        return self.buffer.get_draws(count, self.args.minibatch_size, transform=self.dataset.train_transform)

