"""DER++: DER plus beta times the cross-entropy on a second, independent buffer draw."""
import torch
import torch.nn.functional as F

from models.continual_model import ReplayModel
from utils.args import CLIParser, non_negative_float


class Derpp(ReplayModel):
    NAME = "derpp"

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        ReplayModel.add_arguments(parser)
        parser.add_hyperparameter("alpha", non_negative_float, "Weight of the logit-matching (MSE) term.")
        parser.add_hyperparameter("beta", non_negative_float, "Weight of the replayed cross-entropy term.")

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        if self.buffer.is_empty():
            outputs = self.net(inputs)
            loss = self.total_loss(ce=self.loss(outputs, labels))
        else:
            (x1, _, z1), (x2, y2, _) = self.draw(2)
            outputs, o1, o2 = self.forward_batches([inputs, x1, x2])
            loss = self.total_loss(ce=self.loss(outputs, labels), alpha=self.args.alpha * F.mse_loss(o1, z1),
                                   beta=self.args.beta * self.loss(o2, y2))
        self.sgd_step(loss)
        self.buffer.add_data(not_aug_inputs, labels=labels, logits=outputs.detach())
        return loss.detach()
