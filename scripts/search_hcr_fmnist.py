"""Hyper-parameter search for hcr on seq-fmnist, on the validation split (--validation).

Runs a small grid per buffer size (seed 0, 1 epoch, batch 10 as mammoth's seq-mnist
entries), one run per core with one torch thread each; then reruns with seeds 1 and 2 the
best TOP configurations per buffer size and the best one of each draw size, since
single-seed differences of a point are within seed noise. Chooses by the one-standard-error
rule (Hastie, Tibshirani and Friedman, The Elements of Statistical Learning, 7.10): among
the configurations whose three-seed mean is within one standard error of the best mean, the
cheapest, i.e. the smallest draw size (the four draws are most of an HCR step's rows), then
the best mean. Prints Markdown tables of final class-IL validation accuracy: the grid, the
confirmation, and the choice, and writes them with their protocol to docs/search_hcr_fmnist.md.

    python scripts/search_hcr_fmnist.py [--results_path results/search_hcr_fmnist] [--jobs N] [--docs FILE]

Runs already in the results CSV, or recorded in diverged.csv (main.py stopped at a non-finite
loss), are not run again; a diverged run ranks last and its configuration has no mean.
"""
import argparse
import itertools
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from utils.loggers import append_row  # noqa: E402
from utils.search import one_standard_error_choice  # noqa: E402  (the rule of cifar.py --search too)

GRID = {"lr": (0.01, 0.03, 0.1), "minibatch_size": (10, 64), "alpha": (0.01, 0.1, 0.5), "beta": (0.5, 1.0, 2.0)}
FIXED = {"sigmoid": 0.1, "gamma": 0.5, "batch_size": 10, "n_epochs": 1}
BUFFERS = (200, 500, 5120)
GRID_SEED, CONFIRM_SEEDS, TOP = 0, (1, 2), 4
KEY = ["buffer_size", "seed", *GRID]
FORMATS = {"buffer_size": "g", "seed": "g", **dict.fromkeys(GRID, "g")}


def run(results: Path, buffer_size: int, seed: int, config: dict) -> bool:
    """One main.py run; False when it diverged (main.py stops at the first non-finite loss with exit
    status 1: with a large lr and alpha the consecutive correlation of raw logits can blow up)."""
    flags = {**FIXED, **config, "buffer_size": buffer_size, "seed": seed}
    cmd = [sys.executable, str(ROOT / "main.py"), "--model", "hcr", "--dataset", "seq-fmnist", "--validation",
           "--csv_log", "--results_path", str(results)] + [str(x) for k, v in flags.items() for x in (f"--{k}", v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    if code not in (0, 1):
        raise subprocess.CalledProcessError(code, cmd)
    return code == 0


def run_missing(results: Path, csv: Path, jobs: list[tuple[int, int, dict]], workers: int) -> pd.DataFrame:
    """Run the (buffer, seed, config) jobs that have no row in ``csv`` (or in diverged.csv) yet,
    ``workers`` at once; return the table of all runs, a diverged run's accuracy NaN."""
    diverged = results / "diverged.csv"
    done = pd.concat([pd.read_csv(f)[KEY] for f in (csv, diverged) if f.exists()] or [pd.DataFrame(columns=KEY)])

    def run_and_record(buffer_size: int, seed: int, config: dict) -> None:
        if not run(results, buffer_size, seed, config):
            append_row(diverged, {"buffer_size": buffer_size, "seed": seed, **config})

    todo = [(b, s, c) for b, s, c in jobs
            if not (done == pd.Series({"buffer_size": b, "seed": s, **c})).all(axis=1).any()]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: run_and_record(*job), todo))
    finished = pd.read_csv(csv)[KEY + ["task5"]].rename(columns={"task5": "class_il_val"})
    return pd.concat([finished, pd.read_csv(diverged)[KEY]] if diverged.exists() else [finished], ignore_index=True)


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=[FORMATS.get(c, ".2f") for c in table.columns])


