"""The finite-loss guard: a run stops at the first training step whose loss is not finite."""
import torch

from utils.errors import RunFailure


class FiniteGuard:
    """Stops the run at the first step whose loss (or one of its terms) is not finite.

    On a GPU the first bad step and term are recorded on the device, so steps do not wait for a
    host read: the record is read by ``check`` (the training loop calls it at each epoch end). On
    CPU, where reading is free, the total is checked at once and the terms are looked at only when
    it is not finite."""

    def __init__(self, device: torch.device) -> None:
        self.every_step = device.type == "cpu"
        self.bad_step = torch.tensor(-1, device=device)
        self.bad_term = torch.tensor(0, device=device)
        self.names: tuple[str, ...] = ()
        self.task = 0
        self.steps = 0

    def begin_task(self, task: int) -> None:
        """Steps are counted from 1 within each task, for the message."""
        self.check()
        self.task, self.steps = task, 0

    def step(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Look at one step's total ``loss`` and its named ``terms``."""
        self.steps += 1
        names = (*terms, "total")
        if names != self.names:  # term indices are only comparable between steps with the same terms
            self.check()
            self.names = names
        if not self.every_step:
            self._record(loss, terms)
        elif not bool(torch.isfinite(loss)):  # a non-finite term makes the total non-finite
            self._record(loss, terms)
            self.check()

    def _record(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Keep this step and its first non-finite term if no earlier step was bad (no host read)."""
        values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]
                             + [loss.detach().float().reshape(())])
        bad = ~torch.isfinite(values)
        first = (self.bad_step < 0) & bad.any()
        self.bad_step = torch.where(first, self.steps, self.bad_step)
        self.bad_term = torch.where(first, bad.int().argmax(), self.bad_term)

    def check(self) -> None:
        """Raise ``RunFailure`` naming the first bad step and term, if any was recorded."""
        step = int(self.bad_step)
        if step >= 0:
            raise RunFailure(f"non-finite loss at step {step} of task {self.task + 1}: "
                             f"the {self.names[int(self.bad_term)]!r} term is not finite")
