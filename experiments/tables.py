"""The grid's table: one row per finished run, then mean, sample standard deviation and 95% confidence
interval of the mean over seeds per (model, buffer, flags), beside the DER paper's numbers where it has
them, and hcr against derpp, der and er_ace paired by seed (experiments/stats.py), as is each run with a
lower-precision flag (``--amp``) against its float32 twin. ``flags`` are the run's flags after ``--``
that change its result (experiments.runs.experiment_flags: all but main.py's plumbing options); they
are shown whenever a row has any, and --debug_mode rows are marked as not results; under each table, the
cifar.py commands that make its grid runs. Figures: experiments/figures.py."""
import shlex
import sys
from pathlib import Path

import pandas as pd

import main
from datasets import get_all_datasets
from datasets.continual_dataset import DEBUG_BATCHES
from experiments.figures import write_figures
from experiments.grid import PAPER_MODELS, is_current
from experiments.runs import (
    LABELS,
    column,
    experiment_flags,
    final_accuracy,
    finished,
    hand_made_rows,
    run_accuracies,
    settings_of,
    without,
)
from experiments.stats import BETTER, NO_DIFFERENCE, TOO_FEW, WORSE, mean_ci, paired_difference
from models import get_all_models
from utils.best_args import lookup

DEBUG_NOTE = "DEBUG ({} batches per epoch): not a result"
LEVEL = 0.95  # of every confidence interval in the table
# hcr against these, paired by seed, on the first reported accuracy; a baseline run matches an hcr run
# when its flags are the hcr run's without hcr's own (HCR_ONLY, which the baselines do not have).
BASELINES = ("derpp", "der", "er_ace")
HCR_ONLY = {"--icr_mode": True, "--gamma": True, "--sigmoid": True}

# DER paper, Table 2, as printed in mammoth's original README (docs/method.md, "Reference numbers"):
# accuracy after the last task per reported setting (class-IL and task-IL, or domain-IL; None: not reported).
REFERENCE = {
    "seq-cifar10": {
        ("joint", None): (92.20, 98.31), ("sgd", None): (19.62, 61.02),
        ("er", 200): (44.79, 91.19), ("er", 500): (57.74, 93.61), ("er", 5120): (82.47, 96.98),
        ("der", 200): (61.93, 91.40), ("der", 500): (70.51, 93.40), ("der", 5120): (83.81, 95.43),
        ("derpp", 200): (64.88, 91.92), ("derpp", 500): (72.70, 93.88), ("derpp", 5120): (85.24, 96.12),
    },
    "seq-tinyimg": {
        ("joint", None): (59.99, 82.04), ("sgd", None): (7.92, 18.31),
        ("er", 200): (8.49, 38.17), ("er", 500): (9.99, 48.64), ("er", 5120): (27.40, 67.29),
        ("der", 200): (11.87, 40.22), ("der", 500): (17.75, 51.78), ("der", 5120): (36.73, 69.50),
        ("derpp", 200): (10.96, 40.87), ("derpp", 500): (19.38, 51.91), ("derpp", 5120): (39.02, 69.84),
    },
    "perm-mnist": {
        ("joint", None): (94.33,), ("sgd", None): (40.70,),
        ("er", 200): (72.37,), ("er", 500): (80.60,), ("er", 5120): (89.90,),
        ("der", 200): (81.74,), ("der", 500): (87.29,), ("der", 5120): (91.66,),
        ("derpp", 200): (83.58,), ("derpp", 500): (88.21,), ("derpp", 5120): (92.26,),
    },
    "rot-mnist": {
        ("joint", None): (95.76,), ("sgd", None): (67.66,),
        ("er", 200): (85.01,), ("er", 500): (88.91,), ("er", 5120): (93.45,),
        ("der", 200): (90.04,), ("der", 500): (92.24,), ("der", 5120): (94.14,),
        ("derpp", 200): (90.43,), ("derpp", 500): (92.77,), ("derpp", 5120): (94.65,),
    },
    "seq-mnist": {  # class-IL only
        ("joint", None): (95.57, None), ("sgd", None): (19.60, None),
        ("er", 200): (80.43, None), ("er", 500): (86.12, None), ("er", 5120): (93.40, None),
        ("derpp", 200): (85.61, None), ("derpp", 500): (91.00, None), ("derpp", 5120): (95.30, None),
    },
}
# ER-ACE paper (Caccia et al., ICLR 2022), Table 1, without augmentation, at 20 and 100 examples per class
# (docs/method.md, "Reference numbers"): final accuracy over all tasks, class-IL only.
REFERENCE["seq-cifar10-online"] = {("er", 200): (26.7, None), ("er", 1000): (38.7, None),
                                   ("er_ace", 200): (42.6, None), ("er_ace", 1000): (52.2, None)}
