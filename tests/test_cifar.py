"""Tests of cifar.py: the planned grid, the launchers, resuming, failures and the summary table."""
import contextlib
import csv
import fcntl
import io
import json
import os
import shlex
import shutil
import statistics
import sys
from pathlib import Path

import pytest

import cifar
from experiments import launch, runs
from utils import best_args

FMNIST_EXTRA = ["--debug_mode", "--offline", "--n_epochs", "1"]
GRID = ["--dataset", "seq-fmnist", "--models", "sgd", "er", "--buffers", "200"]


def _main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cifar.main(argv)
    return code, out.getvalue()


def _commands(output: str) -> list[list[str]]:
    """The main.py command lines that --dry_run prints: this interpreter, main.py's absolute path, arguments."""
    prefix = shlex.join([sys.executable, str(runs.MAIN)]) + " "
    return [shlex.split(line.split("  #")[0]) for line in output.splitlines() if line.startswith(prefix)]


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


# --- the planned grid ----------------------------------------------------------------------


def test_dry_run_lists_the_selected_grid(tmp_path):
    code, out = _main(["--dataset", "seq-fmnist", "--models", "sgd", "er", "derpp", "--buffers", "200", "500",
                       "--seeds", "0", "1", "2", "--results", str(tmp_path), "--dry_run", "--", "--n_epochs", "1",
                       "--debug_mode"])
    assert code == 0
    commands = _commands(out)
    assert len(commands) == 1 * 3 + 2 * 2 * 3  # buffer-free models once per seed, not once per buffer
    assert "15 runs" in out
    planned = sorted((_flag(c, "--model"), _flag(c, "--buffer_size"), _flag(c, "--seed")) for c in commands)
    assert planned == sorted([("sgd", None, s) for s in "012"]
                             + [(m, b, s) for m in ("er", "derpp") for b in ("200", "500") for s in "012"])
    for argv in commands:
        assert argv[-3:] == ["--n_epochs", "1", "--debug_mode"]  # the flags after --, verbatim, last
        assert _flag(argv, "--dataset") == "seq-fmnist"
        assert "--load_best_args" in argv and "--csv_log" in argv and _flag(argv, "--resume") == "auto"
        assert Path(_flag(argv, "--results_path")).parent == tmp_path / "runs"
    assert len({_flag(c, "--results_path") for c in commands}) == len(commands)  # one folder (key) per run
    assert not tmp_path.joinpath("runs").exists()  # nothing ran


def test_dry_run_defaults_are_the_paper_grid_and_the_released_preset(tmp_path):
    code, out = _main(["--dry_run", "--results", str(tmp_path)])
    commands = _commands(out)
    assert code == 0 and len(commands) == 2 * 10 + 4 * 3 * 10
    cells = {(_flag(c, "--model"), _flag(c, "--buffer_size")) for c in commands}
    assert cells == {("sgd", None), ("joint", None)} | {
        (m, b) for m in ("er", "der", "derpp", "hcr") for b in ("200", "500", "5120")}
    assert {_flag(c, "--dataset") for c in commands} == {"seq-cifar10"}
    assert {_flag(c, "--seed") for c in commands} == {str(s) for s in range(10)}

    code, out = _main(["--preset", "released", "--dry_run", "--results", str(tmp_path)])
    [argv] = _commands(out)
    assert code == 0
    assert [_flag(argv, f) for f in ("--model", "--dataset", "--buffer_size", "--seed", "--lr", "--sigmoid")] == [
        "hcr", "seq-cifar10", "200", "60", "0.3", "0.3"]
    assert "--tensorboard" in argv and "--csv_log" in argv


def test_bad_selections_are_refused_before_running(tmp_path, capsys):
    for argv in (["--models", "er", "--", "--seed", "3"],  # cifar.py sets the seed itself
                 ["--models", "er", "--", "--resume=x.pt"],  # and --resume auto
                 ["--dataset", "seq-fmnist", "--models", "er", "--buffers", "300"]):  # no best arguments
        with pytest.raises(SystemExit) as exit_info:
            cifar.main([*argv, "--results", str(tmp_path), "--dry_run"])
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "--resume=x.pt" in err


@pytest.mark.parametrize("extra, message", [
    (["--lr", "-5"], "cifar.py: error: argument --lr: must be positive and finite, got -5"),
    (["--alpha", "0.3"], "cifar.py: error: unrecognized arguments: --alpha 0.3"),  # sgd has no alpha
    (["--icr_mode", "exact"], "cifar.py: error: unrecognized arguments: --icr_mode exact"),
])
def test_bad_pass_through_flags_fail_the_grid_before_any_run(tmp_path, capsys, monkeypatch, extra, message):
    """main.py's own parser checks the flags after -- once, before anything runs or is written."""
    monkeypatch.setattr(launch, "execute_run", lambda *a, **k: pytest.fail("a run was started"))
    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exit_info:
        cifar.main([*GRID, "--seeds", "0", "--results", str(results), "--", *extra])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert not results.exists()


