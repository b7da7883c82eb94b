"""The tensor data path (default) and the released per-image PIL path (``--loader pil``) feed a run the
same examples: one epoch of either loader holds the same (image, label) pairs, only in another
shuffled order, and the transforms agree (the PIL pipeline's distribution is pinned in
test_augmentation_pinned.py). A run on either path therefore differs from the other as two seeds do."""

import numpy as np
import pytest
import torch

import main
from tests.conftest import fmnist_data_path
from tests.reference_helpers import make_dataset


def _epoch(dataset, tasks: list[int]) -> tuple[np.ndarray, torch.Tensor]:
    """One epoch of ``dataset.train_loader(tasks)``: rows of (label, unaugmented image as bytes) and the
    inputs, both sorted by the rows."""
    inputs, labels, raws = zip(*dataset.train_loader(tasks), strict=True)
    pixels = (torch.cat(raws).flatten(1) * 255).round().to(torch.uint8)
    rows = torch.cat([torch.cat(labels)[:, None].to(torch.uint8), pixels], dim=1).numpy()
    order = np.argsort(rows.view(np.dtype((np.void, rows.shape[1]))).ravel(), kind="stable")
    return rows[order], torch.cat(inputs)[torch.from_numpy(order)]


def _assert_same_examples(tensor: tuple, pil: tuple, same_inputs: bool) -> None:
    np.testing.assert_array_equal(tensor[0], pil[0])  # the same images with the same labels
    if same_inputs:  # no augmentation: the network's inputs agree too
        torch.testing.assert_close(tensor[1], pil[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("dataset_name, augmented", [("seq-cifar10-online", False), ("seq-cifar10", True)])
def test_one_epoch_of_either_loader_holds_the_same_examples(cifar10_path, one_thread, dataset_name, augmented):
    # tasks 0 and 1 of the fixture: 400 images, 20 batches of 20, none dropped
    tensor, pil = (_epoch(make_dataset(dataset_name, cifar10_path, loader=loader, batch_size=20), [0, 1])
                   for loader in ("tensor", "pil"))
    assert len(tensor[0]) == 400
    _assert_same_examples(tensor, pil, same_inputs=not augmented)


def test_one_epoch_of_either_loader_holds_the_same_fashion_mnist_examples(fmnist_dir, tmp_path, one_thread):
    """Grey images (no channel axis on the PIL path): the first 3000 training images of the real files,
    one batch per image so that none is dropped."""
    data = fmnist_data_path(tmp_path / "data")
    train_x, train_y, test_x, test_y = make_dataset("seq-fmnist", data, loader="tensor", batch_size=1).load()
    epochs = []
    for loader in ("tensor", "pil"):
        dataset = make_dataset("seq-fmnist", data, loader=loader, batch_size=1)
        dataset.prepare((train_x[:3000], train_y[:3000], test_x, test_y))
        epochs.append(_epoch(dataset, [4]))
    tensor, pil = epochs
    assert len(tensor[0]) == int((train_y[:3000] >= 8).sum()) > 500  # classes 8 and 9
    _assert_same_examples(tensor, pil, same_inputs=True)


@pytest.mark.slow  # a whole (debug) run
def test_a_run_on_the_pil_path_ends_with_its_rows(cifar10_path, tmp_path, capsys, one_thread):
    results = tmp_path / "results"
    code = main.main(["--model", "er", "--dataset", "seq-cifar10", "--buffer_size", "20", "--minibatch_size", "4",
                      "--lr", "0.1", "--batch_size", "4", "--n_epochs", "1", "--loader", "pil", "--debug_mode",
                      "--num_filters", "8", "--offline", "--data_path", cifar10_path, "--device", "cpu",
                      "--seed", "0", "--csv_log", "--results_path", str(results)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "Accuracy for 5 task(s)" in captured.out
    for setting in ("class-il", "task-il"):
        [csv] = (results / setting).rglob("mean_accs.csv")
        assert csv.read_text().count("\n") == 2 and ",pil," in csv.read_text()
