"""Tests of utils/metrics.py (docs/method.md, "Evaluation and metrics") on hand-computed accuracy matrices.

Row t holds R[t][0..t]; rows t < T-1 also hold, at index t+1, the accuracy on task t+1
measured just before training it (so row t has t+2 entries, the last row T entries).
"""
import copy
import csv

import pytest

from utils.loggers import append_row, result_row
from utils.metrics import backward_transfer, forgetting, forward_transfer
from utils.training import History

# T = 2
R2 = [[70.0, 5.0],
      [20.0, 90.0]]
B2 = [10.0, 8.0]

# T = 3
R3 = [[90.0, 12.0],
      [60.0, 80.0, 9.0],
      [40.0, 50.0, 70.0]]
B3 = [10.0, 11.0, 7.0]

# T = 4: column 0 peaks after task 2 (55 > the diagonal 50); column 1 peaks at the
# pre-task entry R[0][1] = 85, before task 1 was even trained.
R4 = [[50.0, 85.0],
      [45.0, 80.0, 20.0],
      [55.0, 60.0, 75.0, 30.0],
      [30.0, 40.0, 65.0, 90.0]]
B4 = [10.0, 12.0, 14.0, 16.0]

# T = 4 with negative entries, where the zero padding of the short rows matters:
# padded row 0 is [-1, -2, 0, 0], so the max of column 2 is the padded 0, not -5.
RNEG = [[-1.0, -2.0],
        [-3.0, -4.0, -5.0],
        [-6.0, -7.0, -8.0, -9.0],
        [-10.0, -11.0, -12.0, -13.0]]


@pytest.mark.parametrize("results,expected", [
    (R2, 20.0 - 70.0),                                        # -50
    (R3, ((40.0 - 90.0) + (50.0 - 80.0)) / 2),                # (-50 - 30) / 2 = -40
    (R4, ((30.0 - 50.0) + (40.0 - 80.0) + (65.0 - 75.0)) / 3),  # (-20 - 40 - 10) / 3 = -23.33
    (RNEG, ((-10.0 + 1.0) + (-11.0 + 4.0) + (-12.0 + 8.0)) / 3),  # (-9 - 7 - 4) / 3 = -6.67
])
def test_backward_transfer(results, expected):
    assert backward_transfer(results) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("results,random_results,expected", [
    (R2, B2, 5.0 - 8.0),                                              # -3
    (R3, B3, ((12.0 - 11.0) + (9.0 - 7.0)) / 2),                      # (1 + 2) / 2 = 1.5
    (R4, B4, ((85.0 - 12.0) + (20.0 - 14.0) + (30.0 - 16.0)) / 3),    # (73 + 6 + 14) / 3 = 31
])
def test_forward_transfer_uses_the_pre_task_entries(results, random_results, expected):
    assert forward_transfer(results, random_results) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("results,expected", [
    (R2, 70.0 - 20.0),                                   # 50
    (R3, ((90.0 - 40.0) + (80.0 - 50.0)) / 2),           # (50 + 30) / 2 = 40
    # col 0: max(50, 45, 55, 30) = 55 -> 25; col 1: max(85, 80, 60, 40) = 85 -> 45;
    # col 2: max(0, 20, 75, 65) = 75 -> 10; mean 80 / 3
    (R4, (25.0 + 45.0 + 10.0) / 3),
    # col 0: -1 - (-10) = 9; col 1: -2 - (-11) = 9; col 2: 0 (padding) - (-12) = 12; mean 10
    (RNEG, (9.0 + 9.0 + 12.0) / 3),
])
def test_forgetting(results, expected):
    assert forgetting(results) == pytest.approx(expected, abs=1e-12)


def test_forgetting_with_zero_forgetting_matrix():
    # every task keeps its accuracy: f_i = 0
    results = [[60.0, 0.0], [60.0, 70.0, 0.0], [60.0, 70.0, 80.0]]
    assert forgetting(results) == 0.0
    assert backward_transfer(results) == 0.0


def test_metrics_do_not_modify_their_inputs():
    for results, random_results in ((R2, B2), (R3, B3), (R4, B4), (RNEG, B4)):
        r, b = copy.deepcopy(results), copy.deepcopy(random_results)
        backward_transfer(r)
        forward_transfer(r, b)
        forgetting(r)
        assert r == results and b == random_results
        assert [len(row) for row in r] == [len(row) for row in results]


def test_metrics_accept_tuples():
    as_tuples = tuple(tuple(row) for row in R4)
    assert forgetting(as_tuples) == pytest.approx(80.0 / 3)
    assert backward_transfer(as_tuples) == pytest.approx(-70.0 / 3)
    assert forward_transfer(as_tuples, tuple(B4)) == pytest.approx(31.0)


def test_history_mean_accs_leave_out_the_pre_task_entries():
    history = History()
    history.results["class-il"] = copy.deepcopy(R4)
    # (50), (45 + 80) / 2, (55 + 60 + 75) / 3, (30 + 40 + 65 + 90) / 4
    assert history.mean_accs("class-il") == pytest.approx([50.0, 62.5, 190.0 / 3, 56.25])
    assert history.results["class-il"] == R4


def test_result_row_columns_and_values():
    args = {"lr": 0.1, "seed": 3, "model": "sgd", "device": "auto"}  # what result_arguments gives
    run = {"run_id": "abc", "device": "cpu"}
    row = result_row([50.0, 62.5, 190.0 / 3, 56.25], copy.deepcopy(R4), list(B4), args, run, (0.5, 240.5))
    assert list(row) == ["task1", "task2", "task3", "task4", "forward_transfer", "backward_transfer",
                         "forgetting", "loss", "released_loss", "run_id", "device", "lr", "seed", "model"]
    assert (row["loss"], row["released_loss"]) == (0.5, 240.5)
    assert row["device"] == "cpu"  # the device the run used, not the argument "auto"
    assert row["task3"] == pytest.approx(190.0 / 3)
    assert row["forward_transfer"] == pytest.approx(31.0)
    assert row["backward_transfer"] == pytest.approx(-70.0 / 3)
    assert row["forgetting"] == pytest.approx(80.0 / 3)
    assert (row["lr"], row["seed"], row["model"]) == (0.1, 3, "sgd")


def test_append_row_adds_rows_and_new_columns(tmp_path):
    path = tmp_path / "a" / "b" / "mean_accs.csv"
    append_row(path, {"task1": 1.5, "lr": 0.1})
    append_row(path, {"task1": 2.5, "lr": 0.2, "alpha": 0.3})
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["task1", "lr", "alpha"], ["1.5", "0.1", ""], ["2.5", "0.2", "0.3"]]


def test_append_row_with_a_unique_column_never_writes_a_row_twice(tmp_path):
    path = tmp_path / "mean_accs.csv"
    assert append_row(path, {"run_id": "a", "task1": 1.0}, unique="run_id")
    assert not append_row(path, {"run_id": "a", "task1": 9.0}, unique="run_id")
    assert append_row(path, {"run_id": "b", "task1": 2.0}, unique="run_id")
    with open(path, newline="") as f:
        assert [(r["run_id"], r["task1"]) for r in csv.DictReader(f)] == [("a", "1.0"), ("b", "2.0")]


def test_results_files_are_readable_and_leave_no_lock_or_temporary_file(tmp_path):
    import os
    import stat

    path = tmp_path / "mean_accs.csv"
    (tmp_path / ".mean_accs.x1y2z3").write_text("a killed writer's half row")
    previous = os.umask(0o022)
    try:
        append_row(path, {"task1": 1.0})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean_accs.csv"]
