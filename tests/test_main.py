"""Tests of main.py: argument parsing, best arguments, errors, and end-to-end runs (subprocess)."""
import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main
from datasets import get_all_datasets
from models import get_all_models
from tests.conftest import FMNIST_DIR, FMNIST_FILES, REPO, subprocess_env
from tests.reference_helpers import run_main
from utils.best_args import BEST_ARGS

MODELS, DATASETS = get_all_models(), get_all_datasets()
E2E_MODELS = ("sgd", "joint")
TAGS_PER_SETTING = ["acc_mean"] + [f"acc_task{i:02d}" for i in range(1, 6)]


def _cifar_argv(model: str, data_path, results_path) -> list[str]:
    return ["--model", model, "--dataset", "seq-cifar10", "--offline", "--data_path", str(data_path),
            "--debug_mode", "--n_epochs", "1", "--lr", "0.1", "--batch_size", "8", "--seed", "0",
            "--num_filters", "8", "--csv_log", "--tensorboard", "--results_path", str(results_path)]


# --- output parsing ----------------------------------------------------------------------


def _per_task_lines(stdout: str, setting: str) -> list[list[float]]:
    return [[float(v) for v in m.split()] for m in re.findall(rf"^    {setting} per task: (.*)$", stdout, re.M)]


def _means(stdout: str) -> dict[str, list[float]]:
    found = re.findall(r"^Accuracy for (\d) task\(s\): \[Class-IL\]: ([\d.]+) % \[Task-IL\]: ([\d.]+) %$",
                       stdout, re.M)
    assert [int(t) for t, _, _ in found] == [1, 2, 3, 4, 5]
    return {"class-il": [float(c) for _, c, _ in found], "task-il": [float(t) for _, _, t in found]}


