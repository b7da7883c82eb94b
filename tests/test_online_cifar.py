"""The online Split CIFAR-10 protocol (seq-cifar10-online), the ResNet-18 width flag (--num_filters),
ER-ACE's settings, and their bad inputs; on the tiny CIFAR-10 fixture of tests/conftest.py."""
import csv
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import main
from backbone.resnet18 import CosineClassifier
from datasets import get_all_datasets
from models import get_all_models
from tests.conftest import REPO, fmnist_data_path, subprocess_env
from tests.reference_helpers import CPU, make_args, make_dataset, run_main
from utils.best_args import BEST_ARGS

DATASETS = get_all_datasets()
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)


def _widths(net: nn.Module) -> tuple[int, int]:
    """(filters of the stem convolution, inputs of the classifier)."""
    return net.conv1.out_channels, net.classifier.in_features


def _online(data_path: str, **hyper):
    args = make_args("er", "seq-cifar10-online", lr=0.1, batch_size=10, n_epochs=1, buffer_size=20,
                     minibatch_size=10, **hyper)
    args.data_path = data_path
    return DATASETS["seq-cifar10-online"](args, CPU)


def test_protocol_and_reduced_resnet(cifar10_path):
    cls = DATASETS["seq-cifar10-online"]
    assert (cls.SETTING, cls.N_TASKS, cls.N_CLASSES_PER_TASK) == ("class-il", 5, 2)
    dataset = _online(cifar10_path)
    net = dataset.get_backbone()
    assert _widths(net) == (20, 160)  # GEM's reduced ResNet-18: 20, 40, 80, 160 filters
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)][-1] == 160
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    full = make_dataset("seq-cifar10")
    assert _widths(full.get_backbone()) == (64, 512)  # seq-cifar10 keeps the DER/HCR width
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in full.get_backbone().parameters()) / 9


def test_num_filters_sets_the_width_of_every_resnet_dataset():
    for name in ("seq-cifar10", "seq-cifar10-online", "seq-tinyimg"):
        args = make_args("sgd", name, lr=0.1, batch_size=10, n_epochs=1, num_filters=8)
        assert args.num_filters == 8
        assert _widths(DATASETS[name](args, CPU).get_backbone()) == (8, 64)
    assert make_args("sgd", "seq-cifar10", lr=0.1, batch_size=10, n_epochs=1).num_filters == 64  # the width run


def test_no_augmentation_only_normalisation(cifar10_path):
    """Training batches and buffer draws are normalised like test images, never cropped or flipped."""
    dataset = _online(cifar10_path)
    raw = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = (raw - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(dataset.train_transform(raw), expected)
    torch.testing.assert_close(dataset.test_transform(raw), expected)
    augmented = DATASETS["seq-cifar10"](dataset.args, CPU)
    assert not torch.equal(augmented.train_transform(raw), expected)  # the 50-epoch protocol does augment


def test_stream_of_the_fixture(cifar10_path):
    """Task t holds classes 2t and 2t+1 of the official batches; batches of 10, the last partial one dropped."""
    dataset = _online(cifar10_path)
    loader = dataset.train_loader([1])
    batches = list(loader)
    assert len(batches) == 200 // 10 and all(len(y) == 10 for _, y, _ in batches)
    labels = torch.cat([y for _, y, _ in batches])
    assert sorted(labels.tolist()) == [2] * 100 + [3] * 100
    x, _, raw = batches[0]
    torch.testing.assert_close(x, dataset.test_transform(raw))


def _main(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *argv], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def _refused(capsys, *argv: str) -> str:
    """Run main.main in-process on argv that it must refuse; the one line it prints."""
    code, lines, out = run_main(capsys, list(argv))
    assert code == 2 and out == ""
    [line] = lines
    return line


def test_missing_data_names_the_folder_and_how_to_fill_it(tmp_path, capsys):
    line = _refused(capsys, "--model", "er", "--dataset", "seq-cifar10-online", "--buffer_size", "200", "--lr", "0.1",
                    "--batch_size", "10", "--n_epochs", "1", "--minibatch_size", "10", "--offline",
                    "--data_path", str(tmp_path / "nothing"), "--results_path", str(tmp_path / "results"))
    assert str(tmp_path / "nothing" / "CIFAR10") in line and "cifar-10-batches-py" in line
    assert "cifar-10-python.tar.gz" in line  # where the files come from
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "results").exists()


