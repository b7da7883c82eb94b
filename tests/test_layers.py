"""The two layers (the engine of one run, the experiment layer over many) and the one declaration of
which main.py options change a result."""
import ast
from pathlib import Path

import pytest

import main
from datasets import get_all_datasets
from experiments import runs, search
from experiments.runs import Run, experiment_flags
from experiments.tables import row_flags
from models import get_all_models
from tests.conftest import REPO
from utils.args import result_arguments
from utils.checkpoint import run_config

ENGINE = [REPO / "main.py", *(p for folder in ("backbone", "datasets", "models", "utils")
                              for p in sorted((REPO / folder).glob("*.py")))]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, wherever the import sits (top level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_engine_never_imports_the_experiment_layer():
    offenders = {path.relative_to(REPO).as_posix(): sorted(m for m in imported_modules(path)
                                                           if m.split(".")[0] in ("experiments", "cifar"))
                 for path in ENGINE}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert len(ENGINE) > 30  # the scan saw the engine's files


def test_the_experiment_layer_has_no_import_circle():
    graph = {f"experiments.{p.stem}": {m for m in imported_modules(p) if m.startswith("experiments.")}
             & {f"experiments.{q.stem}" for q in EXPERIMENTS} for p in EXPERIMENTS}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph[module]:
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
    assert graph["experiments.tables"] >= {"experiments.figures", "experiments.runs"}  # the graph was read


@pytest.fixture
def made_up_options(monkeypatch):
    """main.py with two more options: --made_up (changes the result) and --made_up_dir (plumbing)."""
    build = main.build_parser

    def with_made_up(*args, **kwargs):
        parser = build(*args, **kwargs)
        parser.add_argument("--made_up", type=int, default=0)
        parser.add_argument("--made_up_dir", plumbing=True, default="here")
        return parser

    monkeypatch.setattr(main, "build_parser", with_made_up)
    runs.plumbing.cache_clear()
    yield
    runs.plumbing.cache_clear()


def test_a_new_option_reaches_every_list_from_its_one_declaration(made_up_options, monkeypatch):
    argv = ["--model", "er", "--dataset", "seq-fmnist", "--buffer_size", "200", "--lr", "0.1", "--batch_size", "10",
            "--n_epochs", "1", "--minibatch_size", "10", "--made_up", "3", "--made_up_dir", "/elsewhere"]
    args = main.parse_args(argv, get_all_models(), get_all_datasets())
    assert (args.made_up, args.made_up_dir) == (3, "/elsewhere")
    # the CSV row's arguments and the checkpoint's configuration
    assert result_arguments(args)["made_up"] == 3 and "made_up_dir" not in result_arguments(args)
    assert run_config(args) == result_arguments(args) and "data_path" not in run_config(args)
    # a grid run's key and its table flags
    flags = ["--made_up", "3", "--made_up_dir", "/elsewhere", "--data_path", "/d"]
    assert experiment_flags(flags) == ["--made_up", "3"]
    key = Run("seq-fmnist", "er", 200, 0, tuple(flags)).key
    assert Run("seq-fmnist", "er", 200, 0, ("--made_up", "3", "--made_up_dir", "/other")).key == key
    assert Run("seq-fmnist", "er", 200, 0, ("--made_up", "4", "--made_up_dir", "/elsewhere")).key != key
    # the flags of a hand-made run's row in the tables
    row = {"model": "er", "dataset": "seq-fmnist", "seed": "0", "buffer_size": "200", "lr": "0.1",
           "batch_size": "10", "n_epochs": "1", "minibatch_size": "10", "made_up": "3", "made_up_dir": "/x"}
    assert "--made_up" in row_flags(row, "seq-fmnist") and "--made_up_dir" not in row_flags(row, "seq-fmnist")
    # a search that sets it refuses it after --
    monkeypatch.setitem(search.SPACES, "er", {**search.SPACES["er"], "made_up": (1, 2)})
    assert "--made_up" in search.managed_flags(["er"], "seq-fmnist")


def test_plumbing_is_declared_once_in_main():
    parser = main.build_parser(get_all_models(), get_all_datasets(), None)
    assert parser.plumbing == {"--load_best_args": False, "--csv_log": False, "--tensorboard": False,
                               "--data_path": True, "--results_path": True, "--num_workers": True,
                               "--offline": False, "--keep_checkpoints": False, "--resume": True}
    assert runs.managed_flags() == {"--model", "--dataset", "--buffer_size", "--load_best_args", "--seed",
                                    "--csv_log", "--resume", "--results_path"}
