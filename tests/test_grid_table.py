"""Tests of the grid's table (experiments/tables.py): every flag that changes the experiment is in its
row, --debug_mode rows say they are not results, and cifar.py --summarize finds every dataset."""
import contextlib
import io
import json
from pathlib import Path

import pytest

import cifar
from experiments.grid import best_args_of
from experiments.runs import Run, experiment_flags
from experiments.tables import summarize
from utils.loggers import csv_path

N_TASKS = 5


def finished_run(results: Path, dataset: str, model: str, buffer: int | None, seed: int, extra: list[str],
                 accuracy: float) -> Run:
    """A run folder as cifar.py leaves it: done.json and one CSV row per setting (accuracy after each task)."""
    run = Run(dataset, model, buffer, seed, tuple(extra), best_args_of(dataset, model, buffer))
    run_dir = results / "runs" / run.key
    for setting, offset in (("class-il", 0), ("task-il", 30)):
        path = csv_path(str(run_dir), setting, dataset, model)
        path.parent.mkdir(parents=True)
        tasks = [f"task{t}" for t in range(1, N_TASKS + 1)]
        values = [accuracy + offset] * N_TASKS
        path.write_text(",".join([*tasks, "backward_transfer", "forgetting"]) + "\n"
                        + ",".join(str(v) for v in [*values, -1.5, 2.5]) + "\n")
    info = {"key": run.key, "dataset": dataset, "model": model, "buffer": buffer, "seed": seed, "extra": extra}
    (run_dir / "done.json").write_text(json.dumps(info))
    return run


