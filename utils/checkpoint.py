"""Task-boundary checkpoints: written atomically (only the newest kept unless asked), checked
against the run's arguments on load.

A checkpoint holds only tensors and plain Python values (numbers, strings, lists, tuples, dicts),
and is read with ``torch.load(weights_only=True)``: a file that needs anything else is refused
before any of it runs, so resuming from a checkpoint someone sent you cannot run their code.

It holds everything a run carries from one task to the next (network, buffer,
accuracy history, every random generator; plain SGD has no state of its own, and its learning
rate is one of the arguments checked on load), taken right after a task's evaluation:
a run resumed from it repeats the uninterrupted run bit for bit (on CPU).
"""
import dataclasses
import hashlib
import json
import os
import pickle
import random
import tempfile
from argparse import Namespace
from pathlib import Path

import numpy as np
import torch

from utils.args import result_arguments
from utils.errors import RunFailure, UserError
from utils.loggers import TensorBoardLogger, readable_file_mode
from utils.training import History, Progress

FORMAT = 2  # 2: tensors and plain values only (format 1 pickled Python objects)


def run_config(args: Namespace) -> dict:
    """The arguments that determine the result of a run (plumbing may differ on resuming)."""
    return result_arguments(args)


def checkpoint_dir(args: Namespace, setting: str) -> Path:
    """One folder per configuration (seed included): ``--resume auto`` looks only there."""
    key = hashlib.sha1(json.dumps(run_config(args), default=str).encode()).hexdigest()[:12]
    return Path(args.results_path) / "checkpoints" / setting / args.dataset / args.model / key


def rng_state() -> dict:
    """Every random generator's state as tensors and plain values."""
    version, python_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(python_state), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def model_state(model: torch.nn.Module) -> dict:
    """The learner's state that carries across tasks, and the random generators."""
    state = {"net": model.net.state_dict(), "rng": rng_state()}
    if hasattr(model, "buffer"):
        state["buffer"] = model.buffer.state_dict()
    return state


def run_state(args: Namespace, progress: Progress, model: torch.nn.Module, tb: TensorBoardLogger | None) -> dict:
    """What a checkpoint holds after a task: the arguments, where the run stands, its TensorBoard
    points, the learner and the random generators."""
    return {"args": run_config(args), "next_task": progress.next_task, "history": dataclasses.asdict(progress.history),
            "run_id": progress.run_id, "elapsed": progress.elapsed, "tb_run_name": tb and tb.run_name,
            "tb_points": tb and tb.points, **model_state(model)}


def restore_run(model: torch.nn.Module, state: dict) -> Progress:
    """Put the learner and the random generators back as ``state`` has them; where the run stands."""
    model.net.load_state_dict(state["net"])
    if "buffer" in state:
        model.buffer.load_state_dict(state["buffer"])
    set_rng_state(state["rng"])  # last: building the model drew from the generators
    return Progress(state["next_task"], History(**state["history"]), state["run_id"], state["elapsed"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, fsync it, then rename it over ``path``: a crash at any
    point leaves either the previous file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), readable_file_mode())
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class CheckpointWriter:
    """Saves a run's checkpoints as ``<folder>/task<k>.pt`` (k: the next task to train) and, unless
    ``keep_all``, deletes the older ones: a ResNet-18 checkpoint with a big buffer is ~100 MB."""

    def __init__(self, folder: Path, keep_all: bool, resumed_from: Path | None = None) -> None:
        self.folder, self.keep_all = folder, keep_all
        self.newest = resumed_from  # what a run interrupted now resumes from

    def save(self, next_task: int, state: dict) -> None:
        """Write the checkpoint; a failed write (a full disk) stops the run with a one-line
        ``RunFailure`` and leaves the previous checkpoint as it was."""
        path = self.folder / f"task{next_task}.pt"
        try:
            save_checkpoint(path, state)
        except OSError as e:
            raise RunFailure(f"could not write checkpoint {path} ({e.strerror or e}); "
                             f"the previous one is intact: {self.newest or 'none'}") from None
        self.newest = path
        for partial in self.folder.glob(".task*.pt.*"):  # what a killed write left behind
            partial.unlink()
        if not self.keep_all:
            for older in self.folder.glob("task*.pt"):
                if older != self.newest:
                    older.unlink()


def latest_checkpoint(args: Namespace, setting: str) -> Path | None:
    """The checkpoint of the furthest task of this configuration (``--resume auto``), if any."""
    found = sorted(checkpoint_dir(args, setting).glob("task*.pt"), key=lambda p: int(p.stem[4:]))
    return found[-1] if found else None


def load_checkpoint(path: str | Path, args: Namespace) -> dict:
    """Load a checkpoint of this very configuration; any problem is a one-line UserError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # unpickles no code
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"checkpoint {path} is a folder, not a file") from None
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # it names a class or function to call: refused, not called
            raise UserError(f"checkpoint {path} is refused: it holds Python objects besides tensors and plain values "
                            f"(not a checkpoint of this program, or one of a version before format {FORMAT}); "
                            "nothing in it was run") from None
        raise UserError(f"checkpoint {path} is truncated or corrupted ({type(e).__name__})") from None
    except Exception as e:  # a damaged file fails in many ways; every one means "unusable"
        raise UserError(f"checkpoint {path} is truncated or corrupted ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} is not a checkpoint of this program (format {FORMAT})")
    current = run_config(args)
    differ = sorted(k for k in state["args"].keys() | current.keys() if state["args"].get(k) != current.get(k))
    if differ:
        shown = ", ".join(f"{k}={state['args'].get(k)!r} (now {current.get(k)!r})" for k in differ[:4])
        raise UserError(f"checkpoint {path} is from another configuration: {shown}")
    return state
