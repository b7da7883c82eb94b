"""Run a grid of main.py experiments on any dataset (best arguments) and tabulate it; the name is the
released code's, whose grid was Seq-CIFAR-10.

    python cifar.py --dry_run                              # the Seq-CIFAR-10 grid: 6 models, 3 buffers, seeds 0-9
    python cifar.py --dataset seq-fmnist --models sgd er --buffers 200 --seeds 0 1 --jobs 2 -- --n_epochs 1
    python cifar.py --summarize --dataset seq-fmnist       # the table of the finished runs only
    python cifar.py --preset released                      # the released cifar.py's single run
    python cifar.py --search --dataset seq-fmnist --models er der derpp hcr --buffers 200 500 --budget 12

Everything after ``--`` is passed to every main.py run verbatim. Each run has a key (dataset, model,
buffer, seed and a hash of all its arguments, the values utils/best_args.py gives it included) and a
folder ``<results>/runs/<key>/`` holding its log.txt, its own CSV files and checkpoints (main.py
--results_path) and, once main.py has exited 0, done.json. A run with a done.json is skipped; every run
is started with ``--resume auto``, so a run folder without done.json (an interrupted, pre-empted or
killed run) is kept and the run continues from its newest checkpoint; main.py writes a run's CSV row
once, so every finished run contributes exactly one row. When an entry of utils/best_args.py changes,
its runs get new keys: they run again, and the table leaves out the runs made with the old values.
Launchers: ``local`` (subprocesses, --jobs at once), ``submitit-local`` (submitit's local executor,
the code path of ``slurm``) and ``slurm`` (a job array; logs in <results>/submitit/). Under submitit a
job that reaches its time limit or is pre-empted is requeued (submitit's checkpoint mechanism,
GridJob) and resumes from main.py's checkpoint.
The table (utils/grid_table.py): mean and sample standard deviation (ddof=1) over seeds of the accuracy
after the last task, with every flag that changes the experiment in its row.
--search: a hyper-parameter search on the validation split through the same runs, launchers and
resumption, in <results>/search/ (utils/search.py; docs/usage.md, "Searches").
"""
import argparse
import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import SimpleQueue

from submitit.helpers import Checkpointable, DelayedSubmission

from utils.errors import UserError
from utils.grid import PAPER_MODELS, Run, entry_name, plan
from utils.grid_table import datasets_in, summarize
from utils.loggers import check_writable
from utils.status import plural

REPO = Path(__file__).resolve().parent
MAIN = REPO / "main.py"
DEFAULT_DATASET = "seq-cifar10"
# Runs arguments that cifar.py sets itself; passing them after -- would break the grid.
MANAGED = ("--model", "--dataset", "--buffer_size", "--seed", "--load_best_args", "--csv_log", "--results_path",
           "--resume")
# main.py's exit statuses when SIGINT or SIGTERM stopped it (128 + the signal); killed by a signal also counts.
INTERRUPTED = {130, 143}
# How long a submitit job whose main.py was stopped by a signal waits for submitit's requeue signal (USR2): on a
# pre-emption SLURM signals every process of the job, and SIGTERM may reach main.py before USR2 reaches the job.
PREEMPTION_WAIT_S = 90
PRESETS = {  # the released cifar.py: one run with its own hyper-parameters (docs/method.md, "Best hyper-parameters")
    "released": {"dataset": "seq-cifar10", "models": ["hcr"], "buffers": [200], "seeds": [60],
                 "extra": ["--lr", "0.3", "--alpha", "0.5", "--beta", "0.5", "--gamma", "0.5", "--sigmoid", "0.3",
                           "--batch_size", "32", "--minibatch_size", "32", "--n_epochs", "50", "--tensorboard"]},
}


