"""cifar.py's own interface: a complete --help, commands that run as printed, a quiet end when its
reader goes away."""
import contextlib
import csv
import io
import re
import shlex
import subprocess
import sys

import pytest

import cifar
from tests.conftest import REPO, subprocess_env


def _help_entries(text: str) -> dict[str, str]:
    """Option string -> its help text, read from --help's option lines (the option, then its help on
    the same line after two spaces or on the more indented lines below)."""
    entries, current = {}, None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            option, _, help_text = line.strip().partition("  ")
            current = [s.split()[0] for s in option.split(", ")]
            for name in current:
                entries[name] = help_text.strip()
        elif current and re.match(r"^ {6,}\S", line):
            for name in current:
                entries[name] = f"{entries[name]} {line.strip()}".strip()
        else:
            current = None
    return entries


def test_help_describes_every_option_with_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        cifar.main(["--help"])
    assert exit_info.value.code == 0
    entries = _help_entries(out.getvalue())
    actions = [a for a in cifar.build_parser()._actions if a.option_strings]
    assert len(actions) == 23
    for action in actions:
        for name in action.option_strings:
            assert entries.get(name), f"{name} has no help line"
        text = entries[action.option_strings[-1]]
        if action.nargs != 0:  # takes a value: the help says what it is when not given
            assert "default" in text.lower(), f"{action.option_strings[-1]}: no default in {text!r}"
    assert "(default: 1440)" in entries["--time_min"] and "(default: results)" in entries["--results"]


def _dry_run_line(results, *extra) -> str:
    argv = ["--dataset", "seq-fmnist", "--models", "sgd", "--seeds", "0", "--results", str(results), "--dry_run",
            "--", *extra]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cifar.main(argv) == 0
    [line, summary] = out.getvalue().splitlines()
    assert summary == "1 run, 0 of them finished"
    return line


@pytest.mark.slow
def test_dry_run_commands_run_as_printed_from_any_folder(tmp_path, fmnist_dir):
    results = tmp_path / "results"
    line = _dry_run_line(results, "--debug_mode", "--offline", "--n_epochs", "1")
    argv = shlex.split(line)
    assert argv[:2] == [sys.executable, str(REPO / "main.py")]  # this interpreter, main.py's absolute path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(argv, cwd=elsewhere, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [row_file] = results.glob("runs/*/class-il/seq-fmnist/sgd/mean_accs.csv")
    with open(row_file, newline="") as f:
        [row] = list(csv.DictReader(f))
    assert row["seed"] == "0"
    assert list(elsewhere.iterdir()) == []  # nothing written where it was started


@pytest.mark.slow
def test_dry_run_into_a_closed_pipe_ends_quietly(tmp_path):
    """cifar.py --dry_run | head: no BrokenPipeError traceback (the grid's 1400 lines overflow the pipe)."""
    argv = [sys.executable, str(REPO / "cifar.py"), "--dry_run", "--results", str(tmp_path), "--seeds",
            *map(str, range(100))]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    first = process.stdout.readline()
    process.stdout.close()  # the reader goes away, as head does after its lines
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert first.startswith(shlex.quote(sys.executable).encode())
    assert stderr == ""
    assert process.returncode == 141


def test_seq_tinyimg_dry_run_lists_its_grid_without_the_models_that_have_no_best_arguments(tmp_path, capsys):
    import cifar

    assert cifar.main(["--dataset", "seq-tinyimg", "--results", str(tmp_path), "--dry_run"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "--dataset seq-tinyimg" in line]
    models = {line.split("--model ")[1].split()[0] for line in lines}
    assert models == {"sgd", "joint", "er", "der", "derpp"}  # hcr has no published seq-tinyimg values
    assert len(lines) == 2 * 10 + 3 * 3 * 10 and captured.out.splitlines()[-1] == "110 runs, 0 of them finished"
    assert "hcr left out: no best arguments for seq-tinyimg" in captured.err