REFERENCE_SOURCE = {"seq-cifar10-online": "ER-ACE paper"}  # the others: the DER paper
# The standard errors that the ER-ACE paper prints beside its means (10 runs): where a reference has
# them, ours are checked against it in combined standard errors (paper_check_table).
REFERENCE_SE = {"seq-cifar10-online": {("er", 200): 1.0, ("er", 1000): 0.8, ("er_ace", 200): 0.7,
                                       ("er_ace", 1000): 0.7}}
CHECK_LIMIT = 2.0  # a gap beyond this many combined standard errors is a protocol difference to find
# Flags that trade exact float32 arithmetic for speed (name: whether it takes a value): a run with one is
# also paired by seed with the same model, buffer and other flags without it (precision_table).
LOWER_PRECISION = {"--amp": False}


def debug_note() -> str:
    return DEBUG_NOTE.format(DEBUG_BATCHES)


# main.py's options that a table row is keyed by (or that its dataset fixes), not shown as its flags.
KEYED = {"model", "dataset", "seed", "buffer_size"}


def _same(value: str, expected) -> bool:
    """Whether a CSV cell holds ``expected`` (None: an empty cell; numbers compared as numbers)."""
    if expected is None:
        return value in ("", "None")
    try:
        return float(value) == float(expected)
    except (TypeError, ValueError):
        return value == str(expected)


def row_flags(row: dict[str, str], dataset: str) -> list[str]:
    """The flags of a run that main.py wrote ``row`` for (``--csv_log`` without cifar.py), in the form of
    a grid run's flags after --: every argument whose value is not the one a grid run without flags
    gets (the best arguments of utils/best_args.py where they have an entry, else main.py's default).
    Plumbing options have no column; the device column says where the run ran, not a flag."""
    models, datasets = get_all_models(), get_all_datasets()
    model_cls = models[row["model"]]
    parser = main.build_parser(models, datasets, model_cls)
    options = {a.dest for a in parser._actions if not a.plumbing} - KEYED - {"device"}
    given = [token for k, v in row.items() if k in options and v not in ("", "None") for token in (f"--{k}", v)]
    try:
        best = lookup(dataset, model_cls.best_args_name(given), _buffer(row.get("buffer_size")))
    except KeyError:
        best = {}
    expected = main.network_defaults(datasets[dataset], model_cls)
    flags = []
    for action in parser._actions:
        name, value = action.dest, row.get(action.dest)
        if value is None or name not in options:
            continue
        if _same(value, expected.get(name, best.get(name, action.default))):
            continue
        if value == "True":  # a switch
            flags.append(action.option_strings[0])
        elif value == "False":  # only --no-fuse_forward can turn a default off
            flags.append(f"--no-{name}")
        else:
            flags += [action.option_strings[0], value]
    return flags


def _buffer(value) -> int | None:
    return None if value in (None, "", "None") or value != value else int(float(value))


