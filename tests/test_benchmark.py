"""scripts/benchmark.py runs without data files and prints its two Markdown tables."""
import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow  # end-to-end: starts main.py, cifar.py or a script as a process


def test_benchmark_smoke_run_prints_the_tables():
    cmd = [sys.executable, "scripts/benchmark.py", "--nets", "mlp", "--steps", "2", "--repeats", "1", "--warmup", "1",
           "--device", "cpu", "--threads", "1", "--epoch_examples", "40"]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    step_header = next(line for line in lines if line.startswith("| net | batch |"))
    for column in ("(a) released ms/step", "(b) ours ms/step", "(b1) ours, one pass per batch, ms/step",
                   "(c) floor ms/step", "img/s", "b/c", "b1/c", "a/b"):
        assert column in step_header
    step_row = next(line for line in lines if line.startswith("| mlp | 10 |"))
    assert len(step_row.strip("|").split("|")) == len(step_header.strip("|").split("|"))
    epoch_header = next(line for line in lines if line.startswith("| net | epoch steps"))
    assert all(name in epoch_header for name in ("sgd s", "derpp s", "hcr s", "hcr released s"))
    epoch_row = next(line for line in lines if line.startswith("| mlp | 4 |"))  # 40 examples / batch 10
    assert all(float(cell) >= 0 for cell in epoch_row.strip("|").split("|")[2:])


def test_online_benchmark_prints_a_row_per_model_and_layout():
    """--online: per model and layout, the step, its floor, their ratio, evaluation and the whole run it
    adds up to (5000 steps and 48000 evaluated images: the run minutes follow from the other columns)."""
    cmd = [sys.executable, "scripts/benchmark.py", "--online", "--online_models", "sgd", "er_ace", "--online_steps",
           "1", "--repeats", "1", "--warmup", "1", "--device", "cpu", "--threads", "1", "--epoch_examples", "40"]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines() if line.startswith(("| sgd", "| er_ace"))]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [("sgd", "default"), ("sgd", "channels_last"),
                                                            ("er_ace", "default"), ("er_ace", "channels_last")]
    for row in rows:
        step, floor, ratio, per_1000, minutes = map(float, row[2:])
        assert ratio == round(step / floor, 2) or abs(ratio - step / floor) < 0.006
        assert abs(minutes - (5000 * step / 1000 + 48 * per_1000) / 60) < 0.06
