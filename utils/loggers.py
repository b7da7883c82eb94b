"""Result loggers: the released code's CSV files and TensorBoard event files."""
import csv
import fcntl
import io
import os
import subprocess
import tempfile
from pathlib import Path

from utils.errors import UserError
from utils.metrics import backward_transfer, forgetting, forward_transfer


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
               args: dict, run: dict, losses: tuple[float, float] = (float("nan"), float("nan"))) -> dict:
    """task1..taskT (mean accuracy after each task), forward_transfer, backward_transfer,
    forgetting, the last epoch's mean ``loss`` (the one the update follows) and ``released_loss`` (the
    released code's reported value), then what says which run it is (``run``: its id, device, time,
    versions), then ``args``: the arguments that determine its result (utils.args.result_arguments)."""
    row = {f"task{t + 1}": acc for t, acc in enumerate(mean_accs)}
    row["forward_transfer"] = forward_transfer(results, random_results)
    row["backward_transfer"] = backward_transfer(results)
    row["forgetting"] = forgetting(results)
    row["loss"], row["released_loss"] = losses
    row.update(run)
    row.update((k, v) for k, v in args.items() if k not in run)  # e.g. device: the real one
    return row


def code_version() -> str:
    """The git commit of the code that runs (``-dirty`` with uncommitted changes), or "unknown"
    outside a checkout."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def readable_file_mode() -> int:
    """The mode ``open`` gives a new file (0666 less the umask); ``mkstemp`` would give 0600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def has_row(path: Path, column: str, value: str) -> bool:
    """Whether the CSV file ``path`` holds a row whose ``column`` is ``value``."""
    if not path.exists():
        return False
    with open(path, newline="") as f:
        return any(row.get(column) == value for row in csv.DictReader(f))


def append_row(path: Path, row: dict, unique: str | None = None) -> bool:
    """Append ``row`` to a CSV file, atomically and safely against concurrent writers; with
    ``unique``, only if no row has the same value in that column. Returns whether it appended.

    An exclusive lock on the folder (no lock file is left behind) serialises writers; the file is
    rewritten to a temporary file and renamed over the old one, so a reader never sees half a
    row. Columns are the union of the existing header and the row's keys (a new argument adds a
    column).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if unique is not None and has_row(path, unique, str(row[unique])):
            return False
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
        for partial in path.parent.glob(f".{path.stem}.*"):  # left by a writer killed while it held the lock
            partial.unlink()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.")
        with os.fdopen(fd, "w", newline="") as f:
            os.fchmod(f.fileno(), readable_file_mode())
            f.write(text.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    finally:
        os.close(folder)  # releases the lock


class TensorBoardLogger:
    """Per-task and mean accuracy (class-IL and task-IL) after each task, loss per epoch.

    Points are written at task ends only (``commit``), when the checkpoint is saved, and the
    checkpoint keeps them all. A resumed run reopens the run's folder with ``purge_step=0``
    (readers then drop every earlier point of the folder) and writes the checkpoint's points
    again: whatever checkpoint it resumes from, no step appears twice."""

    def __init__(self, results_path: str, setting: str, dataset: str, model: str, run_name: str, config: dict,
                 resumed_points: list[tuple[str, float, int]] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported on use: only --tensorboard runs need it

        self.run_name = run_name
        self.log_dir = Path(results_path) / "tensorboard" / setting / dataset / model / run_name
        self.writer = SummaryWriter(str(self.log_dir), purge_step=None if resumed_points is None else 0)
        if resumed_points is None:  # the run's configuration, under TensorBoard's Text tab (a purge keeps it)
            rows = "\n".join(f"| {name} | {value} |" for name, value in sorted(config.items()))
            self.writer.add_text("config", "| argument | value |\n|---|---|\n" + rows, 0)
        self.points: list[tuple[str, float, int]] = []  # committed: (tag, value, step)
        self.pending = list(resumed_points or [])
        self.commit()

    def log_accuracy(self, step: int, accs: dict[str, list[float]]) -> None:
        for setting, values in accs.items():
            for i, acc in enumerate(values):
                self.pending.append((f"{setting}/acc_task{i + 1:02d}", acc, step))
            self.pending.append((f"{setting}/acc_mean", sum(values) / len(values), step))

    def log_loss(self, trained: float, released: float, step: int) -> None:
        """An epoch's mean losses: ``loss``, the one the update follows, and ``released_loss``, the
        released code's reported value (hcr's faithful ICR constant included)."""
        self.pending += [("loss", trained, step), ("released_loss", released, step)]

    def commit(self) -> None:
        """Write the points logged since the last commit to disk."""
        for tag, value, step in self.pending:
            self.writer.add_scalar(tag, value, step)
        self.points += self.pending
        self.pending = []
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
