"""Hyper-parameter search on the validation split, for any model of SPACES on any dataset
(``cifar.py --search``; docs/usage.md, "Searches"; docs/search_spaces.md says why each space is
what it is).

Per (model, buffer): the first ``budget`` configurations of a fixed, seeded permutation of the
model's space (its whole space when that is smaller) run with seed 0; the best ``top`` of them run
again with seeds 1 and 2; the choice is the one-standard-error rule (``one_standard_error_choice``).
Every run passes main.py's ``--validation`` (the test split is never used) and gives every
hyper-parameter itself: the dataset's protocol (batch size and epochs of its sgd entry in
utils/best_args.py), the configuration and the model's fixed values. A run that main.py stopped at
a non-finite loss (exit status 1 with its one-line message) diverged: it ranks last and its
configuration has no mean.
"""
import argparse
import itertools
import math
import random
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiments.grid import cells
from experiments.launch import launch, report_outcomes
from experiments.runs import (
    Run,
    command,
    final_accuracy,
    has_diverged,
    is_done,
    last_row,
    run_folder,
    settings_of,
)
from utils.best_args import lookup
from utils.status import plural

LR = (0.01, 0.03, 0.1)
MINIBATCH = (10, 64)
# The committed search spaces (docs/search_spaces.md gives the reasons): the values of each searched
# hyper-parameter per model. joint has none: it trains with sgd's entry (BEST_ARGS_MODEL).
SPACES: dict[str, dict[str, tuple]] = {
    "sgd": {"lr": LR},
    "er": {"lr": LR, "minibatch_size": MINIBATCH},
    "der": {"lr": LR, "minibatch_size": MINIBATCH, "alpha": (0.1, 0.2, 0.5, 1.0)},
    "derpp": {"lr": LR, "minibatch_size": MINIBATCH, "alpha": (0.1, 0.2, 0.5, 1.0), "beta": (0.5, 1.0)},
    "hcr": {"lr": LR, "minibatch_size": MINIBATCH, "alpha": (0.01, 0.1, 0.5), "beta": (0.5, 1.0, 2.0)},
    "er_ace": {"lr": LR, "minibatch_size": MINIBATCH},
}
# Datasets whose protocol fixes more than the batch size and epochs of their sgd entry, and the learning
# rates searched there: the online Split CIFAR-10 of the ER-ACE paper (batches and draws of 10, one pass;
# lr from {0.1, 0.01, 0.001}).
PROTOCOLS: dict[str, dict[str, int]] = {"seq-cifar10-online": {"batch_size": 10, "n_epochs": 1, "minibatch_size": 10}}
LR_GRIDS: dict[str, tuple[float, ...]] = {"seq-cifar10-online": (0.001, 0.01, 0.1)}
# Held fixed (docs/search_spaces.md): in the default faithful mode gamma changes
# no update (the ICR term is a constant), so searching it would only rerun the same training.
FIXED: dict[str, dict[str, float]] = {"hcr": {"sigmoid": 0.1, "gamma": 0.5}}
INT_VALUES = ("batch_size", "n_epochs", "minibatch_size")
SEED0, CONFIRM_SEEDS = 0, (1, 2)
SEEDS = (SEED0, *CONFIRM_SEEDS)
BUDGET, TOP, SAMPLE_SEED = 12, 4, 0


def space(model: str, dataset: str | None = None) -> dict[str, tuple]:
    """The model's space on ``dataset``: SPACES, less what the dataset's protocol fixes, with its lr grid."""
    fixed = PROTOCOLS.get(dataset, {})
    values = {k: v for k, v in SPACES[model].items() if k not in fixed}
    if "lr" in values and dataset in LR_GRIDS:
        values["lr"] = LR_GRIDS[dataset]
    return values


def configurations(model: str, dataset: str | None = None) -> list[dict]:
    """Every configuration of the model's space (on ``dataset``), in the order of itertools.product."""
    values = space(model, dataset)
    return [dict(zip(values, v, strict=True)) for v in itertools.product(*values.values())]


def sample(model: str, budget: int, seed: int = SAMPLE_SEED, dataset: str | None = None) -> list[dict]:
    """The first ``budget`` configurations of the space shuffled by random.Random(seed): distinct,
    the whole space when it is smaller than the budget, and a larger budget keeps a smaller one's."""
    configs = configurations(model, dataset)
    random.Random(seed).shuffle(configs)
    return configs[:budget]


def protocol(dataset: str) -> dict:
    """Batch size and epochs of the dataset's protocol: PROTOCOLS' where it has them, else those of its
    sgd entry in utils/best_args.py."""
    if dataset in PROTOCOLS:
        return {k: PROTOCOLS[dataset][k] for k in ("batch_size", "n_epochs")}
    entry = lookup(dataset, "sgd", None)
    return {"batch_size": entry["batch_size"], "n_epochs": entry["n_epochs"]}


