"""Launching a grid's runs: each run is one main.py process (``experiments.runs.command``), guarded by
a lock on its folder, and marked done once main.py exits 0. Launchers: ``local`` (subprocesses,
--jobs at once, the cores and GPUs shared among them), ``submitit-local`` (submitit's local
executor, the code path of ``slurm``) and ``slurm`` (a job array; logs in <results>/submitit/). Under
submitit a job that reaches its time limit or is pre-empted is requeued (GridJob) and resumes from
main.py's checkpoint (every run starts with ``--resume auto``)."""
import argparse
import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import SimpleQueue

import submitit
import torch
from submitit.helpers import Checkpointable, DelayedSubmission

from experiments.runs import Run, command, is_done, lock_path, log_path, mark_done, run_folder

REPO = Path(__file__).resolve().parent.parent
# main.py's exit statuses when SIGINT or SIGTERM stopped it (128 + the signal); killed by a signal also counts.
INTERRUPTED = {130, 143}
# How long a submitit job whose main.py was stopped by a signal waits for submitit's requeue signal (USR2): on a
# pre-emption SLURM signals every process of the job, and SIGTERM may reach main.py before USR2 reaches the job.
PREEMPTION_WAIT_S = 90


@contextlib.contextmanager
def run_lock(path: Path):
    """An exclusive, non-blocking flock on ``path``: yields its file descriptor, or None when another
    process holds it. The file exists only while the lock is held, so no stale lock files stay behind.

    Why this is safe: the file is unlinked on release *while still locked* (then closed), and an
    acquirer that got the lock checks that the file it locked is still the one at ``path`` (same
    device and inode); if not, it locked a file that its holder has since unlinked, and it tries again
    on the path's current file. So two processes never both hold "the lock of ``path``": whoever
    holds the file at ``path`` is the only holder, and a file is unlinked only by its holder. A holder
    killed before its release leaves the file; the next holder of the path removes it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            yield None
            return
        held = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)  # the file we locked was unlinked by its previous holder: lock the one at the path now
    try:
        yield fd
    finally:
        os.unlink(path)  # still locked: nobody else holds this file, and a later acquirer re-checks the path
        os.close(fd)


def execute_run(run: Run, results: Path, threads: int | None = None, gpu: str | None = None) -> str:
    """Run one main.py: 'done', 'skipped' (finished before), 'busy' (another process runs it now),
    'interrupted' (a signal stopped main.py) or 'failed'. main.py inherits the lock, so a run whose
    caller died still guards its folder. A folder without done.json is kept: main.py --resume auto
    continues from its checkpoint (or says it starts from scratch, or that the run had finished)."""
    run_dir = run_folder(run, results)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(lock_path(run, results)) as lock:
        if lock is None:
            return "busy"
        if is_done(run, results):
            return "skipped"
        run_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        start, argv = time.time(), command(run, results)
        with open(log_path(run, results), "a") as log:  # a resumed run's log follows the interrupted one's
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}\n{shlex.join(argv)}\n")
            log.flush()
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, pass_fds=(lock,))
            try:
                code = process.wait()
            finally:
                # An exception here (submitit's requeue exits this process from its signal handler, Ctrl-C)
                # must not release the lock while main.py still runs: stop it first. Its checkpoints are
                # written atomically, so killing it loses at most the task in progress.
                if process.returncode is None:
                    process.kill()
                    process.wait()
        if code != 0:
            return "interrupted" if code in INTERRUPTED or code < 0 else "failed"
        mark_done(run, results, argv, time.time() - start)
        return "done"


class GridJob(Checkpointable):
    """One run as a submitit job. When the job reaches its time limit or is pre-empted, submitit calls
    ``checkpoint`` (on its USR2 signal) and requeues what it returns: this same job, whose main.py
    then continues with ``--resume auto`` from the run's newest checkpoint; the state lives in main.py's
    checkpoints, not in this object."""

    def __init__(self, run: Run, results: Path, threads: int | None = None, gpu: str | None = None) -> None:
        self.run, self.results, self.threads, self.gpu = run, results, threads, gpu

    def __call__(self) -> str:
        status = execute_run(self.run, self.results, self.threads, self.gpu)
        if status == "interrupted":  # a pre-emption's SIGTERM reached main.py first: wait for submitit's USR2
            time.sleep(PREEMPTION_WAIT_S)  # (its handler requeues the job and exits this process)
        return status

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        return DelayedSubmission(self)


def visible_gpus() -> list[str]:
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def launch_local(runs: list[Run], results: Path, jobs: int) -> list[tuple[str, Path]]:
    """--jobs runs at once, each with its share of the cores and GPUs (round-robin over slots)."""
    gpus, threads, slots = visible_gpus(), max(1, len(os.sched_getaffinity(0)) // jobs), SimpleQueue()
    for slot in range(jobs):
        slots.put(slot)

    def one(run: Run) -> tuple[str, Path]:
        slot = slots.get()
        try:
            status = execute_run(run, results, threads, gpus[slot % len(gpus)] if gpus else None)
        finally:
            slots.put(slot)
        print(f"{status:>11} {run.key}", flush=True)
        return status, log_path(run, results)

    pool = ThreadPoolExecutor(jobs)
    try:
        return list(pool.map(one, runs))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, start nothing new


def make_executor(args: argparse.Namespace, results: Path):
    """submitit's executor: SLURM, or its local executor (--launcher submitit-local). Its jobs import
    this module, so the repository goes on their PYTHONPATH."""
    local = args.launcher == "submitit-local"
    executor = submitit.AutoExecutor(folder=results / "submitit", cluster="local" if local else "slurm")
    setup = [f"export PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}}"]
    executor.update_parameters(name="cifar-grid", timeout_min=args.time_min, slurm_partition=args.partition,
                               gpus_per_node=0 if local else args.gpus_per_job, cpus_per_task=args.cpus_per_job,
                               mem_gb=args.mem_gb, slurm_array_parallelism=args.jobs, local_setup=setup,
                               slurm_setup=setup)
    return executor


def launch_submitit(runs: list[Run], results: Path, args: argparse.Namespace) -> list[tuple[str, Path]]:
    """One SLURM job array (at most --jobs running at once); through submitit's local executor, the
    same submission in waves of --jobs runs, with the cores and GPUs shared as by launch_local. Each
    job is a GridJob: requeued on time-out or pre-emption, it resumes from the run's checkpoint."""
    local, executor = args.launcher == "submitit-local", make_executor(args, results)
    gpus = visible_gpus() if local else []
    threads = max(1, len(os.sched_getaffinity(0)) // args.jobs) if local else args.cpus_per_job
    wave, outcomes = args.jobs if local else len(runs), []
    for first in range(0, len(runs), wave):
        chunk = runs[first:first + wave]
        with executor.batch():
            submitted = [executor.submit(GridJob(run, results, threads, gpus[i % len(gpus)] if gpus else None))
                         for i, run in enumerate(chunk)]  # one job array; the jobs get their ids on leaving
        print(f"submitted {len(chunk)} job(s): {submitted[0].job_id.split('_')[0]} (logs in {results / 'submitit'})")
        for run, job in zip(chunk, submitted, strict=True):
            try:
                status, log = job.result(), log_path(run, results)
            except Exception as e:  # the job itself died (timeouts, node failure): submitit's log says why
                status, log = "failed", job.paths.stderr
                print(f"job {job.job_id} of {run.key}: {type(e).__name__}", file=sys.stderr)
            print(f"{status:>11} {run.key}", flush=True)
            outcomes.append((status, log))
    return outcomes


def launch(todo: list[Run], results: Path, args: argparse.Namespace) -> list[tuple[str, Path]] | None:
    """Run ``todo`` with the chosen launcher; None when Ctrl-C stopped it (said on stderr)."""
    try:
        if todo and args.launcher == "local":
            return launch_local(todo, results, args.jobs)
        return launch_submitit(todo, results, args) if todo else []
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to finish the missing runs", file=sys.stderr)
        return None


def report_outcomes(todo: list[Run], outcomes: list[tuple[str, Path]],
                    diverged: Callable[[Run], bool] = lambda run: False) -> None:
    for run, (status, log) in zip(todo, outcomes, strict=True):
        if status == "failed" and diverged(run):
            print(f"DIVERGED {run.key}: non-finite loss (see {log}); it ranks last and is not run again")
        elif status == "failed":
            print(f"FAILED {run.key}: see {log}")
        elif status == "busy":
            print(f"BUSY {run.key}: another process is running it; rerun later")
        elif status == "interrupted":
            print(f"INTERRUPTED {run.key}: see {log}; rerun the same command to resume it from its checkpoint")
