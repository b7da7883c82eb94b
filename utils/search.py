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
import itertools
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from utils.grid import Run, best_args_of, entry_name

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
DIVERGED_MESSAGE = "main.py: error: non-finite loss"
ATTEMPT = re.compile(r"^# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", re.MULTILINE)  # execute_run's header of an attempt


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
    from utils.best_args import lookup

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


def managed_flags(models: list[str]) -> set[str]:
    """The flags a search sets itself on its runs: refused after --."""
    names = {"validation", "batch_size", "n_epochs"}
    for model in models:
        names |= set(SPACES.get(model, {})) | set(FIXED.get(model, {}))
    return {f"--{name}" for name in names}


def last_attempt(log: Path) -> str:
    """The output of the newest attempt in a run's log.txt (execute_run appends one per attempt)."""
    if not log.exists():
        return ""
    return ATTEMPT.split(log.read_text())[-1]


def final_accuracy(run_dir: Path, dataset: str, model: str) -> float:
    """Accuracy after the last task in the dataset's first reported setting (class-IL or domain-IL)."""
    from datasets import get_all_datasets
    from datasets.continual_dataset import reported_settings
    from utils.loggers import csv_path

    setting = reported_settings(get_all_datasets()[dataset].SETTING)[0]
    last = pd.read_csv(csv_path(str(run_dir), setting, dataset, model)).iloc[-1]
    return float(last[max((c for c in last.index if c[4:].isdigit() and c.startswith("task")),
                          key=lambda c: int(c[4:]))])


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

    load_best_args: ClassVar[bool] = False


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
        from models import get_all_models
        from models.continual_model import ReplayModel

        classes = get_all_models()
        return [(model, buffer) for model in dict.fromkeys(self.models)
                for buffer in (sorted(set(self.buffers)) if issubclass(classes[model], ReplayModel) else [None])]

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
    """A run's final accuracy when it finished; 'diverged' when main.py stopped it at a non-finite
    loss (it failed with that message in its newest attempt); else 'pending'."""
    run_dir = root / "runs" / run.key
    if (run_dir / "done.json").exists():
        return final_accuracy(run_dir, run.dataset, run.model)
    if DIVERGED_MESSAGE in last_attempt(run_dir / "log.txt"):
        return "diverged"
    return "pending"


def is_pending(run: Run, root: Path) -> bool:
    """Neither finished nor diverged: what a search still has to run (without reading any CSV)."""
    run_dir = root / "runs" / run.key
    return not (run_dir / "done.json").exists() and DIVERGED_MESSAGE not in last_attempt(run_dir / "log.txt")


# --- reports ----------------------------------------------------------------------------------


