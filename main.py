"""Run one continual-learning experiment: python main.py --model MODEL --dataset DATASET ..."""
import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datasets import get_all_datasets
from models import get_all_models
from utils.args import CLIParser, non_negative_int, positive_float, positive_int, seed_int
from utils.best_args import lookup
from utils.errors import Interrupted, RunFailure, UserError


def build_parser(models: dict, datasets: dict, model_cls: type | None) -> CLIParser:
    parser = CLIParser(description="Replay-based continual learning (HCR and baselines).", allow_abbrev=False)
    parser.add_argument("--model", required=True, choices=list(models), help="Model name.")
    parser.add_argument("--dataset", required=True, choices=list(datasets), help="Dataset name.")
    parser.add_hyperparameter("lr", positive_float, "Learning rate.")
    parser.add_hyperparameter("batch_size", positive_int, "Stream batch size.")
    parser.add_hyperparameter("n_epochs", positive_int, "Epochs per task.")
    parser.add_argument("--seed", type=seed_int, default=None, help="Random seed (unseeded when omitted).")
    parser.add_argument("--load_best_args", action="store_true",
                        help="Fill hyper-parameters not given on the command line from utils/best_args.py.")
    parser.add_argument("--validation", action="store_true",
                        help="Test on a fixed 10%% of each task's training data instead of the test split.")
    parser.add_argument("--csv_log", action="store_true", help="Append the result row to the CSV files.")
    parser.add_argument("--tensorboard", action="store_true", help="Write TensorBoard event files.")
    parser.add_argument("--data_path", default="data/", help="Dataset folder (default: data/).")
    parser.add_argument("--results_path", default="results/", help="Results folder (default: results/).")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when present, else CPU.")
    parser.add_argument("--loader", choices=("tensor", "pil"), default="tensor",
                        help="tensor: in-memory data, batched augmentation on the device; "
                             "pil: the released per-image PIL pipeline in DataLoader workers.")
    parser.add_argument("--num_workers", type=non_negative_int, default=None,
                        help="DataLoader workers of --loader pil (default: from the free cores).")
    parser.add_argument("--channels_last", action="store_true",
                        help="Channels-last memory format for the network (a layout change, same values).")
    parser.add_argument("--amp", action="store_true",
                        help="bf16 autocast of forward passes (lower precision; losses stay float32).")
    parser.add_argument("--offline", action="store_true", help="Never try to download a dataset.")
    parser.add_argument("--keep_checkpoints", action="store_true",
                        help="Keep the checkpoint of every task (default: only the newest).")
    parser.add_argument("--resume", default=None, metavar="PATH",
                        help="Continue from a checkpoint file, or 'auto': the newest one of this configuration.")
    parser.add_argument("--debug_mode", action="store_true",
                        help="Stop each epoch and each evaluation after a few batches (smoke tests).")
    if model_cls is not None:
        model_cls.add_arguments(parser)
    return parser


def parse_args(argv: list[str], models: dict, datasets: dict) -> argparse.Namespace:
    """Parse in two passes: the model named on the command line adds its own arguments."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model")
    model_cls = models.get(pre.parse_known_args(argv)[0].model)
    parser = build_parser(models, datasets, model_cls)
    args = parser.parse_args(argv)
    if args.load_best_args:
        buffer_size = getattr(args, "buffer_size", None)
        if getattr(model_cls, "BEST_ARGS_BY_BUFFER", False) and buffer_size is None:
            parser.error(f"--buffer_size is required for {args.model}")
        try:
            best = lookup(args.dataset, getattr(model_cls, "BEST_ARGS_MODEL", args.model), buffer_size)
        except KeyError as e:
            parser.error(e.args[0])
        for name, value in best.items():
            if getattr(args, name, None) is None:  # flags given explicitly win
                setattr(args, name, value)
    missing = [f"--{name}" for name in parser.hyperparameters if getattr(args, name) is None]
    if missing:
        parser.error(f"{', '.join(missing)} required for {args.model} (give them or use --load_best_args)")
    return args


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but CUDA is not available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def default_num_workers(device: torch.device) -> int:
    """Loader workers that do not compete with torch's threads for the cores."""
    cores = len(os.sched_getaffinity(0))
    busy = 1 if device.type == "cuda" else torch.get_num_threads()
    return max(0, min(4, cores - busy))