def manual_rows(results: Path, dataset: str) -> list[dict]:
    """The rows that main.py --csv_log wrote into ``results`` itself (runs made by hand, not by
    cifar.py), as collect's rows: the run id as key, the flags from ``row_flags``."""
    first = settings_of(dataset)[0]
    by_run: dict[str, dict] = {}
    for setting, row in hand_made_rows(results, dataset):
        seed = row.get("seed", "")
        flags = row_flags(row, dataset)
        entry = by_run.setdefault(row["run_id"], {
            "key": row["run_id"], "model": row["model"], "buffer_size": _buffer(row.get("buffer_size")),
            "seed": int(seed) if seed not in ("", "None") else None, "flags": shlex.join(flags),
            "note": debug_note() if "--debug_mode" in flags else "", "extra": shlex.join(flags), "grid": False})
        entry[column(setting)] = final_accuracy(row)
        if setting == first:
            entry["bwt"], entry["forgetting"] = float(row["backward_transfer"]), float(row["forgetting"])
    return list(by_run.values())


def collect(results: Path, dataset: str):
    """One row per finished run of ``dataset``: the grid's runs made with the current best arguments
    and the runs whose rows main.py wrote into ``results`` itself (``manual_rows``): its accuracies
    after the last task, BWT and forgetting."""
    settings = settings_of(dataset)
    rows, stale = [], 0
    for folder, info in finished(results):
        if info["dataset"] != dataset:
            continue
        if not is_current(info):
            stale += 1
            continue
        flags = experiment_flags(info["extra"])
        row = {"key": info["key"], "model": info["model"], "buffer_size": info["buffer"], "seed": info["seed"],
               "flags": shlex.join(flags), "note": debug_note() if "--debug_mode" in flags else "",
               "extra": shlex.join(info["extra"]), "grid": True}
        rows.append(row | run_accuracies(folder, dataset, info["model"]))
    rows += manual_rows(results, dataset)
    if stale:
        print(f"left out {stale} finished run(s) made with other values than utils/best_args.py gives now",
              file=sys.stderr)
    frame = pd.DataFrame(rows, columns=["key", "model", "buffer_size", "seed", "flags", "note",
                                        *map(column, settings), "bwt", "forgetting", "extra", "grid"])
    frame["buffer_size"] = frame["buffer_size"].astype("Int64")
    rank = {m: i for i, m in enumerate(PAPER_MODELS)}
    frame["rank"] = frame["model"].map(lambda m: rank.get(m, len(rank)))
    frame = frame.sort_values(["rank", "model", "buffer_size", "flags", "seed"], na_position="first")
    return frame.drop(columns="rank")


def _group_stats(group, settings: tuple[str, ...]) -> dict:
    """Mean, sample std and 95% CI of each reported accuracy over a group's seeds; mean BWT and forgetting."""
    row = {}
    for setting in settings:
        ci = mean_ci(group[column(setting)], LEVEL)
        row |= {f"{column(setting)}_mean": ci.mean, f"{column(setting)}_std": ci.std,
                f"{column(setting)}_ci95_low": ci.low, f"{column(setting)}_ci95_high": ci.high}
    return row | {"bwt": group["bwt"].mean(), "forgetting": group["forgetting"].mean(), "seeds": len(group)}


def summary_table(runs, dataset: str):
    """Per (model, buffer, flags) of ``runs`` (collect's frame): mean ± sample std and the 95% CI of
    the mean (t-distribution, n - 1 degrees of freedom) of each reported accuracy, mean BWT and
    forgetting, the number of seeds and, where the DER paper (or REFERENCE_SOURCE) has them, its numbers
    (columns ``paper_<setting>``)."""
    settings = settings_of(dataset)
    keys = ["model", "buffer_size", "flags", "note"]
    rows = [dict(zip(keys, key, strict=True)) | _group_stats(group, settings)
            for key, group in runs.groupby(keys, sort=False, dropna=False)]
    table = pd.DataFrame(rows, columns=[*keys, *(f"{column(s)}_{stat}" for s in settings
                                                 for stat in ("mean", "std", "ci95_low", "ci95_high")),
                                        "bwt", "forgetting", "seeds"])
    table["buffer_size"] = table["buffer_size"].astype("Int64")
    reference = REFERENCE.get(dataset)
    if reference:
        paper = [reference.get((m, None if pd.isna(b) else int(b)), (None,) * len(settings))
                 for m, b in zip(table["model"], table["buffer_size"], strict=True)]
        for i, setting in enumerate(settings):
            table[f"paper_{column(setting)}"] = [p[i] for p in paper]
    return table


