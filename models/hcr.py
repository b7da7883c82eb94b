"""Hierarchical Correlations Replay (docs/method.md, "The training step").

The stream's cross-entropy plus, on four independent buffer draws: alpha * (correlation
congruence + consecutive correlation) against the stored logits, beta * replayed cross-entropy,
sigmoid * the triplet softmax loss, and gamma * the instance-level correlation (ICR) term. With
--icr_mode faithful (default) the ICR term is the released code's constant: it enters the
reported loss, not the update.
"""
from collections.abc import Sequence

import torch

from models.continual_model import Batch, ReplayModel
from models.hcr_losses import (
    ICR_MODES,
    consecutive_correlation,
    correlation_congruence,
    triplet_distribution_kl,
    triplet_softmax_loss,
)
from utils.args import CLIParser, flag_value, non_negative_float


class Hcr(ReplayModel):
    NAME = "hcr"
    DRAWS = 4  # forward passes in the released order (stream, then draws 1-4): it fixes BatchNorm's statistics

    @classmethod
    def best_args_name(cls, flags: Sequence[str] = ()) -> str:
        """"hcr-gradient" for --icr_mode gradient: the ICR term then changes the update, so its values
        are searched apart (docs/method.md, "Differences from the released code")."""
        return "hcr-gradient" if flag_value(flags, "--icr_mode") == "gradient" else cls.NAME

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

    def replay_terms(self, stream: Batch, draws: list[Batch]) -> dict[str, torch.Tensor]:
        args = self.args
        logits, labels, triplets, instances = draws
        return {
            "alpha": args.alpha * (correlation_congruence(logits.outputs, logits.logits)
                                   + consecutive_correlation(logits.outputs, logits.logits)),
            "beta": args.beta * self.loss(labels.outputs, labels.labels),
            "sigmoid": args.sigmoid * triplet_softmax_loss(triplets.outputs, triplets.labels),
            "gamma": args.gamma * triplet_distribution_kl(instances.outputs, instances.logits, instances.labels,
                                                          mode=args.icr_mode),
        }
