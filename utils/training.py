"""The shared training loop over tasks and the evaluation protocol (docs/method.md, "Evaluation and metrics")."""
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from datasets.continual_dataset import ContinualDataset, reported_settings
from models.continual_model import ContinualModel
from utils.loggers import TensorBoardLogger
from utils.metrics import backward_transfer, forgetting, forward_transfer
from utils.status import ProgressBar, RunClock, clock_text

NAMES = {"class-il": "Class-IL", "task-il": "Task-IL", "domain-il": "Domain-IL"}


@dataclass
class History:
    """Accuracy matrices R[t][i] (row t - 1 also holds the pre-task accuracy on task t) and the
    random-initialisation accuracies b[i], per reported setting (class-IL and task-IL, or domain-IL)."""

    results: dict[str, list[list[float]]] = field(default_factory=lambda: {"class-il": [], "task-il": []})
    random_results: dict[str, list[float]] = field(default_factory=dict)
    # per epoch of the run: [mean trained loss, mean released loss] (models/continual_model.StepLoss)
    losses: list[list[float]] = field(default_factory=list)

    def mean_accs(self, setting: str) -> list[float]:
        return [float(np.mean(row[: t + 1])) for t, row in enumerate(self.results[setting])]


def evaluate(model: ContinualModel, dataset: ContinualDataset, loaders: list) -> dict[str, list[float]]:
    """Accuracy (%) on each loader's task, in eval mode without autograd: the argmax over every
    output (class-IL, or domain-IL) and, for class-IL streams, task-IL, which masks the logits
    outside the task's own classes before the argmax."""
    was_training = model.net.training
    model.net.eval()
    settings = reported_settings(dataset.SETTING)
    accs = {setting: [] for setting in settings}
    with torch.inference_mode():
        for task, loader in loaders:
            classes = dataset.task_classes(task)
            correct = torch.zeros(len(settings), dtype=torch.long, device=model.device)
            total = 0
            for inputs, labels, _ in loader:
                outputs = model(inputs)
                correct[0] += (outputs.argmax(1) == labels).sum()
                if "task-il" in accs:
                    masked = torch.full_like(outputs, float("-inf"))
                    masked[:, classes.start:classes.stop] = outputs[:, classes.start:classes.stop]
                    correct[1] += (masked.argmax(1) == labels).sum()
                total += len(labels)
            for setting, acc in zip(settings, (100.0 * correct.cpu().double() / max(1, total)).tolist(), strict=True):
                accs[setting].append(acc)
    model.net.train(was_training)
    return accs


@dataclass
class Progress:
    """Where a run stands after a task: what a checkpoint needs besides the model and RNGs."""

    next_task: int
    history: History
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # one id per run, kept across resumes
    elapsed: float = 0.0  # wall-clock seconds of training so far, over every resumed part of the run


def train(model: ContinualModel, dataset: ContinualDataset, tb: TensorBoardLogger | None = None,
          start: Progress | None = None, checkpoint: Callable[[Progress], None] | None = None,
          check_interrupt: Callable[[], None] = lambda: None) -> Progress:
    """Train task after task, evaluating on all seen tasks after each; print each task's time and
    the summary. Returns the run's final progress.

    ``start`` continues a resumed run (or names a new one); ``checkpoint`` runs before the first
    task of a new run and after each task's evaluation; ``check_interrupt`` runs before every task
    and every step and may raise to stop the run. TensorBoard steps count the epochs of the stream:
    the loss of epoch e of task t at t * n_epochs + e + 1, the accuracies after task t at
    (t + 1) * n_epochs."""
    args = model.args
    began = time.monotonic()
    test_loaders = [(t, dataset.test_loader(t)) for t in range(dataset.N_TASKS)]
    progress = start or Progress(0, History({s: [] for s in reported_settings(dataset.SETTING)}))
    history = progress.history
    if not history.random_results:
        history.random_results = evaluate(model, dataset, test_loaders)
        if checkpoint is not None:  # a run interrupted in its first task can resume too
            checkpoint(progress)
    stream = model.TRAINS_ON_STREAM
    remaining = range(progress.next_task, dataset.N_TASKS)
    # joint trains once, on every task, after the last one (which ``remaining`` holds unless it is empty)
    batches = (sum(dataset.n_train_batches([t]) for t in remaining) if stream
               else dataset.n_train_batches(range(dataset.N_TASKS)) * bool(remaining))
    clock = RunClock(args.n_epochs * batches)

    def run_epochs(task: int, loader, label: str) -> None:
        model.net.train()
        bar = ProgressBar(label, args.n_epochs, len(loader), clock)
        for epoch in range(args.n_epochs):
            for inputs, labels, not_aug_inputs in loader:
                check_interrupt()
                bar.step(epoch, model.observe(inputs, labels, not_aug_inputs))
            model.guard.check()  # where the guard defers its checks (GPU), an epoch is the most lost
            trained, released = bar.end_epoch()
            history.losses.append([trained, released])
            if tb is not None:
                tb.log_loss(trained, released, task * args.n_epochs + epoch + 1)

    for task in remaining:
        check_interrupt()
        task_began = time.monotonic()
        if task > 0:
            pre_task = evaluate(model, dataset, test_loaders[task:task + 1])
            for setting, rows in history.results.items():
                rows[-1].append(pre_task[setting][0])
        model.begin_task(task)
        if stream:
            run_epochs(task, dataset.train_loader([task]), f"task {task + 1}/{dataset.N_TASKS}")
        model.end_task(task)
        if not stream and task == dataset.N_TASKS - 1:  # joint: all tasks at once, at the end
            run_epochs(task, dataset.train_loader(range(dataset.N_TASKS)), "joint")
        accs = evaluate(model, dataset, test_loaders[:task + 1])
        for setting, rows in history.results.items():
            rows.append(accs[setting])
        now = time.monotonic()
        progress = Progress(task + 1, history, progress.run_id, progress.elapsed + now - began)
        began = now
        print_task_accuracy(task, accs)
        print(f"    task {task + 1} took {clock_text(now - task_began)}; the run so far "
              f"{clock_text(progress.elapsed)}", flush=True)
        if tb is not None:
            tb.log_accuracy((task + 1) * args.n_epochs, accs)
            tb.commit()
        if checkpoint is not None:
            checkpoint(progress)
    print_summary(history)
    return progress


def print_task_accuracy(task: int, accs: dict[str, list[float]]) -> None:
    means = " ".join(f"[{NAMES[s]}]: {np.mean(v):.2f} %" for s, v in accs.items())
    print(f"Accuracy for {task + 1} task(s): {means}", flush=True)
    for setting, values in accs.items():
        print(f"    {setting} per task: " + " ".join(f"{v:.2f}" for v in values), flush=True)


def print_summary(history: History) -> None:
    for setting, results in history.results.items():
        print(f"\n{setting} accuracy matrix (row t: after task t; last entry of row t < T-1: before task t+1):")
        for row in results:
            print("    " + " ".join(f"{v:6.2f}" for v in row))
        if len(results) > 1:
            print(f"  BWT {backward_transfer(results):.2f} | "
                  f"FWT {forward_transfer(results, history.random_results[setting]):.2f} | "
                  f"forgetting {forgetting(results):.2f}", flush=True)