def command(run: Run, results: Path) -> list[str]:
    """The run's main.py command line: this interpreter and main.py's absolute path, so that it runs as
    printed from any folder; ``--resume auto`` continues an interrupted run from its checkpoint. A
    search run (utils.search.SearchRun) gives every value itself: no --load_best_args."""
    buffer = [] if run.buffer is None else ["--buffer_size", str(run.buffer)]
    best = ["--load_best_args"] if getattr(run, "load_best_args", True) else []
    return [sys.executable, str(MAIN), "--model", run.model, "--dataset", run.dataset, *buffer, *best,
            "--seed", str(run.seed), "--csv_log", "--resume", "auto", "--results_path", str(results / "runs" / run.key),
            *run.extra]


def is_done(run: Run, results: Path) -> bool:
    return (results / "runs" / run.key / "done.json").exists()


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
    run_dir = results / "runs" / run.key
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir.parent / f"{run.key}.lock") as lock:
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
        with open(run_dir / "log.txt", "a") as log:  # a resumed run's log follows the interrupted one's
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
        info = {"key": run.key, "dataset": run.dataset, "model": run.model, "buffer": run.buffer, "seed": run.seed,
                "extra": list(run.extra), "command": argv, "seconds": round(time.time() - start, 1)}
        (run_dir / "done.json.tmp").write_text(json.dumps(info, indent=1) + "\n")
        os.replace(run_dir / "done.json.tmp", run_dir / "done.json")
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
    import torch

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
        return status, results / "runs" / run.key / "log.txt"

    pool = ThreadPoolExecutor(jobs)
    try:
        return list(pool.map(one, runs))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, start nothing new


def make_executor(args: argparse.Namespace, results: Path):
    """submitit's executor: SLURM, or its local executor (--launcher submitit-local). Its jobs import
    this module, so the repository goes on their PYTHONPATH."""
    import submitit

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
                status, log = job.result(), results / "runs" / run.key / "log.txt"
            except Exception as e:  # the job itself died (timeouts, node failure): submitit's log says why
                status, log = "failed", job.paths.stderr
                print(f"job {job.job_id} of {run.key}: {type(e).__name__}", file=sys.stderr)
            print(f"{status:>11} {run.key}", flush=True)
            outcomes.append((status, log))
    return outcomes


