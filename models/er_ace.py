"""ER-ACE (Caccia et al., ICLR 2022): experience replay with an asymmetric cross-entropy on the stream
batch (docs/method.md, "Baselines" and "ER-ACE: which variant"). The stream batch's cross-entropy sees
only the logits of the classes present in the batch and of the classes not seen yet, so incoming
classes do not push down the logits of the old ones; the replayed batch's cross-entropy is the
ordinary one, over every class."""
import torch
import torch.nn.functional as F

from models.continual_model import Batch, ReplayModel

MASKED_LOGIT = -1e9  # the official code's fill: exp(-1e9 - max) is 0 in float32


def asymmetric_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, unmasked: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``labels`` over the logits of the classes where ``unmasked`` (a boolean
    vector over the classes) is True; the other logits are set to MASKED_LOGIT, so they take no
    probability and get no gradient."""
    return F.cross_entropy(logits.masked_fill(~unmasked, MASKED_LOGIT), labels)


def stream_classes(labels: torch.Tensor, highest_seen: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The classes the stream's cross-entropy keeps: those present in ``labels`` and every class from
    the highest one seen so far on (``highest_seen``, this batch included), i.e. the ones not seen yet."""
    classes = torch.arange(n_classes, device=labels.device)
    return torch.isin(classes, labels) | (classes >= highest_seen)


class ErAce(ReplayModel):
    NAME = "er_ace"
    COMPATIBILITY = ("class-il",)
    CLASSIFIER = "cosine"  # the official code's head; it accounts for most of the published gap (docs/method.md)
    STORES = ("labels",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.highest_seen = torch.tensor(-1, device=self.device)

    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        # Every class of the earlier tasks has been seen (the official code's seen_so_far): the highest
        # is the one before this task's first. Set here, not carried, so that a resumed run agrees.
        self.highest_seen = torch.tensor(self.dataset.task_classes(task).start - 1, device=self.device)

    def stream_loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.highest_seen = torch.maximum(self.highest_seen, labels.max())
        return asymmetric_cross_entropy(outputs, labels, stream_classes(labels, self.highest_seen, outputs.shape[1]))

    def replay_terms(self, stream: Batch, draws: list[Batch]) -> dict[str, torch.Tensor]:
        [draw] = draws
        return {"replay": self.loss(draw.outputs, draw.labels)}