def _value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else ""
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_value(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def budget_table(search: Search, table: pd.DataFrame) -> str:
    """Per (model, buffer): the space, the configurations run with seed 0 and those confirmed."""
    rows = []
    for (model, buffer), cell in table.groupby(["model", "buffer_size"], sort=False, dropna=False):
        space, run = int(cell["space_size"].iloc[0]), int(cell["configurations_run"].iloc[0])
        confirmed = int(cell["configurations_confirmed"].iloc[0])
        note = " (the whole space, smaller than the budget)" if space < search.budget else ""
        diverged = int((cell["diverged"] != "").sum())
        rows.append([model, "-" if pd.isna(buffer) else buffer, space, f"{run}{note}", confirmed,
                     run + len(CONFIRM_SEEDS) * confirmed, diverged])
    return _markdown(["model", "buffer", "space size", "configurations run (seed 0)",
                      f"configurations confirmed (seeds {', '.join(map(str, CONFIRM_SEEDS))})", "runs",
                      "configurations with a diverged run"], rows)


def hyper_columns(table: pd.DataFrame) -> list[str]:
    """The hyper-parameter columns of the table (those some model of the search has)."""
    names = dict.fromkeys(["lr", "batch_size", "n_epochs", "minibatch_size", "alpha", "beta", "sigmoid", "gamma"])
    return [n for n in names if n in table and table[n].notna().any()]


def _config_cells(row, columns: list[str]) -> list:
    return [row[c] if not isinstance(row[c], float) or math.isnan(row[c]) else f"{row[c]:g}" for c in columns]


def entry_of(row, dataset: str) -> dict:
    """The utils/best_args.py entry of a chosen row (what --load_best_args would give its runs)."""
    model = row["model"]
    config = {k: row[k] for k in space(model, dataset)}
    return arguments(model, dataset, config)


def proposals(search: Search, table: pd.DataFrame) -> list[str]:
    """The chosen values as lines to paste into BEST_ARGS[dataset] of utils/best_args.py, one per model."""
    lines = [f"# BEST_ARGS[{search.dataset!r}] of utils/best_args.py, from the validation search "
             f"(budget {search.budget}, top {search.top}, sample seed {search.sample_seed}"
             + (f", flags {' '.join(search.extra)}" if search.extra else "") + ")"]
    for model, cells in table.groupby("model", sort=False):
        entries, missing = [], []
        for buffer, cell in cells.groupby("buffer_size", sort=False, dropna=False):
            key = None if pd.isna(buffer) else int(buffer)
            chosen = cell[cell["chosen"]]
            if chosen.empty:
                missing.append(str(key))
                continue
            values = ", ".join(f'"{k}": {v!r}' for k, v in entry_of(chosen.iloc[0], search.dataset).items())
            entries.append(f"{key}: {{{values}}}")
        if entries:
            lines.append(f'"{entry_name(model, search.extra)}": {{{", ".join(entries)}}},')
        if missing:
            lines.append(f"# {model}: no choice at buffer {', '.join(missing)}: every confirmed configuration "
                         "diverged on a seed")
    return lines


def holds(row, search: Search) -> str:
    """Whether utils/best_args.py holds the chosen values now."""
    buffer = None if pd.isna(row["buffer_size"]) else int(row["buffer_size"])
    try:
        held = best_args_of(search.dataset, row["model"], buffer, search.extra)
    except KeyError:
        return "no entry"
    return "holds it" if held == tuple(sorted(entry_of(row, search.dataset).items())) else "differs"


def report(search: Search, table: pd.DataFrame, command: str) -> str:
    """The Markdown report: protocol, budgets, choices, proposed entries, confirmation, seed-0 runs."""
    config = hyper_columns(table)
    searched = [c for c in config if any(c in space(m, search.dataset) for m in search.models)]
    seeds = [f"seed {s}" for s in SEEDS]
    space_lines = "\n".join(
        f"- {model}: " + ", ".join(f"`{k}` in {{{', '.join(f'{v:g}' for v in values)}}}"
                                   for k, values in space(model, search.dataset).items())
        + ("; fixed " + ", ".join(f"`{k}` {v:g}" for k, v in fixed.items())
           if (fixed := fixed_values(model, search.dataset)) else "")
        for model in dict.fromkeys(search.models))
    proto = protocol(search.dataset)
    source = ("`PROTOCOLS` of `utils/search.py`" if search.dataset in PROTOCOLS
              else "those of its sgd entry in `utils/best_args.py`")
    header = f"""# Hyper-parameter search on {search.dataset} (validation split)

Written by `{command}`; do not edit by hand.

Every run passes `--validation` (a fixed 10% of each task's training data; the test split is never
used) and gives all its values itself: the protocol of {search.dataset} (`batch_size` {proto['batch_size']},
`n_epochs` {proto['n_epochs']}, {source}), the configuration and the fixed
values. The spaces (docs/search_spaces.md says why):

{space_lines}

The same budget for every model: per (model, buffer), the first {search.budget} configurations of the
space shuffled with seed {search.sample_seed} (a space smaller than that runs whole) run with seed 0; the best
{search.top} of them run again with seeds {' and '.join(map(str, CONFIRM_SEEDS))}; the choice follows the
one-standard-error rule (Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*,
7.10): among the configurations whose three-seed mean is within one standard error (sample std /
sqrt 3) of the best mean, the one with the smallest `minibatch_size` (the cheapest step), then the
best mean. A run that diverged (`main.py` stopped at a non-finite loss, exit status 1) ranks last
and its configuration has no mean. Accuracy: class-IL (domain-IL) after the last task, on the
validation split.{f' Flags after `--`: `{" ".join(search.extra)}`.' if search.extra else ''}
"""
    chosen = table[table["chosen"]]
    sections = [("Budget per model and buffer", budget_table(search, table))]
    sections.append(("Chosen", _markdown(
        ["model", "buffer", *searched, *seeds, "mean", "std", "utils/best_args.py"],
        [[r["model"], "-" if pd.isna(r["buffer_size"]) else r["buffer_size"], *_config_cells(r, searched),
          *(r[s] for s in seeds), r["mean"], r["std"], holds(r, search)] for _, r in chosen.iterrows()])))
    sections.append(("Proposed entries of utils/best_args.py (changing it stays a reviewed commit)",
                     "```python\n" + "\n".join(proposals(search, table)) + "\n```"))
    confirmed = table[table["confirmed"]].sort_values(["rank"], kind="stable")
    confirmed = confirmed.sort_values(["model", "buffer_size"], key=_cell_order(table), kind="stable")
    sections.append((f"Confirmation: the best {search.top} per model and buffer, seeds 0, 1, 2", _markdown(
        ["model", "buffer", *searched, *seeds, "mean", "std", "diverged", "chosen"],
        [[r["model"], "-" if pd.isna(r["buffer_size"]) else r["buffer_size"], *_config_cells(r, searched),
          *(r[s] for s in seeds), r["mean"], r["std"], r["diverged"], r["chosen"]]
         for _, r in confirmed.iterrows()])))
    ordered = table.assign(last=table["rank"].isna()).sort_values(["last", "rank", "sample"], kind="stable")
    ordered = ordered.sort_values(["model", "buffer_size"], key=_cell_order(table), kind="stable")
    sections.append(("Every seed-0 run, best first per model and buffer (diverged last)", _markdown(
        ["model", "buffer", *searched, "seed 0", "rank", "diverged"],
        [[r["model"], "-" if pd.isna(r["buffer_size"]) else r["buffer_size"], *_config_cells(r, searched),
          r["seed 0"], r["rank"], "yes" if "0" in r["diverged"].split() else ""] for _, r in ordered.iterrows()])))
    return header + "".join(f"\n## {title}\n\n{text}\n" for title, text in sections)


def _cell_order(table: pd.DataFrame):
    """A sort key keeping the search's order of models (buffers ascending, buffer-free first)."""
    models = {m: i for i, m in enumerate(dict.fromkeys(table["model"]))}

    def key(column: pd.Series) -> pd.Series:
        return column.map(models) if column.name == "model" else column.fillna(-1)
    return key


def write(search: Search, table: pd.DataFrame, docs: Path, command: str) -> str:
    """Write the report to ``docs`` (Markdown) and the table beside it (.csv); return the Markdown."""
    text = report(search, table, command)
    docs.parent.mkdir(parents=True, exist_ok=True)
    columns = ["model", "buffer_size", "sample", *hyper_columns(table), "rank", *(f"seed {s}" for s in SEEDS),
               "mean", "std", "diverged", "confirmed", "chosen", "space_size", "configurations_run",
               "configurations_confirmed"]
    table.reindex(columns=columns).to_csv(docs.with_suffix(".csv"), index=False)
    docs.write_text(text)
    return text