def test_unwritable_results_folder_is_one_line_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(launch, "execute_run", lambda *a, **k: pytest.fail("a run was started"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    for folder in (blocker / "results", Path("/proc/nope")):
        code, out = _main([*GRID, "--seeds", "0", "--results", str(folder), "--", *FMNIST_EXTRA])
        assert code == 2 and out == ""
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith(f"cifar.py: error: results folder {folder} is not writable")


# --- the local launcher, with a stand-in for main.py --------------------------------------

FAKE_MAIN = ("import os, sys; print(os.environ.get('OMP_NUM_THREADS'), os.environ.get('CUDA_VISIBLE_DEVICES')); "
             "sys.exit({'ok': 0, 'bad': 1, 'term': 143}[sys.argv[1]])")


def test_local_launcher_threads_gpus_failures_and_locks(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "command", lambda run, results: [sys.executable, "-c", FAKE_MAIN, run.model])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    runs = [cifar.Run("seq-fmnist", model, None, seed) for model, seed in (("ok", 0), ("bad", 0), ("ok", 1),
                                                                           ("term", 0))]
    checkpoint = tmp_path / "runs" / runs[2].key / "checkpoints" / "task2.pt"  # interrupted before its done.json
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("the state main.py --resume auto continues from\n")
    (checkpoint.parents[1] / "log.txt").write_text("log of the interrupted attempt\n")

    outcomes = launch.launch_local(runs, tmp_path, jobs=2)
    assert [status for status, _ in outcomes] == ["done", "failed", "done", "interrupted"]
    logs = [log.read_text().splitlines()[-1].split() for _, log in outcomes]
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert all(line[0] == threads for line in logs)
    assert {line[1] for line in logs} <= {"3", "5"}  # one visible GPU per run, from the slots
    assert checkpoint.exists()  # kept for --resume auto
    assert outcomes[2][1].read_text().startswith("log of the interrupted attempt\n")  # the log goes on
    assert not (tmp_path / "runs" / runs[1].key / "done.json").exists()
    done = json.loads((tmp_path / "runs" / runs[0].key / "done.json").read_text())
    assert (done["model"], done["seed"], done["buffer"]) == ("ok", 0, None)
    assert list(tmp_path.glob("runs/*.lock")) == []  # no lock files once the runs are over

    assert launch.execute_run(runs[0], tmp_path) == "skipped"
    with launch.run_lock(tmp_path / "runs" / f"{runs[1].key}.lock") as held:  # another process runs it now
        assert held is not None
        assert launch.execute_run(runs[1], tmp_path) == "busy"
    assert list(tmp_path.glob("runs/*.lock")) == []


def test_run_lock_is_never_held_twice_across_an_unlink(tmp_path, monkeypatch):
    """A process that opened the lock file just before its holder unlinked it gets the flock on the
    dead file: it must notice and lock the path's new file, so that a third process finds it busy."""
    path = tmp_path / "run.lock"
    with launch.run_lock(path) as first:
        assert first is not None
        late = os.open(path, os.O_RDWR)  # a second process's open(), before the first one's release
    assert not path.exists()  # released: unlinked while still locked
    real_open, calls = os.open, []

    def open_late_first(*args, **kwargs):
        calls.append(args)
        return late if len(calls) == 1 else real_open(*args, **kwargs)

    monkeypatch.setattr(launch.os, "open", open_late_first)
    with launch.run_lock(path) as second:
        assert len(calls) == 2  # it locked the unlinked file, saw that, and locked the path's new one
        assert second is not None and os.fstat(second).st_ino == os.stat(path).st_ino
        with launch.run_lock(path) as third:
            assert third is None  # busy: one holder at a time
        with open(path) as f:
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not path.exists()


def test_slurm_executor_parameters(tmp_path, monkeypatch):
    fake_srun = tmp_path / "bin" / "srun"  # submitit's SLURM executor only checks that srun exists
    fake_srun.parent.mkdir()
    fake_srun.write_text("#!/bin/sh\nexit 1\n")
    fake_srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_srun.parent}{os.pathsep}{os.environ['PATH']}")
    args, _ = cifar.parse_args(["--launcher", "slurm", "--partition", "gpu", "--time_min", "90", "--gpus_per_job", "2",
                                "--cpus_per_job", "8", "--jobs", "3", "--results", str(tmp_path)])
    executor = launch.make_executor(args, tmp_path)
    assert executor.cluster == "slurm"
    script = executor._executor._make_submission_file_text("COMMAND", "uid")
    for line in ("--partition=gpu", "--time=90", "--gpus-per-node=2", "--cpus-per-task=8", "--job-name=cifar-grid",
                 f"--output={tmp_path / 'submitit'}", f"export PYTHONPATH={launch.REPO}"):
        assert line in script
    assert executor._executor.parameters["array_parallelism"] == 3


# --- a real tiny grid on Fashion-MNIST through submitit's local executor --------------------


def _snapshot(results: Path) -> dict[str, int]:
    files = [*results.glob("runs/*/log.txt"), *results.glob("runs/*/done.json"), *results.glob("runs/*/*/*/*/*.csv")]
    return {str(p): p.stat().st_mtime_ns for p in files}


BROKEN = cifar.Run("seq-fmnist", "sgd", None, 0, (*FMNIST_EXTRA, "--batch_size", "100000"))


@pytest.fixture(scope="module")
def fmnist_grid(fmnist_dir, tmp_path_factory):
    """Three invocations over one results folder: (A) seed 0 of sgd and er/200 plus a run that
    main.py refuses at run time (its batch is larger than a task), (B) seeds 0 and 1, which must run
    only seed 1, (C) the same again."""
    results = tmp_path_factory.mktemp("grid")
    common = [*GRID, "--results", str(results), "--launcher", "submitit-local", "--jobs", "2"]
    real_plan, found = cifar.plan, {}

    def plan_with_a_broken_run(*args, **kwargs):
        runs = real_plan(*args, **kwargs)
        return [*runs, BROKEN]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifar, "plan", plan_with_a_broken_run)
        found["A"] = _main([*common, "--seeds", "0", "--", *FMNIST_EXTRA])
    found["snapshot A"] = _snapshot(results)
    found["B"] = _main([*common, "--seeds", "0", "1", "--", *FMNIST_EXTRA])
    found["snapshot B"] = _snapshot(results)
    found["C"] = _main([*common, "--seeds", "0", "1", "--", *FMNIST_EXTRA])
    found["snapshot C"] = _snapshot(results)
    return results, found