def paper_check_table(table, dataset: str):
    """Our rows of ``table`` (summary_table's frame) that REFERENCE_SE's paper reports, beside it on
    the first reported accuracy: mean and standard error (sample std / sqrt(seeds)) each, the gap and
    the gap in combined standard errors, sqrt(ours² + paper's²); None where the paper prints none."""
    errors = REFERENCE_SE.get(dataset)
    if not errors:
        return None
    c, rows = column(settings_of(dataset)[0]), []
    for r in table.itertuples():
        r = r._asdict()
        key = (r["model"], None if pd.isna(r["buffer_size"]) else int(r["buffer_size"]))
        if key not in errors:
            continue
        se = r[f"{c}_std"] / r["seeds"] ** 0.5
        paper, paper_se = REFERENCE[dataset][key][0], errors[key]
        gap = r[f"{c}_mean"] - paper
        in_se = gap / (se ** 2 + paper_se ** 2) ** 0.5
        rows.append({"model": r["model"], "buffer_size": r["buffer_size"], "flags": r["flags"], "note": r["note"],
                     "seeds": r["seeds"], "mean": r[f"{c}_mean"], "se": se, "paper": paper, "paper_se": paper_se,
                     "gap": gap, "gap_in_se": in_se,
                     "check": "-" if pd.isna(in_se) else "within" if abs(in_se) <= CHECK_LIMIT else "beyond"})
    return pd.DataFrame(rows, columns=["model", "buffer_size", "flags", "note", "seeds", "mean", "se", "paper",
                                       "paper_se", "gap", "gap_in_se", "check"])


def _paired_by_seed(mine, theirs, setting: str):
    """``mine`` minus ``theirs`` (groups of collect's frame) on ``setting``'s accuracy, paired by seed."""
    return paired_difference(dict(zip(mine["seed"], mine[column(setting)], strict=True)),
                             dict(zip(theirs["seed"], theirs[column(setting)], strict=True)), LEVEL)


def paired_table(runs, dataset: str):
    """hcr minus each of BASELINES on the first reported accuracy, per (buffer, hcr flags), paired by
    seed (experiments.stats.paired_difference): one row per baseline that has runs with the matching flags
    (hcr's flags without HCR_ONLY)."""
    setting = settings_of(dataset)[0]
    rows = []
    hcr = runs[runs["model"] == "hcr"]
    for (buffer, flags), mine in hcr.groupby(["buffer_size", "flags"], sort=False, dropna=False):
        matching = shlex.join(without(shlex.split(flags), HCR_ONLY))
        for baseline in BASELINES:
            theirs = runs[(runs["model"] == baseline) & (runs["buffer_size"] == buffer)
                          & (runs["flags"] == matching)]
            if theirs.empty:
                continue
            paired = _paired_by_seed(mine, theirs, setting)
            rows.append({"dataset": dataset, "setting": setting, "buffer_size": buffer, "flags": flags,
                         "note": mine["note"].iloc[0], "baseline": baseline, "baseline_flags": matching,
                         "paired_seeds": paired.n, "seeds": " ".join(map(str, paired.seeds)),
                         "mean_difference": paired.mean, "ci95_low": paired.low, "ci95_high": paired.high,
                         "verdict": paired.verdict})
    paired = pd.DataFrame(rows, columns=["dataset", "setting", "buffer_size", "flags", "note", "baseline",
                                         "baseline_flags", "paired_seeds", "seeds", "mean_difference", "ci95_low",
                                         "ci95_high", "verdict"])
    paired["buffer_size"] = paired["buffer_size"].astype("Int64")
    return paired


