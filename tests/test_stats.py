"""Tests of the table's uncertainty (experiments/stats.py, experiments/tables.py) and of the figures
(experiments/figures.py): intervals and paired differences against hand computations, the table and the
paired rows on fake finished runs, and the PNG files with the values they plot."""
import csv
import json
import math
from pathlib import Path

import pytest
import torch

from experiments.grid import best_args_of
from experiments.runs import Run
from experiments.stats import BETTER, NO_DIFFERENCE, TOO_FEW, WORSE, mean_ci, paired_difference
from utils.loggers import append_row

# --- the statistics, by hand -----------------------------------------------------------------


def test_mean_ci_of_one_to_five_by_hand():
    # mean 3, s = sqrt(2.5) = 1.5811, t_{0.975,4} = 2.7764, half-width 2.7764 * 1.5811 / sqrt(5) = 1.9632
    ci = mean_ci([1, 2, 3, 4, 5])
    assert (ci.mean, ci.n) == (3.0, 5)
    assert ci.std == pytest.approx(1.5811, abs=1e-4)
    assert (ci.low, ci.high) == pytest.approx((1.0368, 4.9632), abs=1e-4)
    # level 0.90: t_{0.95,4} = 2.1318, half-width 1.5074
    ci90 = mean_ci([1, 2, 3, 4, 5], 0.90)
    assert (ci90.high - ci90.low) / 2 == pytest.approx(1.5074, abs=1e-4)


def test_mean_ci_of_one_value_has_no_interval():
    ci = mean_ci([42.0])
    assert ci.mean == 42.0 and ci.n == 1 and math.isnan(ci.std) and math.isnan(ci.low) and math.isnan(ci.high)
    with pytest.raises(ValueError):
        mean_ci([])


def test_a_clear_positive_paired_difference_by_hand():
    # seeds 0-2 paired (seed 3 only in a: left out); differences 5, 6, 5: mean 5.3333, s = 0.57735,
    # t_{0.975,2} = 4.3027, half-width 4.3027 * 0.57735 / sqrt(3) = 1.4342
    paired = paired_difference({0: 70.0, 1: 72.0, 2: 71.0, 3: 10.0}, {0: 65.0, 1: 66.0, 2: 66.0})
    assert (paired.n, paired.seeds, paired.verdict) == (3, (0, 1, 2), BETTER)
    assert paired.mean == pytest.approx(5.3333, abs=1e-4)
    assert paired.ci == pytest.approx((3.8991, 6.7676), abs=1e-4)
    reverse = paired_difference({0: 65.0, 1: 66.0, 2: 66.0}, {0: 70.0, 1: 72.0, 2: 71.0})
    assert reverse.verdict == WORSE and reverse.ci == pytest.approx((-6.7676, -3.8991), abs=1e-4)


def test_pairing_by_seed_finds_what_unpaired_means_would_not():
    # hcr beats the baseline by 1, 1, 0.5 on every seed, though the seeds differ by 10: better
    paired = paired_difference({0: 50.0, 1: 60.0, 2: 70.0}, {0: 49.0, 1: 59.0, 2: 69.5})
    assert paired.verdict == BETTER and paired.mean == pytest.approx(0.8333, abs=1e-4)
    # the same values paired by position after sorting the other's seeds would differ: order matters
    assert paired_difference({0: 50.0, 1: 60.0, 2: 70.0}, {2: 49.0, 1: 59.0, 0: 69.5}).verdict == NO_DIFFERENCE


def test_a_paired_difference_whose_interval_contains_zero_by_hand():
    # differences -1, 2, -1, 2: mean 0.5, s = 1.7321, t_{0.975,3} = 3.1824, half-width 2.7561
    paired = paired_difference({0: 50.0, 1: 52.0, 2: 49.0, 3: 51.0}, {0: 51.0, 1: 50.0, 2: 50.0, 3: 49.0})
    assert paired.verdict == NO_DIFFERENCE and paired.n == 4
    assert paired.ci == pytest.approx((-2.2561, 3.2561), abs=1e-4)


