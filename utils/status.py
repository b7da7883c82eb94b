"""A progress display on stderr: task, epoch, running loss, time left in the task and in the run."""
import sys
import time

import torch

REFRESH_SECONDS = 0.5


def plural(count: int, noun: str) -> str:
    """"1 run", "2 runs": the count and the noun, which agree."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def clock_text(seconds: float) -> str:
    """H:MM:SS."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunClock:
    """Steps done out of the run's (or the resumed part's) total, for the time left in the whole run."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps, self.done = total_steps, 0
        self.start = time.monotonic()

    def left(self) -> float:
        return (time.monotonic() - self.start) / max(1, self.done) * max(0, self.total_steps - self.done)


class ProgressBar:
    """On a terminal the line is redrawn at most every REFRESH_SECONDS; elsewhere (logs)
    one line is printed per epoch. The loss is read back from the device (a sync) only
    when it is shown, so training steps never wait for it."""

    def __init__(self, label: str, n_epochs: int, steps_per_epoch: int, run: RunClock | None = None) -> None:
        self.label, self.n_epochs = label, n_epochs
        self.total_steps = max(1, n_epochs * steps_per_epoch)
        self.run = run or RunClock(self.total_steps)
        self.done, self.epoch = 0, 0
        self.start = self.last_draw = time.monotonic()
        self.loss_sum: torch.Tensor | float = 0.0  # of the trained loss
        self.released_sum: torch.Tensor | float = 0.0  # of the released code's reported value
        self.loss_count = 0
        self.interactive = sys.stderr.isatty()

    def step(self, epoch: int, loss: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Count a step and its (trained, released) loss (a ``StepLoss``)."""
        self.epoch = epoch
        self.done += 1
        self.run.done += 1
        self.loss_sum = self.loss_sum + loss[0]
        self.released_sum = self.released_sum + loss[1]
        self.loss_count += 1
        now = time.monotonic()
        if self.interactive and now - self.last_draw >= REFRESH_SECONDS:
            self.last_draw = now
            print("\r" + self._line(), end="", file=sys.stderr, flush=True)

    def end_epoch(self) -> tuple[float, float]:
        """Print the epoch's line and return its mean trained and released losses (NaN for an epoch
        without steps)."""
        line = self._line()
        print(("\r" if self.interactive else "") + line, file=sys.stderr, flush=True)
        means = tuple(float(total) / self.loss_count if self.loss_count else float("nan")
                      for total in (self.loss_sum, self.released_sum))
        self.loss_sum, self.released_sum, self.loss_count = 0.0, 0.0, 0
        return means

    def _line(self) -> str:
        mean_loss = float(self.loss_sum) / max(1, self.loss_count)
        task_left = (time.monotonic() - self.start) / max(1, self.done) * (self.total_steps - self.done)
        return (f"[{self.label}] epoch {self.epoch + 1}/{self.n_epochs} | loss {mean_loss:.5f} | "
                f"step {self.done}/{self.total_steps} | {clock_text(task_left)} left in the task, "
                f"{clock_text(self.run.left())} left in the run")