def _matrix(stdout: str, setting: str) -> tuple[list[list[float]], dict[str, float]]:
    """The printed accuracy matrix of ``setting`` and its printed BWT / FWT / forgetting."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{setting} accuracy matrix"))
    rows, i = [], start + 1
    while not lines[i].startswith("  BWT"):
        rows.append([float(v) for v in lines[i].split()])
        i += 1
    summary = re.match(r"  BWT (\S+) \| FWT (\S+) \| forgetting (\S+)$", lines[i])
    printed = dict(zip(("backward_transfer", "forward_transfer", "forgetting"), map(float, summary.groups()),
                       strict=True))
    return rows, printed


def _bwt(rows: list[list[float]]) -> float:
    last = len(rows) - 1
    return sum(rows[last][i] - rows[i][i] for i in range(last)) / last


def _forgetting(rows: list[list[float]]) -> float:
    n = len(rows)
    padded = [row[:n] + [0.0] * (n - len(row)) for row in rows]
    return sum(max(padded[t][i] for t in range(n)) - padded[-1][i] for i in range(n - 1)) / (n - 1)


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


# --- end-to-end on the tiny CIFAR-10 -----------------------------------------------------


def _fmnist_available() -> bool:
    return all((FMNIST_DIR / n).is_file() or (FMNIST_DIR / f"{n}.gz").is_file() for n in FMNIST_FILES)


def _fmnist_argv(tmp: Path) -> list[str]:
    raw = tmp / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FMNIST_FILES:  # link the installed files into --data_path
        source = FMNIST_DIR / name if (FMNIST_DIR / name).is_file() else FMNIST_DIR / f"{name}.gz"
        (raw / source.name).symlink_to(source)
    return ["--model", "sgd", "--dataset", "seq-fmnist", "--offline", "--data_path", str(tmp / "data"),
            "--debug_mode", "--load_best_args", "--seed", "0", "--csv_log", "--results_path", str(tmp / "results")]


def _missing_data_argv(tmp_path) -> list[str]:
    return ["--model", "sgd", "--dataset", "seq-cifar10", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "1",
            "--offline", "--data_path", str(tmp_path / "data"), "--results_path", str(tmp_path / "results"),
            "--csv_log", "--tensorboard", "--device", "cpu"]


@pytest.fixture(scope="module")
def e2e(cifar10_path, tmp_path_factory) -> dict:
    """Every subprocess run of main.py: {name: (rc, stdout, stderr, folder)}.

    sgd and joint on the tiny CIFAR-10 start side by side; joint finishes first, and the short
    seq-fmnist run then uses the core it leaves."""
    def start(name: str, argv_for) -> None:
        folder = tmp_path_factory.mktemp(name)
        cmd = [sys.executable, "main.py", *argv_for(folder)]
        procs[name] = (subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True), folder)

    def finish(name: str) -> None:
        proc, folder = procs[name]
        try:
            out, err = proc.communicate(timeout=400)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        runs[name] = (proc.returncode, out, err, folder)

    procs, runs = {}, {}
    for model in E2E_MODELS:
        start(model, lambda folder, model=model: _cifar_argv(model, cifar10_path, folder / "results"))
    finish("joint")
    if _fmnist_available():
        start("fmnist", _fmnist_argv)
    for name in procs:
        if name not in runs:
            finish(name)
    for model in E2E_MODELS:  # the results folder of the CIFAR-10 runs
        rc, out, err, folder = runs[model]
        runs[model] = (rc, out, err, folder / "results")
    return runs


@pytest.mark.parametrize("model", E2E_MODELS)
def test_e2e_exit_and_summary(e2e, model):
    rc, out, err, _ = e2e[model]
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    assert re.search(r"^Accuracy for 5 task\(s\): \[Class-IL\]: [\d.]+ % \[Task-IL\]: [\d.]+ %$", out, re.M)
    for setting in ("class-il", "task-il"):
        lines = _per_task_lines(out, setting)
        assert [len(v) for v in lines] == [1, 2, 3, 4, 5]
        assert all(0.0 <= a <= 100.0 for v in lines for a in v)
    # masking the other tasks' logits can only help: task-IL >= class-IL entry by entry
    for cil, til in zip(_per_task_lines(out, "class-il"), _per_task_lines(out, "task-il"), strict=True):
        assert all(t >= c for c, t in zip(cil, til, strict=True))


@pytest.mark.parametrize("model", E2E_MODELS)
def test_e2e_csv_rows(e2e, model):
    rc, out, err, results = e2e[model]
    assert rc == 0, err[-3000:]
    means = _means(out)
    for setting in ("class-il", "task-il"):
        path = results / setting / "seq-cifar10" / model / "mean_accs.csv"
        columns, rows = _read_csv(path)
        assert len(rows) == 1
        assert columns[:8] == ["task1", "task2", "task3", "task4", "task5", "forward_transfer",
                               "backward_transfer", "forgetting"]
        row = rows[0]
        assert float(row["lr"]) == 0.1 and row["seed"] == "0" and row["model"] == model
        assert row["dataset"] == "seq-cifar10" and row["batch_size"] == "8" and row["n_epochs"] == "1"
        # task5 = mean of the per-task accuracies printed after task 5
        last = _per_task_lines(out, setting)[-1]
        assert float(row["task5"]) == pytest.approx(sum(last) / 5, abs=0.006)
        for t in range(5):
            assert float(row[f"task{t + 1}"]) == pytest.approx(means[setting][t], abs=0.006)
        # BWT and forgetting recomputed from the printed matrix (entries rounded to 0.01)
        rows_printed, printed = _matrix(out, setting)
        assert [len(r) for r in rows_printed] == [2, 3, 4, 5, 5]
        for t in range(5):  # the matrix's accuracies after task t are the per-task line of task t
            assert rows_printed[t][: t + 1] == _per_task_lines(out, setting)[t]
        assert float(row["backward_transfer"]) == pytest.approx(_bwt(rows_printed), abs=0.011)
        assert float(row["forgetting"]) == pytest.approx(_forgetting(rows_printed), abs=0.011)
        for key, value in printed.items():
            assert float(row[key]) == pytest.approx(value, abs=0.006)


def test_e2e_joint_trains_only_after_the_last_task(e2e):
    """Until the last task joint's network is the random one, so every accuracy measured before
    the final training equals the first measurement of that task."""
    rc, out, err, _ = e2e["joint"]
    assert rc == 0, err[-3000:]
    for setting in ("class-il", "task-il"):
        rows, _ = _matrix(out, setting)
        for i in range(4):
            first = rows[i - 1][i] if i > 0 else rows[0][0]
            assert [rows[t][i] for t in range(max(0, i - 1), 4)] == [first] * (4 - max(0, i - 1)), (setting, i)
    assert err.count("[joint] epoch 1/1") == 1
    assert "[task " not in err  # no training on the stream


def test_e2e_sgd_trains_each_task(e2e):
    rc, _, err, _ = e2e["sgd"]
    assert rc == 0, err[-3000:]
    losses = re.findall(r"\[task (\d)/5\] epoch 1/1 \| loss ([\d.]+) \| step 4/4", err)
    assert [int(t) for t, _ in losses] == [1, 2, 3, 4, 5]


def _events(results: Path, model: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    parent = results / "tensorboard" / "class-il" / "seq-cifar10" / model
    runs = [p for p in parent.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    acc = EventAccumulator(str(runs[0]), size_guidance={"scalars": 0})
    acc.Reload()
    return acc


@pytest.mark.parametrize("model", E2E_MODELS)
def test_e2e_tensorboard_accuracies(e2e, model):
    rc, out, err, results = e2e[model]
    assert rc == 0, err[-3000:]
    acc = _events(results, model)
    tags = set(acc.Tags()["scalars"])
    for setting in ("class-il", "task-il"):
        assert {f"{setting}/{t}" for t in TAGS_PER_SETTING} <= tags
        _, rows = _read_csv(results / setting / "seq-cifar10" / model / "mean_accs.csv")
        mean = acc.Scalars(f"{setting}/acc_mean")
        assert [e.step for e in mean] == [1, 2, 3, 4, 5]
        for e in mean:
            assert e.value == pytest.approx(float(rows[0][f"task{e.step}"]), abs=1e-3)
        per_task = _per_task_lines(out, setting)
        for i in range(5):
            events = acc.Scalars(f"{setting}/acc_task{i + 1:02d}")
            assert [e.step for e in events] == list(range(i + 1, 6))
            assert [round(e.value, 2) for e in events] == pytest.approx([per_task[s - 1][i] for s in range(i + 1, 6)],
                                                                        abs=0.006)


@pytest.mark.parametrize("model", E2E_MODELS)
def test_e2e_tensorboard_loss(e2e, model):
    rc, _, err, results = e2e[model]
    assert rc == 0, err[-3000:]
    acc = _events(results, model)
    assert "loss" in acc.Tags()["scalars"], f"{model} logs no training loss to TensorBoard"
    printed = [float(v) for v in re.findall(r"epoch 1/1 \| loss ([\d.]+)", err)]
    values = [e.value for e in acc.Scalars("loss")]
    assert values == pytest.approx(printed, abs=1e-4)


# --- end-to-end on the real Fashion-MNIST ---------------------------------------------------


def test_e2e_fmnist_sgd(fmnist_dir, e2e):
    assert fmnist_dir == FMNIST_DIR
    rc, out, err, folder = e2e["fmnist"]
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    means = _means(out)
    _, rows = _read_csv(folder / "results" / "class-il" / "seq-fmnist" / "sgd" / "mean_accs.csv")
    assert len(rows) == 1
    assert float(rows[0]["lr"]) == 0.03 and rows[0]["batch_size"] == "10" and rows[0]["n_epochs"] == "1"
    assert float(rows[0]["task5"]) == pytest.approx(means["class-il"][4], abs=0.006)
    # debug mode: 4 batches per task
    assert len(re.findall(r"\| step 4/4 \|", err)) == 5


# --- parsing, best arguments ------------------------------------------------------------------


def _parse(argv: list[str], models: dict | None = None):
    return main.parse_args(argv, MODELS if models is None else models, DATASETS)


def _exit_2(capsys, argv: list[str], models: dict | None = None) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _parse(argv, models)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "error" in lines[0]
    return lines[0]


def test_help_lists_models_and_datasets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert {"sgd", "joint"} <= set(MODELS) and {"seq-cifar10", "seq-fmnist"} <= set(DATASETS)
    for name in [*MODELS, *DATASETS]:
        assert name in out
    assert "--load_best_args" in out and "--lr" in out


def test_best_args_fill_seq_fmnist_sgd():
    args = _parse(["--model", "sgd", "--dataset", "seq-fmnist", "--load_best_args"])
    assert (args.lr, args.batch_size, args.n_epochs) == (0.03, 10, 1)


def test_explicit_flag_beats_best_args():
    args = _parse(["--model", "sgd", "--dataset", "seq-fmnist", "--load_best_args", "--lr", "0.5"])
    assert (args.lr, args.batch_size, args.n_epochs) == (0.5, 10, 1)
    args = _parse(["--model", "sgd", "--dataset", "seq-cifar10", "--n_epochs", "2", "--load_best_args"])
    assert (args.lr, args.batch_size, args.n_epochs) == (0.1, 32, 2)


@pytest.mark.parametrize("dataset,expected", [("seq-fmnist", (0.03, 10, 1)), ("seq-cifar10", (0.1, 32, 50))])
def test_joint_uses_the_sgd_entry(dataset, expected):
    args = _parse(["--model", "joint", "--dataset", dataset, "--load_best_args"])
    assert (args.lr, args.batch_size, args.n_epochs) == expected


def _replay_models() -> dict:
    """The registered models, with ``er`` standing for a buffer model (the bare replay base
    class when no ``er`` is registered)."""
    if "er" in MODELS:
        return MODELS
    from models.continual_model import ReplayModel

    return {**MODELS, "er": ReplayModel}


def test_missing_best_args_entry_lists_only_that_dataset_and_model(capsys, monkeypatch):
    line = _exit_2(capsys, ["--model", "er", "--dataset", "seq-fmnist", "--buffer_size", "123",
                            "--load_best_args"], _replay_models())
    sizes = ", ".join(str(b) for b in BEST_ARGS["seq-fmnist"]["er"])
    assert line.endswith(f"error: no best arguments for seq-fmnist/er with buffer 123; seq-fmnist/er has entries "
                         f"for buffer sizes {sizes}")
    monkeypatch.delitem(BEST_ARGS["seq-fmnist"], "er")  # no entry at all for the model on this dataset
    line = _exit_2(capsys, ["--model", "er", "--dataset", "seq-fmnist", "--buffer_size", "200",
                            "--load_best_args"], _replay_models())
    assert line.endswith("; models with entries on seq-fmnist: " + ", ".join(BEST_ARGS["seq-fmnist"]))
    assert "seq-cifar10" not in line


def test_best_args_of_a_buffer_model_need_buffer_size(capsys):
    line = _exit_2(capsys, ["--model", "er", "--dataset", "seq-fmnist", "--load_best_args"], _replay_models())
    assert "--buffer_size" in line


def test_missing_lr_without_best_args_exits_2(capsys):
    line = _exit_2(capsys, ["--model", "sgd", "--dataset", "seq-fmnist", "--batch_size", "10", "--n_epochs", "1"])
    assert "--lr" in line
    assert "--batch_size" not in line and "--n_epochs" not in line


@pytest.mark.parametrize("argv,needle", [
    (["--model", "nope", "--dataset", "seq-cifar10", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "1"],
     "nope"),
    (["--model", "sgd", "--dataset", "seq-cifar10", "--lr", "-0.1", "--batch_size", "8", "--n_epochs", "1"],
     "--lr"),
    (["--model", "sgd", "--dataset", "seq-cifar10", "--lr", "0", "--batch_size", "8", "--n_epochs", "1"],
     "--lr"),
    (["--model", "sgd", "--dataset", "seq-cifar10", "--lr", "0.1", "--batch_size", "0", "--n_epochs", "1"],
     "--batch_size"),
    (["--model", "sgd", "--dataset", "seq-cifar10", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "x"],
     "--n_epochs"),
    (["--model", "sgd", "--dataset", "cifar100", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "1"],
     "cifar100"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    assert needle in _exit_2(capsys, argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here, so --device cuda is valid")
def test_device_cuda_without_cuda_exits_2(capsys, tmp_path):
    argv = ["--model", "sgd", "--dataset", "seq-cifar10", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "1",
            "--device", "cuda", "--offline", "--data_path", str(tmp_path / "data"),
            "--results_path", str(tmp_path / "results"), "--csv_log", "--tensorboard"]
    code, lines, out = run_main(capsys, argv)
    assert code == 2 and out == ""
    assert len(lines) == 1 and "cuda" in lines[0].lower() and "error" in lines[0]
    assert not (tmp_path / "results").exists()


def test_missing_data_offline_exits_2(capsys, tmp_path):
    code, lines, out = run_main(capsys, _missing_data_argv(tmp_path))
    assert code == 2
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1 and str(tmp_path / "data" / "CIFAR10") in errors[0]
    assert out == ""


def test_missing_data_offline_prints_one_stderr_line(capsys, tmp_path):
    code, lines, _ = run_main(capsys, _missing_data_argv(tmp_path))
    assert code == 2
    assert len(lines) == 1, lines
    assert str(tmp_path / "data" / "CIFAR10") in lines[0]


def test_missing_data_offline_creates_no_results_folder(capsys, tmp_path):
    code, _, _ = run_main(capsys, _missing_data_argv(tmp_path))
    assert code == 2
    assert not (tmp_path / "results").exists(), sorted(str(p) for p in (tmp_path / "results").rglob("*"))
    assert not (tmp_path / "data").exists()


# --- what a run says about itself -----------------------------------------------------------------


def test_e2e_csv_row_says_what_ran(e2e):
    """The row carries a run id, the real device (not "auto"), a timestamp, the wall time, torch's
    version, the thread count and the code's commit."""
    import datetime

    _, _, _, results = e2e["sgd"]
    [row] = _read_csv(results / "class-il" / "seq-cifar10" / "sgd" / "mean_accs.csv")[1]
    [task_row] = _read_csv(results / "task-il" / "seq-cifar10" / "sgd" / "mean_accs.csv")[1]
    assert re.fullmatch(r"[0-9a-f]{12}", row["run_id"]) and task_row["run_id"] == row["run_id"]
    assert row["device"] == "cpu"
    stamp = datetime.datetime.strptime(row["timestamp"], "%Y-%m-%dT%H:%M:%S%z")
    assert abs((datetime.datetime.now(datetime.UTC) - stamp).total_seconds()) < 3600
    assert 0 < float(row["wall_seconds"]) < 400
    assert (row["torch"], row["threads"]) == (torch.__version__, "1")  # subprocess_env: one thread
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert row["commit"].removesuffix("-dirty") == head


