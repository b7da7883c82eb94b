"""The evaluation protocol on constructed logits: class-IL and task-IL accuracy (task-IL masks
the logits to the task's own classes), their aggregation over batches, eval mode, and the
accuracy matrices of a whole run with the pre-task accuracies used by forward transfer."""
import numpy as np
import torch
from torch import nn

from datasets.continual_dataset import ContinualDataset
from models.continual_model import ContinualModel, StepLoss
from tests.reference_helpers import CPU, make_args
from utils.metrics import forward_transfer
from utils.training import evaluate, train


class ModeRecorder(nn.Module):
    """Returns its input as the logits and records the train/eval mode of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return x


class TinyDataset(ContinualDataset):
    """3 tasks of 2 classes; every image is a single pixel holding the example's id (uint8)."""

    NAME = ""  # not registered
    N_TASKS = 3
    N_CLASSES_PER_TASK = 2
    TEST_PER_TASK = 5
    TRAIN_PER_TASK = 4

    def load(self):
        test_y = torch.tensor([2 * t + (i % 2) for t in range(3) for i in range(self.TEST_PER_TASK)])
        train_y = torch.tensor([2 * t + (i % 2) for t in range(3) for i in range(self.TRAIN_PER_TASK)])
        test_x = torch.arange(len(test_y), dtype=torch.uint8).view(-1, 1, 1, 1)
        train_x = (100 + torch.arange(len(train_y))).to(torch.uint8).view(-1, 1, 1, 1)
        return train_x, train_y, test_x, test_y


class LookupNet(nn.Module):
    """Logits read from ``tables[phase][id]``, the id decoded from the single pixel."""

    def __init__(self, tables: torch.Tensor) -> None:
        super().__init__()
        self.tables = tables
        self.phase = 0
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = (x.flatten(1)[:, 0] * 255).round().long()
        return self.tables[self.phase].index_select(0, ids)


class PhaseModel(ContinualModel):
    """Does not learn: a step on task t's labels switches the logits to those of phase t + 1, so
    every evaluation of the run reads a known table (phase 0: random initialisation)."""

    NAME = ""  # not registered

    def observe(self, inputs, labels, not_aug_inputs):
        self.net.phase = max(self.net.phase, int(labels.max()) // 2 + 1)
        return StepLoss(torch.zeros(()), torch.zeros(()))


def test_evaluate_on_constructed_logits():
    """Task 1 (classes 2, 3), four examples in two batches (3 + 1):
    ex0 argmax 2 = label: right in both; ex1 argmax 0 (another task), best of {2, 3} is 3 = label:
    wrong class-IL, right task-IL; ex2 argmax 5, best of {2, 3} is 2, label 3: wrong in both;
    ex3 argmax 3, label 2: wrong in both. Class-IL 1/4, task-IL 2/4 (the mean of per-batch
    accuracies would give 1/6 and 1/3).
    Task 0 (classes 0, 1), two examples: argmax 4 with 1 > 0 and label 1; argmax 1, label 0.
    Class-IL 0, task-IL 1/2."""
    logits_t1 = torch.tensor([[0.0, 0.0, 5.0, 1.0, 0.0, 0.0],
                              [9.0, 0.0, 1.0, 2.0, 0.0, 0.0],
                              [0.0, 0.0, 3.0, 2.0, 0.0, 7.0],
                              [0.0, 0.0, 1.0, 4.0, 0.0, 0.0]])
    labels_t1 = torch.tensor([2, 3, 3, 2])
    logits_t0 = torch.tensor([[0.0, 2.0, 0.0, 0.0, 6.0, 0.0],
                              [0.0, 3.0, 0.0, 0.0, 0.0, 0.0]])
    labels_t0 = torch.tensor([1, 0])
    loader_t1 = [(logits_t1[:3], labels_t1[:3], logits_t1[:3]), (logits_t1[3:], labels_t1[3:], logits_t1[3:])]
    loader_t0 = [(logits_t0, labels_t0, logits_t0)]
    args = make_args("sgd", lr=0.1, batch_size=2, n_epochs=1)
    dataset = TinyDataset(args, CPU)
    model = PhaseModel(ModeRecorder(), args, dataset, CPU)
    model.net.train()
    accs = evaluate(model, dataset, [(1, loader_t1), (0, loader_t0)])
    assert accs["class-il"] == [25.0, 0.0]
    assert accs["task-il"] == [50.0, 50.0]
    assert model.net.modes and not any(model.net.modes), "evaluation must run in eval mode"
    assert model.net.training, "evaluation must restore the train mode"
    model.net.eval()
    evaluate(model, dataset, [(0, loader_t0)])
    assert not model.net.training


def random_tables(n_phases: int, labels: torch.Tensor, seed: int = 0):
    """Per phase and test example: the class-IL prediction (argmax over all classes) and the
    task-IL one (argmax over the task's classes), chosen at random with a bias to the label;
    the logits put 2 on the class-IL prediction, 1 on the task-IL one and negative values
    elsewhere."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    tables = -torch.rand(n_phases, n, 6, generator=g) - 1
    class_pred = torch.empty(n_phases, n, dtype=torch.long)
    task_pred = torch.empty(n_phases, n, dtype=torch.long)
    for p in range(n_phases):
        for i, y in enumerate(labels.tolist()):
            first = 2 * (y // 2)
            u = torch.rand(3, generator=g).tolist()
            c1 = y if u[0] < 0.4 else int(u[1] * 6)
            c2 = c1 if first <= c1 < first + 2 else (y if u[2] < 0.6 else first + (1 - y % 2))
            tables[p, i, c2] = 1.0
            tables[p, i, c1] = 2.0 if c1 != c2 else 1.0
            class_pred[p, i], task_pred[p, i] = c1, c2
    return tables, class_pred, task_pred


def test_train_records_accuracy_matrices_and_pre_task_accuracies():
    """A whole run over 3 tasks: random_results are phase 0; row t of each matrix holds the
    accuracies after task t on tasks 0..t and, for t < 2, the accuracy on task t + 1 measured
    before training it (still phase t + 1); all against counts from the chosen predictions."""
    args = make_args("sgd", lr=0.1, batch_size=2, n_epochs=1)
    dataset = TinyDataset(args, CPU)
    test_y = dataset.load()[3]
    tables, class_pred, task_pred = random_tables(4, test_y)
    model = PhaseModel(LookupNet(tables), args, dataset, CPU)

    def expected(pred: torch.Tensor, phase: int, task: int) -> float:
        own = slice(task * TinyDataset.TEST_PER_TASK, (task + 1) * TinyDataset.TEST_PER_TASK)
        return 100.0 * float((pred[phase, own] == test_y[own]).sum()) / TinyDataset.TEST_PER_TASK

    history = train(model, dataset).history
    for setting, pred in (("class-il", class_pred), ("task-il", task_pred)):
        random = [expected(pred, 0, i) for i in range(3)]
        rows = [[expected(pred, t + 1, i) for i in range(min(t + 2, 3))] for t in range(3)]
        assert history.random_results[setting] == random, setting
        assert history.results[setting] == rows, setting
        fwt = np.mean([rows[i - 1][i] - random[i] for i in range(1, 3)])
        assert forward_transfer(history.results[setting], history.random_results[setting]) == fwt
    # the two settings do differ on these logits, so an unmasked task-IL is seen
    assert history.results["class-il"] != history.results["task-il"]
    assert history.random_results["class-il"] != history.random_results["task-il"]
