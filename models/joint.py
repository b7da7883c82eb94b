"""Joint training, the upper bound: ignores the stream; after the last task the training
loop re-initialises the network (``end_task``) and trains it with plain SGD steps
(``observe``) on the union of all tasks for n_epochs."""
import torch

from models.continual_model import ContinualModel, build_network


class Joint(ContinualModel):
    NAME = "joint"
    BEST_ARGS_MODEL = "sgd"
    TRAINS_ON_STREAM = False

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        loss = self.total_loss(ce=self.loss(self.net(inputs), labels))
        self.sgd_step(loss)
        return loss.detach()

    def end_task(self, task: int) -> None:
        if task == self.dataset.N_TASKS - 1:
            self.net = build_network(self.dataset.get_backbone(), self.args, self.device)
            self.opt = torch.optim.SGD(self.net.parameters(), lr=self.args.lr)