def test_failing_run_is_reported_and_the_others_finish(fmnist_grid):
    results, found = fmnist_grid
    code, out = found["A"]
    assert code == 1
    broken = BROKEN
    log = results / "runs" / broken.key / "log.txt"
    assert f"FAILED {broken.key}: see {log}" in out
    assert "exceeds the 12000 training examples" in log.read_text()
    assert not (log.parent / "done.json").exists()
    assert len(list(results.glob("runs/*-s0-*/done.json"))) == 2  # sgd and er finished all the same
    assert "| sgd | - |" in out and "| er | 200 |" in out  # the table of what finished


def test_rerun_runs_only_what_is_missing(fmnist_grid):
    results, found = fmnist_grid
    code, out = found["B"]
    assert code == 0 and "FAILED" not in out
    assert "4 runs: 2 finished before (skipped), 2 to run" in out
    before, after = found["snapshot A"], found["snapshot B"]
    assert all(after[path] == mtime for path, mtime in before.items())  # seed 0: not touched
    assert len(list(results.glob("runs/*/done.json"))) == 4


def test_complete_rerun_skips_everything(fmnist_grid):
    _, found = fmnist_grid
    code, out = found["C"]
    assert code == 0 and "4 runs: 4 finished before (skipped), 0 to run" in out
    assert "submitted" not in out
    assert found["snapshot C"] == found["snapshot B"]