def test_e2e_end_of_run_says_where_things_went_and_how_long_it_took(e2e):
    _, _, err, results = e2e["sgd"]
    lines = err.splitlines()
    csvs = [results / s / "seq-cifar10" / "sgd" / "mean_accs.csv" for s in ("class-il", "task-il")]
    assert f"results: {csvs[0]}, {csvs[1]}" in lines
    [tb] = [line for line in lines if line.startswith("TensorBoard: ")]
    assert Path(tb.removeprefix("TensorBoard: ")).is_dir()
    [checkpoint] = [line for line in lines if line.startswith("checkpoint: ")]
    assert checkpoint.endswith("task5.pt") and Path(checkpoint.removeprefix("checkpoint: ")).is_file()
    assert any(re.fullmatch(r"main\.py: done in \d+:\d\d:\d\d of training", line) for line in lines)
    out = e2e["sgd"][1]
    took = re.findall(r"^    task (\d) took \d+:\d\d:\d\d; the run so far \d+:\d\d:\d\d$", out, re.M)
    assert took == ["1", "2", "3", "4", "5"]
    assert all(re.search(r"left in the task, \d+:\d\d:\d\d left in the run$", line)
               for line in lines if line.startswith("[task"))


def test_e2e_tensorboard_folder_names_buffer_and_hyperparameters(e2e):
    _, _, _, results = e2e["sgd"]
    [folder] = (results / "tensorboard" / "class-il" / "seq-cifar10" / "sgd").iterdir()
    assert re.fullmatch(r"lr0\.1-bs8-ep1-seed0-\d{8}-\d{6}-\d+", folder.name)
    args = _parse(["--model", "derpp", "--dataset", "seq-fmnist", "--buffer_size", "500", "--lr", "0.03",
                   "--batch_size", "10", "--n_epochs", "1", "--minibatch_size", "10", "--alpha", "1", "--beta", "0.5",
                   "--seed", "2"])
    assert main.tensorboard_run_name(args).startswith("buf500-lr0.03-bs10-ep1-mb10-alpha1-beta0.5-seed2-")


