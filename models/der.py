"""Dark Experience Replay: cross-entropy plus alpha times the MSE between the current and
the stored logits of a buffer draw."""
import torch
import torch.nn.functional as F

from models.continual_model import ReplayModel
from utils.args import CLIParser, non_negative_float


class Der(ReplayModel):
    NAME = "der"

    @staticmethod
    def add_arguments(parser: CLIParser) -> None:
        ReplayModel.add_arguments(parser)
        parser.add_hyperparameter("alpha", non_negative_float, "Weight of the logit-matching (MSE) term.")

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        if self.buffer.is_empty():
            outputs = self.net(inputs)
            loss = self.total_loss(ce=self.loss(outputs, labels))
        else:
            [(buf_inputs, buf_logits)] = self.draw()
            outputs, buf_outputs = self.forward_batches([inputs, buf_inputs])
            loss = self.total_loss(ce=self.loss(outputs, labels),
                                   alpha=self.args.alpha * F.mse_loss(buf_outputs, buf_logits))
        self.sgd_step(loss)
        self.buffer.add_data(not_aug_inputs, logits=outputs.detach())
        return loss.detach()
