"""Hierarchical Correlations Replay (HCR_REFERENCE.md section 3).

Stream cross-entropy plus, on four independent buffer draws (each with its own forward
pass, in this order; fused into one pass for networks without BatchNorm): alpha *
(correlation congruence + consecutive correlation) against the stored logits, beta * replayed
cross-entropy, sigmoid * triplet softmax loss, and gamma * the instance-level correlation (ICR)
term. With --icr_mode faithful (default) the
ICR term is the released code's constant: it enters the reported loss, not the update.
"""
import torch

from models.continual_model import ReplayModel
from utils.args import CLIParser, non_negative_float
from utils.hcr_losses import (
    ICR_MODES,
    consecutive_correlation,
    correlation_congruence,
    triplet_distribution_kl,
    triplet_softmax_loss,
)


class Hcr(ReplayModel):
    NAME = "hcr"

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        ReplayModel.add_arguments(parser)
        parser.add_hyperparameter("alpha", non_negative_float, "Weight of the logit-correlation terms (draw 1).")
        parser.add_hyperparameter("beta", non_negative_float, "Weight of the replayed cross-entropy (draw 2).")
        parser.add_hyperparameter("sigmoid", non_negative_float, "Weight of the triplet softmax loss (draw 3).")
        parser.add_hyperparameter("gamma", non_negative_float, "Weight of the ICR term (draw 4).")
        parser.add_argument("--icr_mode", choices=ICR_MODES, default="faithful",
                            help="faithful: the released constant ICR value (no gradient); "
                                 "gradient: mean Bernoulli KL over triplets, with gradient.")

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        args = self.args
        if self.buffer.is_empty():
            outputs = self.net(inputs)
            loss = self.total_loss(ce=self.loss(outputs, labels))
        else:
            # Four independent draws; the forward passes run in the released order
            # (stream, then draws 1-4), which fixes how BatchNorm statistics evolve.
            (x1, _, z1), (x2, y2, _), (x3, y3, _), (x4, y4, z4) = self.draw(4)
            outputs, o1, o2, o3, o4 = self.forward_batches([inputs, x1, x2, x3, x4])
            loss = self.total_loss(
                ce=self.loss(outputs, labels),
                alpha=args.alpha * (correlation_congruence(o1, z1) + consecutive_correlation(o1, z1)),
                beta=args.beta * self.loss(o2, y2),
                sigmoid=args.sigmoid * triplet_softmax_loss(o3, y3),
                gamma=args.gamma * triplet_distribution_kl(o4, z4, y4, mode=args.icr_mode))
        self.sgd_step(loss)
        self.buffer.add_data(not_aug_inputs, labels=labels, logits=outputs.detach())
        return loss.detach()