def test_one_paired_seed_gives_no_interval_and_says_so():
    paired = paired_difference({0: 60.0, 1: 61.0}, {1: 58.0, 2: 50.0})
    assert (paired.n, paired.seeds, paired.mean, paired.verdict) == (1, (1,), 3.0, TOO_FEW)
    assert math.isnan(paired.low) and math.isnan(paired.high)
    none = paired_difference({0: 60.0}, {1: 58.0})
    assert none.n == 0 and none.verdict == TOO_FEW and math.isnan(none.mean)


# --- the table and the figures on fake finished runs -----------------------------------------

DATASET = "seq-cifar10"
# (model, buffer, flags): class-IL accuracy per seed (task-IL: half of it + 50, so that the paired
# differences of the two settings differ)
RUNS = {
    ("sgd", None, ()): {0: 19.0, 1: 21.0},
    ("joint", None, ()): {0: 91.0, 1: 93.0},
    ("derpp", 200, ()): {0: 65.0, 1: 66.0, 2: 66.0},
    ("der", 200, ()): {0: 71.0, 1: 70.0, 2: 72.0},
    ("hcr", 200, ()): {0: 70.0, 1: 72.0, 2: 71.0},
    ("hcr", 200, ("--icr_mode", "gradient")): {0: 64.0, 1: 67.0},
    ("derpp", 500, ()): {0: 72.0, 1: 73.0, 2: 74.0},
    ("der", 500, ()): {0: 60.0},
    ("hcr", 500, ()): {0: 75.0, 1: 76.0, 2: 78.0},
}


def _finished_run(results: Path, model: str, buffer: int | None, seed: int, extra: tuple, acc: float) -> Path:
    """A finished grid run as cifar.py leaves it: done.json and the run's own CSV rows."""
    run = Run(DATASET, model, buffer, seed, extra, best_args_of(DATASET, model, buffer))
    folder = results / "runs" / run.key
    for setting, value in (("class-il", acc), ("task-il", acc / 2 + 50)):
        append_row(folder / setting / DATASET / model / "mean_accs.csv",
                   {"task1": 0.0, "task5": value, "backward_transfer": -1.0, "forgetting": 2.0})
    (folder / "done.json").write_text(json.dumps({"key": run.key, "dataset": DATASET, "model": model,
                                                  "buffer": buffer, "seed": seed, "extra": list(extra)}))
    return folder


# R[t] as the history holds it: row t also holds the accuracy on task t + 1 before training it
MATRIX = [[95.0, 11.0], [60.0, 94.0, 12.0], [40.0, 55.0, 93.0, 13.0], [30.0, 45.0, 50.0, 92.0, 14.0],
          [20.0, 35.0, 40.0, 45.0, 91.0]]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from experiments.tables import summarize

    results = tmp_path_factory.mktemp("grid")
    for (model, buffer, extra), accs in RUNS.items():
        for seed, acc in accs.items():
            folder = _finished_run(results, model, buffer, seed, extra, acc)
            if (model, buffer, extra, seed) == ("hcr", 200, (), 0):  # its final checkpoint, and an older one
                checkpoints = folder / "checkpoints" / "class-il" / DATASET / "hcr" / "0123abcd"
                checkpoints.mkdir(parents=True)
                torch.save({"format": 2, "history": {"results": {"class-il": MATRIX, "task-il": MATRIX}}},
                           checkpoints / "task5.pt")
                torch.save({"format": 2, "history": {"results": {"class-il": MATRIX[:2]}}}, checkpoints / "task2.pt")
    return results, summarize(results, DATASET)


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_table_shows_the_95_percent_intervals(grid):
    results, text = grid
    lines = text.splitlines()
    assert ("| model | buffer | flags | class-IL | class-IL 95% CI | task-IL | task-IL 95% CI | BWT | forgetting | "
            "seeds | DER paper class-IL | DER paper task-IL |") in lines
    # hcr/200: 70, 72, 71: mean 71, s = 1, CI 71 ± 4.3027 / sqrt(3) = 71 ± 2.4841 (task-IL: 85.5 ± 1.2421)
    assert "| hcr | 200 |  | 71.00 ± 1.00 | [68.52, 73.48] | 85.50 ± 0.50 | [84.26, 86.74] | -1.00 | 2.00 | 3 |" \
        "  |  |" in lines  # the DER paper has no hcr
    # one seed: no interval
    assert "| der | 500 |  | 60.00 | - | 80.00 | - | -1.00 | 2.00 | 1 | 70.51 | 93.40 |" in lines
    [row] = [r for r in _csv(results / f"summary_{DATASET}.csv") if r["model"] == "hcr" and r["buffer_size"] == "200"
             and r["flags"] == ""]
    hand = mean_ci([70.0, 72.0, 71.0])
    assert float(row["class_il_ci95_low"]) == pytest.approx(hand.low) and hand.low == pytest.approx(68.5159, 1e-4)
    assert float(row["class_il_ci95_high"]) == pytest.approx(hand.high)