def check_writable(folder: str) -> None:
    """Fail before training, not after hours of it, when results cannot be written."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"results folder {path} is not writable ({e.strerror})") from None


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def use_deterministic_kernels() -> None:
    """Deterministic kernels, so that a seeded CPU run repeats bit for bit (the backward of
    gathers with repeated indices, in the triplet terms, otherwise accumulates in a
    thread-dependent order).

    The same switch as ``torch.use_deterministic_algorithms(True)`` without the Inductor
    config that function imports (3 s; nothing here is compiled). Fresh memory is not
    filled with NaN: no kernel here reads memory it has not written, and the fills were
    some 150 extra small ops per HCR step.
    """
    torch.set_deterministic_debug_mode("error")
    torch.utils.deterministic.fill_uninitialized_memory = False


def run(args: argparse.Namespace, models: dict, datasets: dict) -> None:
    from utils.checkpoint import (
        checkpoint_dir,
        latest_checkpoint,
        load_checkpoint,
        model_state,
        restore_model,
        run_config,
        save_checkpoint,
    )
    from utils.loggers import SETTINGS, TensorBoardLogger, append_row, csv_path, result_row
    from utils.training import Progress, train

    device = resolve_device(args.device)
    if args.num_workers is None:
        args.num_workers = default_num_workers(device)
    if args.seed is not None:
        set_seed(args.seed)
    if device.type == "cpu":
        use_deterministic_kernels()
    dataset = datasets[args.dataset](args, device)
    resume, resume_path = None, None
    if args.resume is not None:  # checked before the data is loaded: a bad checkpoint fails fast
        resume_path = latest_checkpoint(args, dataset.SETTING) if args.resume == "auto" else Path(args.resume)
        resume = load_checkpoint(resume_path, args)
    dataset.prepare()
    smallest = min(dataset.train_size(t) for t in range(dataset.N_TASKS))
    if args.batch_size > smallest:
        raise UserError(f"--batch_size {args.batch_size} exceeds the {smallest} training examples of the "
                        f"smallest task of {args.dataset}: no batch would be trained")
    # Checkpoints go with the results: written whenever the run writes results.
    save_results = args.csv_log or args.tensorboard
    if save_results:
        check_writable(args.results_path)
    model_cls = models[args.model]
    if dataset.SETTING not in model_cls.COMPATIBILITY:
        raise UserError(f"model {args.model} does not support the {dataset.SETTING} setting of {args.dataset}")
    model = model_cls(dataset.get_backbone(), args, dataset, device)
    start = None
    if resume is not None:
        restore_model(model, resume)
        start = Progress(resume["next_task"], resume["history"], resume["epoch_index"])
    print(f"{args.model} on {dataset} | device {device} | "
          + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), file=sys.stderr, flush=True)
    tb = None
    if args.tensorboard:
        # a resumed run goes on in the folder of the run it continues
        run_name = (resume and resume["tb_run_name"]
                    or f"seed{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        tb = TensorBoardLogger(args.results_path, dataset.SETTING, args.dataset, args.model, run_name,
                               resume and resume["tb_points"])
    folder = checkpoint_dir(args, dataset.SETTING)
    last_saved = [resume_path]

    def save(progress: Progress) -> None:
        state = {"args": run_config(args), "next_task": progress.next_task, "history": progress.history,
                 "epoch_index": progress.epoch_index, "tb_run_name": tb and tb.run_name,
                 "tb_points": tb and tb.points, **model_state(model)}
        last_saved[0] = folder / f"task{progress.next_task}.pt"
        save_checkpoint(last_saved[0], state)
        if not args.keep_checkpoints:  # a ResNet-18 checkpoint with a big buffer is ~100 MB
            for older in folder.glob("task*.pt"):
                if older != last_saved[0]:
                    older.unlink()

    signals = []  # the handler only records: the training loop stops at its next check

    def on_signal(signum: int, _frame) -> None:
        signals.append(signum)

    def check_interrupt() -> None:
        if signals:
            raise Interrupted(signals[0])

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        history = train(model, dataset, tb, start, save if save_results else None, check_interrupt)
    except Interrupted:
        # The newest task-boundary checkpoint is the state to resume from: the interrupted
        # task restarts from its beginning and ends exactly as it would have.
        where = (f"resume with --resume {last_saved[0]}" if last_saved[0]
                 else "no checkpoint (written only with --csv_log or --tensorboard)")
        print(f"main.py: interrupted: {where}", file=sys.stderr)
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if tb is not None:
            tb.close()
    if args.csv_log:
        for setting in SETTINGS:
            row = result_row(history.mean_accs(setting), history.results[setting],
                             history.random_results[setting], vars(args))
            append_row(csv_path(args.results_path, setting, args.dataset, args.model), row)


def main(argv: list[str] | None = None) -> int:
    models, datasets = get_all_models(), get_all_datasets()
    args = parse_args(sys.argv[1:] if argv is None else argv, models, datasets)
    try:
        run(args, models, datasets)
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
