"""Base classes of the continual learners. A model states its loss terms; the base class owns
the training step (``observe``): the forward passes, the empty-buffer case, the sum of the terms,
the finite-loss guard, backward, the plain SGD update and the buffer insertion."""
import argparse
from argparse import Namespace
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from datasets.continual_dataset import ContinualDataset
from utils.args import CLIParser, positive_int
from utils.buffer import Buffer
from utils.guard import FiniteGuard


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


class Batch(NamedTuple):
    """A batch with the network's outputs on it: the stream batch, or one buffer draw (``inputs``
    augmented with the train transform; ``labels`` and ``logits`` as stored, None when the model
    stores none)."""

    inputs: torch.Tensor
    outputs: torch.Tensor
    labels: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class StepLoss(NamedTuple):
    """A step's loss, detached: ``trained``, the sum of the terms the update follows (those with a
    gradient), and ``released``, the value the released code reports, which also counts the terms
    without one (hcr's faithful ICR constant); the two differ only there."""

    trained: torch.Tensor
    released: torch.Tensor


def sum_terms(terms: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss: the (already weighted) terms added left to right in their order."""
    values = iter(terms.values())
    total = next(values)
    for value in values:
        total = total + value
    return total


class ContinualModel(nn.Module):
    """A learner trained on the stream's cross-entropy alone (the ``sgd`` baseline's objective).

    Subclasses set NAME and may add command-line arguments; replay methods derive from
    ``ReplayModel`` and state their terms there."""

    NAME: str = ""
    COMPATIBILITY: tuple[str, ...] = ("class-il", "domain-il")  # the settings a model can learn
    TRAINS_ON_STREAM = True  # False: the training loop trains on all tasks after the last one
    FUSE_FORWARD: bool | None = None  # None: --fuse_forward decides (default: fuse without BatchNorm)
    BEST_ARGS_MODEL: str | None = None  # the model whose utils/best_args.py entries it uses (None: its own)
    CLASSIFIER = "linear"  # the head of a ResNet-18 unless --classifier says otherwise

    @classmethod
    def best_args_name(cls, flags: Sequence[str] = ()) -> str:
        """The name under which utils/best_args.py holds the entries of a run of this model given the
        command-line tokens ``flags`` (a model whose flags change what it trains may name other entries)."""
        return cls.BEST_ARGS_MODEL or cls.NAME

    def __init__(self, backbone: nn.Module, args: Namespace, dataset: ContinualDataset,
                 device: torch.device) -> None:
        super().__init__()
        self.args, self.dataset, self.device = args, dataset, device
        self.loss = nn.CrossEntropyLoss()
        self.guard = FiniteGuard(device)
        self.set_network(backbone)

    def set_network(self, backbone: nn.Module) -> None:
        """Train ``backbone`` from now on, with a plain SGD optimiser (kept across tasks)."""
        self.net = build_network(backbone, self.args, self.device)
        fuse = getattr(self.args, "fuse_forward", None) if self.FUSE_FORWARD is None else self.FUSE_FORWARD
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

    def stream_loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The stream batch's term ``"ce"``: its cross-entropy."""
        return self.loss(outputs, labels)

    def loss_terms(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The stream batch's outputs and the step's named, weighted loss terms."""
        outputs = self.net(inputs)
        return outputs, {"ce": self.stream_loss(outputs, labels)}

    def remember(self, not_aug_inputs: torch.Tensor, labels: torch.Tensor, outputs: torch.Tensor) -> None:
        """Called after the update with the stream batch: what a model with a memory stores."""

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> StepLoss:
        """One training step on a stream batch; returns its loss values."""
        outputs, terms = self.loss_terms(inputs, labels)
        loss = sum_terms(terms)
        self.guard.step(loss, terms)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.remember(not_aug_inputs, labels, outputs.detach())
        trained = sum_terms({name: term for name, term in terms.items() if term.requires_grad})
        return StepLoss(trained.detach(), loss.detach())

    def begin_task(self, task: int) -> None:
        """Called before the first batch of ``task``."""
        self.guard.begin_task(task)

    def end_task(self, task: int) -> None:
        """Called after the last epoch of ``task``, before its evaluation."""


class ReplayModel(ContinualModel):
    """A learner with a reservoir buffer of non-augmented inputs and the ``STORES`` fields.

    A replay method sets ``DRAWS`` (independent buffer draws per step) and ``STORES`` and states
    ``replay_terms``. The base class does the rest: while the buffer is empty, the step is the
    stream's cross-entropy alone; otherwise it draws, runs the forward passes (the stream batch,
    then the draws in order), and adds the replay terms to the stream's cross-entropy."""

    BEST_ARGS_BY_BUFFER = True
    DRAWS = 1
    STORES: tuple[str, ...] = ("labels", "logits")  # besides the input: a subset, in this order

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

    def replay_terms(self, stream: Batch, draws: list[Batch]) -> dict[str, torch.Tensor]:
        """The weighted terms added to the stream's cross-entropy ``"ce"`` (a term named ``"ce"``
        takes its place) when the buffer is not empty; ``draws`` holds ``DRAWS`` batches."""
        raise NotImplementedError

    def draw(self, count: int = 1) -> list[tuple[torch.Tensor, ...]]:
        """``count`` independent buffer draws of ``minibatch_size``, augmented with the dataset's
        train transform."""
        return self.buffer.get_draws(count, self.args.minibatch_size, transform=self.dataset.train_transform)

    def loss_terms(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.buffer.is_empty():
            return super().loss_terms(inputs, labels)
        drawn = self.draw(self.DRAWS)  # each (inputs, *the STORES fields)
        outputs, *replayed = self.forward_batches([inputs, *(d[0] for d in drawn)])
        draws = [Batch(d[0], o, **dict(zip(self.STORES, d[1:], strict=True)))
                 for d, o in zip(drawn, replayed, strict=True)]
        return outputs, {"ce": self.stream_loss(outputs, labels),
                         **self.replay_terms(Batch(inputs, outputs, labels), draws)}

    def remember(self, not_aug_inputs: torch.Tensor, labels: torch.Tensor, outputs: torch.Tensor) -> None:
        stored = {"labels": labels, "logits": outputs}
        self.buffer.add_data(not_aug_inputs, **{name: stored[name] for name in self.STORES})
