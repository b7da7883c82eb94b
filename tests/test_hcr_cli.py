"""hcr from the command line: its best arguments and end-to-end runs on real Fashion-MNIST."""
import csv
import re
import subprocess
import sys

import pytest

import main
from datasets import get_all_datasets
from models import get_all_models
from tests.conftest import REPO, subprocess_env

# docs/method.md, "Best hyper-parameters": (lr, alpha, beta, gamma, sigmoid); batch = minibatch = 32, 50 epochs.
RELEASED = {200: (0.01, 0.01, 0.9, 0.5, 0.01), 500: (0.03, 0.01, 0.3, 0.5, 0.01), 5120: (0.03, 0.5, 0.3, 0.5, 0.5)}


@pytest.mark.parametrize("buffer_size", sorted(RELEASED))
def test_best_args_of_hcr_on_seq_cifar10_are_the_released_ones(buffer_size):
    args = main.parse_args(["--model", "hcr", "--dataset", "seq-cifar10", "--buffer_size", str(buffer_size),
                            "--load_best_args"], get_all_models(), get_all_datasets())
    lr, alpha, beta, gamma, sigmoid = RELEASED[buffer_size]
    assert (args.lr, args.alpha, args.beta, args.gamma, args.sigmoid) == (lr, alpha, beta, gamma, sigmoid)
    assert (args.batch_size, args.minibatch_size, args.n_epochs) == (32, 32, 50)
    assert args.icr_mode == "faithful"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["faithful", "gradient"])
def test_hcr_end_to_end_on_fashion_mnist(fmnist_dir, tmp_path, mode):
    """The printed loss is the one the update follows; the CSV and TensorBoard also hold the released
    code's reported value, which adds the faithful mode's constant ICR term (hundreds here) to it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cmd = [sys.executable, "main.py", "--model", "hcr", "--dataset", "seq-fmnist", "--buffer_size", "200",
           "--load_best_args", "--minibatch_size", "32", "--icr_mode", mode, "--seed", "0", "--debug_mode",
           "--offline", "--csv_log", "--tensorboard", "--results_path", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Accuracy for 5 task(s)" in done.stdout
    losses = [float(v) for v in re.findall(r"\| loss (\S+) \|", done.stderr)]
    assert len(losses) == 5 and all(v == v and v < float("inf") for v in losses)  # finite, never NaN
    with open(tmp_path / "class-il" / "seq-fmnist" / "hcr" / "mean_accs.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["icr_mode"] == mode and row["buffer_size"] == "200" and row["minibatch_size"] == "32"
    [events] = (tmp_path / "tensorboard").rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events)).Reload()
    trained, released = ([e.value for e in acc.Scalars(tag)] for tag in ("loss", "released_loss"))
    assert trained == pytest.approx(losses, abs=1e-5)
    assert (float(row["loss"]), float(row["released_loss"])) == pytest.approx((trained[-1], released[-1]), rel=1e-6)
    if mode == "faithful":  # the constant dominates the reported value, not the printed one
        assert all(r > t + 10 for t, r in zip(trained[1:], released[1:], strict=True)) and max(trained) < 10
    else:
        assert released == pytest.approx(trained, rel=1e-6)


def test_unknown_icr_mode_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.parse_args(["--model", "hcr", "--dataset", "seq-fmnist", "--icr_mode", "exact"],
                        get_all_models(), get_all_datasets())
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize("flags, name", [
    ([], "hcr"), (["--icr_mode", "faithful"], "hcr"), (["--icr_mode", "gradient"], "hcr-gradient"),
    (["--icr_mode=gradient"], "hcr-gradient"), (["--icr_mode", "gradient", "--icr_mode", "faithful"], "hcr"),
])
def test_gradient_mode_has_entries_of_its_own(monkeypatch, flags, name):
    """--icr_mode gradient trains another network than the faithful mode, so --load_best_args, the
    grid's run keys and the search's proposals all use the entries named "hcr-gradient"."""
    from experiments import grid
    from utils import best_args

    entries = {"hcr": {200: {"lr": 0.01, "alpha": 0.5}}, "hcr-gradient": {200: {"lr": 0.1, "alpha": 0.01}}}
    monkeypatch.setitem(best_args.BEST_ARGS, "seq-fmnist", entries)
    args = main.parse_args(["--model", "hcr", "--dataset", "seq-fmnist", "--buffer_size", "200", "--load_best_args",
                            "--batch_size", "10", "--n_epochs", "1", "--minibatch_size", "10", "--beta", "1",
                            "--gamma", "0.5", "--sigmoid", "0.1", *flags], get_all_models(), get_all_datasets())
    assert (args.lr, args.alpha) == (entries[name][200]["lr"], entries[name][200]["alpha"])
    (run,) = grid.plan("seq-fmnist", ["hcr"], [200], [0], flags)
    assert dict(run.best_args) == entries[name][200]


def test_flag_value_reads_argparse_spellings():
    from utils.args import flag_value

    assert flag_value(["--a", "1", "--icr_mode", "x"], "--icr_mode") == "x"
    assert flag_value(["--icr_mode=y"], "--icr_mode") == "y"
    assert flag_value(["--icr_mode", "x", "--icr_mode=y"], "--icr_mode") == "y"
    assert flag_value(["--icr_modes", "x", "--icr_mode"], "--icr_mode") is None  # no value after it
    assert flag_value([], "--icr_mode") is None
