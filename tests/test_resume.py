"""Reliability: checkpoints and exact resume, determinism, the non-finite-loss stop, concurrent
result writes, and bad input (one line, exit status 2, nothing written)."""
import csv
import multiprocessing
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main
from datasets import get_all_datasets
from models import get_all_models
from tests.conftest import REPO, fmnist_data_path, subprocess_env
from utils.checkpoint import load_checkpoint
from utils.loggers import append_row

CKPT_GLOB = "checkpoints/class-il/seq-fmnist/derpp/*/task{}.pt"
CSV = Path("class-il/seq-fmnist/derpp/mean_accs.csv")
STEPS_PER_TASK = 8  # --debug_mode: 4 batches per epoch, 2 epochs
# Runs main.main with a signal sent to itself before the given step of the whole run: the real
# signal path, at a step that does not depend on timing.
SIGNAL_AT_STEP = """
import os, signal, sys
import main
from models.derpp import Derpp
observe, calls = Derpp.observe, [0]
def observe_then_kill(self, *batch):
    calls[0] += 1
    if calls[0] == {step}:
        os.kill(os.getpid(), signal.{signal})
    return observe(self, *batch)
Derpp.observe = observe_then_kill
sys.exit(main.main(sys.argv[1:]))
"""


def _argv(data: Path, results: Path, *extra: str) -> list[str]:
    return ["--model", "derpp", "--dataset", "seq-fmnist", "--offline", "--data_path", str(data), "--debug_mode",
            "--n_epochs", "2", "--lr", "0.03", "--batch_size", "10", "--buffer_size", "50", "--minibatch_size", "10",
            "--alpha", "0.3", "--beta", "0.5", "--seed", "1", "--device", "cpu", "--csv_log", "--tensorboard",
            "--results_path", str(results), *extra]


def _start(argv: list[str], script: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, *(["-c", script] if script else ["main.py"]), *argv]
    return subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _registries() -> tuple[dict, dict]:
    return get_all_models(), get_all_datasets()


def _ckpt(results: Path, task: int) -> Path:
    found = list(results.glob(CKPT_GLOB.format(task)))
    assert len(found) == 1, found
    return found[0]


