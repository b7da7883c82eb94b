"""Fine-tuning with plain SGD: the lower bound, which forgets catastrophically."""
import torch

from models.continual_model import ContinualModel


class Sgd(ContinualModel):
    NAME = "sgd"

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        loss = self.total_loss(ce=self.loss(self.net(inputs), labels))
        self.sgd_step(loss)
        return loss.detach()
