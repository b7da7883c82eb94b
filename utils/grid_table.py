"""The grid's table: one row per finished run, then mean and sample standard deviation over seeds
per (model, buffer, flags), beside the DER paper's numbers where it has them. ``flags`` are the
run's flags after ``--`` that change the experiment (all but plumbing such as --data_path or
--device); they are shown whenever a row has any, and --debug_mode rows are marked as not results."""
import json
import shlex
import sys
from pathlib import Path

from utils.grid import PAPER_MODELS, is_current

# Flags after -- that change where or how fast a run goes, not its results: left out of the table's
# flags (value: whether the flag takes a value).
PLUMBING = {"--data_path": True, "--device": True, "--num_workers": True, "--offline": False, "--tensorboard": False,
            "--keep_checkpoints": False}
DEBUG_NOTE = "DEBUG ({} batches per epoch): not a result"

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
LABELS = {"class-il": "class-IL", "task-il": "task-IL", "domain-il": "domain-IL"}


def settings_of(dataset: str) -> tuple[str, ...]:
    from datasets import get_all_datasets
    from datasets.continual_dataset import reported_settings

    return reported_settings(get_all_datasets()[dataset].SETTING)


def column(setting: str) -> str:
    return setting.replace("-", "_")


def experiment_flags(extra: list[str] | tuple[str, ...]) -> list[str]:
    """The flags of ``extra`` (a run's flags after --) that change the experiment, in their order:
    all but PLUMBING and their values."""
    kept, skip = [], False
    for token in extra:
        if skip:
            skip = False
            continue
        name = token.split("=")[0] if token.startswith("--") else None
        if name in PLUMBING:
            skip = PLUMBING[name] and "=" not in token
            continue
        kept.append(token)
    return kept


def debug_batches() -> int:
    from datasets.continual_dataset import DEBUG_BATCHES

    return DEBUG_BATCHES


def debug_note() -> str:
    return DEBUG_NOTE.format(debug_batches())


def datasets_in(results: Path) -> list[str]:
    """The datasets of the finished runs in ``results``, sorted."""
    return sorted({json.loads(marker.read_text())["dataset"] for marker in (results / "runs").glob("*/done.json")})


def collect(results: Path, dataset: str):
    """One row per finished run of ``dataset`` made with the current best arguments: its accuracies
    after the last task, BWT and forgetting."""
    import pandas as pd

    from utils.loggers import csv_path

    settings = settings_of(dataset)
    rows, stale = [], 0
    for marker in sorted((results / "runs").glob("*/done.json")):
        info = json.loads(marker.read_text())
        if info["dataset"] != dataset:
            continue
        if not is_current(info):
            stale += 1
            continue
        flags = experiment_flags(info["extra"])
        row = {"key": info["key"], "model": info["model"], "buffer_size": info["buffer"], "seed": info["seed"],
               "flags": shlex.join(flags), "note": debug_note() if "--debug_mode" in flags else "",
               "extra": shlex.join(info["extra"])}
        for setting in settings:
            last = pd.read_csv(csv_path(str(marker.parent), setting, dataset, info["model"])).iloc[-1]
            row[column(setting)] = last[max((c for c in last.index if c[4:].isdigit()), key=lambda c: int(c[4:]))]
            if setting == settings[0]:  # BWT and forgetting of the class-IL (or domain-IL) matrix
                row["bwt"], row["forgetting"] = last["backward_transfer"], last["forgetting"]
        rows.append(row)
    if stale:
        print(f"left out {stale} finished run(s) made with other values than utils/best_args.py gives now",
              file=sys.stderr)
    frame = pd.DataFrame(rows, columns=["key", "model", "buffer_size", "seed", "flags", "note",
                                        *map(column, settings), "bwt", "forgetting", "extra"])
    frame["buffer_size"] = frame["buffer_size"].astype("Int64")
    rank = {m: i for i, m in enumerate(PAPER_MODELS)}
    frame["rank"] = frame["model"].map(lambda m: rank.get(m, len(rank)))
    frame = frame.sort_values(["rank", "model", "buffer_size", "flags", "seed"], na_position="first")
    return frame.drop(columns="rank")


def summarize(results: Path, dataset: str) -> str | None:
    """Write summary_<dataset>.{csv,md} (and runs_<dataset>.csv, one row per run) and return the Markdown."""
    import pandas as pd

    runs = collect(results, dataset)
    if runs.empty:
        return None
    settings = settings_of(dataset)
    stats = {f"{column(s)}_{stat}": (column(s), stat) for s in settings for stat in ("mean", "std")}
    table = runs.groupby(["model", "buffer_size", "flags", "note"], sort=False, dropna=False).agg(
        **stats, bwt=("bwt", "mean"), forgetting=("forgetting", "mean"), seeds=("seed", "size")).reset_index()
    reference = REFERENCE.get(dataset)
    if reference:
        paper = [reference.get((m, None if pd.isna(b) else int(b)), (None,) * len(settings))
                 for m, b in zip(table["model"], table["buffer_size"], strict=True)]
        for i, setting in enumerate(settings):
            table[f"der_paper_{column(setting)}"] = [p[i] for p in paper]
    runs.to_csv(results / f"runs_{dataset}.csv", index=False)
    table.to_csv(results / f"summary_{dataset}.csv", index=False)

    def pm(mean: float, std: float) -> str:
        return f"{mean:.2f}" if pd.isna(std) else f"{mean:.2f} ± {std:.2f}"

    def flags_cell(flags: str, note: str) -> str:
        cell = f"`{flags}`".replace("|", "\\|") if flags else ""
        return f"**{note}** {cell}" if note else cell

    show_flags = bool((table["flags"] != "").any())  # whenever a row has flags that change the experiment
    header = ["model", "buffer", *(["flags"] * show_flags), *(LABELS[s] for s in settings), "BWT", "forgetting",
              "seeds", *([f"DER paper {LABELS[s]}" for s in settings] if reference else [])]
    lines = [f"### {dataset}: accuracy (%) after the last task, mean ± sample std (ddof=1) over seeds", ""]
    if (table["note"] != "").any():
        lines += [f"**WARNING: the rows marked DEBUG ran with --debug_mode ({debug_batches()} batches per epoch and "
                  "per evaluation): smoke tests, not results.**", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.itertuples():
        r = r._asdict()
        cells = [r["model"], "-" if pd.isna(r["buffer_size"]) else str(r["buffer_size"]),
                 *([flags_cell(r["flags"], r["note"])] * show_flags),
                 *(pm(r[f"{column(s)}_mean"], r[f"{column(s)}_std"]) for s in settings),
                 f"{r['bwt']:.2f}", f"{r['forgetting']:.2f}", str(r["seeds"])]
        if reference:
            cells += ["" if pd.isna(r[f"der_paper_{column(s)}"]) else f"{r[f'der_paper_{column(s)}']:.2f}"
                      for s in settings]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (results / f"summary_{dataset}.md").write_text(text)
    return text
