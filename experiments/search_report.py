"""The report of a hyper-parameter search (experiments/search.py): its Markdown (protocol, budgets,
choices, the proposed utils/best_args.py entries, every run) and its CSV."""
import math
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.grid import best_args_of, entry_name
from experiments.search import CONFIRM_SEEDS, PROTOCOLS, SEEDS, Search, arguments, fixed_values, protocol, space


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
    source = ("`PROTOCOLS` of `experiments/search.py`" if search.dataset in PROTOCOLS
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
