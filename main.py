"""Run one continual-learning experiment: python main.py --model MODEL --dataset DATASET ..."""
import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from backbone.resnet18 import CLASSIFIERS
from datasets import get_all_datasets
from datasets.continual_dataset import reported_settings
from models import get_all_models
from models.continual_model import ReplayModel
from utils.args import CLIParser, non_negative_int, positive_float, positive_int, result_arguments, seed_int
from utils.best_args import lookup
from utils.checkpoint import (
    CheckpointWriter,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
    restore_run,
    run_config,
    run_state,
)
from utils.errors import Interrupted, RunFailure, UserError, stop_on_signals
from utils.experiment import build
from utils.loggers import (
    TensorBoardLogger,
    append_row,
    check_writable,
    code_version,
    csv_path,
    has_row,
    result_row,
)
from utils.status import clock_text
from utils.training import Progress, train


def build_parser(models: dict, datasets: dict, model_cls: type | None, prog: str | None = None) -> CLIParser:
    parser = CLIParser(prog=prog, description="Replay-based continual learning (HCR and baselines).",
                       allow_abbrev=False,
                       epilog=None if model_cls else "Each model has arguments of its own (buffer, loss weights): "
                       "python main.py --model NAME --help lists them.")
    # plumbing=True: the option changes where or how a run goes, not its result (utils/args.py, CLIParser).
    parser.add_argument("--model", required=True, choices=list(models), help="Model name.")
    parser.add_argument("--dataset", required=True, choices=list(datasets), help="Dataset name.")
    parser.add_hyperparameter("lr", positive_float, "Learning rate.")
    parser.add_hyperparameter("batch_size", positive_int, "Stream batch size.")
    parser.add_hyperparameter("n_epochs", positive_int, "Epochs per task.")
    parser.add_argument("--num_filters", type=positive_int, default=None,
                        help="Base width of the ResNet-18 of the image datasets (default: the dataset's; 64, "
                             "seq-cifar10-online 20).")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=None,
                        help="The ResNet-18's classifier: linear, or cosine (scaled cosine similarity, the official "
                             "ER-ACE code's head) (default: the model's; cosine for er_ace, linear for the others).")
    parser.add_argument("--seed", type=seed_int, default=None, help="Random seed (unseeded when omitted).")
    parser.add_argument("--load_best_args", plumbing=True, action="store_true",
                        help="Fill hyper-parameters not given on the command line from utils/best_args.py.")
    parser.add_argument("--validation", action="store_true",
                        help="Test on a fixed 10%% of each task's training data instead of the test split.")
    parser.add_argument("--csv_log", plumbing=True, action="store_true", help="Append the result row to the CSV files.")
    parser.add_argument("--tensorboard", plumbing=True, action="store_true", help="Write TensorBoard event files.")
    parser.add_argument("--data_path", plumbing=True, default="data/", help="Dataset folder (default: data/).")
    parser.add_argument("--results_path", plumbing=True, default="results/", help="Results folder (default: results/).")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when present, else CPU.")
    parser.add_argument("--loader", choices=("tensor", "pil"), default="tensor",
                        help="tensor: in-memory data, batched augmentation on the device; "
                             "pil: the released per-image PIL pipeline in DataLoader workers.")
    parser.add_argument("--num_workers", plumbing=True, type=non_negative_int, default=None,
                        help="DataLoader workers of --loader pil (default: from the free cores).")
    parser.add_argument("--channels_last", action="store_true",
                        help="Channels-last memory format for the network (the same function, other rounding).")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast of forward passes (lower precision; losses stay float32).")
    parser.add_argument("--offline", plumbing=True, action="store_true", help="Never try to download a dataset.")
    parser.add_argument("--keep_checkpoints", plumbing=True, action="store_true",
                        help="Keep the checkpoint of every task (default: only the newest).")
    parser.add_argument("--resume", plumbing=True, default=None, metavar="PATH",
                        help="Continue from a checkpoint file; or 'auto', start-or-resume: the newest checkpoint "
                             "of this configuration if there is one (a finished run then exits at once, writing "
                             "nothing), else a fresh start.")
    parser.add_argument("--debug_mode", action="store_true",
                        help="Stop each epoch and each evaluation after a few batches (smoke tests).")
    if model_cls is not None:
        model_cls.add_arguments(parser)
    return parser


