"""The one owner of a results folder's layout: where each run of a grid or search writes what, and
how a finished run is read back (its key, flags, rows, final accuracies, accuracy matrix). Grids,
searches, tables and figures ask this module; nothing else globs a results folder.

    <results>/runs/<key>.lock                        held while the run runs (experiments/launch.py)
    <results>/runs/<key>/log.txt                     main.py's output, one block per attempt
    <results>/runs/<key>/done.json                   written once main.py exited 0 (``mark_done``)
    <results>/runs/<key>/<setting>/<dataset>/<model>/mean_accs.csv           main.py --csv_log's row
    <results>/runs/<key>/checkpoints/<setting>/<dataset>/<model>/<config>/task<T>.pt   its checkpoints
    <results>/<setting>/<dataset>/<model>/mean_accs.csv   rows that main.py --csv_log wrote there by hand

A run's key names its dataset, model, buffer and seed, with a hash of every flag that changes its
result (main.py's plumbing options left out) and of the utils/best_args.py values it gets.
"""
import csv
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
import torch

import main
from datasets import get_all_datasets
from datasets.continual_dataset import reported_settings
from models import get_all_models
from utils.loggers import csv_path

MAIN = Path(main.__file__).resolve()
LABELS = {"class-il": "class-IL", "task-il": "task-IL", "domain-il": "domain-IL"}
DIVERGED_MESSAGE = "main.py: error: non-finite loss"
ATTEMPT = re.compile(r"^# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", re.MULTILINE)  # the header of an attempt in log.txt


# --- the flags of a run --------------------------------------------------------------------------

@cache
def plumbing() -> dict[str, bool]:
    """main.py's options declared as plumbing (they change where or how a run goes, not its result):
    option: whether it takes a value."""
    models, datasets = get_all_models(), get_all_datasets()
    return main.build_parser(models, datasets, None).plumbing


def without(tokens: Sequence[str], flags: Mapping[str, bool]) -> list[str]:
    """``tokens`` (command-line flags) in their order, without ``flags`` (name: whether it takes a
    value) and their values."""
    kept, skip = [], False
    for token in tokens:
        if skip:
            skip = False
            continue
        name = token.split("=")[0] if token.startswith("--") else None
        if name in flags:
            skip = flags[name] and "=" not in token
            continue
        kept.append(token)
    return kept


def experiment_flags(extra: Sequence[str]) -> list[str]:
    """The flags of ``extra`` (a run's flags after --) that change its result, in their order."""
    return without(extra, plumbing())


def settings_of(dataset: str) -> tuple[str, ...]:
    """The settings a run of ``dataset`` reports (class-IL and task-IL, or domain-IL): one CSV each."""
    return reported_settings(get_all_datasets()[dataset].SETTING)


def column(setting: str) -> str:
    return setting.replace("-", "_")


# --- a run and its folder ------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    buffer: int | None
    seed: int
    extra: tuple[str, ...] = ()  # its flags after --, as given (plumbing included: the run gets them)
    best_args: tuple[tuple[str, float], ...] = ()  # its entry of utils/best_args.py, sorted
    load_best_args = True  # False: the run gives every value itself (a search run)

    @property
    def key(self) -> str:
        flags = tuple(experiment_flags(self.extra))
        digest = hashlib.sha1(json.dumps([self.dataset, self.model, self.buffer, self.seed, flags,
                                          self.best_args]).encode())
        buffer = "nobuf" if self.buffer is None else f"b{self.buffer}"
        return f"{self.dataset}-{self.model}-{buffer}-s{self.seed}-{digest.hexdigest()[:8]}"


def run_folder_of_key(results: Path, key: str) -> Path:
    return results / "runs" / key


def run_folder(run: Run, results: Path) -> Path:
    return run_folder_of_key(results, run.key)


def lock_path(run: Run, results: Path) -> Path:
    return results / "runs" / f"{run.key}.lock"


def log_path(run: Run, results: Path) -> Path:
    return run_folder(run, results) / "log.txt"


def command(run: Run, results: Path) -> list[str]:
    """The run's main.py command line: this interpreter and main.py's absolute path, so that it runs as
    printed from any folder; ``--resume auto`` continues an interrupted run from its checkpoint."""
    buffer = [] if run.buffer is None else ["--buffer_size", str(run.buffer)]
    best = ["--load_best_args"] if run.load_best_args else []
    return [sys.executable, str(MAIN), "--model", run.model, "--dataset", run.dataset, *buffer, *best,
            "--seed", str(run.seed), "--csv_log", "--resume", "auto", "--results_path", str(run_folder(run, results)),
            *run.extra]


