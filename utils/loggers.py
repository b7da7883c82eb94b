"""Result loggers: the released code's CSV files and TensorBoard event files."""
import csv
import fcntl
import io
import os
import tempfile
from pathlib import Path

from utils.errors import UserError
from utils.metrics import backward_transfer, forgetting, forward_transfer

# Run-time plumbing that does not change a result; left out of the CSV rows.
NOT_LOGGED = ("csv_log", "tensorboard", "load_best_args", "data_path", "results_path", "num_workers", "offline",
              "resume", "keep_checkpoints")
SETTINGS = ("class-il", "task-il")


def check_writable(folder: str | Path) -> None:
    """Fail before training, not after hours of it, when results cannot be written there."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"results folder {path} is not writable ({e.strerror})") from None


def csv_path(results_path: str, setting: str, dataset: str, model: str) -> Path:
    return Path(results_path) / setting / dataset / model / "mean_accs.csv"


def result_row(mean_accs: list[float], results: list[list[float]], random_results: list[float],
               args: dict) -> dict:
    """task1..taskT (mean accuracy after each task), forward_transfer, backward_transfer,
    forgetting, then the run's arguments."""
    row = {f"task{t + 1}": acc for t, acc in enumerate(mean_accs)}
    row["forward_transfer"] = forward_transfer(results, random_results)
    row["backward_transfer"] = backward_transfer(results)
    row["forgetting"] = forgetting(results)
    row.update((k, v) for k, v in args.items() if k not in NOT_LOGGED)
    return row


def append_row(path: Path, row: dict) -> None:
    """Append ``row`` to a CSV file, atomically and safely against concurrent writers.

    An exclusive lock serialises writers; the file is rewritten to a temporary file and
    renamed over the old one, so a reader never sees half a row. Columns are the union of
    the existing header and the row's keys (a new argument adds a column).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        columns = list(rows[0].keys()) if rows else []
        columns += [k for k in row if k not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows + [row])
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mean_accs.")
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


class TensorBoardLogger:
    """Per-task and mean accuracy (class-IL and task-IL) after each task, loss per epoch.

    Points are written at task ends only (``commit``), when the checkpoint is saved, and the
    checkpoint keeps them all. A resumed run reopens the run's folder with ``purge_step=0``
    (readers then drop every earlier point of the folder) and writes the checkpoint's points
    again: whatever checkpoint it resumes from, no step appears twice."""

    def __init__(self, results_path: str, setting: str, dataset: str, model: str, run_name: str,
                 resumed_points: list[tuple[str, float, int]] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_name = run_name
        self.log_dir = Path(results_path) / "tensorboard" / setting / dataset / model / run_name
        self.writer = SummaryWriter(str(self.log_dir), purge_step=None if resumed_points is None else 0)
        self.points: list[tuple[str, float, int]] = []  # committed: (tag, value, step)
        self.pending = list(resumed_points or [])
        self.commit()

    def log_accuracy(self, task: int, accs: dict[str, list[float]]) -> None:
        for setting, values in accs.items():
            for i, acc in enumerate(values):
                self.pending.append((f"{setting}/acc_task{i + 1:02d}", acc, task + 1))
            self.pending.append((f"{setting}/acc_mean", sum(values) / len(values), task + 1))

    def log_loss(self, loss: float, epoch_index: int) -> None:
        self.pending.append(("loss", loss, epoch_index))

    def commit(self) -> None:
        """Write the points logged since the last commit to disk."""
        for tag, value, step in self.pending:
            self.writer.add_scalar(tag, value, step)
        self.points += self.pending
        self.pending = []
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
