"""Joint training, the upper bound: ignores the stream, then after the last task
re-initialises the network and trains it on the union of all tasks for n_epochs."""
import torch

from models.continual_model import ContinualModel
from utils.status import ProgressBar


class Joint(ContinualModel):
    NAME = "joint"
    BEST_ARGS_MODEL = "sgd"
    TRAINS_ON_STREAM = False

    def observe(self, inputs: torch.Tensor, labels: torch.Tensor, not_aug_inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("joint does not train on the stream")

    def end_task(self, task: int) -> None:
        if task < self.dataset.N_TASKS - 1:
            return
        self.net = self.dataset.get_backbone().to(self.device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.args.lr)
        loader = self.dataset.train_loader(range(self.dataset.N_TASKS))
        progress = ProgressBar("joint", self.args.n_epochs, len(loader))
        self.net.train()
        for epoch in range(self.args.n_epochs):
            for inputs, labels, _ in loader:
                loss = self.loss(self.net(inputs), labels)
                self.sgd_step(loss)
                progress.step(epoch, loss.detach())
            progress.end_epoch()