def precision_table(runs, dataset: str):
    """What each LOWER_PRECISION flag costs: per (model, buffer, flags) group of ``runs`` whose flags hold
    one, its accuracy minus that of the runs without it (the other flags the same), paired by seed on the
    first reported accuracy (experiments.stats.paired_difference)."""
    setting = settings_of(dataset)[0]
    rows = []
    for (model, buffer, flags), mine in runs.groupby(["model", "buffer_size", "flags"], sort=False, dropna=False):
        exact = shlex.join(without(shlex.split(flags), LOWER_PRECISION))
        if exact == flags:
            continue
        theirs = runs[(runs["model"] == model) & (runs["buffer_size"].isna() if pd.isna(buffer)
                                                  else runs["buffer_size"] == buffer) & (runs["flags"] == exact)]
        if theirs.empty:
            continue
        paired = _paired_by_seed(mine, theirs, setting)
        rows.append({"model": model, "buffer_size": buffer, "flags": flags, "exact_flags": exact,
                     "paired_seeds": paired.n, "mean_difference": paired.mean, "ci95_low": paired.low,
                     "ci95_high": paired.high, "verdict": paired.verdict})
    precision = pd.DataFrame(rows, columns=["model", "buffer_size", "flags", "exact_flags", "paired_seeds",
                                            "mean_difference", "ci95_low", "ci95_high", "verdict"])
    precision["buffer_size"] = precision["buffer_size"].astype("Int64")
    return precision


def tables(results: Path, dataset: str):
    """(runs, summary, paired) of ``dataset``'s finished runs in ``results``, nothing written; None without runs."""
    runs = collect(results, dataset)
    if runs.empty:
        return None
    return runs, summary_table(runs, dataset), paired_table(runs, dataset)


def grid_commands(runs, dataset: str, results: str) -> list[str]:
    """cifar.py commands that make the grid runs of ``runs`` (collect's frame; the rows main.py wrote by
    hand are left out): one per set of flags after --, seeds and buffers, naming the models that share
    them. cifar.py skips finished runs, so on ``results`` they run only what is missing."""
    grid = runs[runs["grid"]]
    shared: dict[tuple, list[str]] = {}  # (extra, seeds, buffers) -> models
    for (extra, model), group in grid.groupby(["extra", "model"], sort=False):
        seeds_of = {buffer: tuple(sorted(g["seed"])) for buffer, g in group.groupby("buffer_size", dropna=False)}
        buffers = tuple(sorted(int(b) for b in seeds_of if not pd.isna(b)))
        if len(set(seeds_of.values())) == 1:  # every buffer ran the same seeds: one command for the model
            shared.setdefault((extra, next(iter(seeds_of.values())), buffers), []).append(model)
        else:
            for buffer in buffers:
                shared.setdefault((extra, seeds_of[buffer], (buffer,)), []).append(model)
    for key in [k for k in shared if not k[2]]:  # buffer-free models join a command with their seeds and flags
        host = next((k for k in shared if k[2] and k[:2] == key[:2]), None)
        if host:
            shared[host] += shared.pop(key)
    return [shlex.join(["python", "cifar.py", "--dataset", dataset, "--models", *models,
                        *(["--buffers", *map(str, buffers)] if buffers else []), "--seeds", *map(str, seeds),
                        "--results", results, *(["--", *shlex.split(extra)] if extra else [])])
            for (extra, seeds, buffers), models in shared.items()]


def _number(value: float, signed: bool = False) -> str:
    return "-" if value is None or value != value else f"{value:+.2f}" if signed else f"{value:.2f}"


def _interval(low: float, high: float) -> str:
    return "-" if low != low else f"[{low:.2f}, {high:.2f}]"