def test_channels_last_below_sixteen_filters_is_refused_on_cpu(cifar10_path, tmp_path, capsys):
    """oneDNN's channels-last strided 1x1 backward crashes below 16 input channels on AVX-512 CPUs."""
    argv = ["--model", "sgd", "--dataset", "seq-cifar10-online", "--lr", "0.1", "--batch_size", "10",
            "--n_epochs", "1", "--offline", "--device", "cpu", "--data_path", str(cifar10_path),
            "--results_path", str(tmp_path / "results"), "--channels_last", "--num_filters"]
    line = _refused(capsys, *argv, "8")
    assert "--channels_last on a CPU needs --num_filters 16 or more (got 8)" in line
    assert not (tmp_path / "results").exists()
    assert run_main(capsys, [*argv, "16", "--debug_mode"])[0] == 0


@pytest.mark.parametrize("value, why", [("0", "must be positive, got 0"), ("-3", "must be positive, got -3"),
                                        ("1.5", "'1.5' is not an integer"), ("abc", "'abc' is not an integer")])
def test_bad_num_filters(value, why, capsys):
    line = _refused(capsys, "--model", "sgd", "--dataset", "seq-cifar10-online", "--lr", "0.1", "--num_filters", value)
    assert line.startswith("main.py: error: argument --num_filters") and why in line


def test_num_filters_on_an_mlp_dataset_is_refused(capsys):
    line = _refused(capsys, "--model", "sgd", "--dataset", "seq-fmnist", "--lr", "0.1", "--num_filters", "20")
    assert "--num_filters sets the width of a ResNet-18; seq-fmnist trains an MLP" in line


def test_cosine_classifier_is_ten_times_the_cosine_similarity():
    torch.manual_seed(0)
    head = CosineClassifier(6, 4)
    features = torch.randn(5, 6) * torch.tensor([[0.1], [1.0], [3.0], [10.0], [0.5]])  # the norm must not matter
    expected = 10 * F.cosine_similarity(features[:, None, :], head.weight[None, :, :], dim=2)
    torch.testing.assert_close(head(features), expected, rtol=1e-4, atol=1e-4)
    assert not any("bias" in name for name, _ in head.named_parameters())


def _head(cifar10_path: str, model: str, **hyper) -> nn.Module:
    args = make_args(model, "seq-cifar10-online", lr=0.1, batch_size=10, n_epochs=1, buffer_size=20,
                     minibatch_size=10, **hyper)
    args.data_path = cifar10_path
    return DATASETS["seq-cifar10-online"](args, CPU).get_backbone().classifier


def test_classifier_flag_picks_the_resnet_head(cifar10_path):
    assert isinstance(_head(cifar10_path, "er"), nn.Linear)  # every model's default but er_ace's
    assert isinstance(_head(cifar10_path, "er", classifier="cosine"), CosineClassifier)
    assert isinstance(_head(cifar10_path, "er_ace"), CosineClassifier)  # the official ER-ACE code's head
    assert isinstance(_head(cifar10_path, "er_ace", classifier="linear"), nn.Linear)
    assert make_args("er_ace", "seq-cifar10-online", lr=0.1, buffer_size=20, minibatch_size=10, batch_size=10,
                     n_epochs=1).classifier == "cosine"  # in its CSV row
    assert make_args("sgd", "seq-fmnist", lr=0.1, batch_size=10, n_epochs=1).classifier is None  # an MLP has none


def test_classifier_on_an_mlp_dataset_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        make_args("sgd", "seq-fmnist", lr=0.1, batch_size=10, n_epochs=1, classifier="cosine")
    assert stop.value.code == 2
    [line] = capsys.readouterr().err.splitlines()[-1:]
    assert "--classifier chooses the head of a ResNet-18; seq-fmnist trains an MLP" in line


