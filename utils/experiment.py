"""Setting up a run from its parsed arguments: device, random generators, dataset and model.

``build`` is the one place where a run is assembled; ``main.py``, the scripts and the tests use it."""
import os
import random
from argparse import Namespace
from dataclasses import dataclass

import numpy as np
import torch

from datasets import get_all_datasets
from datasets.continual_dataset import ContinualDataset
from models import get_all_models
from models.continual_model import ContinualModel
from utils.errors import UserError

MIN_CHANNELS_LAST_WIDTH = 16  # oneDNN's input-channel block on AVX-512 CPUs


@dataclass
class Experiment:
    device: torch.device
    dataset: ContinualDataset
    model: ContinualModel


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


def build(args: Namespace, data: tuple[torch.Tensor, ...] | None = None) -> Experiment:
    """The run's device (seeded, deterministic kernels on CPU), its dataset with the data loaded
    (``data``: in-memory tensors instead of the dataset's files, for benchmarks and tests) and its
    model. Bad input raises a one-line ``UserError`` before the model is built."""
    device = resolve_device(args.device)
    width = getattr(args, "num_filters", None)  # None: an MLP
    narrow = width is not None and width < MIN_CHANNELS_LAST_WIDTH
    if getattr(args, "channels_last", False) and device.type == "cpu" and narrow:
        # oneDNN's channels-last strided 1x1 convolution backward (the shortcut of the first strided
        # block, num_filters input channels) writes out of bounds below its 16-channel block: a crash
        # or corrupted memory (uxlfoundation/oneDNN#6035).
        raise UserError(f"--channels_last on a CPU needs --num_filters {MIN_CHANNELS_LAST_WIDTH} or more "
                        f"(got {width}): oneDNN's channels-last kernels fail on narrower layers")
    if args.num_workers is None:
        args.num_workers = default_num_workers(device)
    if args.seed is not None:
        set_seed(args.seed)
    if device.type == "cpu":
        use_deterministic_kernels()
    dataset = get_all_datasets()[args.dataset](args, device)
    dataset.prepare(data)
    smallest = min(dataset.train_size(t) for t in range(dataset.N_TASKS))
    if args.batch_size > smallest:
        raise UserError(f"--batch_size {args.batch_size} exceeds the {smallest} training examples of the "
                        f"smallest task of {args.dataset}: no batch would be trained")
    model_cls = get_all_models()[args.model]
    if dataset.SETTING not in model_cls.COMPATIBILITY:
        raise UserError(f"model {args.model} does not support the {dataset.SETTING} setting of {args.dataset}")
    return Experiment(device, dataset, model_cls(dataset.get_backbone(), args, dataset, device))