def managed_flags() -> set[str]:
    """The flags that ``command`` sets itself: refused after -- (they would break the grid)."""
    return {token for token in command(Run("d", "m", 1, 0), Path())[2:] if token.startswith("--")}


def is_done(run: Run, results: Path) -> bool:
    return (run_folder(run, results) / "done.json").exists()


def mark_done(run: Run, results: Path, argv: list[str], seconds: float) -> None:
    """Write the run's done.json (atomically: a reader sees all of it or none)."""
    folder = run_folder(run, results)
    info = {"key": run.key, "dataset": run.dataset, "model": run.model, "buffer": run.buffer, "seed": run.seed,
            "extra": list(run.extra), "command": argv, "seconds": round(seconds, 1)}
    (folder / "done.json.tmp").write_text(json.dumps(info, indent=1) + "\n")
    os.replace(folder / "done.json.tmp", folder / "done.json")


def finished(results: Path) -> list[tuple[Path, dict]]:
    """(folder, done.json) of every finished run in ``results``, in key order."""
    markers = sorted((results / "runs").glob("*/done.json"))
    return [(marker.parent, json.loads(marker.read_text())) for marker in markers]


def last_attempt(run: Run, results: Path) -> str:
    """The output of the run's newest attempt (each attempt appends one block to its log.txt)."""
    log = log_path(run, results)
    return ATTEMPT.split(log.read_text())[-1] if log.exists() else ""


def has_diverged(run: Run, results: Path) -> bool:
    """Whether main.py stopped the run's newest attempt at a non-finite loss (callers ask is_done first:
    a finished run's newest attempt exited 0)."""
    return DIVERGED_MESSAGE in last_attempt(run, results)


# --- reading a run back --------------------------------------------------------------------------

def final_accuracy(row: Mapping) -> float:
    """A result row's accuracy after the last task: its ``task<T>`` column of the largest T."""
    tasks = [c for c in row.keys() if c.startswith("task") and c[4:].isdigit()]
    return float(row[max(tasks, key=lambda c: int(c[4:]))])


def last_row(folder: Path, setting: str, dataset: str, model: str) -> pd.Series:
    """The newest row that main.py wrote into a run folder for ``setting``."""
    return pd.read_csv(csv_path(str(folder), setting, dataset, model)).iloc[-1]


def run_accuracies(folder: Path, dataset: str, model: str) -> dict[str, float]:
    """A finished run's accuracy after the last task per reported setting (keyed by ``column``), and
    the BWT and forgetting of the first setting's matrix (``bwt``, ``forgetting``)."""
    settings, found = settings_of(dataset), {}
    for setting in settings:
        row = last_row(folder, setting, dataset, model)
        found[column(setting)] = final_accuracy(row)
        if setting == settings[0]:
            found["bwt"], found["forgetting"] = row["backward_transfer"], row["forgetting"]
    return found


def hand_made_rows(results: Path, dataset: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(setting, row) of every row that main.py --csv_log wrote into ``results`` itself (runs made by
    hand, not by cifar.py), as the CSV holds them (strings)."""
    for setting in settings_of(dataset):
        for path in sorted((results / setting / dataset).glob("*/mean_accs.csv")):
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    yield setting, row


def datasets_in(results: Path) -> list[str]:
    """The datasets of the finished runs in ``results`` (grid runs and hand-made rows), sorted."""
    grid = {info["dataset"] for _, info in finished(results)}
    return sorted(grid | {path.parent.parent.name for path in results.glob("*/*/*/mean_accs.csv")
                          if path.parent.parent.parent.name in LABELS})


def accuracy_matrix_of(folder: Path, setting: str) -> list[list[float]] | None:
    """The accuracy matrix R[t][i] (``setting``) of a run, from the newest checkpoint in its folder;
    None without one (a run that kept no checkpoint)."""
    found = sorted(folder.glob("checkpoints/*/*/*/*/task*.pt"), key=lambda p: int(p.stem[4:]))
    if not found:
        return None
    state = torch.load(found[-1], map_location="cpu", weights_only=True)  # tensors and plain values only
    return state["history"]["results"].get(setting)
