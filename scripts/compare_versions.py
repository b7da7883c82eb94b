"""Time the training step of two checkouts of this project side by side in one process.

    python scripts/compare_versions.py OLD_DIR NEW_DIR [--model hcr] [--buffer_size 500] [main.py flags...]

Each checkout builds the same run with its own ``utils.experiment.build`` (seq-fmnist, best
arguments, seed 0, CPU, deterministic kernels; checkouts from before that function existed are not
supported) and trains --warmup_steps steps of task 1, so that its buffer is full; then
both train on the same task-2 batches in alternating blocks of --block_steps steps (ABBA order), so
that the machine's drift from minute to minute falls on both alike. Prints each version's mean
step time and their ratio. Separate runs of main.py on a shared machine wander by 20-30%; this
comparison of one version with itself comes out within about 1%.
"""
import argparse
import importlib
import sys
import time
from pathlib import Path

import torch

PACKAGES = ("main", "utils", "models", "datasets", "backbone")


def build(checkout: Path, main_argv: list[str], warmup_steps: int) -> tuple:
    """The checkout's model after ``warmup_steps`` steps of task 1, and its task-2 batches."""
    for name in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
        del sys.modules[name]  # import this checkout's modules, not the other's
    sys.path.insert(0, str(checkout))
    try:
        main = importlib.import_module("main")
        models, datasets = (importlib.import_module(p) for p in ("models", "datasets"))
        args = main.parse_args(main_argv, models.get_all_models(), datasets.get_all_datasets())
        model = importlib.import_module("utils.experiment").build(args).model
        model.net.train()
        for step, batch in enumerate(model.dataset.train_loader([0])):
            if step == warmup_steps:
                break
            model.observe(*batch)
        return model, list(model.dataset.train_loader([1]))
    finally:
        sys.path.remove(str(checkout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--warmup_steps", type=int, default=600)
    parser.add_argument("--blocks", type=int, default=100, help="blocks per version")
    parser.add_argument("--block_steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    opts, main_flags = parser.parse_known_args()
    torch.set_num_threads(opts.threads)
    defaults = {"--model": "hcr", "--dataset": "seq-fmnist", "--buffer_size": "500", "--seed": "0"}
    main_argv = [x for k, v in defaults.items() if k not in main_flags for x in (k, v)]
    main_argv += ["--load_best_args", "--device", "cpu", "--offline", *main_flags]
    versions = {name: build(path.resolve(), main_argv, opts.warmup_steps)
                for name, path in (("old", opts.old), ("new", opts.new))}
    seconds = dict.fromkeys(versions, 0.0)
    steps = 0
    for block in range(opts.blocks):
        order = ("old", "new") if block % 2 == 0 else ("new", "old")
        for name in order:
            model, batches = versions[name]
            start = (block * opts.block_steps) % max(1, len(batches) - opts.block_steps)
            chunk = batches[start:start + opts.block_steps]
            began = time.perf_counter()
            for batch in chunk:
                model.observe(*batch)
            seconds[name] += time.perf_counter() - began
        steps += len(chunk)
    print(f"{' '.join(main_argv)}; {opts.threads} threads; {steps} steps each, in blocks of {opts.block_steps}")
    for name, path in (("old", opts.old), ("new", opts.new)):
        print(f"{name}: {path}: {1000 * seconds[name] / steps:.3f} ms/step")
    print(f"new/old: {seconds['new'] / seconds['old']:.3f}")


if __name__ == "__main__":
    main()
