"""Joint training, the upper bound: ignores the stream; after the last task the training
loop re-initialises the network (``end_task``) and trains it with sgd's plain steps
(``observe``) on the union of all tasks for n_epochs."""
from models.sgd import Sgd


class Joint(Sgd):
    NAME = "joint"
    BEST_ARGS_MODEL = "sgd"
    TRAINS_ON_STREAM = False

    def end_task(self, task: int) -> None:
        if task == self.dataset.N_TASKS - 1:
            self.set_network(self.dataset.get_backbone())