def _cifar(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cifar.main(argv)
    return code, out.getvalue()


def test_plumbing_flags_are_left_out_and_the_rest_kept():
    extra = ["--data_path", "/d", "--debug_mode", "--device=cuda", "--n_epochs", "3", "--num_workers", "2",
             "--offline", "--validation", "--tensorboard", "--icr_mode", "exact", "--keep_checkpoints", "--lr", "-1e-3"]
    # --device changes the numbers (CPU and CUDA kernels differ): kept
    assert experiment_flags(extra) == ["--debug_mode", "--device=cuda", "--n_epochs", "3", "--validation", "--icr_mode",
                                       "exact", "--lr", "-1e-3"]


def test_a_debug_grid_says_so(tmp_path):
    """Every row has the same flags (a grid run with --debug_mode): they are shown all the same."""
    for model, buffer in (("sgd", None), ("er", 200)):
        finished_run(tmp_path, "seq-fmnist", model, buffer, 0, ["--debug_mode", "--n_epochs", "1", "--offline"], 40.0)
    text = summarize(tmp_path, "seq-fmnist")
    assert "| model | buffer | flags | class-IL |" in text
    assert "**WARNING: the rows marked DEBUG ran with --debug_mode (4 batches per epoch" in text
    for row in ("| sgd | - |", "| er | 200 |"):
        assert f"{row} **DEBUG (4 batches per epoch): not a result** `--debug_mode --n_epochs 1` | 40.00 |" in text


def test_flags_are_shown_and_debug_rows_are_marked(tmp_path):
    common = ["--n_epochs", "1", "--validation", "--offline", "--data_path", "/data"]
    for seed, accuracy in ((0, 40.0), (1, 44.0)):
        finished_run(tmp_path, "seq-fmnist", "sgd", None, seed, ["--debug_mode", *common], accuracy)
        finished_run(tmp_path, "seq-fmnist", "er", 200, seed, common, accuracy + 10)
    text = summarize(tmp_path, "seq-fmnist")
    lines = text.splitlines()
    assert "| model | buffer | flags | class-IL |" in text  # the flags column, though every row shares them
    assert "**WARNING: the rows marked DEBUG ran with --debug_mode (4 batches per epoch" in text
    assert text.index("WARNING") < text.index("| model |")  # above the table
    [sgd] = [line for line in lines if line.startswith("| sgd |")]
    [er] = [line for line in lines if line.startswith("| er |")]
    assert sgd.startswith("| sgd | - | **DEBUG (4 batches per epoch): not a result** "
                          "`--debug_mode --n_epochs 1 --validation` | 42.00 ± 2.83 |")
    # --offline and --data_path are plumbing
    assert er.startswith("| er | 200 | `--n_epochs 1 --validation` | 52.00 ± 2.83 |")
    runs_csv = (tmp_path / "runs_seq-fmnist.csv").read_text()
    assert "not a result" in runs_csv and "--data_path /data" in runs_csv  # the note, and the full flags

    finished_run(tmp_path / "plain", "seq-fmnist", "sgd", None, 0, ["--offline", "--data_path", "/data"], 40.0)
    text = summarize(tmp_path / "plain", "seq-fmnist")
    assert "| model | buffer | class-IL |" in text and "WARNING" not in text  # only plumbing: no flags column


def test_summarize_without_dataset_tabulates_every_dataset(tmp_path):
    finished_run(tmp_path, "seq-fmnist", "sgd", None, 0, [], 40.0)
    finished_run(tmp_path, "seq-cifar10", "er", 200, 0, [], 50.0)
    code, out = _cifar(["--summarize", "--results", str(tmp_path)])
    assert code == 0
    assert "### seq-cifar10:" in out and "### seq-fmnist:" in out
    assert (tmp_path / "summary_seq-cifar10.md").exists() and (tmp_path / "summary_seq-fmnist.md").exists()

    code, out = _cifar(["--summarize", "--dataset", "seq-fmnist", "--results", str(tmp_path)])
    assert code == 0 and "### seq-fmnist:" in out and "seq-cifar10" not in out

    empty = tmp_path / "empty"
    empty.mkdir()
    where = f"in {empty} (neither grid runs in {empty / 'runs'} nor rows that main.py --csv_log wrote there)"
    for argv, message in (([], f"no finished runs {where}"), (["--dataset", "seq-fmnist"],
                                                             f"no finished seq-fmnist runs {where}")):
        code, out = _cifar(["--summarize", "--results", str(empty), *argv])
        assert (code, out) == (1, message + "\n")


def test_summarize_of_a_missing_folder_is_one_line_and_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    assert cifar.main(["--summarize", "--results", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"cifar.py: error: results folder {missing} does not exist\n" and captured.out == ""
    assert not (tmp_path / "no").exists()


def manual_row(results: Path, model: str, seed: int, accuracy: float, run_id: str, **args) -> None:
    """A row as main.py --csv_log writes it into ``results`` (no cifar.py), per setting of seq-fmnist."""
    from utils.loggers import append_row

    for setting, offset in (("class-il", 0), ("task-il", 30)):
        row = {**{f"task{t}": accuracy + offset for t in range(1, N_TASKS + 1)}, "forward_transfer": 1.0,
               "backward_transfer": -1.5, "forgetting": 2.5, "loss": 0.5, "released_loss": 0.5, "run_id": run_id,
               "device": "cpu", "lr": 0.03, "batch_size": 10, "n_epochs": 1, "seed": seed, "validation": False,
               "loader": "tensor", "channels_last": False, "amp": False, "debug_mode": False, "num_filters": None,
               "model": model, "dataset": "seq-fmnist", **args}
        append_row(csv_path(str(results), setting, "seq-fmnist", model), row)


def test_summarize_tabulates_main_py_rows_with_the_grid_runs(tmp_path):
    """Rows that main.py wrote by hand are tabulated like grid runs: those with the values that
    utils/best_args.py gives join the grid's runs of the same model and buffer (one group, its seeds
    pooled); others are their own group, named by the flags that differ; hcr against derpp pairs seeds."""
    best = dict(best_args_of("seq-fmnist", "derpp", 500))
    for seed, accuracy in ((0, 70.0), (1, 72.0)):
        finished_run(tmp_path, "seq-fmnist", "derpp", 500, seed, [], accuracy)
    derpp = {**best, "buffer_size": 500, "fuse_forward": None}
    manual_row(tmp_path, "derpp", 2, 74.0, "a1", **derpp)
    manual_row(tmp_path, "derpp", 0, 60.0, "a2", **{**derpp, "lr": 0.1, "validation": True})
    hcr = {**dict(best_args_of("seq-fmnist", "hcr", 500)), "buffer_size": 500, "icr_mode": "faithful"}
    for seed, accuracy in ((0, 71.0), (1, 74.0), (2, 76.0)):
        manual_row(tmp_path, "hcr", seed, accuracy, f"h{seed}", **hcr)
    code, out = _cifar(["--summarize", "--results", str(tmp_path)])
    assert code == 0, out
    assert "| derpp | 500 |  | 72.00 ± 2.00 |" in out  # seeds 0 and 1 of the grid, seed 2 by hand
    assert "| derpp | 500 | `--lr 0.1 --validation` | 60.00 |" in out
    assert "| hcr | 500 |  | 73.67 ± 2.52 |" in out
    assert "| 500 | (none) | derpp | 3 | +1.67 |" in out  # hcr - derpp paired over seeds 0, 1, 2



@pytest.mark.parametrize("argv", [[], ["--dry_run"]])
def test_grid_dataset_still_defaults_to_seq_cifar10(tmp_path, argv):
    args, runs = cifar.parse_args(["--models", "sgd", "--seeds", "0", "--results", str(tmp_path), *argv])
    assert args.dataset == "seq-cifar10" and [run.dataset for run in runs] == ["seq-cifar10"]


def test_summarize_report_holds_every_dataset_and_its_command(tmp_path):
    finished_run(tmp_path, "seq-fmnist", "sgd", None, 0, [], 40.0)
    finished_run(tmp_path, "seq-cifar10", "er", 200, 0, [], 50.0)
    report = tmp_path / "docs" / "results.md"
    argv = ["--summarize", "--results", str(tmp_path), "--report", str(report)]
    code, out = _cifar(argv)
    text = report.read_text()
    assert code == 0 and text.startswith(f"# Results\n\nWritten by `python cifar.py {' '.join(argv)}`")
    for dataset in ("seq-cifar10", "seq-fmnist"):
        assert (tmp_path / f"summary_{dataset}.md").read_text() in text
    assert [p.name for p in report.parent.iterdir()] == ["results.md"]  # no partial file left
    (tmp_path / "empty").mkdir()
    code, _ = _cifar(["--summarize", "--results", str(tmp_path / "empty"), "--report", str(report)])
    assert code == 1 and report.read_text() == text  # nothing to report: the report stays as it was


def test_summarize_reports_several_results_folders_in_one_file(tmp_path):
    """The Fashion-MNIST and the CIFAR-10 runs live in folders of their own; one report holds both."""
    finished_run(tmp_path / "a", "seq-fmnist", "sgd", None, 0, [], 40.0)
    finished_run(tmp_path / "b", "seq-cifar10", "er", 200, 0, [], 50.0)
    report = tmp_path / "results.md"
    code, _ = _cifar(["--summarize", "--results", str(tmp_path / "a"), str(tmp_path / "b"), "--report", str(report)])
    text = report.read_text()
    assert code == 0
    assert (tmp_path / "a" / "summary_seq-fmnist.md").read_text() in text
    assert (tmp_path / "b" / "summary_seq-cifar10.md").read_text() in text
    assert not (tmp_path / "a" / "summary_seq-cifar10.md").exists()  # each folder's own datasets only


def test_only_summarize_takes_several_results_folders(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cifar.parse_args(["--dataset", "seq-fmnist", "--models", "sgd", "--results", str(tmp_path), str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == "cifar.py: error: only --summarize takes several --results folders"


def test_the_online_table_checks_ours_against_the_paper_in_combined_standard_errors(tmp_path, monkeypatch):
    from utils import best_args

    monkeypatch.setitem(best_args.BEST_ARGS, "seq-cifar10-online",
                        {"er": {200: {"lr": 0.1}}, "er_ace": {200: {"lr": 0.1}}})
    for seed, (er, er_ace) in enumerate([(25.0, 34.0), (27.0, 35.0), (29.0, 36.0)]):
        finished_run(tmp_path, "seq-cifar10-online", "er", 200, seed, [], er)
        finished_run(tmp_path, "seq-cifar10-online", "er_ace", 200, seed, [], er_ace)
    text = summarize(tmp_path, "seq-cifar10-online")
    # er: mean 27, sample std 2, SE 2/sqrt(3); paper 26.7 ± 1.0: gap 0.3 / sqrt(4/3 + 1) = 0.196
    assert "| er | 200 | (none) | 3 | 27.00 ± 1.15 | 26.70 ± 1.00 | +0.30 | +0.20 | within |" in text
    # er_ace: mean 35, std 1, SE 1/sqrt(3); paper 42.6 ± 0.7: gap -7.6 / sqrt(1/3 + 0.49) = -8.38
    assert "| er_ace | 200 | (none) | 3 | 35.00 ± 0.58 | 42.60 ± 0.70 | -7.60 | -8.38 | beyond |" in text


def test_a_lower_precision_flag_is_paired_with_its_float32_twin(tmp_path):
    for seed, (exact, amp, sgd, sgd_amp) in enumerate([(40.0, 39.0, 18.0, 21.0), (42.0, 42.0, 19.0, 21.0),
                                                        (41.0, 40.0, 20.0, 23.0)]):
        finished_run(tmp_path, "seq-cifar10-online", "er", 200, seed, ["--channels_last"], exact)
        finished_run(tmp_path, "seq-cifar10-online", "er", 200, seed, ["--channels_last", "--amp"], amp)
        finished_run(tmp_path, "seq-cifar10-online", "sgd", None, seed, [], sgd)
        finished_run(tmp_path, "seq-cifar10-online", "sgd", None, seed, ["--amp"], sgd_amp)
    finished_run(tmp_path, "seq-cifar10-online", "er", 1000, 0, ["--amp"], 50.0)  # no float32 twin: no row
    text = summarize(tmp_path, "seq-cifar10-online")
    # er: differences -1, 0, -1: mean -2/3, s = 0.57735, t(0.975, 2) = 4.3027: half width 1.4343
    assert ("| er | 200 | `--channels_last --amp` | `--channels_last` | 3 | -0.67 | [-2.10, 0.77] "
            "| no significant difference |") in text
    # sgd (no buffer): differences 3, 2, 3: mean 8/3, the same half width
    assert "| sgd | - | `--amp` | (none) | 3 | +2.67 | [1.23, 4.10] | better |" in text
    assert "| er | 1000 | `--amp` |" not in text.split("what lower precision costs")[1]


def test_the_report_names_commands_that_make_exactly_its_grid_runs(tmp_path):
    """Models that ran the same seeds, buffers and flags share a command; a buffer-free model joins one with
    its seeds and flags; a model whose buffers ran different seeds gets one command per buffer. Each command,
    run as printed (--dry_run), plans only finished runs, and together they plan every one."""
    made = [("er", b, s, []) for b in (200, 500) for s in (0, 1)]
    made += [("derpp", 200, 0, []), ("derpp", 200, 1, []), ("derpp", 500, 0, [])]
    made += [("sgd", None, 0, []), ("sgd", None, 1, []), ("hcr", 200, 0, ["--icr_mode", "gradient"]),
             ("joint", None, 3, [])]
    for model, buffer, seed, extra in made:
        finished_run(tmp_path, "seq-fmnist", model, buffer, seed, extra, 50.0)
    # rows main.py wrote by hand are tabulated, but no cifar.py command makes them
    derpp = {**dict(best_args_of("seq-fmnist", "derpp", 200)), "buffer_size": 200, "fuse_forward": None}
    manual_row(tmp_path, "derpp", 2, 60.0, "m1", **derpp)
    manual_row(tmp_path, "derpp", 0, 60.0, "m2", **{**derpp, "lr": 0.1})
    text = summarize(tmp_path, "seq-fmnist", shown="res")
    assert "| derpp | 200 | `--lr 0.1` |" in text
    head = "python cifar.py --dataset seq-fmnist --models"
    expected = [f"{head} er sgd --buffers 200 500 --seeds 0 1 --results res",
                f"{head} derpp --buffers 200 --seeds 0 1 --results res",
                f"{head} derpp --buffers 500 --seeds 0 --results res",
                f"{head} hcr --buffers 200 --seeds 0 --results res -- --icr_mode gradient",
                f"{head} joint --seeds 3 --results res"]
    block = text.split("```bash\n")[1].split("```")[0].splitlines()
    assert sorted(block) == sorted(expected)
    planned = 0
    for command in block:
        argv = command.replace("--results res", f"--results {tmp_path}").split()[2:]
        code, out = _cifar(["--dry_run", *argv])
        runs = out.count("main.py")
        assert code == 0 and runs > 0 and f"{runs} run{'s' * (runs > 1)}, {runs} of them finished" in out
        planned += runs
    assert planned == len(made)
