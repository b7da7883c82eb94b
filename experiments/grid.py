"""The runs of a grid: one per model, buffer and seed, with the values utils/best_args.py gives each
(part of its key), and which finished runs utils/best_args.py still stands behind."""
from collections.abc import Sequence

from experiments.runs import Run
from models import get_all_models
from models.continual_model import ReplayModel
from utils.best_args import lookup

PAPER_MODELS = ("sgd", "joint", "er", "der", "derpp", "hcr")


def entry_name(model: str, extra: Sequence[str] = ()) -> str:
    """The name of the model's entries in utils/best_args.py for runs given the flags ``extra``."""
    return get_all_models()[model].best_args_name(extra)


def best_args_of(dataset: str, model: str, buffer: int | None,
                 extra: Sequence[str] = ()) -> tuple[tuple[str, float], ...]:
    """The entry of utils/best_args.py that --load_best_args gives the run (``extra``: its flags after
    --), sorted. KeyError (main.py would fail) when there is none."""
    return tuple(sorted(lookup(dataset, entry_name(model, extra), buffer).items()))


def cells(models: Sequence[str], buffers: Sequence[int]) -> list[tuple[str, int | None]]:
    """(model, buffer) pairs: buffer-free models once (buffer None), replay models per buffer (ascending)."""
    classes = get_all_models()
    return [(model, buffer) for model in dict.fromkeys(models)
            for buffer in (sorted(set(buffers)) if issubclass(classes[model], ReplayModel) else [None])]


def plan(dataset: str, models: list[str], buffers: list[int], seeds: list[int], extra: list[str]) -> list[Run]:
    """The grid: buffer-free models once per seed, replay models once per buffer and seed. KeyError
    when utils/best_args.py has no entry for a (model, buffer)."""
    return [Run(dataset, model, buffer, seed, tuple(extra), best_args_of(dataset, model, buffer, extra))
            for model, buffer in cells(models, buffers) for seed in dict.fromkeys(seeds)]


def is_current(info: dict) -> bool:
    """Whether a finished run (its done.json) was made with the best arguments utils/best_args.py
    gives it now: its key is the one the run would get today."""
    try:
        best = best_args_of(info["dataset"], info["model"], info["buffer"], info["extra"])
    except KeyError:  # the entry is gone
        return False
    run = Run(info["dataset"], info["model"], info["buffer"], info["seed"], tuple(info["extra"]), best)
    return run.key == info["key"]
