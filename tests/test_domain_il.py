"""The domain-IL setting: perm-/rot- datasets (transforms fixed by the seed, one per task, applied
alike to training and test images), evaluation and metrics on constructed logits, and runs that
write domain-IL rows."""
import csv
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

import main
from datasets import get_all_datasets
from datasets.domain_il import DomainIncremental, Permuted, Rotated
from models.continual_model import ContinualModel, StepLoss
from tests.conftest import fmnist_data_path
from tests.reference_helpers import CPU, make_args
from utils.training import evaluate, train

DATASETS = get_all_datasets()


def _args(name: str, seed: int | None = 0):
    args = make_args("sgd", name, lr=0.1, batch_size=8, n_epochs=1)
    args.seed = seed
    return args


def _fake_data(n_train: int = 40, n_test: int = 20, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train + n_test, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.arange(n_train + n_test) % 10
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


# --- the per-task transforms ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["perm-mnist", "perm-fmnist", "rot-mnist", "rot-fmnist"])
def test_domain_datasets_declare_the_der_protocol(name):
    cls = DATASETS[name]
    assert (cls.SETTING, cls.N_TASKS, cls.N_CLASSES_PER_TASK) == ("domain-il", 20, 10)
    assert issubclass(cls, Permuted if name.startswith("perm") else Rotated)
    backbone = cls(_args(name), CPU).get_backbone()
    assert backbone(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert [m.out_features for m in backbone.modules() if isinstance(m, nn.Linear)] == [100, 100, 10]


def test_permutations_are_fixed_by_the_seed_and_differ_between_tasks():
    a, b, c = (DATASETS["perm-fmnist"](_args("perm-fmnist", seed), CPU) for seed in (3, 3, 4))
    assert all(torch.equal(p, q) for p, q in zip(a.permutations, b.permutations, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(a.permutations, c.permutations, strict=True))
    assert len({tuple(p.tolist()) for p in a.permutations}) == 20  # every task its own, the first too
    assert all(sorted(p.tolist()) == list(range(784)) for p in a.permutations)
    images = torch.arange(784, dtype=torch.int64).view(1, 1, 28, 28)  # pixel i holds i
    assert a.task_inputs(5, images).flatten().tolist() == a.permutations[5].tolist()


def test_rotations_are_fixed_by_the_seed_drawn_in_0_180_and_differ_between_tasks():
    a, b, c = (DATASETS["rot-mnist"](_args("rot-mnist", seed), CPU) for seed in (3, 3, 4))
    assert a.angles == b.angles and a.angles != c.angles
    assert len(set(a.angles)) == 20 and all(0 <= angle < 180 for angle in a.angles)
    images = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    images[0, 0, 14, 20:26] = 255  # a bar right of the centre
    a.angles[0] = 90.0
    rotated = a.task_inputs(0, images)
    assert rotated.dtype == torch.uint8 and rotated.sum() == images.sum()  # a quarter turn loses no pixel
    assert rotated[0, 0, 14, 20:26].sum() == 0 and rotated[0, 0, 2:8, 14].sum() == 6 * 255  # now above


@pytest.mark.parametrize("name", ["perm-fmnist", "rot-fmnist"])
def test_training_and_test_images_of_a_task_are_transformed_alike(name):
    """With the test images equal to the training images, every task's test inputs are exactly its
    training inputs (as sets), and they differ from the untransformed images and between tasks."""
    train_x, train_y, _, _ = _fake_data()
    dataset = DATASETS[name](_args(name), CPU)
    dataset.prepare((train_x, train_y, train_x.clone(), train_y.clone()))
    dataset.args.batch_size = 1

    def rows(loader) -> set[tuple]:
        return {tuple(raw.flatten().tolist()) for _, _, batch in loader for raw in batch}

    seen = []
    for task in (0, 1, 7):
        train_rows = rows(dataset.train_loader([task]))
        assert train_rows == rows(dataset.test_loader(task))
        seen.append(train_rows)
    assert rows([(None, None, train_x.float() / 255)]) not in seen
    assert seen[0] != seen[1] != seen[2]


def test_every_task_holds_every_class_and_the_whole_training_set():
    dataset = DATASETS["perm-fmnist"](_args("perm-fmnist"), CPU)
    train_x, train_y, test_x, test_y = _fake_data()
    dataset.prepare((train_x, train_y, test_x, test_y))
    for task in (0, 19):
        assert dataset.task_classes(task) == range(10)
        assert dataset.train_size(task) == len(train_y)
        labels = torch.cat([y for _, y, _ in dataset.test_loader(task)])
        assert sorted(labels.tolist()) == sorted(test_y.tolist())


# --- evaluation and metrics on constructed logits ------------------------------------------------


class TinyDomain(DomainIncremental):
    """3 tasks x 4 classes; example ids in one pixel; task t shifts every id by 50 t."""

    N_TASKS, N_CLASSES_PER_TASK = 3, 4
    TEST = 6

    def load(self):
        test_y = torch.arange(self.TEST) % 4
        train_x = torch.arange(200, 208, dtype=torch.uint8).view(-1, 1, 1, 1)
        return train_x, torch.arange(8) % 4, torch.arange(self.TEST, dtype=torch.uint8).view(-1, 1, 1, 1), test_y

    def task_inputs(self, task: int, images: torch.Tensor) -> torch.Tensor:
        return images + 50 * task if images.max() < 200 else images


class LookupNet(nn.Module):
    def __init__(self, tables: torch.Tensor) -> None:
        super().__init__()
        self.tables, self.phase = tables, 0
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tables[self.phase].index_select(0, (x.flatten(1)[:, 0] * 255).round().long())


class PhaseModel(ContinualModel):
    """Learns nothing: training task t switches the logits to those of phase t + 1."""

    NAME = ""  # not registered

    def begin_task(self, task: int) -> None:
        self.task = task

    def observe(self, inputs, labels, not_aug_inputs):
        self.net.phase = self.task + 1
        return StepLoss(torch.zeros(()), torch.zeros(()))


def test_domain_il_accuracy_matrices_and_metrics_by_hand():
    """Phase p predicts, for test example i of task t (id i + 50 t), class PRED[p][t][i]; the matrix
    rows, the pre-task entries, the random-initialisation row and BWT / FWT / forgetting follow by
    hand. No task-IL accuracy exists in domain-IL."""
    labels = [0, 1, 2, 3, 0, 1]
    correct = {  # (phase, task): which of the 6 test examples are predicted right
        (0, 0): 3, (0, 1): 2, (0, 2): 1,
        (1, 0): 6, (1, 1): 3,
        (2, 0): 4, (2, 1): 6, (2, 2): 2,
        (3, 0): 2, (3, 1): 5, (3, 2): 6,
    }
    tables = torch.zeros(4, 256, 4)
    for (phase, task), n_right in correct.items():
        for i, y in enumerate(labels):
            tables[phase, i + 50 * task, y if i < n_right else (y + 1) % 4] = 1.0
    args = _args("perm-fmnist")
    args.batch_size = 4
    dataset = TinyDomain(args, CPU)
    dataset.prepare()
    model = PhaseModel(LookupNet(tables), args, dataset, CPU)
    history = train(model, dataset).history
    acc = {k: 100 * v / 6 for k, v in correct.items()}
    assert list(history.results) == ["domain-il"] and list(history.random_results) == ["domain-il"]
    rows = history.results["domain-il"]
    assert rows == [[acc[1, 0], acc[1, 1]], [acc[2, 0], acc[2, 1], acc[2, 2]], [acc[3, 0], acc[3, 1], acc[3, 2]]]
    assert history.random_results["domain-il"] == [acc[0, 0], acc[0, 1], acc[0, 2]]
    from utils.metrics import backward_transfer, forgetting, forward_transfer

    assert backward_transfer(rows) == pytest.approx(((acc[3, 0] - acc[1, 0]) + (acc[3, 1] - acc[2, 1])) / 2)
    assert forward_transfer(rows, history.random_results["domain-il"]) == pytest.approx(
        ((acc[1, 1] - acc[0, 1]) + (acc[2, 2] - acc[0, 2])) / 2)
    assert forgetting(rows) == pytest.approx(((acc[1, 0] - acc[3, 0]) + (acc[2, 1] - acc[3, 1])) / 2)
    accs = evaluate(model, dataset, [(0, dataset.test_loader(0))])
    assert list(accs) == ["domain-il"]


# --- runs -----------------------------------------------------------------------------------------


def _run_argv(data: Path, results: Path, *extra: str) -> list[str]:
    return ["--model", "derpp", "--dataset", "perm-fmnist", "--buffer_size", "50", "--minibatch_size", "10",
            "--lr", "0.1", "--alpha", "0.5", "--beta", "0.5", "--batch_size", "16", "--n_epochs", "1",
            "--seed", "0", "--debug_mode", "--offline", "--device", "cpu", "--data_path", str(data),
            "--csv_log", "--results_path", str(results), *extra]


@pytest.mark.slow
def test_a_domain_il_run_writes_domain_il_rows_and_resumes_exactly(tmp_path, capsys):
    data = fmnist_data_path(tmp_path / "data")
    assert main.main(_run_argv(data, tmp_path / "full", "--keep_checkpoints")) == 0
    out = capsys.readouterr().out
    assert "Accuracy for 20 task(s): [Domain-IL]: " in out and "Task-IL" not in out
    folder = tmp_path / "full" / "domain-il" / "perm-fmnist" / "derpp"
    with open(folder / "mean_accs.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    assert [f"task{t}" for t in range(1, 21)] == [k for k in row if k.startswith("task") and k[4:].isdigit()]
    assert not (tmp_path / "full" / "class-il").exists() and not (tmp_path / "full" / "task-il").exists()
    # resumed from the checkpoint after task 12: the same row
    [ckpt] = (tmp_path / "full" / "checkpoints" / "domain-il" / "perm-fmnist" / "derpp").glob("*/task12.pt")
    shutil.copytree(tmp_path / "full" / "checkpoints", tmp_path / "resumed" / "checkpoints")
    resumed_ckpt = tmp_path / "resumed" / ckpt.relative_to(tmp_path / "full")
    assert main.main(_run_argv(data, tmp_path / "resumed", "--resume", str(resumed_ckpt))) == 0
    with open(tmp_path / "resumed" / "domain-il" / "perm-fmnist" / "derpp" / "mean_accs.csv", newline="") as f:
        [again] = list(csv.DictReader(f))
    volatile = ("timestamp", "wall_seconds")
    assert {k: v for k, v in again.items() if k not in volatile} == {k: v for k, v in row.items() if k not in volatile}


def _finished_run(results: Path, dataset: str, model: str, buffer: int | None, seed: int, accs: dict) -> None:
    """A finished grid run as cifar.py leaves it: done.json and the run's own CSV rows."""
    import json

    from experiments.grid import best_args_of
    from experiments.runs import Run
    from utils.loggers import append_row

    run = Run(dataset, model, buffer, seed, (), best_args_of(dataset, model, buffer))
    folder = results / "runs" / run.key
    for setting, acc in accs.items():
        append_row(folder / setting / dataset / model / "mean_accs.csv",
                   {"task1": 0.0, "task20": acc, "backward_transfer": -acc / 10, "forgetting": acc / 10})
    (folder / "done.json").write_text(json.dumps({"key": run.key, "dataset": dataset, "model": model,
                                                  "buffer": buffer, "seed": seed, "extra": []}))


def test_grid_table_of_a_domain_il_dataset_has_one_accuracy_and_the_der_numbers(tmp_path):
    from experiments.tables import summarize

    for seed, acc in ((0, 80.0), (1, 84.0)):
        _finished_run(tmp_path, "perm-mnist", "derpp", 500, seed, {"domain-il": acc})
    _finished_run(tmp_path, "perm-mnist", "sgd", None, 0, {"domain-il": 40.0})
    text = summarize(tmp_path, "perm-mnist")
    lines = text.splitlines()
    assert ("| model | buffer | domain-IL | domain-IL 95% CI | BWT | forgetting | seeds | DER paper domain-IL |"
            in lines)
    assert "| sgd | - | 40.00 | - | -4.00 | 4.00 | 1 | 40.70 |" in lines  # one seed: no interval
    # std of 80, 84: 2.83; 95% CI 82 ± t_{0.975,1} (12.706) * 2.83 / sqrt(2) = 82 ± 25.41
    assert "| derpp | 500 | 82.00 ± 2.83 | [56.59, 107.41] | -8.20 | 8.20 | 2 | 88.21 |" in lines
    assert "task-IL" not in text and "class-IL" not in text


def test_grid_table_of_seq_tinyimg_shows_the_der_numbers(tmp_path):
    from experiments.tables import summarize

    _finished_run(tmp_path, "seq-tinyimg", "er", 200, 0, {"class-il": 9.0, "task-il": 39.0})
    assert "| er | 200 | 9.00 | - | 39.00 | - | -0.90 | 0.90 | 1 | 8.49 | 38.17 |" in summarize(tmp_path, "seq-tinyimg")


def test_summarize_writes_the_figures_where_asked(tmp_path, capsys):
    import cifar

    for seed, acc in ((0, 80.0), (1, 84.0)):
        _finished_run(tmp_path, "perm-mnist", "derpp", 500, seed, {"domain-il": acc})
    assert cifar.main(["--summarize", "--dataset", "perm-mnist", "--results", str(tmp_path),
                       "--figures", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "accuracy_vs_buffer_perm-mnist.png").stat().st_size > 0
    assert not (tmp_path / "accuracy_vs_buffer_perm-mnist.png").exists()
