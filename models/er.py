"""Experience Replay: the stream batch and a buffer draw in one forward pass, cross-entropy."""
import torch

from models.continual_model import ReplayModel


class Er(ReplayModel):
    NAME = "er"

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        stream_labels = labels
        if not self.buffer.is_empty():
            [(buf_inputs, buf_labels)] = self.draw()
            inputs, labels = torch.cat((inputs, buf_inputs)), torch.cat((labels, buf_labels))
        loss = self.total_loss(ce=self.loss(self.net(inputs), labels))
        self.sgd_step(loss)
        self.buffer.add_data(not_aug_inputs, labels=stream_labels)
        return loss.detach()