def fixed_values(model: str, dataset: str) -> dict:
    """What a search holds fixed for the model on the dataset: the values of its space that the
    protocol fixes (the draw size of the online protocol), then FIXED."""
    held = {k: v for k, v in PROTOCOLS.get(dataset, {}).items() if k in SPACES[model]}
    return {**held, **FIXED.get(model, {})}


def arguments(model: str, dataset: str, config: dict) -> dict:
    """Every hyper-parameter of a run of ``config``, in utils/best_args.py's order (lr, batch size,
    epochs, then the model's own): what its entry there would hold."""
    values = {"lr": config["lr"], **protocol(dataset), **config, **fixed_values(model, dataset)}
    return {k: int(v) if k in INT_VALUES else float(v) for k, v in values.items()}


def managed_flags(models: list[str], dataset: str) -> set[str]:
    """The flags a search sets itself on its runs (every value of ``arguments`` and --validation):
    refused after --."""
    names = {"validation"}
    for model in models:
        names |= set(arguments(model, dataset, configurations(model, dataset)[0]))
    return {f"--{name}" for name in names}


def one_standard_error_choice(seeds: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    """The one-standard-error rule (Hastie, Tibshirani and Friedman, The Elements of Statistical
    Learning, 7.10): among the rows whose ``mean`` over ``n_seeds`` seeds is at least the best mean
    minus the best row's standard error (its ``std`` / sqrt(n_seeds)), the row of the smallest
    ``minibatch_size`` (the cheapest step; models without one skip this), ties to the best mean.
    Rows without a mean (a seed diverged) are no candidates; none at all: an empty frame."""
    candidates = seeds[seeds["mean"].notna()]
    if candidates.empty:
        return candidates
    best = candidates.loc[candidates["mean"].idxmax()]
    close = candidates[candidates["mean"] >= best["mean"] - best["std"] / n_seeds ** 0.5]
    cheap = ["minibatch_size"] if "minibatch_size" in close and close["minibatch_size"].notna().all() else []
    return close.sort_values([*cheap, "mean"], ascending=[*[True] * len(cheap), False], kind="stable").head(1)


@dataclass(frozen=True)
class SearchRun(Run):
    """A search run: it gives every value itself, so its main.py runs without --load_best_args (which
    fails where utils/best_args.py has no entry for the model, and would fill nothing here)."""

    load_best_args = False


@dataclass(frozen=True)
class Search:
    """One search: its (model, buffer) cells, their sampled configurations and their runs."""

    dataset: str
    models: tuple[str, ...]
    buffers: tuple[int, ...]
    extra: tuple[str, ...] = ()
    budget: int = BUDGET
    top: int = TOP
    sample_seed: int = SAMPLE_SEED

    def cells(self) -> list[tuple[str, int | None]]:
        """(model, buffer) pairs: buffer-free models once (buffer None), replay models per buffer."""
        return cells(self.models, self.buffers)

    def configs(self, model: str) -> list[dict]:
        return sample(model, self.budget, self.sample_seed, self.dataset)

    def run(self, model: str, buffer: int | None, config: dict, seed: int) -> SearchRun:
        """The run's key holds every flag (no best arguments: a search run gives all its values)."""
        flags = [x for k, v in arguments(model, self.dataset, config).items() for x in (f"--{k}", str(v))]
        return SearchRun(self.dataset, model, buffer, seed, (*flags, "--validation", *self.extra))

    def seed0_runs(self) -> list[Run]:
        return [self.run(m, b, c, SEED0) for m, b in self.cells() for c in self.configs(m)]

    def confirmation_runs(self, root: Path) -> tuple[list[Run], list[tuple[str, int | None]]]:
        """Seeds 1 and 2 of the best ``top`` seed-0 configurations of every cell whose seed-0 runs
        have all finished or diverged; and the cells still waiting for theirs."""
        runs, waiting = [], []
        for model, buffer in self.cells():
            ranked = self.ranked(root, model, buffer)
            if ranked is None:
                waiting.append((model, buffer))
                continue
            configs = self.configs(model)
            runs += [self.run(model, buffer, configs[i], s) for i, _ in ranked[:self.top] for s in CONFIRM_SEEDS]
        return runs, waiting

    def ranked(self, root: Path, model: str, buffer: int | None) -> list[tuple[int, float]] | None:
        """(index in the sample, seed-0 accuracy) of the cell's configurations that finished seed 0,
        best first (ties in sample order); None while one is neither finished nor diverged. Diverged
        ones are left out: they rank last."""
        found = [state(self.run(model, buffer, config, SEED0), root) for config in self.configs(model)]
        if any(s == "pending" for s in found):
            return None
        return sorted(((i, s) for i, s in enumerate(found) if isinstance(s, float)), key=lambda pair: -pair[1])

    def results(self, root: Path) -> pd.DataFrame:
        """One row per sampled configuration: its values, seed-0 rank, accuracy per seed (NaN: not
        run or diverged; ``diverged`` names the seeds that did), mean and sample std over the three
        seeds when all finished, whether it was confirmed and chosen, and its cell's budget."""
        rows = []
        for model, buffer in self.cells():
            ranked = self.ranked(root, model, buffer) or []
            rank = {i: position + 1 for position, (i, _) in enumerate(ranked)}
            confirmed = {i for i, _ in ranked[:self.top]}
            configs, cell = self.configs(model), []
            for index, config in enumerate(configs):
                row = {"model": model, "buffer_size": buffer, "sample": index + 1,
                       **arguments(model, self.dataset, config), "rank": rank.get(index),
                       "confirmed": index in confirmed, **{f"seed {s}": math.nan for s in SEEDS}}
                diverged = []
                for seed in SEEDS if index in confirmed else (SEED0,):
                    outcome = state(self.run(model, buffer, config, seed), root)
                    if isinstance(outcome, float):
                        row[f"seed {seed}"] = outcome
                    elif outcome == "diverged":
                        diverged.append(str(seed))
                row["diverged"] = " ".join(diverged)
                accuracies = pd.Series([row[f"seed {s}"] for s in SEEDS])
                complete = index in confirmed and accuracies.notna().all()
                row["mean"] = accuracies.mean() if complete else math.nan
                row["std"] = accuracies.std() if complete else math.nan  # sample std (ddof=1)
                cell.append(row)
            frame = pd.DataFrame(cell)
            frame["chosen"] = frame.index.isin(one_standard_error_choice(frame, len(SEEDS)).index)
            frame["space_size"], frame["configurations_run"] = len(configurations(model, self.dataset)), len(configs)
            frame["configurations_confirmed"] = len(confirmed)
            rows.append(frame)
        table = pd.concat(rows, ignore_index=True)
        table["buffer_size"] = table["buffer_size"].astype("Int64")
        table["rank"] = table["rank"].astype("Int64")
        return table


def state(run: Run, root: Path) -> float | str:
    """A run's final accuracy (the dataset's first reported setting) when it finished; 'diverged' when
    main.py stopped it at a non-finite loss; else 'pending'."""
    if is_done(run, root):
        setting = settings_of(run.dataset)[0]
        return final_accuracy(last_row(run_folder(run, root), setting, run.dataset, run.model))
    return "diverged" if has_diverged(run, root) else "pending"


def is_pending(run: Run, root: Path) -> bool:
    """Neither finished nor diverged: what a search still has to run (without reading any CSV)."""
    return not is_done(run, root) and not has_diverged(run, root)


def dry_run(spec: Search, root: Path) -> int:
    """Print the search's commands (runnable as printed; finished and diverged ones marked) and its
    budget per (model, buffer); run nothing."""
    first = spec.seed0_runs()
    confirm, waiting = spec.confirmation_runs(root)
    for run in [*first, *confirm]:
        mark = "" if is_pending(run, root) else "  # done" if is_done(run, root) else "  # diverged"
        print(shlex.join(command(run, root)) + mark)
    pending = sum(is_pending(run, root) for run in [*first, *confirm])
    print(f"{plural(len(first), 'seed-0 run')} and {plural(len(confirm), 'confirmation run')}, "
          f"{pending} of them to run")
    for model, buffer in spec.cells():
        configs, size = len(spec.configs(model)), len(configurations(model, spec.dataset))
        whole = " (the whole space, smaller than the budget)" if size < spec.budget else ""
        print(f"  {model}{'' if buffer is None else f' buffer {buffer}'}: {configs} of {size} configurations"
              f"{whole}, the best {min(spec.top, configs)} "
              f"confirmed with seeds {' and '.join(map(str, CONFIRM_SEEDS))}"
              + ("  (confirmation listed once its seed-0 runs are over)" if (model, buffer) in waiting else ""))
    return 0


def run(spec: Search, root: Path, args: argparse.Namespace) -> int:
    """The search's two stages, each through the grid's launchers (``args``: cifar.py's): the seed-0
    runs, then seeds 1 and 2 of each (model, buffer)'s best ``top``. Finished and diverged runs are
    never run again. 0 once both stages are complete (then experiments/search_report.py writes the
    report), else cifar.py's exit status."""
    for stage in ("seed-0", "confirmation"):
        runs = spec.seed0_runs() if stage == "seed-0" else spec.confirmation_runs(root)[0]
        todo = [r for r in runs if is_pending(r, root)]
        print(f"search, {stage} stage: {plural(len(runs), 'run')}: {len(runs) - len(todo)} finished or diverged before "
              f"(skipped), {len(todo)} to run", flush=True)
        outcomes = launch(todo, root, args)
        if outcomes is None:
            return 130
        report_outcomes(todo, outcomes, diverged=lambda r: not is_pending(r, root))
        if any(is_pending(r, root) for r in todo):
            print(f"search: the {stage} stage is not complete: rerun the same command to finish it")
            return 1
    return 0