def build_parser():
    from datasets import get_all_datasets
    from models import get_all_models
    from utils.args import CLIParser, non_negative_int, positive_int

    parser = CLIParser(prog="cifar.py", allow_abbrev=False,
                       description="Run a grid of main.py experiments on any dataset (best arguments) and tabulate "
                       "it; arguments after -- go to every run (docs/usage.md, 'Grids').")
    parser.add_argument("--dataset", default=None, choices=list(get_all_datasets()),
                        help=f"Dataset of the grid (default: {DEFAULT_DATASET}); with --summarize, the dataset to "
                             "tabulate (default: every dataset with finished runs in --results).")
    parser.add_argument("--models", nargs="+", default=None, choices=list(get_all_models()),
                        help=f"Models of the grid (default: those of {' '.join(PAPER_MODELS)} with best arguments "
                             "on --dataset).")
    parser.add_argument("--buffers", nargs="+", type=positive_int, default=[200, 500, 5120],
                        help="Buffer sizes of the replay models (buffer-free models run once).")
    parser.add_argument("--seeds", nargs="+", type=non_negative_int, default=None,
                        help="Seeds of every (model, buffer) (default: 0 to 9; --search sets its own).")
    parser.add_argument("--results", default="results",
                        help="Results folder: runs/<key>/ per run, the summary files at the top.")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="released: the released cifar.py's single run (seq-cifar10, hcr, buffer 200, seed 60, "
                             "lr 0.3, alpha = beta = gamma = 0.5, sigmoid 0.3, TensorBoard on). Default: none, the "
                             "grid of the other options.")
    parser.add_argument("--dry_run", action="store_true",
                        help="Print the planned commands (runnable as printed), run nothing.")
    parser.add_argument("--summarize", action="store_true",
                        help="Only tabulate the finished runs (of --dataset, else of every dataset).")
    parser.add_argument("--figures", type=Path, default=None,
                        help="With --summarize: where the figures go (e.g. docs/figures; default: --results).")
    parser.add_argument("--report", type=Path, default=None,
                        help="With --summarize: also write the tables of every summarized dataset into this "
                             "Markdown file, headed by the command (e.g. docs/results.md; default: none).")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="Runs at once (local, submitit-local), or the job array's parallelism (slurm).")
    parser.add_argument("--launcher", choices=("local", "submitit-local", "slurm"), default="local",
                        help="local: subprocesses here; slurm: a submitit job array, requeued on time-out or "
                             "pre-emption; submitit-local: slurm's code path on this machine.")
    search = parser.add_argument_group("search (docs/usage.md, 'Searches'; the spaces: docs/search_spaces.md)")
    search.add_argument("--search", action="store_true",
                        help="A hyper-parameter search of --models on --dataset's validation split (every run "
                             "--validation), in <results>/search/, instead of the grid.")
    search.add_argument("--budget", type=positive_int, default=12,
                        help="Seed-0 configurations per (model, buffer), sampled from the model's space (a "
                             "smaller space runs whole) (default: 12).")
    search.add_argument("--top", type=positive_int, default=4,
                        help="Best seed-0 configurations per (model, buffer) rerun with seeds 1 and 2 (default: 4).")
    search.add_argument("--sample_seed", type=non_negative_int, default=0,
                        help="Seed of the sampling of the configurations (default: 0).")
    search.add_argument("--docs", default=None,
                        help="The search's Markdown report; its CSV goes beside it (default: "
                             "docs/search_<dataset>.md).")
    slurm = parser.add_argument_group("submitit / SLURM")
    slurm.add_argument("--partition", help="SLURM partition (default: the cluster's).")
    slurm.add_argument("--time_min", type=positive_int, default=24 * 60,
                       help="Time limit of one job (minutes); a job that reaches it is requeued (up to 3 "
                            "times) and resumes.")
    slurm.add_argument("--gpus_per_job", type=non_negative_int, default=1, help="GPUs of one SLURM job.")
    slurm.add_argument("--cpus_per_job", type=positive_int, default=4, help="CPU cores of one SLURM job.")
    slurm.add_argument("--mem_gb", type=positive_int, default=None,
                       help="Memory of one job in GB (default: the cluster's).")
    return parser


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[Run]]:
    parser = build_parser()
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    if args.preset:
        preset = dict(PRESETS[args.preset])
        extra = preset.pop("extra") + extra  # given after --, a flag wins over the preset's
        parser.set_defaults(**preset)
        args = parser.parse_args(own)
    clash = [flag for flag in extra if flag.split("=")[0] in MANAGED]
    if clash:
        parser.error(f"{', '.join(clash)} after -- clash with the grid (use --dataset/--models/--buffers/--seeds)")
    if args.search:
        return parse_search(parser, args, extra)
    if args.summarize:
        return args, []
    args.seeds = list(range(10)) if args.seeds is None else args.seeds
    args.dataset = args.dataset or DEFAULT_DATASET
    if args.models is None:  # the paper's models that have best arguments on this dataset
        from utils.best_args import BEST_ARGS

        listed = BEST_ARGS.get(args.dataset, {})
        args.models = [m for m in PAPER_MODELS if listed.get(entry_name(m, extra))]
        left_out = [m for m in PAPER_MODELS if m not in args.models]
        if left_out:
            print(f"cifar.py: {', '.join(left_out)} left out: no best arguments for {args.dataset} "
                  "(name them with --models and give their values after --)", file=sys.stderr)
    try:
        runs = plan(args.dataset, args.models, args.buffers, args.seeds, extra)
    except KeyError as e:
        parser.error(e.args[0])
    check_main_arguments(runs)
    return args, runs