def network_defaults(dataset_cls: type, model_cls: type) -> dict:
    """The values that the network options take when not given: the dataset's ResNet-18 width and the
    model's classifier (None for an MLP dataset, which has neither option)."""
    width = dataset_cls.NUM_FILTERS
    return {"num_filters": width, "classifier": None if width is None else model_cls.CLASSIFIER}


def parse_args(argv: list[str], models: dict, datasets: dict, prog: str | None = None) -> argparse.Namespace:
    """Parse in two passes: the model named on the command line adds its own arguments."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    model_cls = models.get(pre.parse_known_args(argv)[0].model)
    parser = build_parser(models, datasets, model_cls, prog)
    buffer_flags = [a.split("=")[0] for a in argv if a.split("=")[0] in ("--buffer_size", "--minibatch_size")]
    if model_cls is not None and buffer_flags and not issubclass(model_cls, ReplayModel):
        replay = ", ".join(name for name, cls in models.items() if issubclass(cls, ReplayModel))
        parser.error(f"{model_cls.NAME} has no buffer: {' and '.join(buffer_flags)} "
                     f"{'apply' if len(buffer_flags) > 1 else 'applies'} to the replay models ({replay})")
    args = parser.parse_args(argv)
    width = datasets[args.dataset].NUM_FILTERS
    if width is None and args.num_filters is not None:
        resnets = ", ".join(name for name, cls in datasets.items() if cls.NUM_FILTERS is not None)
        parser.error(f"--num_filters sets the width of a ResNet-18; {args.dataset} trains an MLP "
                     f"(ResNet-18 datasets: {resnets})")
    if width is None and args.classifier is not None:
        parser.error(f"--classifier chooses the head of a ResNet-18; {args.dataset} trains an MLP")
    for name, value in network_defaults(datasets[args.dataset], model_cls).items():  # what the run trains
        setattr(args, name, getattr(args, name) or value)
    buffer_size = getattr(args, "buffer_size", None)
    if getattr(model_cls, "BEST_ARGS_BY_BUFFER", False) and buffer_size is None:
        parser.error(f"--buffer_size is required for {args.model}"
                     + (" (its best arguments depend on it)" if args.load_best_args else ""))
    if args.load_best_args:
        try:
            best = lookup(args.dataset, model_cls.best_args_name(argv), buffer_size)
        except KeyError as e:
            parser.error(e.args[0])
        for name, value in best.items():
            if getattr(args, name, None) is None:  # flags given explicitly win
                setattr(args, name, value)
    missing = [f"--{name}" for name in parser.hyperparameters if getattr(args, name) is None]
    if missing:
        parser.error(f"{', '.join(missing)} required for {args.model}: give them, or --load_best_args fills them "
                     "from utils/best_args.py")
    return args


def find_resume(args: argparse.Namespace, setting: str) -> tuple[Path, dict] | tuple[None, None]:
    """The checkpoint that ``--resume`` names and its state, checked before any data is loaded;
    with ``auto`` and no checkpoint of this configuration, none: the run starts from the beginning."""
    if args.resume is None:
        return None, None
    path = latest_checkpoint(args, setting) if args.resume == "auto" else Path(args.resume)
    if path is None:
        print(f"main.py: --resume auto: no checkpoint in {checkpoint_dir(args, setting)}: starting from the "
              "beginning", file=sys.stderr)
        return None, None
    return path, load_checkpoint(path, args)


def result_paths(args: argparse.Namespace) -> list[Path]:
    settings = reported_settings(get_all_datasets()[args.dataset].SETTING)
    return [csv_path(args.results_path, setting, args.dataset, args.model) for setting in settings]


def is_finished(args: argparse.Namespace, state: dict, n_tasks: int) -> bool:
    """Whether the run of this checkpoint trained every task and, with --csv_log, wrote its rows."""
    return state["next_task"] == n_tasks and (
        not args.csv_log or all(has_row(path, "run_id", state["run_id"]) for path in result_paths(args)))


def tensorboard_run_name(args: argparse.Namespace) -> str:
    """The buffer size and the model's hyper-parameters (as given or filled), seed, time and pid."""
    model_cls = get_all_models()[args.model]
    names = build_parser(get_all_models(), get_all_datasets(), model_cls).hyperparameters
    short = {"buffer_size": "buf", "minibatch_size": "mb", "batch_size": "bs", "n_epochs": "ep"}
    order = sorted(names, key=lambda n: n != "buffer_size")  # the buffer first
    parts = [f"{short.get(n, n)}{getattr(args, n):g}" for n in order]
    return "-".join([*parts, f"seed{args.seed}", time.strftime("%Y%m%d-%H%M%S"), str(os.getpid())])