def test_the_paired_rows_give_the_difference_its_interval_and_the_verdict(grid):
    results, text = grid
    lines = text.splitlines()
    assert f"### {DATASET}: hcr − derpp and hcr − der, class-IL accuracy (%) after the last task, paired by seed" \
        in lines
    assert "`--icr_mode gradient` against the baselines run without flags" in text  # the rule, in the caption
    assert "| buffer | hcr flags | baseline | paired seeds | mean hcr − baseline | 95% CI | verdict |" in lines
    paired_rows = [line for line in lines if line.startswith(("| 200 |", "| 500 |"))]
    assert paired_rows == [
        "| 200 | (none) | derpp | 3 | +5.33 | [3.90, 6.77] | better |",  # differences 5, 6, 5
        # -1, 2, -1: mean 0, s = 1.7321, half-width 4.3027 * 1.7321 / sqrt(3) = 4.3027
        "| 200 | (none) | der | 3 | +0.00 | [-4.30, 4.30] | no significant difference |",
        # --icr_mode gradient against the baselines without flags; -1, 1: half-width t_{0.975,1} = 12.706
        "| 200 | `--icr_mode gradient` | derpp | 2 | +0.00 | [-12.71, 12.71] | no significant difference |",
        # -7, -3: mean -5, s = 2.8284, half-width 12.706 * 2.8284 / sqrt(2) = 25.41
        "| 200 | `--icr_mode gradient` | der | 2 | -5.00 | [-30.41, 20.41] | no significant difference |",
        "| 500 | (none) | derpp | 3 | +3.33 | [1.90, 4.77] | better |",  # 3, 3, 4
        f"| 500 | (none) | der | 1 | +15.00 | - | {TOO_FEW} |",  # only seed 0 paired
    ]
    rows = _csv(results / f"paired_{DATASET}.csv")
    assert [(r["buffer_size"], r["flags"], r["baseline"], r["baseline_flags"], r["seeds"], r["verdict"])
            for r in rows][:3] == [("200", "", "derpp", "", "0 1 2", BETTER), ("200", "", "der", "", "0 1 2",
                                                                                  NO_DIFFERENCE),
                                   ("200", "--icr_mode gradient", "derpp", "", "0 1", NO_DIFFERENCE)]
    assert float(rows[0]["ci95_low"]) == pytest.approx(3.8991, abs=1e-4)


def test_worse_and_matching_flags_in_the_paired_rows(tmp_path):
    """A baseline with other flags than hcr's (its own flags set aside) is not compared."""
    from experiments.tables import summarize

    for seed, (mine, theirs) in enumerate(((60.0, 65.0), (61.0, 67.0), (59.0, 66.0))):
        _finished_run(tmp_path, "hcr", 200, seed, ("--n_epochs", "3", "--icr_mode", "gradient"), mine)
        _finished_run(tmp_path, "derpp", 200, seed, ("--n_epochs", "3"), theirs)
        _finished_run(tmp_path, "der", 200, seed, ("--n_epochs", "2"), theirs)
    text = summarize(tmp_path, DATASET)
    paired = [line for line in text.splitlines() if line.startswith("| 200 |")]
    # differences -5, -6, -7: mean -6, CI -6 ± 4.3027 / sqrt(3) = -6 ± 2.48
    assert paired == ["| 200 | `--n_epochs 3 --icr_mode gradient` | derpp | 3 | -6.00 | [-8.48, -3.52] | worse |"]


def test_no_paired_rows_without_hcr(tmp_path):
    from experiments.tables import summarize

    _finished_run(tmp_path, "derpp", 200, 0, (), 60.0)
    (tmp_path / f"paired_{DATASET}.csv").write_text("stale\n")
    assert "paired by seed" not in summarize(tmp_path, DATASET)
    assert not (tmp_path / f"paired_{DATASET}.csv").exists()


