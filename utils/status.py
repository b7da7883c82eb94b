"""A progress display on stderr: task, epoch, running loss, time left."""
import sys
import time

import torch

REFRESH_SECONDS = 0.5


class ProgressBar:
    """On a terminal the line is redrawn at most every REFRESH_SECONDS; elsewhere (logs)
    one line is printed per epoch. The loss is read back from the device (a sync) only
    when it is shown, so training steps never wait for it."""

    def __init__(self, label: str, n_epochs: int, steps_per_epoch: int) -> None:
        self.label, self.n_epochs = label, n_epochs
        self.total_steps = max(1, n_epochs * steps_per_epoch)
        self.done, self.epoch = 0, 0
        self.start = self.last_draw = time.monotonic()
        self.loss_sum: torch.Tensor | float = 0.0
        self.loss_count = 0
        self.interactive = sys.stderr.isatty()

    def step(self, epoch: int, loss: torch.Tensor) -> None:
        self.epoch = epoch
        self.done += 1
        self.loss_sum = self.loss_sum + loss
        self.loss_count += 1
        now = time.monotonic()
        if self.interactive and now - self.last_draw >= REFRESH_SECONDS:
            self.last_draw = now
            print("\r" + self._line(), end="", file=sys.stderr, flush=True)

    def end_epoch(self) -> float:
        """Print the epoch's line and return its mean loss (NaN for an epoch without steps)."""
        line = self._line()
        print(("\r" if self.interactive else "") + line, file=sys.stderr, flush=True)
        mean_loss = float(self.loss_sum) / self.loss_count if self.loss_count else float("nan")
        self.loss_sum, self.loss_count = 0.0, 0
        return mean_loss

    def _line(self) -> str:
        mean_loss = float(self.loss_sum) / max(1, self.loss_count)
        elapsed = time.monotonic() - self.start
        left = elapsed / max(1, self.done) * (self.total_steps - self.done)
        return (f"[{self.label}] epoch {self.epoch + 1}/{self.n_epochs} | loss {mean_loss:.5f} | "
                f"step {self.done}/{self.total_steps} | {time.strftime('%H:%M:%S', time.gmtime(left))} left")
