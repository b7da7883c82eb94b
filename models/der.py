"""Dark Experience Replay: cross-entropy plus alpha times the MSE between the current and
the stored logits of a buffer draw."""
import torch
import torch.nn.functional as F

from models.continual_model import Batch, ReplayModel
from utils.args import CLIParser, non_negative_float


class Der(ReplayModel):
    NAME = "der"
    STORES = ("logits",)

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        ReplayModel.add_arguments(parser)
        parser.add_hyperparameter("alpha", non_negative_float, "Weight of the logit-matching (MSE) term.")

    def replay_terms(self, stream: Batch, draws: list[Batch]) -> dict[str, torch.Tensor]:
        [draw] = draws
        return {"alpha": self.args.alpha * F.mse_loss(draw.outputs, draw.logits)}