def test_the_buffer_figure_plots_the_tables_values(grid, tmp_path):
    from experiments.figures import accuracy_vs_buffer
    from experiments.tables import collect, summary_table

    results, _ = grid
    png = results / f"accuracy_vs_buffer_{DATASET}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 0  # written by summarize
    summary = summary_table(collect(results, DATASET), DATASET)
    plotted = accuracy_vs_buffer(summary, DATASET, tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 0
    table = _csv(results / f"summary_{DATASET}.csv")
    for setting, c in (("class-il", "class_il"), ("task-il", "task_il")):
        series, references = plotted[setting]["series"], plotted[setting]["references"]
        assert set(series) == {"derpp", "der", "hcr", "hcr --icr_mode gradient"}
        assert set(references) == {"sgd", "joint"}
        for r in table:
            label = " ".join(filter(None, [r["model"], r["flags"]]))
            mean = float(r[f"{c}_mean"])
            if r["buffer_size"] == "":
                assert references[label][0] == pytest.approx(mean)
                continue
            i = series[label]["buffer"].index(int(r["buffer_size"]))
            low, high = (float(r[f"{c}_ci95_{end}"]) if r[f"{c}_ci95_{end}"] else mean for end in ("low", "high"))
            assert series[label]["mean"][i] == pytest.approx(mean)
            assert (series[label]["low"][i], series[label]["high"][i]) == pytest.approx((low, high))
    assert plotted["class-il"]["series"]["hcr"]["buffer"] == [200, 500]
    replay_only = accuracy_vs_buffer(summary[summary["buffer_size"].notna()], DATASET, tmp_path / "r.png")
    for shown in (*plotted.values(), *replay_only.values()):  # without the references' lines too
        low, high = shown["ylim"]
        values = [v for s in shown["series"].values() for key in ("mean", "low", "high") for v in s[key]]
        assert low < min(values) and max(values) < high


def test_the_matrix_figure_of_a_runs_final_checkpoint(grid, tmp_path):
    from experiments.figures import accuracy_matrix, write_figures
    from experiments.tables import tables

    results, _ = grid
    png = results / f"matrix_{DATASET}_hcr.png"
    assert png.stat().st_size > 0  # written by summarize for hcr (derpp/200 seed 0 has no checkpoint)
    assert not (results / f"matrix_{DATASET}_derpp.png").exists()
    matrix = accuracy_matrix(MATRIX, "hcr", tmp_path / "m.png")
    assert matrix.shape == (5, 5) and matrix[4].tolist() == MATRIX[4] and matrix[1, :2].tolist() == [60.0, 94.0]
    assert all(math.isnan(matrix[t, i]) for t in range(5) for i in range(t + 1, 5))  # before training task i
    runs, table, _ = tables(results, DATASET)
    written = write_figures(results, DATASET, runs, table, tmp_path / "docs")  # elsewhere, e.g. docs/
    assert [p.name for p in written] == [f"accuracy_vs_buffer_{DATASET}.png", f"matrix_{DATASET}_hcr.png"]
    assert all(p.parent == tmp_path / "docs" and p.stat().st_size > 0 for p in written)


def test_the_accuracy_matrix_of_a_run_is_read_from_its_final_checkpoint(grid):
    from experiments.figures import matrix_run
    from experiments.runs import accuracy_matrix_of
    from experiments.tables import collect

    results, _ = grid
    runs = collect(results, DATASET)
    run = matrix_run(runs, "hcr")
    assert (run["seed"], run["buffer_size"], run["flags"]) == (0, 200, "")  # seed 0, first buffer, no flags
    assert [(r["seed"], r["buffer_size"]) for r in (matrix_run(runs, "der", seed=2), matrix_run(runs, "der", 7))] \
        == [(2, 200), (0, 200)]  # the seed asked for; without it, the lowest
    assert matrix_run(runs, "er") is None
    assert accuracy_matrix_of(results / "runs" / run["key"], "class-il") == MATRIX  # task5.pt, not task2.pt
    derpp = matrix_run(collect(results, DATASET), "derpp")
    assert accuracy_matrix_of(results / "runs" / derpp["key"], "class-il") is None