DOC_HEADER = """# Hyper-parameters of hcr on seq-fmnist

Written by `python scripts/search_hcr_fmnist.py` (about 70 minutes on 2 cores); do not edit by hand.

The released code publishes hcr values for seq-cifar10 only. For seq-fmnist they are searched on
the validation split (`--validation`: a fixed 10% of each task's training data; the test split is
never used) with mammoth's seq-mnist protocol (batch 10, 1 epoch), `sigmoid` {sigmoid} and `gamma`
{gamma} fixed (in the default faithful mode `gamma` changes no update), over {grid}, at buffers
{buffers}, with seed {seed}. Single-seed differences of a point are within seed noise, so the best
{top} configurations per buffer and the best one of each draw size are run again with seeds
{confirm}, and the choice follows the one-standard-error rule (Hastie, Tibshirani and Friedman,
*The Elements of Statistical Learning*, 7.10): among the configurations whose three-seed mean is
within one standard error (sample std / sqrt 3) of the best mean, the one with the smallest draw
size (the cheapest step: the four draws are most of its rows), then the best mean. A run that
diverged (`main.py` stopped at a non-finite loss, exit status 1) is recorded in `diverged.csv`,
shown as `nan`, and its configuration is not a candidate. The last section says whether
`utils/best_args.py` holds the choice; changing that file stays a reviewed commit.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results_path", default=str(ROOT / "results" / "search_hcr_fmnist"))
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="Runs at once, one torch thread each (default: one per core).")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "search_hcr_fmnist.md",
                        help="Where the Markdown report is written.")
    opts = parser.parse_args()
    results = Path(opts.results_path)
    csv = results / "class-il" / "seq-fmnist" / "hcr" / "mean_accs.csv"
    configs = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]

    table = run_missing(results, csv, [(b, GRID_SEED, c) for b in BUFFERS for c in configs], opts.jobs)
    grid = table[table["seed"] == GRID_SEED].drop(columns="seed")
    grid = grid.sort_values(["buffer_size", "class_il_val"], ascending=[True, False])
    sections = [("The whole seed-0 grid, best first per buffer size:", markdown(grid))]

    # the best TOP, and the best of each draw size: the cheaper ones are candidates of the rule
    top = pd.concat([grid.groupby("buffer_size").head(TOP),
                     grid.groupby(["buffer_size", "minibatch_size"]).head(1)]).drop_duplicates()
    confirm = [(row.buffer_size, s, {k: getattr(row, k) for k in GRID})
               for row in top.itertuples() for s in CONFIRM_SEEDS]
    table = run_missing(results, csv, confirm, opts.jobs)
    top_runs = table.merge(top[["buffer_size", *GRID]])  # the top configurations, every seed
    seeds = top_runs.pivot(index=["buffer_size", *GRID], columns="seed", values="class_il_val")
    seeds.columns = [f"seed {s}" for s in seeds.columns]
    seeds["mean"], seeds["std"] = seeds.mean(axis=1, skipna=False), seeds.std(axis=1, skipna=False)
    seeds = seeds.reset_index().sort_values(["buffer_size", "mean"], ascending=[True, False])
    sections.append((f"The best {TOP} per buffer size and the best of each draw size, "
                     f"seeds {', '.join(map(str, (GRID_SEED, *CONFIRM_SEEDS)))}:", markdown(seeds)))
    chosen = pd.concat(one_standard_error_choice(group, 1 + len(CONFIRM_SEEDS))
                       for _, group in seeds.groupby("buffer_size"))
    sections.append(("Chosen (smallest draw size within one standard error of the best mean) per buffer size:",
                     markdown(chosen)))
    sections.append(("What utils/best_args.py holds", compare_with_best_args(chosen)))
    print("\n\n".join(f"{title}\n{text}" for title, text in sections))
    header = DOC_HEADER.format(
        sigmoid=FIXED["sigmoid"], gamma=FIXED["gamma"], seed=GRID_SEED, top=TOP,
        grid=", ".join(f"`{k}` in {{{', '.join(map(str, v))}}}" for k, v in GRID.items()),
        buffers=", ".join(map(str, BUFFERS)), confirm=" and ".join(map(str, CONFIRM_SEEDS)))
    body = "".join(f"\n## {title.rstrip(':')}\n\n{text}\n" for title, text in reversed(sections))
    opts.docs.parent.mkdir(parents=True, exist_ok=True)
    opts.docs.write_text(header + body)
    print(f"\nwritten: {opts.docs}")


def compare_with_best_args(chosen: pd.DataFrame) -> str:
    """One line per buffer size: whether utils/best_args.py holds the chosen configuration."""
    from utils.best_args import BEST_ARGS

    lines = []
    for row in chosen.itertuples():
        held = BEST_ARGS["seq-fmnist"]["hcr"].get(int(row.buffer_size), {})
        mine = {k: getattr(row, k) for k in GRID}
        theirs = {k: held.get(k) for k in GRID}
        verdict = "holds this choice" if mine == theirs else (
            "differs: it holds " + ", ".join(f"{k} {v:g}" for k, v in theirs.items() if v is not None)
            + "; this search chooses " + ", ".join(f"{k} {v:g}" for k, v in mine.items()))
        lines.append(f"- buffer {row.buffer_size:g}: {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
