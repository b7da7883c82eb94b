"""A grid job pre-empted or timed out under submitit is requeued (submitit's checkpoint mechanism:
experiments.launch.GridJob) and its main.py resumes from the run's checkpoint (--resume auto), ending with the
same CSV row as an uninterrupted run. Through submitit's local executor, the code path of SLURM."""
import contextlib
import csv
import io
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import cifar
from experiments import runs
from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow  # end-to-end: starts main.py, cifar.py or a script as a process

# derpp with a buffer (its state is in the checkpoint too); 40 epochs of 4 batches make a task last
# a few tenths of a second, long enough to stop main.py in the middle of the run.
EXTRA = ["--debug_mode", "--offline", "--n_epochs", "40"]
GRID = ["--dataset", "seq-fmnist", "--models", "derpp", "--buffers", "200", "--seeds", "0"]
RESULT_COLUMNS = ["task1", "task2", "task3", "task4", "task5", "forward_transfer", "backward_transfer", "forgetting"]


def _wait(condition, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError("condition not met in time")


def _main_py(results: Path) -> int | None:
    """The pid of the (live) main.py of a run under ``results``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[1] == bytes(runs.MAIN) and any(a.startswith(bytes(results)) for a in argv):
            return int(entry.name)
    return None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _newest_task(run_dir: Path) -> int:
    done = [int(m.group(1)) for p in run_dir.glob("checkpoints/**/task*.pt") if (m := re.fullmatch(r"task(\d+)\.pt",
                                                                                                   p.name))]
    return max(done, default=-1)


def _interrupt_twice(results: Path, run_dir: Path, seen: dict) -> None:
    """Stop the run's main.py in the middle of the run twice: (1) a pre-emption as SLURM delivers it
    (SIGTERM to every process of the job, main.py stops and exits 143, then submitit's USR2 to the
    job: submitit's SlurmJob._interrupt), (2) a time limit (USR2 to the job while main.py runs). The
    job gets the signal itself, as from SLURM or from the local executor's controller at a time-out:
    submitit 1.5.4's LocalJob._interrupt() signals the controller, which has no handler for it and dies."""
    try:
        main = _wait(lambda: _newest_task(run_dir) >= 1 and _main_py(results))
        os.kill(main, signal.SIGSTOP)  # hold it in the middle of the run
        seen["first"], job = _newest_task(run_dir), _parent(main)
        os.kill(job, signal.SIGTERM)  # submitit's handler lets the job live on
        os.kill(main, signal.SIGTERM)
        os.kill(main, signal.SIGCONT)
        _wait(lambda: not _alive(main))  # main.py exits 143 before the job hears of the pre-emption,
        time.sleep(2)  # which comes a while later (a job that returned at once would be over by now)
        os.kill(job, signal.SIGUSR2)

        again = _wait(lambda: (pid := _main_py(results)) not in (None, main) and _newest_task(run_dir) > seen["first"]
                      and pid)
        os.kill(again, signal.SIGSTOP)
        seen["second"] = _newest_task(run_dir)
        os.kill(_parent(again), signal.SIGUSR2)  # the time limit is near: the job stops main.py itself
    except Exception as e:  # reported by the test
        seen["error"] = e


def _row(run_dir: Path, setting: str) -> dict:
    [path] = run_dir.glob(f"{setting}/seq-fmnist/derpp/mean_accs.csv")
    with open(path, newline="") as f:
        [row] = list(csv.DictReader(f))  # one row: never written twice
    return {column: row[column] for column in RESULT_COLUMNS}


def test_preempted_and_timed_out_jobs_are_requeued_and_resume(tmp_path, fmnist_dir):
    results, reference = tmp_path / "grid", tmp_path / "reference"
    [run] = cifar.plan("seq-fmnist", ["derpp"], [200], [0], EXTRA)
    run_dir = results / "runs" / run.key
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))  # as the grid's two jobs get (same float sums)
    env = {**subprocess_env(), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    with open(tmp_path / "reference.log", "w") as log:  # the same run, uninterrupted, meanwhile
        uninterrupted = subprocess.Popen(cifar.command(run, reference), stdout=log, stderr=subprocess.STDOUT, env=env)
    seen = {}
    watcher = threading.Thread(target=_interrupt_twice, args=(results, run_dir, seen), daemon=True)
    watcher.start()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cifar.main([*GRID, "--results", str(results), "--launcher", "submitit-local", "--jobs", "2", "--",
                           *EXTRA])
    watcher.join(timeout=10)
    assert uninterrupted.wait(timeout=120) == 0
    assert "error" not in seen, seen
    assert code == 0, out.getvalue()
    assert f"   done {run.key}" in out.getvalue()
    assert 1 <= seen["first"] < seen["second"] < 5  # both times in the middle of the run

    log = (run_dir / "log.txt").read_text()
    assert len(re.findall(r"^# \d{4}-", log, flags=re.M)) == 3  # three attempts, one log
    assert f"resumed at task {seen['first'] + 1} of 5" in log
    assert f"resumed at task {seen['second'] + 1} of 5" in log
    [job_log] = results.glob("submitit/*_log.out")
    assert job_log.read_text().count("Requeued job") == 2  # submitit's own requeue, twice
    assert (run_dir / "done.json").exists()
    assert list(results.glob("runs/*.lock")) == []
    for setting in ("class-il", "task-il"):
        assert _row(run_dir, setting) == _row(reference / "runs" / run.key, setting)