def test_table_equals_the_csv_rows_by_hand(fmnist_grid):
    results, found = fmnist_grid
    rows = {}
    for setting in ("class-il", "task-il"):
        for path in results.glob(f"runs/*/{setting}/seq-fmnist/*/mean_accs.csv"):
            with open(path, newline="") as f:
                [row] = list(csv.DictReader(f))  # exactly one row per run
            rows.setdefault(setting, []).append(row)
    expected = {}
    for model, buffer in (("sgd", ""), ("er", "200")):
        mine = {s: [r for r in rows[s] if r["model"] == model and r.get("buffer_size", "") == buffer]
                for s in rows}
        class_il = [float(r["task5"]) for r in mine["class-il"]]
        task_il = [float(r["task5"]) for r in mine["task-il"]]
        assert sorted(r["seed"] for r in mine["class-il"]) == ["0", "1"]
        expected[model] = {
            "class_il_mean": statistics.mean(class_il), "class_il_std": statistics.stdev(class_il),
            "task_il_mean": statistics.mean(task_il), "task_il_std": statistics.stdev(task_il),
            "bwt": statistics.mean(float(r["backward_transfer"]) for r in mine["class-il"]),
            "forgetting": statistics.mean(float(r["forgetting"]) for r in mine["class-il"]), "seeds": 2}

    with open(results / "summary_seq-fmnist.csv", newline="") as f:
        table = {r["model"]: r for r in csv.DictReader(f)}
    assert list(table) == ["sgd", "er"]
    assert (table["sgd"]["buffer_size"], table["er"]["buffer_size"]) == ("", "200")
    for model, values in expected.items():
        for column, value in values.items():
            assert float(table[model][column]) == pytest.approx(value, abs=1e-9), (model, column)
    markdown = (results / "summary_seq-fmnist.md").read_text()
    er = expected["er"]
    assert "**WARNING: the rows marked DEBUG ran with --debug_mode" in markdown  # the grid ran --debug_mode
    flags = "**DEBUG (4 batches per epoch): not a result** `--debug_mode --n_epochs 1`"  # --offline: plumbing
    ci = {s: 12.706205 * er[f"{s}_std"] / 2 ** 0.5 for s in ("class_il", "task_il")}  # t_{0.975,1} s / sqrt(2)
    assert (f"| er | 200 | {flags} | {er['class_il_mean']:.2f} ± {er['class_il_std']:.2f} | "
            f"[{er['class_il_mean'] - ci['class_il']:.2f}, {er['class_il_mean'] + ci['class_il']:.2f}] | "
            f"{er['task_il_mean']:.2f} ± {er['task_il_std']:.2f} | "
            f"[{er['task_il_mean'] - ci['task_il']:.2f}, {er['task_il_mean'] + ci['task_il']:.2f}] | "
            f"{er['bwt']:.2f} | {er['forgetting']:.2f} | 2 |") in markdown
    assert markdown in found["C"][1]  # printed as well

    code, out = _main(["--summarize", "--dataset", "seq-fmnist", "--results", str(results)])
    assert code == 0 and markdown in out


def test_the_matrix_figure_reads_a_real_runs_final_checkpoint(fmnist_grid, tmp_path):
    """experiments/figures.py finds the final checkpoint of a grid run and its matrix holds the CSV row's means."""
    from experiments.figures import accuracy_matrix, write_figures
    from experiments.runs import accuracy_matrix_of
    from experiments.tables import tables

    results, _ = fmnist_grid
    assert (results / "accuracy_vs_buffer_seq-fmnist.png").stat().st_size > 0  # written by the summary
    [folder] = [p.parent for p in results.glob("runs/*/done.json") if json.loads(p.read_text())["model"] == "er"
                and json.loads(p.read_text())["seed"] == 0]
    rows = accuracy_matrix_of(folder, "class-il")
    with open(folder / "class-il" / "seq-fmnist" / "er" / "mean_accs.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert len(rows) == 5
    for t, accs in enumerate(rows):
        assert statistics.mean(accs[: t + 1]) == pytest.approx(float(row[f"task{t + 1}"]), abs=1e-9)
    matrix = accuracy_matrix(rows, "er", tmp_path / "m.png")
    assert matrix[4, 0] == rows[4][0] and (tmp_path / "m.png").stat().st_size > 0
    runs, table, _ = tables(results, "seq-fmnist")
    written = write_figures(results, "seq-fmnist", runs, table, tmp_path / "docs", models=("er", "sgd"))
    assert [p.name for p in written] == ["accuracy_vs_buffer_seq-fmnist.png", "matrix_seq-fmnist_er.png",
                                         "matrix_seq-fmnist_sgd.png"]


def test_changed_best_arguments_make_new_runs_and_leave_the_old_ones_out(fmnist_grid, tmp_path, monkeypatch,
                                                                        capsys):
    results = tmp_path / "grid"
    shutil.copytree(fmnist_grid[0], results)
    er = dict(best_args.BEST_ARGS["seq-fmnist"]["er"])
    er[200] = {**er[200], "lr": er[200]["lr"] * 2}
    monkeypatch.setitem(best_args.BEST_ARGS["seq-fmnist"], "er", er)

    code, out = _main([*GRID, "--seeds", "0", "1", "--results", str(results), "--dry_run", "--", *FMNIST_EXTRA])
    assert code == 0 and "4 runs, 2 of them finished" in out  # sgd is unchanged, er runs again
    assert all(line.endswith("# done") == ("--model sgd" in line) for line in out.splitlines()[:-1])

    code, out = _main(["--summarize", "--dataset", "seq-fmnist", "--results", str(results)])
    assert code == 0 and "| sgd | - |" in out and "| er |" not in out
    assert "left out 2 finished run(s)" in capsys.readouterr().err