def _flags_cell(flags: str, note: str) -> str:
    cell = f"`{flags}`".replace("|", "\\|") if flags else ""
    return f"**{note}** {cell}" if note else cell


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def summary_markdown(table, dataset: str) -> list[str]:
    settings = settings_of(dataset)
    reference = f"paper_{column(settings[0])}" in table

    def pm(mean: float, std: float) -> str:
        return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"

    show_flags = bool((table["flags"] != "").any())  # whenever a row has flags that change the experiment
    header = ["model", "buffer", *(["flags"] * show_flags),
              *(h for s in settings for h in (LABELS[s], f"{LABELS[s]} 95% CI")), "BWT", "forgetting", "seeds",
              *([f"{REFERENCE_SOURCE.get(dataset, 'DER paper')} {LABELS[s]}" for s in settings] if reference else [])]
    lines = [f"### {dataset}: accuracy (%) after the last task, mean ± sample std (ddof=1) over seeds and the "
             f"{LEVEL:.0%} confidence interval of the mean (t-distribution, seeds - 1 degrees of freedom; "
             "none with one seed)", ""]
    if (table["note"] != "").any():
        lines += [f"**WARNING: the rows marked DEBUG ran with --debug_mode ({DEBUG_BATCHES} batches per epoch and "
                  "per evaluation): smoke tests, not results.**", ""]
    lines += [_markdown_row(header), "|" + "---|" * len(header)]
    for r in table.itertuples():
        r = r._asdict()
        cells = [r["model"], "-" if pd.isna(r["buffer_size"]) else str(r["buffer_size"]),
                 *([_flags_cell(r["flags"], r["note"])] * show_flags),
                 *(cell for s in settings for cell in (pm(r[f"{column(s)}_mean"], r[f"{column(s)}_std"]),
                                                       _interval(r[f"{column(s)}_ci95_low"],
                                                                 r[f"{column(s)}_ci95_high"]))),
                 f"{r['bwt']:.2f}", f"{r['forgetting']:.2f}", str(r["seeds"])]
        if reference:
            cells += ["" if pd.isna(r[f"paper_{column(s)}"]) else f"{r[f'paper_{column(s)}']:.2f}"
                      for s in settings]
        lines.append(_markdown_row(cells))
    return lines


def paper_check_markdown(check, dataset: str) -> list[str]:
    source, label = REFERENCE_SOURCE.get(dataset, "DER paper"), LABELS[settings_of(dataset)[0]]

    def se(mean: float, error: float) -> str:
        return f"{mean:.2f}" if pd.isna(error) else f"{mean:.2f} ± {error:.2f}"

    lines = [f"### {dataset}: ours beside the {source}, {label} accuracy (%) after the last task, mean ± "
             "standard error over seeds", "",
             f"Gap: ours minus the paper's mean; in combined standard errors, divided by sqrt(ours² + the "
             f"paper's²). Check: within {CHECK_LIMIT:g} combined standard errors, or beyond (a protocol "
             "difference to find); none with one seed.", "",
             _markdown_row(["model", "buffer", "flags", "seeds", "ours", source, "gap", "gap in combined SEs",
                            "check"]), "|" + "---|" * 9]
    for r in check.itertuples():
        lines.append(_markdown_row([r.model, str(r.buffer_size), _flags_cell(r.flags, r.note) or "(none)",
                                    str(r.seeds), se(r.mean, r.se), se(r.paper, r.paper_se),
                                    _number(r.gap, signed=True), _number(r.gap_in_se, signed=True), r.check]))
    return lines