def open_tensorboard(args: argparse.Namespace, setting: str, resume: dict | None) -> TensorBoardLogger | None:
    """The run's TensorBoard logger; a resumed run goes on in the folder of the run it continues."""
    if not args.tensorboard:
        return None
    run_name = resume and resume["tb_run_name"] or tensorboard_run_name(args)
    return TensorBoardLogger(args.results_path, setting, args.dataset, args.model, run_name, run_config(args),
                             resume and resume["tb_points"])


def write_rows(args: argparse.Namespace, progress: Progress, device: torch.device) -> None:
    """The run's CSV rows, with what says which run it is; a row of this run id is never written twice."""
    run = {"run_id": progress.run_id, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": round(progress.elapsed, 1),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "commit": code_version()}
    history = progress.history
    losses = history.losses[-1] if history.losses else (float("nan"), float("nan"))
    for setting, path in zip(history.results, result_paths(args), strict=True):
        row = result_row(history.mean_accs(setting), history.results[setting], history.random_results[setting],
                         result_arguments(args), run, losses)
        append_row(path, row, unique="run_id")


def report_where(args: argparse.Namespace, tb: TensorBoardLogger | None, checkpoint: Path | None) -> None:
    """Where the run's results are."""
    if args.csv_log:
        print("results: " + ", ".join(map(str, result_paths(args))), file=sys.stderr)
    if tb is not None:
        print(f"TensorBoard: {tb.log_dir}", file=sys.stderr)
    if checkpoint is not None:
        print(f"checkpoint: {checkpoint}", file=sys.stderr)


def continue_command(argv: list[str]) -> str:
    """The command that continues this run: its own arguments with ``--resume auto``."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--resume":
            skip = True
        elif not token.startswith("--resume="):
            kept.append(token)
    return shlex.join(["python", "main.py", *kept, "--resume", "auto"])


def run(args: argparse.Namespace, argv: list[str]) -> None:
    dataset_cls = get_all_datasets()[args.dataset]
    setting = dataset_cls.SETTING
    resume_path, resume = find_resume(args, setting)
    if resume is not None and is_finished(args, resume, dataset_cls.N_TASKS):
        print(f"main.py: this run finished before ({resume_path}); nothing to do", file=sys.stderr)
        report_where(args, None, resume_path)
        return
    experiment = build(args)
    # checkpoints go with the results, and wherever a resume was asked for (else it would resume nothing)
    saving = args.csv_log or args.tensorboard or args.resume is not None
    if saving:
        check_writable(args.results_path)
    model = experiment.model
    start = None
    if resume is not None:
        start = restore_run(model, resume)
        print(f"main.py: resumed at task {start.next_task + 1} of {dataset_cls.N_TASKS} from {resume_path}",
              file=sys.stderr)
    print(f"{args.model} on {experiment.dataset} | device {experiment.device} | "
          + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), file=sys.stderr, flush=True)
    checkpoints = CheckpointWriter(checkpoint_dir(args, setting), args.keep_checkpoints, resume_path)
    if saving:
        print(f"main.py: checkpoints go to {checkpoints.folder}; an interrupted run continues with "
              f"--resume auto", file=sys.stderr)
    tb = open_tensorboard(args, setting, resume)

    def save(progress: Progress) -> None:
        checkpoints.save(progress.next_task, run_state(args, progress, model, tb))

    try:
        with stop_on_signals() as check_interrupt:
            progress = train(model, experiment.dataset, tb, start, save if saving else None, check_interrupt)
    except Interrupted:
        # The newest task-boundary checkpoint is the state to resume from: the interrupted
        # task restarts from its beginning and ends exactly as it would have.
        where = (f"continue with: {continue_command(argv)}" if checkpoints.newest
                 else "no checkpoint (written only with --resume, --csv_log or --tensorboard)")
        print(f"main.py: interrupted: {where}", file=sys.stderr)
        raise
    finally:
        if tb is not None:
            tb.close()
    if args.csv_log:
        write_rows(args, progress, experiment.device)
    print(f"main.py: done in {clock_text(progress.elapsed)} of training", file=sys.stderr)
    report_where(args, tb, checkpoints.newest)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv, get_all_models(), get_all_datasets(), prog="main.py")
    try:
        run(args, argv)
    except UserError as e:
        print(f"main.py: error: {e}", file=sys.stderr)
        return 2
    except RunFailure as e:
        print(f"main.py: error: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        return 128 + e.signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
