"""DER++: DER plus beta times the cross-entropy on a second, independent buffer draw."""
import torch
import torch.nn.functional as F

from models.continual_model import Batch, ReplayModel
from utils.args import CLIParser, non_negative_float


class Derpp(ReplayModel):
    NAME = "derpp"
    DRAWS = 2

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        ReplayModel.add_arguments(parser)
        parser.add_hyperparameter("alpha", non_negative_float, "Weight of the logit-matching (MSE) term.")
        parser.add_hyperparameter("beta", non_negative_float, "Weight of the replayed cross-entropy term.")

    def replay_terms(self, stream: Batch, draws: list[Batch]) -> dict[str, torch.Tensor]:
        logit_draw, label_draw = draws
        return {"alpha": self.args.alpha * F.mse_loss(logit_draw.outputs, logit_draw.logits),
                "beta": self.args.beta * self.loss(label_draw.outputs, label_draw.labels)}
