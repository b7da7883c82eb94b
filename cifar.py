"""Run a grid of main.py experiments on any dataset (best arguments) and tabulate it; the name is the
released code's, whose grid was Seq-CIFAR-10.

    python cifar.py --dry_run                              # the Seq-CIFAR-10 grid: 6 models, 3 buffers, seeds 0-9
    python cifar.py --dataset seq-fmnist --models sgd er --buffers 200 --seeds 0 1 --jobs 2 -- --n_epochs 1
    python cifar.py --summarize --dataset seq-fmnist       # the table of the finished runs only
    python cifar.py --preset released                      # the released cifar.py's single run
    python cifar.py --search --dataset seq-fmnist --models er der derpp hcr --buffers 200 500 --budget 12

A thin command line over the experiment layer (experiments/): the runs and their results folder
(experiments/runs.py), the grid (experiments/grid.py), the launchers (experiments/launch.py), the
table and figures (experiments/tables.py, experiments/figures.py) and the search
(experiments/search.py; docs/usage.md, "Searches"). Everything after ``--`` is passed to every
main.py run verbatim. A run with a done.json is skipped; every run starts with ``--resume auto``, so
an interrupted run continues from its newest checkpoint. When an entry of utils/best_args.py changes,
its runs get new keys: they run again, and the table leaves out the runs made with the old values.
"""
import argparse
import os
import shlex
import sys
from pathlib import Path

import main as main_py
from datasets import get_all_datasets
from experiments import search, search_report
from experiments.grid import PAPER_MODELS, entry_name, plan
from experiments.launch import launch, report_outcomes
from experiments.runs import Run, command, datasets_in, is_done, managed_flags
from experiments.tables import summarize
from models import get_all_models
from utils.args import CLIParser, non_negative_int, positive_int
from utils.best_args import BEST_ARGS
from utils.errors import UserError
from utils.loggers import check_writable
from utils.status import plural

REPO = Path(__file__).resolve().parent
DEFAULT_DATASET = "seq-cifar10"
PRESETS = {  # the released cifar.py: one run with its own hyper-parameters (docs/method.md, "Best hyper-parameters")
    "released": {"dataset": "seq-cifar10", "models": ["hcr"], "buffers": [200], "seeds": [60],
                 "extra": ["--lr", "0.3", "--alpha", "0.5", "--beta", "0.5", "--gamma", "0.5", "--sigmoid", "0.3",
                           "--batch_size", "32", "--minibatch_size", "32", "--n_epochs", "50", "--tensorboard"]},
}