def write_report(path: Path, texts: list[str], command: str) -> None:
    """The summaries as one Markdown file, headed by the command that wrote it (replaced whole, never
    half-written: written beside it, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"# Results\n\nWritten by `{command}`; do not edit by hand.\n\n" + "\n".join(texts))
    partial.replace(path)
    print(f"written: {path}", file=sys.stderr)


def parse_search(parser, args: argparse.Namespace, extra: list[str]) -> tuple[argparse.Namespace, list[Run]]:
    """--search: args.search becomes the utils.search.Search; the runs are its seed-0 runs."""
    from utils import search

    wrong = [flag for flag, given in (("--summarize", args.summarize), ("--preset", args.preset),
                                      ("--seeds", args.seeds is not None)) if given]
    if wrong:
        parser.error(f"--search takes no {', '.join(wrong)} (its seeds are {', '.join(map(str, search.SEEDS))})")
    args.dataset = args.dataset or DEFAULT_DATASET
    args.models = args.models or [m for m in PAPER_MODELS if m in search.SPACES]
    unknown = [m for m in args.models if m not in search.SPACES]
    if unknown:
        parser.error(f"no search space for {', '.join(unknown)} (utils/search.py SPACES: "
                     f"{', '.join(search.SPACES)}; docs/search_spaces.md)")
    clash = [flag for flag in extra if flag.split("=")[0] in search.managed_flags(args.models)]
    if clash:
        parser.error(f"{', '.join(clash)} after -- clash with the search, which sets them (docs/search_spaces.md)")
    try:
        search.protocol(args.dataset)
    except KeyError as e:
        parser.error(e.args[0])
    args.search = search.Search(args.dataset, tuple(args.models), tuple(args.buffers), tuple(extra), args.budget,
                                args.top, args.sample_seed)
    runs = args.search.seed0_runs()
    check_main_arguments(runs)
    return args, runs


def check_main_arguments(runs: list[Run]) -> None:
    """Parse each kind of run's command line with main.py's own parser before anything runs: a bad
    flag after -- fails the grid at once (main.py's one-line message, exit 2), not every run."""
    import main
    from datasets import get_all_datasets
    from models import get_all_models

    models, datasets = get_all_models(), get_all_datasets()
    for run in {(run.model, run.buffer): run for run in runs}.values():
        main.parse_args(command(run, Path("results"))[2:], models, datasets, prog="cifar.py")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, runs = parse_args(argv)
    results = Path(args.results).resolve()
    if args.summarize and not results.is_dir():  # nothing to tabulate, and nothing to create
        print(f"cifar.py: error: results folder {results} does not exist", file=sys.stderr)
        return 2
    if not args.dry_run:
        try:
            check_writable(results)
        except UserError as e:
            print(f"cifar.py: error: {e}", file=sys.stderr)
            return 2
    if args.summarize:
        datasets = [args.dataset] if args.dataset else datasets_in(results)
        texts = [text for text in (summarize(results, dataset, args.figures) for dataset in datasets) if text]
        which = f"{args.dataset} " if args.dataset else ""
        print("\n".join(texts) if texts else f"no finished {which}runs in {results} (neither grid runs in "
              f"{results / 'runs'} nor rows that main.py --csv_log wrote there)")
        if texts and args.report:
            write_report(args.report, texts, "python cifar.py " + shlex.join(argv))
        return 0 if texts else 1
    if args.search:
        return run_search(args, results, "python cifar.py " + shlex.join(argv))
    if args.dry_run:
        for run in runs:
            done = "  # done" if is_done(run, results) else ""
            print(shlex.join(command(run, results)) + done)
        print(f"{plural(len(runs), 'run')}, {sum(is_done(r, results) for r in runs)} of them finished")
        return 0
    todo = [run for run in runs if not is_done(run, results)]
    print(f"{plural(len(runs), 'run')}: {len(runs) - len(todo)} finished before (skipped), {len(todo)} to run",
          flush=True)
    outcomes = launch(todo, results, args)
    if outcomes is None:
        return 130
    report_outcomes(todo, outcomes)
    text = summarize(results, args.dataset)
    if text:
        print(text)
        print(f"written: {results / f'summary_{args.dataset}.md'} and .csv")
    return 0 if all(status in ("done", "skipped") for status, _ in outcomes) else 1


def launch(todo: list[Run], results: Path, args: argparse.Namespace) -> list[tuple[str, Path]] | None:
    """Run ``todo`` with the chosen launcher; None when Ctrl-C stopped it (said on stderr)."""
    try:
        if todo and args.launcher == "local":
            return launch_local(todo, results, args.jobs)
        return launch_submitit(todo, results, args) if todo else []
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to finish the missing runs", file=sys.stderr)
        return None


def report_outcomes(todo: list[Run], outcomes: list[tuple[str, Path]], diverged=lambda run: False) -> None:
    for run, (status, log) in zip(todo, outcomes, strict=True):
        if status == "failed" and diverged(run):
            print(f"DIVERGED {run.key}: non-finite loss (see {log}); it ranks last and is not run again")
        elif status == "failed":
            print(f"FAILED {run.key}: see {log}")
        elif status == "busy":
            print(f"BUSY {run.key}: another process is running it; rerun later")
        elif status == "interrupted":
            print(f"INTERRUPTED {run.key}: see {log}; rerun the same command to resume it from its checkpoint")


def run_search(args: argparse.Namespace, results: Path, invocation: str) -> int:
    """The search's two stages, each through the grid's launchers: the seed-0 runs, then seeds 1 and 2
    of each (model, buffer)'s best --top. Finished and diverged runs are never run again. Once both
    stages are complete: the report and its CSV (--docs) and the proposed utils/best_args.py entries."""
    from utils import search

    spec, root = args.search, results / "search"
    docs = Path(args.docs).resolve() if args.docs else REPO / "docs" / f"search_{spec.dataset}.md"
    if args.dry_run:
        first = spec.seed0_runs()
        confirm, waiting = spec.confirmation_runs(root)
        for run in [*first, *confirm]:
            mark = "" if search.is_pending(run, root) else (
                "  # done" if is_done(run, root) else "  # diverged")
            print(shlex.join(command(run, root)) + mark)
        pending = sum(search.is_pending(run, root) for run in [*first, *confirm])
        print(f"{plural(len(first), 'seed-0 run')} and {plural(len(confirm), 'confirmation run')}, "
              f"{pending} of them to run")
        for model, buffer in spec.cells():
            configs, space = len(spec.configs(model)), len(search.configurations(model, spec.dataset))
            whole = " (the whole space, smaller than the budget)" if space < spec.budget else ""
            print(f"  {model}{'' if buffer is None else f' buffer {buffer}'}: {configs} of {space} configurations"
                  f"{whole}, the best {min(spec.top, configs)} "
                  f"confirmed with seeds {' and '.join(map(str, search.CONFIRM_SEEDS))}"
                  + ("  (confirmation listed once its seed-0 runs are over)" if (model, buffer) in waiting else ""))
        return 0
    for stage in ("seed-0", "confirmation"):
        runs = spec.seed0_runs() if stage == "seed-0" else spec.confirmation_runs(root)[0]
        todo = [run for run in runs if search.is_pending(run, root)]
        print(f"search, {stage} stage: {plural(len(runs), 'run')}: {len(runs) - len(todo)} finished or diverged before "
              f"(skipped), {len(todo)} to run", flush=True)
        outcomes = launch(todo, root, args)
        if outcomes is None:
            return 130
        report_outcomes(todo, outcomes, diverged=lambda run: not search.is_pending(run, root))
        if any(search.is_pending(run, root) for run in todo):
            print(f"search: the {stage} stage is not complete: rerun the same command to finish it")
            return 1
    table = spec.results(root)
    text = search.write(spec, table, docs, invocation)
    print(text)  # its "Proposed entries" section: the chosen values as lines to paste into utils/best_args.py
    print(f"written: {docs} and {docs.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    import cifar  # as a module, so that submitit's jobs can unpickle cifar.GridJob

    try:
        sys.exit(cifar.main())
    except BrokenPipeError:  # the reader went away (cifar.py --dry_run | head): stop quietly, like a SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when stdout is flushed
        sys.exit(141)
