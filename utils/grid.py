"""The runs of a grid: what each one is (its key names its arguments, best-argument values
included) and which of them ``utils/best_args.py`` still stands behind."""
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

PAPER_MODELS = ("sgd", "joint", "er", "der", "derpp", "hcr")


@dataclass(frozen=True)
class Run:
    dataset: str
    model: str
    buffer: int | None
    seed: int
    extra: tuple[str, ...] = ()
    best_args: tuple[tuple[str, float], ...] = ()  # the run's entry of utils/best_args.py, sorted

    @property
    def key(self) -> str:
        digest = hashlib.sha1(json.dumps([self.dataset, self.model, self.buffer, self.seed, self.extra,
                                          self.best_args]).encode())
        buffer = "nobuf" if self.buffer is None else f"b{self.buffer}"
        return f"{self.dataset}-{self.model}-{buffer}-s{self.seed}-{digest.hexdigest()[:8]}"


def entry_name(model: str, extra: Sequence[str] = ()) -> str:
    """The name of the model's entries in utils/best_args.py for runs given the flags ``extra``."""
    from models import get_all_models

    return get_all_models()[model].best_args_name(extra)


def best_args_of(dataset: str, model: str, buffer: int | None,
                 extra: Sequence[str] = ()) -> tuple[tuple[str, float], ...]:
    """The entry of utils/best_args.py that --load_best_args gives the run (``extra``: its flags after
    --), sorted. KeyError (main.py would fail) when there is none."""
    from utils.best_args import lookup

    return tuple(sorted(lookup(dataset, entry_name(model, extra), buffer).items()))


def plan(dataset: str, models: list[str], buffers: list[int], seeds: list[int], extra: list[str]) -> list[Run]:
    """The grid: buffer-free models once per seed, replay models once per buffer and seed. KeyError
    when utils/best_args.py has no entry for a (model, buffer)."""
    from models import get_all_models
    from models.continual_model import ReplayModel

    classes = get_all_models()
    return [Run(dataset, model, buffer, seed, tuple(extra), best_args_of(dataset, model, buffer, extra))
            for model in dict.fromkeys(models)
            for buffer in (sorted(set(buffers)) if issubclass(classes[model], ReplayModel) else [None])
            for seed in dict.fromkeys(seeds)]


def is_current(info: dict) -> bool:
    """Whether a finished run (its done.json) was made with the best arguments utils/best_args.py
    gives it now: its key is the one the run would get today."""
    try:
        best = best_args_of(info["dataset"], info["model"], info["buffer"], info["extra"])
    except KeyError:  # the entry is gone
        return False
    run = Run(info["dataset"], info["model"], info["buffer"], info["seed"], tuple(info["extra"]), best)
    return run.key == info["key"]