def _row(results: Path) -> dict:
    """The one row of the run's CSV, without what differs between two runs of one configuration."""
    with open(results / CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1, rows
    return {k: v for k, v in rows[0].items() if k not in ("run_id", "timestamp", "wall_seconds")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{name: (exit status, stdout, stderr, results folder)}: an uninterrupted run twice
    ("full", "again"), a resume from its task-2 checkpoint ("boundary"), runs stopped by SIGTERM
    inside task 2 ("killed") and by SIGINT inside task 1 ("killed_early"), each then resumed
    with --resume auto ("auto", "auto_early")."""
    tmp = tmp_path_factory.mktemp("resume")
    data = fmnist_data_path(tmp / "data")
    out = {}

    def pair(first: tuple, second: tuple) -> None:  # two at a time: the machine has two cores
        procs = {name: (_start(_argv(data, tmp / name, *extra), script), tmp / name)
                 for name, extra, script in (first, second)}
        for name, (proc, folder) in procs.items():
            out[name] = (*_finish(proc), folder)

    sigterm_in_task_2 = SIGNAL_AT_STEP.format(signal="SIGTERM", step=STEPS_PER_TASK + 5)
    pair(("full", ("--keep_checkpoints",), None), ("killed", (), sigterm_in_task_2))
    shutil.copytree(tmp / "full" / "checkpoints", tmp / "boundary" / "checkpoints")
    shutil.copytree(tmp / "full" / "tensorboard", tmp / "boundary" / "tensorboard")
    boundary = str(_ckpt(tmp / "boundary", 2))
    shutil.copytree(tmp / "killed", tmp / "auto")
    pair(("boundary", ("--resume", boundary), None), ("auto", ("--resume", "auto"), None))
    pair(("again", (), None), ("killed_early", (), SIGNAL_AT_STEP.format(signal="SIGINT", step=3)))
    shutil.copytree(tmp / "killed_early", tmp / "auto_early")
    pair(("auto_early", ("--resume", "auto"), None), ("unused", ("--resume", "auto"), None))  # nothing to resume
    return out


def test_uninterrupted_run_checkpoints_every_task(runs):
    rc, _, err, results = runs["full"]
    assert rc == 0, err[-2000:]
    for task in range(6):  # task0.pt: the state before the first task
        state = load_checkpoint(_ckpt(results, task), main.parse_args(_argv(Path(), results), *_registries()))
        assert state["next_task"] == task
        assert state["buffer"]["num_seen"] == 10 * STEPS_PER_TASK * task
    umask = os.umask(0)
    os.umask(umask)
    for written in (_ckpt(results, 5), results / CSV):  # readable like any other file, not 0600
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask


def test_only_the_newest_checkpoint_is_kept_by_default(runs):
    rc, _, err, results = runs["again"]
    assert rc == 0, err[-2000:]
    assert [p.name for p in results.glob(CKPT_GLOB.format("*"))] == ["task5.pt"]


def _same_weights(a: Path, b: Path) -> bool:
    net_a, net_b = (torch.load(p, weights_only=False)["net"] for p in (a, b))
    return net_a.keys() == net_b.keys() and all(torch.equal(net_a[k], net_b[k]) for k in net_a)


@pytest.mark.parametrize("name", ["boundary", "auto", "auto_early"])
def test_resumed_run_equals_uninterrupted(runs, name):
    rc, _, err, results = runs[name]
    assert rc == 0, err[-2000:]
    assert _row(results) == _row(runs["full"][3])
    assert _same_weights(_ckpt(results, 5), _ckpt(runs["full"][3], 5))


@pytest.mark.parametrize("name,task,signum", [("killed", 2, signal.SIGTERM), ("killed_early", 1, signal.SIGINT)])
def test_signal_mid_task_exits_128_plus_signal_and_keeps_the_last_checkpoint(runs, name, task, signum):
    rc, _, err, results = runs[name]
    assert rc == 128 + signum, err[-2000:]  # 143, 130
    lines = [line for line in err.splitlines() if line.startswith("main.py")]
    argv = _argv(results.parent / "data", results)
    assert lines == [f"main.py: checkpoints go to {_ckpt(results, task - 1).parent}; an interrupted run continues with "
                     "--resume auto",
                     "main.py: interrupted: continue with: " + shlex.join(["python", "main.py", *argv, "--resume",
                                                                           "auto"])]
    assert _ckpt(results, task - 1).exists()
    assert "Traceback" not in err
    assert not (results / CSV).exists()  # a row is written only when a run completes
    assert not list(results.glob(CKPT_GLOB.format(task)))
    assert f"[task {task}/5] epoch 2/2" not in err  # it stopped inside the task


def test_no_duplicated_tensorboard_points_after_resume(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in ("auto", "auto_early", "boundary"):
        folders = list((runs[name][3] / "tensorboard" / "class-il" / "seq-fmnist" / "derpp").iterdir())
        assert len(folders) == 1  # the resumed run went on in the same folder
        acc = EventAccumulator(str(folders[0]), size_guidance={"scalars": 0})
        acc.Reload()
        # one numbering, the epochs of the stream: loss after each of the 2 epochs of each task, accuracies
        # after each task, at the step of its last epoch
        assert [e.step for e in acc.Scalars("loss")] == list(range(1, 11))
        assert [e.step for e in acc.Scalars("class-il/acc_mean")] == [2, 4, 6, 8, 10]
        [config] = acc.Tensors("config/text_summary")  # the run's configuration, once
        assert "| alpha | 0.3 |" in config.tensor_proto.string_val[0].decode()


def test_same_seed_same_row(runs):
    rc, _, err, results = runs["again"]
    assert rc == 0, err[-2000:]
    assert _row(results) == _row(runs["full"][3])
    assert _same_weights(_ckpt(results, 5), _ckpt(runs["full"][3], 5))


def test_resume_auto_without_checkpoint_starts_the_run(runs):
    rc, _, err, results = runs["unused"]
    assert rc == 0, err[-2000:]
    assert f"main.py: --resume auto: no checkpoint in {results}/checkpoints/" in err
    assert "starting from the beginning" in err
    assert _row(results) == _row(runs["full"][3])


def test_resume_alone_checkpoints_and_resumes(runs, tmp_path):
    """--resume auto without --csv_log or --tensorboard still checkpoints: a run stopped inside task 2
    says how to continue, and continuing it prints the accuracies of the uninterrupted run."""
    argv = [a for a in _argv(runs["full"][3].parent / "data", tmp_path) if a not in ("--csv_log", "--tensorboard")]
    rc, _, err = _finish(_start([*argv, "--resume", "auto"], SIGNAL_AT_STEP.format(signal="SIGTERM",
                                                                                   step=STEPS_PER_TASK + 5)))
    assert rc == 128 + signal.SIGTERM, err[-2000:]
    assert err.splitlines()[-1] == ("main.py: interrupted: continue with: "
                                    + shlex.join(["python", "main.py", *argv, "--resume", "auto"]))
    assert _ckpt(tmp_path, 1).exists()
    rc, out, err = _finish(_start([*argv, "--resume", "auto"]))
    assert rc == 0, err[-2000:]
    assert "resumed at task 2 of 5" in err
    _, full_out, _ = _finish(_start(argv))  # the same run, uninterrupted, without --resume
    assert out.splitlines()[-12:] == full_out.splitlines()[-12:]  # accuracy matrices, BWT, FWT, forgetting


def test_resume_auto_of_a_finished_run_writes_nothing(runs):
    _, _, _, results = runs["again"]
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    rc, out, err = _finish(_start(_argv(results.parent / "data", results, "--resume", "auto")))
    assert rc == 0, err[-2000:]
    assert out == ""
    assert f"main.py: this run finished before ({_ckpt(results, 5)}); nothing to do" in err
    assert f"results: {results / CSV}" in err
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()} == before


KILL_AT = """
import os, signal, sys, torch
import main
from models.derpp import Derpp
kind, point = sys.argv[1], int(sys.argv[2])
calls = {"step": 0, "save": 0, "rows": 0}
def reach(what, before=lambda: None):
    calls[what] += 1
    if (what, calls[what]) == (kind, point):
        before()
        os.kill(os.getpid(), signal.SIGKILL)  # no handler, no clean-up
observe, save, append_row = Derpp.observe, torch.save, main.append_row
def observe_or_die(self, *batch):
    reach("step")
    return observe(self, *batch)
def save_or_die(obj, f, *args, **kwargs):
    reach("save", lambda: f.write(b"PK half a checkpoint"))
    return save(obj, f, *args, **kwargs)
def append_or_die(*args, **kwargs):
    reach("rows")
    return append_row(*args, **kwargs)
Derpp.observe, torch.save, main.append_row = observe_or_die, save_or_die, append_or_die
sys.exit(main.main(sys.argv[3:]))
"""


def test_killed_at_random_moments_and_resumed_each_time_ends_as_the_uninterrupted_run(runs, tmp_path):
    """SIGKILL at seeded random points (inside a step, half-way through a checkpoint write, between
    the class-IL and the task-IL row), each time restarted with --resume auto: the run ends with one
    row per CSV file, equal to the uninterrupted run's, the same weights, and no partial file."""
    import random

    data = fmnist_data_path(tmp_path / "data")
    results = tmp_path / "results"
    rng = random.Random(0)
    for kind in ("step", "save", "step", "save", "step", "rows"):
        found = sorted(int(p.stem[4:]) for p in results.glob(CKPT_GLOB.format("*")))
        next_task = found[-1] if found else None  # what this start resumes from
        left = {"step": STEPS_PER_TASK * (5 - (next_task or 0)), "save": 6 if next_task is None else 5 - next_task,
                "rows": 2}[kind]
        if left == 0:
            continue
        point = rng.randint(1, left)  # reached in this start: it dies there
        rc, _, err = _finish(_start([kind, str(point), *_argv(data, results, "--resume", "auto")], KILL_AT))
        assert rc == -signal.SIGKILL, (kind, point, err[-2000:])
    rc, _, err = _finish(_start(_argv(data, results, "--resume", "auto")))
    assert rc == 0, err[-2000:]
    assert _row(results) == _row(runs["full"][3])
    with open(results / "task-il" / CSV.relative_to("class-il"), newline="") as f:
        assert len(list(csv.DictReader(f))) == 1
    assert _same_weights(_ckpt(results, 5), _ckpt(runs["full"][3], 5))
    assert not [p for p in results.rglob(".*") if p.is_file()]  # no temporary file left


# --- non-finite loss ---------------------------------------------------------------------------


@pytest.fixture
def restore_determinism():
    """main.run switches deterministic kernels on for CPU runs: undo it for later tests."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    yield
    torch.use_deterministic_algorithms(previous[0])
    torch.utils.deterministic.fill_uninitialized_memory = previous[1]


def test_non_finite_loss_stops_with_one_line(tmp_path, capsys, monkeypatch, restore_determinism):
    """The DER++ logit term turns NaN at step 3 of task 2 (its 7 + 3 = 10th call: it runs from
    step 2 of task 1 on): exit 1, one line naming the step, task and term, no row, and the
    task-1 checkpoint stays usable."""
    import torch.nn.functional as F

    mse, calls = F.mse_loss, [0]

    def poisoned(*a, **k):
        calls[0] += 1
        return mse(*a, **k) * (float("nan") if calls[0] == STEPS_PER_TASK - 1 + 3 else 1.0)

    monkeypatch.setattr(F, "mse_loss", poisoned)
    argv = _argv(fmnist_data_path(tmp_path / "data"), tmp_path / "results")
    assert main.main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "main.py: error: non-finite loss at step 3 of task 2: the 'alpha' term is not finite"
    assert not (tmp_path / "results" / CSV).exists()
    args = main.parse_args(argv, *_registries())
    assert load_checkpoint(_ckpt(tmp_path / "results", 1), args)["next_task"] == 1
    assert not list((tmp_path / "results").glob(CKPT_GLOB.format(2)))


def test_finite_guard_deferred_check_names_the_first_bad_step():
    """The GPU path (no host read per step), run on CPU: the first bad step and term win."""
    from utils.errors import RunFailure
    from utils.guard import FiniteGuard

    guard = FiniteGuard(torch.device("cpu"))
    guard.every_step = False
    guard.begin_task(3)
    one, nan = torch.tensor(1.0), torch.tensor(float("nan"))
    guard.step(one, {"ce": one, "beta": one})
    guard.step(nan, {"ce": one, "beta": nan})
    guard.step(nan, {"ce": nan, "beta": nan})
    with pytest.raises(RunFailure, match=r"^non-finite loss at step 2 of task 4: the 'beta' term is not finite$"):
        guard.check()
    guard = FiniteGuard(torch.device("cpu"))
    guard.every_step = False
    guard.step(torch.tensor(float("inf")), {})  # a model without terms: the total is named
    with pytest.raises(RunFailure, match="step 1 of task 1: the 'total' term"):
        guard.step(one, {"ce": one})  # other terms: the record is checked first


# --- concurrent result writes --------------------------------------------------------------------


def _append_rows(path: Path, writer: int) -> None:
    for i in range(10):
        append_row(path, {"writer": writer, "row": i, "payload": "x" * 2000})


def test_concurrent_writers_lose_no_row(tmp_path):
    path = tmp_path / "mean_accs.csv"
    procs = [multiprocessing.get_context("fork").Process(target=_append_rows, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((int(r["writer"]), int(r["row"])) for r in rows) == [(w, i) for w in range(4) for i in range(10)]
    assert all(r["payload"] == "x" * 2000 for r in rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


# --- bad input ---------------------------------------------------------------------------------


def _sgd(data: Path, results: Path, *extra: str) -> list[str]:
    return ["--model", "sgd", "--dataset", "seq-fmnist", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "1",
            "--offline", "--data_path", str(data), "--results_path", str(results), "--csv_log", *extra]


def _derpp(data: Path, results: Path, *extra: str) -> list[str]:
    return ["--model", "derpp", "--dataset", "seq-fmnist", "--lr", "0.1", "--batch_size", "8", "--n_epochs", "1",
            "--alpha", "0.1", "--beta", "0.5", "--offline", "--data_path", str(data), "--results_path", str(results),
            "--csv_log", *extra]


def _corrupt_fmnist(tmp: Path) -> Path:
    data = fmnist_data_path(tmp / "data")
    raw = data / "FashionMNIST" / "raw"
    target = next(raw.glob("train-labels*"))
    target.unlink()
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\xea\x60\x01\x02")
    return data


def _truncated_checkpoint(tmp: Path, full: Path) -> Path:
    path = tmp / "ckpt" / "task1.pt"
    path.parent.mkdir()
    data = _ckpt(full, 1).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_checkpoint(tmp: Path, full: Path) -> Path:
    path = tmp / "ckpt" / "notes.pt"
    path.parent.mkdir()
    path.write_text("not a checkpoint\n")
    return path


def _copied_checkpoint(tmp: Path, full: Path) -> Path:
    path = tmp / "ckpt" / "task1.pt"
    path.parent.mkdir()
    shutil.copy(_ckpt(full, 1), path)
    return path


# (name, argv builder (tmp, data, results, checkpoint), expected part of the message);
# a checkpoint path is the derpp / seq-fmnist / seed 1 checkpoint of the "full" run.
BAD_INPUTS = [
    ("lr NaN", lambda t, d, r, c: _sgd(d, r) + ["--lr", "nan"], "--lr"),
    ("zero epochs", lambda t, d, r, c: _sgd(d, r) + ["--n_epochs", "0"], "--n_epochs"),
    ("negative batch size", lambda t, d, r, c: _sgd(d, r) + ["--batch_size", "-3"], "--batch_size"),
    ("missing buffer size", lambda t, d, r, c: _derpp(d, r, "--minibatch_size", "8"), "--buffer_size"),
    ("zero buffer size", lambda t, d, r, c: _derpp(d, r, "--minibatch_size", "8", "--buffer_size", "0"),
     "--buffer_size"),
    ("zero minibatch size", lambda t, d, r, c: _derpp(d, r, "--minibatch_size", "0", "--buffer_size", "5"),
     "--minibatch_size"),
    ("negative loss weight", lambda t, d, r, c: _derpp(d, r, "--minibatch_size", "8", "--buffer_size", "5")
     + ["--alpha", "-1"], "--alpha"),
    ("seed not an integer", lambda t, d, r, c: _sgd(d, r, "--seed", "one"), "--seed"),
    ("negative seed", lambda t, d, r, c: _sgd(d, r, "--seed", "-5"), "--seed"),
    ("batch larger than a task", lambda t, d, r, c: _sgd(d, r) + ["--batch_size", "100000"], "exceeds the 12000"),
    ("unknown loader", lambda t, d, r, c: _sgd(d, r, "--loader", "disk"), "--loader"),
    ("empty data folder offline", lambda t, d, r, c: [
        a.replace("seq-fmnist", "seq-cifar10") for a in _sgd(t / "empty", r)], "CIFAR-10 not found"),
    ("corrupted dataset file", lambda t, d, r, c: _sgd(_corrupt_fmnist(t), r), "train-labels-idx1-ubyte"),
    ("results folder under a file", lambda t, d, r, c: _sgd(d, t / "file" / "results"), "not writable"),
    ("missing checkpoint", lambda t, d, r, c: _argv(d, r, "--resume", str(t / "none.pt")), "does not exist"),
    ("checkpoint is a folder", lambda t, d, r, c: _argv(d, r, "--resume", str(t)), "is a folder"),
    ("truncated checkpoint", lambda t, d, r, c: _argv(d, r, "--resume", str(_truncated_checkpoint(t, c))),
     "truncated or corrupted"),
    ("text file as checkpoint", lambda t, d, r, c: _argv(d, r, "--resume", str(_text_checkpoint(t, c))),
     "truncated or corrupted"),
    ("checkpoint of another model", lambda t, d, r, c: [
        "er" if a == "derpp" else a for a in _argv(d, r, "--resume", str(_copied_checkpoint(t, c)))
        if a not in ("--alpha", "0.3", "--beta", "0.5")], "model='derpp' (now 'er')"),
    ("checkpoint of another dataset", lambda t, d, r, c: [
        "seq-cifar10" if a == "seq-fmnist" else a for a in _argv(d, r, "--resume", str(_copied_checkpoint(t, c)))],
     "dataset='seq-fmnist' (now 'seq-cifar10')"),
    ("checkpoint of another seed", lambda t, d, r, c: [
        "2" if a == "1" else a for a in _argv(d, r, "--resume", str(_copied_checkpoint(t, c)))],
     "seed=1 (now 2)"),
]


@pytest.mark.parametrize("build,needle", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(runs, tmp_path, capsys, restore_determinism, build,
                                                            needle):
    (tmp_path / "file").write_text("a file, not a folder\n")
    # seq-fmnist falls back to the installed files when --data_path has none
    argv = build(tmp_path, tmp_path / "no-data", tmp_path / "results", runs["full"][3])
    before = sorted(tmp_path.rglob("*"))
    try:
        code = main.main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert ": error: " in lines[0] and needle in lines[0]
    assert sorted(tmp_path.rglob("*")) == before
    assert not (tmp_path / "results").exists()


# --- untrusted checkpoints and full disks ---------------------------------------------------------

DISK_FULL_AT_SAVE = """
import errno, sys, torch
import main
save, calls = torch.save, [0]
def save_until_the_disk_is_full(obj, f, *a, **k):
    calls[0] += 1
    if calls[0] == {call}:  # half a file, then the disk is full
        f.write(b"PK partial checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")
    return save(obj, f, *a, **k)
torch.save = save_until_the_disk_is_full
sys.exit(main.main(sys.argv[1:]))
"""


class _Payload:
    """Unpickling it runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("wrapped", [False, True], ids=["foreign", "posing as ours"])
def test_checkpoint_with_code_is_refused_and_nothing_runs(tmp_path, capsys, restore_determinism, wrapped):
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    payload = {"x": _Payload(marker)}
    torch.save({"format": 2, "args": {}, **payload} if wrapped else payload, path)
    assert main.main(_argv(tmp_path, tmp_path / "results", "--resume", str(path))) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"main.py: error: checkpoint {path} is refused: it holds Python objects")
    assert not marker.exists()
    assert not (tmp_path / "results").exists()


def test_checkpoint_of_the_pickling_format_is_refused(tmp_path, capsys, restore_determinism):
    """Format 1 kept numpy's generator state as an array object: refused with a clear line."""
    import numpy as np

    path = tmp_path / "task1.pt"
    torch.save({"format": 1, "rng": {"numpy": np.random.get_state()}}, path)
    assert main.main(_argv(tmp_path, tmp_path / "results", "--resume", str(path))) == 2
    assert "a version before format 2" in capsys.readouterr().err.splitlines()[-1]


def test_checkpoint_holds_only_tensors_and_plain_values(runs):
    """Every checkpoint loads with weights_only=True, and round-trips the generator states."""
    _, _, _, results = runs["full"]
    state = torch.load(_ckpt(results, 3), weights_only=True)
    assert state["format"] == 2 and state["next_task"] == 3
    assert isinstance(state["history"], dict) and isinstance(state["rng"]["numpy"][1], torch.Tensor)


def test_full_disk_while_saving_keeps_the_previous_checkpoint(runs, tmp_path):
    """The write of task3.pt (the fourth save: task0..task3) fails half-way with ENOSPC: one line
    naming it, exit 1, no partial file, task2.pt intact; resumed from it, the run ends as the
    uninterrupted one does."""
    data = fmnist_data_path(tmp_path / "data")
    results = tmp_path / "results"
    rc, _, err = _finish(_start(_argv(data, results), DISK_FULL_AT_SAVE.format(call=4)))
    assert rc == 1, err[-2000:]
    [line] = [x for x in err.splitlines() if x.startswith("main.py: error")]
    folder = _ckpt(results, 2).parent
    assert line == (f"main.py: error: could not write checkpoint {folder / 'task3.pt'} (No space left on device); "
                    f"the previous one is intact: {folder / 'task2.pt'}")
    assert sorted(p.name for p in folder.iterdir()) == ["task2.pt"]
    assert load_checkpoint(folder / "task2.pt", main.parse_args(_argv(data, results), *_registries()))["next_task"] == 2
    rc, _, err = _finish(_start(_argv(data, results, "--resume", "auto")))
    assert rc == 0, err[-2000:]
    assert _row(results) == _row(runs["full"][3])