def build_parser() -> CLIParser:
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
    parser.add_argument("--results", nargs="+", default=["results"],
                        help="Results folder: runs/<key>/ per run, the summary files at the top; --summarize takes "
                             "several, and tabulates each (e.g. the Fashion-MNIST and the CIFAR-10 runs) "
                             "(default: results).")
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
    searching = parser.add_argument_group("search (docs/usage.md, 'Searches'; the spaces: docs/search_spaces.md)")
    searching.add_argument("--search", action="store_true",
                        help="A hyper-parameter search of --models on --dataset's validation split (every run "
                             "--validation), in <results>/search/, instead of the grid.")
    searching.add_argument("--budget", type=positive_int, default=12,
                        help="Seed-0 configurations per (model, buffer), sampled from the model's space (a "
                             "smaller space runs whole) (default: 12).")
    searching.add_argument("--top", type=positive_int, default=4,
                        help="Best seed-0 configurations per (model, buffer) rerun with seeds 1 and 2 (default: 4).")
    searching.add_argument("--sample_seed", type=non_negative_int, default=0,
                        help="Seed of the sampling of the configurations (default: 0).")
    searching.add_argument("--docs", default=None,
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
    if len(args.results) > 1 and not args.summarize:
        parser.error("only --summarize takes several --results folders")
    clash = [flag for flag in extra if flag.split("=")[0] in managed_flags()]
    if clash:
        parser.error(f"{', '.join(clash)} after -- clash with the grid (use --dataset/--models/--buffers/--seeds)")
    if args.search:
        return parse_search(parser, args, extra)
    if args.summarize:
        return args, []
    args.seeds = list(range(10)) if args.seeds is None else args.seeds
    args.dataset = args.dataset or DEFAULT_DATASET
    if args.models is None:  # the paper's models that have best arguments on this dataset
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
    """--search: args.search becomes the experiments.search.Search; the runs are its seed-0 runs."""
    wrong = [flag for flag, given in (("--summarize", args.summarize), ("--preset", args.preset),
                                      ("--seeds", args.seeds is not None)) if given]
    if wrong:
        parser.error(f"--search takes no {', '.join(wrong)} (its seeds are {', '.join(map(str, search.SEEDS))})")
    args.dataset = args.dataset or DEFAULT_DATASET
    args.models = args.models or [m for m in PAPER_MODELS if m in search.SPACES]
    unknown = [m for m in args.models if m not in search.SPACES]
    if unknown:
        parser.error(f"no search space for {', '.join(unknown)} (experiments/search.py SPACES: "
                     f"{', '.join(search.SPACES)}; docs/search_spaces.md)")
    try:
        search.protocol(args.dataset)
    except KeyError as e:
        parser.error(e.args[0])
    clash = [flag for flag in extra if flag.split("=")[0] in search.managed_flags(args.models, args.dataset)]
    if clash:
        parser.error(f"{', '.join(clash)} after -- clash with the search, which sets them (docs/search_spaces.md)")
    args.search = search.Search(args.dataset, tuple(args.models), tuple(args.buffers), tuple(extra), args.budget,
                                args.top, args.sample_seed)
    runs = args.search.seed0_runs()
    check_main_arguments(runs)
    return args, runs


def check_main_arguments(runs: list[Run]) -> None:
    """Parse each kind of run's command line with main.py's own parser before anything runs: a bad
    flag after -- fails the grid at once (main.py's one-line message, exit 2), not every run."""
    models, datasets = get_all_models(), get_all_datasets()
    for run in {(run.model, run.buffer): run for run in runs}.values():
        main_py.parse_args(command(run, Path("results"))[2:], models, datasets, prog="cifar.py")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, runs = parse_args(argv)
    folders = [Path(folder).resolve() for folder in args.results]
    missing = [folder for folder in folders if not folder.is_dir()]
    if args.summarize and missing:  # nothing to tabulate, and nothing to create
        print(f"cifar.py: error: results folder {missing[0]} does not exist", file=sys.stderr)
        return 2
    if not args.dry_run:
        try:
            for folder in folders:
                check_writable(folder)
        except UserError as e:
            print(f"cifar.py: error: {e}", file=sys.stderr)
            return 2
    [results, *_] = folders
    if args.summarize:
        texts = [text for shown, folder in zip(args.results, folders, strict=True)
                 for dataset in ([args.dataset] if args.dataset else datasets_in(folder))
                 if (text := summarize(folder, dataset, args.figures, shown))]
        which = f"{args.dataset} " if args.dataset else ""
        print("\n".join(texts) if texts else f"no finished {which}runs in {', '.join(map(str, folders))} (neither "
              f"grid runs in {', '.join(str(f / 'runs') for f in folders)} nor rows that main.py --csv_log wrote "
              "there)")
        if texts and args.report:
            write_report(args.report, texts, "python cifar.py " + shlex.join(argv))
        return 0 if texts else 1
    if args.search:
        docs = Path(args.docs).resolve() if args.docs else REPO / "docs" / f"search_{args.dataset}.md"
        if args.dry_run:
            return search.dry_run(args.search, results / "search")
        status = search.run(args.search, results / "search", args)
        if status == 0:
            text = search_report.write(args.search, args.search.results(results / "search"), docs,
                                       "python cifar.py " + shlex.join(argv))
            print(text)  # its "Proposed entries" section: the chosen values as lines to paste into utils/best_args.py
            print(f"written: {docs} and {docs.with_suffix('.csv')}")
        return status
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


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # the reader went away (cifar.py --dry_run | head): stop quietly, like a SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when stdout is flushed
        sys.exit(141)