def paired_markdown(paired, dataset: str) -> list[str]:
    label = LABELS[settings_of(dataset)[0]]
    only = ", ".join(f"`{flag}`" for flag in HCR_ONLY)
    baselines = " and ".join(f"hcr − {b}" for b in BASELINES if (paired["baseline"] == b).any())
    lines = [f"### {dataset}: {baselines}, {label} accuracy (%) after the last task, paired by seed",
             "",
             f"Per seed that both ran (same dataset, buffer and seed): hcr's accuracy minus the baseline's; the mean "
             f"difference and its {LEVEL:.0%} confidence interval (t-distribution on the per-seed differences, "
             f"paired seeds - 1 degrees of freedom). Verdict for hcr: {BETTER} (CI above 0), {WORSE} (CI below 0), "
             f"{NO_DIFFERENCE} (CI contains 0); {TOO_FEW}. Flags: each hcr flag set is its own row, compared "
             f"with the baseline runs whose flags are hcr's without hcr's own ({only}): hcr `--icr_mode gradient` "
             "against the baselines run without flags; every other flag (e.g. `--n_epochs`) must be the same.",
             "",
             _markdown_row(["buffer", "hcr flags", "baseline", "paired seeds", "mean hcr − baseline",
                            f"{LEVEL:.0%} CI", "verdict"]),
             "|" + "---|" * 7]
    for r in paired.itertuples():
        lines.append(_markdown_row([str(r.buffer_size), _flags_cell(r.flags, r.note) or "(none)", r.baseline,
                                    str(r.paired_seeds), _number(r.mean_difference, signed=True),
                                    _interval(r.ci95_low, r.ci95_high), r.verdict]))
    return lines


def precision_markdown(precision, dataset: str) -> list[str]:
    label = LABELS[settings_of(dataset)[0]]
    lines = [f"### {dataset}: what lower precision costs, {label} accuracy (%) after the last task, paired by seed",
             "",
             "Per seed that both ran: the accuracy of the run with the flag minus that of the same model, buffer "
             f"and other flags without it; the mean difference and its {LEVEL:.0%} confidence interval (as above). "
             f"Verdict for the flag: {BETTER}, {WORSE} or {NO_DIFFERENCE}.",
             "",
             _markdown_row(["model", "buffer", "flags", "against", "paired seeds", "mean difference",
                            f"{LEVEL:.0%} CI", "verdict"]),
             "|" + "---|" * 8]
    for r in precision.itertuples():
        lines.append(_markdown_row([r.model, "-" if pd.isna(r.buffer_size) else str(r.buffer_size),
                                    _flags_cell(r.flags, ""), _flags_cell(r.exact_flags, "") or "(none)",
                                    str(r.paired_seeds), _number(r.mean_difference, signed=True),
                                    _interval(r.ci95_low, r.ci95_high), r.verdict]))
    return lines


def summarize(results: Path, dataset: str, figures: Path | None = None, shown: str | None = None) -> str | None:
    """Write summary_<dataset>.{csv,md}, runs_<dataset>.csv (one row per run), paired_<dataset>.csv
    (when hcr and derpp, der or er_ace ran at the same buffer) and the figures (experiments/figures.py; into
    ``figures``, default ``results``), and return the Markdown, which names the commands that make the
    grid's runs (``results`` in them as ``shown``, default as it is)."""
    found = tables(results, dataset)
    if found is None:
        return None
    runs, table, paired = found
    runs.to_csv(results / f"runs_{dataset}.csv", index=False)
    table.to_csv(results / f"summary_{dataset}.csv", index=False)
    lines = summary_markdown(table, dataset)
    commands = grid_commands(runs, dataset, shown or str(results))
    if commands:
        lines += ["", "These commands make the grid's runs (each run's values from utils/best_args.py; "
                  "cifar.py skips finished runs):", "", "```bash", *commands, "```"]
    check = paper_check_table(table, dataset)
    if check is not None and not check.empty:
        lines += ["", *paper_check_markdown(check, dataset)]
    paired_csv = results / f"paired_{dataset}.csv"
    if paired.empty:
        paired_csv.unlink(missing_ok=True)  # no longer true of these runs
    else:
        paired.to_csv(paired_csv, index=False)
        lines += ["", *paired_markdown(paired, dataset)]
    precision = precision_table(runs, dataset)
    if not precision.empty:
        lines += ["", *precision_markdown(precision, dataset)]
    text = "\n".join(lines) + "\n"
    (results / f"summary_{dataset}.md").write_text(text)
    written = write_figures(results, dataset, runs, table, figures or results)
    if written:
        print(f"figures: {', '.join(str(p) for p in written)}", file=sys.stderr)
    return text