def test_help_shows_defaults_and_where_the_model_arguments_are(capsys):
    with pytest.raises(SystemExit):
        _parse(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "--device {auto,cpu,cuda} auto: CUDA when present, else CPU. (default: auto)" in out
    assert "python main.py --model NAME --help lists them" in out
    with pytest.raises(SystemExit):
        _parse(["--model", "hcr", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--icr_mode {faithful,gradient}" in out and "(default: faithful)" in out
    assert "--gamma GAMMA Weight of the ICR term (draw 4). Required: give it, or --load_best_args fills it." in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "er", "--dataset", "seq-fmnist"], "main.py: error: --buffer_size is required for er"),
    (["--model", "er", "--dataset", "seq-fmnist", "--load_best_args"],
     "main.py: error: --buffer_size is required for er (its best arguments depend on it)"),
    (["--model", "sgd", "--dataset", "seq-fmnist", "--buffer_size", "200"],
     "main.py: error: sgd has no buffer: --buffer_size applies to the replay models (der, derpp, er, er_ace, hcr)"),
    (["--model", "joint", "--dataset", "seq-fmnist", "--buffer_size=200", "--minibatch_size", "5"],
     "main.py: error: joint has no buffer: --buffer_size and --minibatch_size apply to the replay models "
     "(der, derpp, er, er_ace, hcr)"),
    (["--model", "er", "--dataset", "seq-fmnist", "--buffer_size", "300", "--load_best_args"],
     "main.py: error: no best arguments for seq-fmnist/er with buffer 300; seq-fmnist/er has entries for buffer "
     "sizes 200, 500, 5120"),
    (["--model", "sgd", "--dataset", "seq-fmnist", "--lr", "0"],
     "main.py: error: argument --lr: must be positive and finite, got 0"),
    (["--model", "sgd", "--dataset", "seq-fmnist", "--lr", "fast"],
     "main.py: error: argument --lr: 'fast' is not a number"),
    (["--model", "er", "--dataset", "seq-fmnist", "--buffer_size", "1.5"],
     "main.py: error: argument --buffer_size: '1.5' is not an integer"),
    (["--model", "sgd", "--dataset", "seq-fmnist", "--lr", "0.1", "--seed", "abc"],
     "main.py: error: argument --seed: 'abc' is not an integer"),
])
def test_messages_say_what_is_wrong_at_once(capsys, monkeypatch, argv, message):
    monkeypatch.setattr(sys, "argv", ["main.py"])
    assert _exit_2(capsys, ["--seed", "0", *argv]) == message


def test_failed_download_leaves_no_data_folder(tmp_path, capsys, monkeypatch):
    """A download that fails half-way (after making its folders) leaves nothing behind."""
    import torchvision.datasets

    def fail_half_way(root, **_):
        (Path(root) / "cifar-10-batches-py").mkdir(parents=True)
        raise ConnectionError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fail_half_way)
    argv = [a for a in _missing_data_argv(tmp_path) if a != "--offline"]
    assert main.main(argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("main.py: error: CIFAR-10 not found and the download failed (ConnectionError)")
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()