def test_er_ace_is_refused_on_domain_il(fmnist_dir, tmp_path, capsys):
    line = _refused(capsys, "--model", "er_ace", "--dataset", "perm-fmnist", "--buffer_size", "20", "--lr", "0.1",
                    "--batch_size", "10", "--n_epochs", "1", "--minibatch_size", "10", "--offline",
                    "--data_path", str(fmnist_data_path(tmp_path / "data")), "--debug_mode",
                    "--results_path", str(tmp_path / "results"))
    assert line == "main.py: error: model er_ace does not support the domain-il setting of perm-fmnist"
    assert not (tmp_path / "results").exists()


# --- resume, bit for bit ---------------------------------------------------------------------------

STOP_AT_STEP = """
import os, signal, sys
import main
from models.er_ace import ErAce
observe, calls = ErAce.observe, [0]
def observe_then_stop(self, *batch):
    calls[0] += 1
    if calls[0] == 10:  # inside task 3 (4 steps a task in --debug_mode)
        os.kill(os.getpid(), signal.SIGTERM)
    return observe(self, *batch)
ErAce.observe = observe_then_stop
sys.exit(main.main(sys.argv[1:]))
"""


def _online_argv(data: str, results: Path) -> list[str]:
    return ["--model", "er_ace", "--dataset", "seq-cifar10-online", "--buffer_size", "30", "--lr", "0.05",
            "--batch_size", "10", "--n_epochs", "1", "--minibatch_size", "10", "--seed", "3", "--offline",
            "--data_path", data, "--debug_mode", "--device", "cpu", "--num_filters", "8", "--csv_log",
            "--results_path", str(results)]


def _rows(results: Path) -> list[dict]:
    with open(results / "class-il" / "seq-cifar10-online" / "er_ace" / "mean_accs.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in ("run_id", "timestamp", "wall_seconds")}
                for row in csv.DictReader(f)]


@pytest.mark.slow
def test_interrupted_online_run_resumes_bit_for_bit(cifar10_path, tmp_path):
    """er_ace (its seen classes restart at each task) stopped by SIGTERM inside task 3 and resumed with
    --resume auto ends with the row and the weights of the uninterrupted run."""
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    procs = [subprocess.Popen([sys.executable, *script, *_online_argv(cifar10_path, folder), "--resume", "auto"],
                              cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for script, folder in ((["main.py"], full), (["-c", STOP_AT_STEP], stopped))]
    (rc_full, (_, err_full)), (rc_stopped, _) = [(p.wait(timeout=300), p.communicate()) for p in procs]
    assert rc_full == 0, err_full[-2000:]
    assert rc_stopped == 128 + signal.SIGTERM
    assert not (stopped / "class-il").exists()  # no row of an unfinished run
    resumed = _main(*_online_argv(cifar10_path, stopped), "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed at task 3 of 5" in resumed.stderr
    assert _rows(stopped) == _rows(full) and len(_rows(full)) == 1
    nets = [torch.load(next(folder.glob("checkpoints/**/task5.pt")), weights_only=True)["net"]
            for folder in (full, stopped)]
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0])
    shutil.rmtree(tmp_path)


# --- best arguments ---------------------------------------------------------------------------------


def test_every_online_entry_keeps_the_protocol():
    """Whatever a search chose, --load_best_args on seq-cifar10-online trains as the protocol says:
    batches of 10, one pass, draws of 10, an lr from the ER-ACE paper's grid."""
    entries = BEST_ARGS["seq-cifar10-online"]
    assert {"er", "er_ace"} <= set(entries)
    for model, by_buffer in entries.items():
        for buffer, entry in by_buffer.items():
            assert (entry["batch_size"], entry["n_epochs"]) == (10, 1), (model, buffer)
            assert buffer is None or entry["minibatch_size"] == 10, (model, buffer)
            assert entry["lr"] in (0.001, 0.01, 0.1), (model, buffer)


def test_load_best_args_on_the_online_protocol():
    argv = ["--model", "er_ace", "--dataset", "seq-cifar10-online", "--buffer_size", "1000", "--load_best_args"]
    args = main.parse_args(argv, get_all_models(), DATASETS)
    entry = BEST_ARGS["seq-cifar10-online"]["er_ace"][1000]
    assert (args.lr, args.batch_size, args.n_epochs, args.minibatch_size) == (entry["lr"], 10, 1, 10)
    assert args.classifier == "cosine"
