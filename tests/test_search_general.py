"""cifar.py --search (experiments/search.py): the same budget for every model, seeded sampling, the
one-standard-error rule, divergence, resumption, the report, --validation on every run; main.py is
replaced by a stub that writes a known accuracy (or diverges, or crashes)."""
import contextlib
import csv
import hashlib
import io
import itertools
import json
import math
import random
import shlex
import statistics
import sys
from pathlib import Path

import pandas as pd
import pytest

import cifar
from experiments import runs, search, search_report
from tests.conftest import REPO

STUB = """import json, sys
from pathlib import Path
here, argv = Path(__file__).parent, sys.argv[1:]
results = Path(argv[argv.index("--results_path") + 1])
with open(here / "started.log", "a") as f:
    f.write(json.dumps(argv) + "\\n")
value = json.loads((here / "values.json").read_text())[results.name]
if value.startswith("crash:"):
    value = value[len("crash:"):]
    if not (results / "crashed").exists():
        (results / "crashed").write_text("")
        raise RuntimeError("a crash (exit status 1 too) is no divergence")
if value == "diverge":
    print("main.py: error: non-finite loss at step 3 of task 2: the 'alpha' term is not finite", file=sys.stderr)
    sys.exit(1)
dataset, model = argv[argv.index("--dataset") + 1], argv[argv.index("--model") + 1]
setting = "domain-il" if dataset.startswith(("perm-", "rot-")) else "class-il"
target = results / setting / dataset / model / "mean_accs.csv"
target.parent.mkdir(parents=True)
target.write_text("task1,task2,task3,task4,task5,forward_transfer,backward_transfer,forgetting\\n"
                  f"90,70,60,50,{value},0,-10,10\\n")
"""
MODELS = ("sgd", "er", "der", "hcr")
BUFFERS = (200, 500)
BUDGET, TOP = 8, 3
SEED0_RUNS = 3 + len(BUFFERS) * (6 + BUDGET + BUDGET)  # sgd and er: their whole space (3 and 6)
CONFIRMATION_RUNS = 2 * TOP * (1 + 3 * len(BUFFERS))
SPREAD = {"er": 0.5}  # er's configurations lie within seed noise of each other: the rule picks cheap draws


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _config_of(get, model: str) -> dict:
    """The searched values of a run's command line (get: flag name -> text) or of a table row."""
    return {k: type(values[0])(float(get(k))) for k, values in search.SPACES[model].items()}


def _unit(*parts) -> float:
    return int(hashlib.sha1(repr(parts).encode()).hexdigest()[:8], 16) / 16 ** 8


def _key(config: dict) -> tuple:
    return tuple(config.values())


class FakeMain:
    """main.py's stand-in (experiments.runs.MAIN): a fixed accuracy per (model, buffer, seed, configuration), None
    when the run diverges; ``crash`` names runs that fail once with a traceback (exit status 1, but
    without main.py's divergence message). Every start is logged with its command line."""

    def __init__(self, folder: Path, spec: search.Search, diverge_at_seed_2: dict, crash=()):
        self.folder, self.diverge_at_seed_2 = folder, diverge_at_seed_2
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "main.py").write_text(STUB)
        values = {}
        for model, buffer in spec.cells():
            for config in search.configurations(model):
                for seed in search.SEEDS:
                    accuracy = self.accuracy(model, buffer, seed, config)
                    value = "diverge" if accuracy is None else repr(accuracy)
                    crashes = (model, buffer, seed, _key(config)) in crash
                    values[spec.run(model, buffer, config, seed).key] = f"crash:{value}" if crashes else value
        (folder / "values.json").write_text(json.dumps(values))

    def accuracy(self, model: str, buffer, seed: int, config: dict) -> float | None:
        if model == "hcr" and (config["lr"], config["alpha"]) == (0.1, 0.5):
            return None  # diverges with every seed
        if seed == 2 and (model == "sgd" or self.diverge_at_seed_2.get((model, buffer)) == _key(config)):
            return None
        bonus = 5 if self.diverge_at_seed_2.get((model, buffer)) == _key(config) else 0
        return (60 + SPREAD.get(model, 20) * _unit(model, buffer, _key(config))
                + 2 * _unit(model, buffer, _key(config), seed) + bonus)

    @property
    def commands(self) -> list[list[str]]:
        log = self.folder / "started.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    @property
    def started(self) -> list[tuple]:
        """(model, buffer, seed, configuration) of every start, in order."""
        found = []
        for argv in self.commands:
            model, buffer = _flag(argv, "--model"), _flag(argv, "--buffer_size")
            found.append((model, None if buffer is None else int(buffer), int(_flag(argv, "--seed")),
                          _key(_config_of(lambda k, argv=argv: _flag(argv, f"--{k}"), model))))
        return found


def _main(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cifar.main(argv)
    return code, out.getvalue()


def _argv(tmp_path: Path, *more: str) -> list[str]:
    return ["--search", "--dataset", "seq-fmnist", "--models", *MODELS, "--buffers", *map(str, BUFFERS),
            "--budget", str(BUDGET), "--top", str(TOP), "--results", str(tmp_path / "results"),
            "--docs", str(tmp_path / "docs" / "search.md"), "--jobs", "2", *more]


def _spec(budget: int = BUDGET) -> search.Search:
    return search.Search("seq-fmnist", MODELS, BUFFERS, (), budget, TOP)


def _best_seed0(fake: FakeMain, model: str, buffer) -> tuple:
    return _key(max(search.sample(model, BUDGET), key=lambda c: fake.accuracy(model, buffer, 0, c) or -1))


def expected_choice(fake: FakeMain, model: str, buffer) -> tuple[list[tuple], tuple | None]:
    """The search computed directly: the confirmed configurations (the seed-0 top TOP of those that
    did not diverge) and the one-standard-error choice among those that never diverged."""
    configs = search.sample(model, BUDGET)
    finished = [c for c in configs if fake.accuracy(model, buffer, 0, c) is not None]
    confirmed = sorted(finished, key=lambda c: fake.accuracy(model, buffer, 0, c), reverse=True)[:TOP]
    runs = {_key(c): [fake.accuracy(model, buffer, s, c) for s in (0, 1, 2)] for c in confirmed}
    means = {k: statistics.mean(v) for k, v in runs.items() if None not in v}
    if not means:
        return [_key(c) for c in confirmed], None
    best = max(means, key=means.get)
    threshold = means[best] - statistics.stdev(runs[best]) / math.sqrt(3)
    close = [k for k in means if means[k] >= threshold]
    size = list(search.SPACES[model]).index("minibatch_size") if "minibatch_size" in search.SPACES[model] else None
    choice = min(close, key=lambda k: ((k[size] if size is not None else 0), -means[k]))
    return [_key(c) for c in confirmed], choice


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """The search run twice over one results folder, and a dry run after it."""
    tmp_path = tmp_path_factory.mktemp("search")
    probe = FakeMain(tmp_path / "probe", _spec(), {})
    targets = {cell: _best_seed0(probe, *cell) for cell in (("hcr", 500), ("der", 200))}
    fake = FakeMain(tmp_path / "fake", _spec(), targets)
    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runs, "MAIN", tmp_path / "fake" / "main.py")
        found["first"] = _main(_argv(tmp_path))
        found["started first"] = fake.started
        found["docs first"] = (tmp_path / "docs" / "search.md").read_text()
        found["second"] = _main(_argv(tmp_path))
        found["started second"] = fake.started[len(found["started first"]):]
        found["dry"] = _main([*_argv(tmp_path), "--dry_run"])
    return tmp_path, fake, found


def test_every_model_gets_the_same_budget(searched):
    tmp_path, fake, found = searched
    code, out = found["first"]
    assert code == 0, out
    started = found["started first"]
    for model in MODELS:
        space = len(search.configurations(model))
        for buffer in BUFFERS if model != "sgd" else (None,):
            seed0 = [s for s in started if s[:3] == (model, buffer, 0)]
            assert len(seed0) == len(set(seed0)) == min(BUDGET, space)  # er (6) and sgd (3) run their whole space
            assert {s[3] for s in seed0} == {_key(c) for c in search.sample(model, BUDGET)}
            confirmation = [s for s in started if s[:2] == (model, buffer) and s[2] != 0]
            assert len(confirmation) == 2 * TOP  # the same confirmation stage everywhere
    table = pd.read_csv(tmp_path / "docs" / "search.csv")
    budget = {(r.model, None if math.isnan(r.buffer_size) else int(r.buffer_size)): [
        r.space_size, r.configurations_run, r.configurations_confirmed] for r in table.itertuples()}
    assert budget == {("sgd", None): [3, 3, TOP], **{("er", b): [6, 6, TOP] for b in BUFFERS},
                      **{("der", b): [24, BUDGET, TOP] for b in BUFFERS},
                      **{("hcr", b): [54, BUDGET, TOP] for b in BUFFERS}}
    markdown = (tmp_path / "docs" / "search.md").read_text()
    assert "| er | 200 | 6 | 6 (the whole space, smaller than the budget) | 3 | 12 |" in markdown
    assert f"| hcr | 500 | 54 | {BUDGET} | {TOP} | {BUDGET + 2 * TOP} |" in markdown


def test_sampling_is_seeded_without_replacement_within_the_space():
    for model in search.SPACES:
        space = search.configurations(model)
        assert len(space) == math.prod(len(v) for v in search.SPACES[model].values())
        for budget in (1, 5, 12, 100):
            chosen = search.sample(model, budget, seed=3)
            assert chosen == search.sample(model, budget, seed=3)  # the same seed, the same configurations
            assert len(chosen) == min(budget, len(space)) and all(c in space for c in chosen)
            assert len({_key(c) for c in chosen}) == len(chosen)  # without replacement
            assert chosen == search.sample(model, 100, seed=3)[:len(chosen)]  # a larger budget keeps these
    assert search.sample("hcr", 12, seed=0) != search.sample("hcr", 12, seed=1)  # another seed, others
    assert sorted(map(_key, search.sample("er", 12))) == sorted(map(_key, search.configurations("er")))
    draws = {_key(c) for seed in range(40) for c in search.sample("hcr", 12, seed)}
    assert len(draws) == 54  # every configuration can be drawn
    expected = search.configurations("derpp")
    random.Random(7).shuffle(expected)
    assert search.sample("derpp", 12, 7) == expected[:12]


def test_the_choice_is_the_one_standard_error_rule(searched):
    tmp_path, fake, found = searched
    table = pd.read_csv(tmp_path / "docs" / "search.csv", keep_default_na=True)
    outcomes = set()
    for model in MODELS:
        for buffer in BUFFERS if model != "sgd" else (None,):
            cell = table[(table["model"] == model) & (table["buffer_size"].eq(buffer) if buffer else
                                                      table["buffer_size"].isna())]
            confirmed, choice = expected_choice(fake, model, buffer)
            assert sorted(_key(_config_of_row(r, model)) for _, r in cell[cell["confirmed"]].iterrows()) == sorted(
                confirmed)
            chosen = [_key(_config_of_row(r, model)) for _, r in cell[cell["chosen"]].iterrows()]
            assert chosen == ([] if choice is None else [choice])
            if choice is not None:
                best = cell.loc[cell["mean"].idxmax()]
                outcomes.add(_key(_config_of_row(best, model)) == choice)
                row = cell[cell["chosen"]].iloc[0]
                seeds = [row[f"seed {s}"] for s in (0, 1, 2)]
                assert seeds == pytest.approx([fake.accuracy(model, buffer, s, dict(zip(
                    search.SPACES[model], choice, strict=True))) for s in (0, 1, 2)])
                assert row["mean"] == pytest.approx(statistics.mean(seeds))
                assert row["std"] == pytest.approx(statistics.stdev(seeds))
    assert outcomes == {True, False}  # the data exercise both: the best mean, and a cheaper close one


def _config_of_row(row, model: str) -> dict:
    return _config_of(lambda k: row[k], model)


def test_the_rule_against_a_direct_computation():
    rng = random.Random(0)
    picked_cheaper = 0
    for _ in range(300):
        rows = [{"minibatch_size": rng.choice((10, 64)), "seeds": [rng.gauss(70, 1) for _ in range(3)]}
                for _ in range(rng.randint(1, 6))]
        for row in rows:
            if rng.random() < 0.2:
                row["seeds"][rng.randrange(3)] = None  # diverged
        frame = pd.DataFrame([{"minibatch_size": r["minibatch_size"],
                               "mean": math.nan if None in r["seeds"] else statistics.mean(r["seeds"]),
                               "std": math.nan if None in r["seeds"] else statistics.stdev(r["seeds"])}
                              for r in rows])
        chosen = search.one_standard_error_choice(frame, 3)
        means = {i: statistics.mean(r["seeds"]) for i, r in enumerate(rows) if None not in r["seeds"]}
        if not means:
            assert chosen.empty
            continue
        best = max(means, key=means.get)
        threshold = means[best] - statistics.stdev(rows[best]["seeds"]) / math.sqrt(3)
        expected = min((i for i in means if means[i] >= threshold),
                       key=lambda i: (rows[i]["minibatch_size"], -means[i]))
        assert chosen.index.tolist() == [expected]
        picked_cheaper += expected != best
        without = search.one_standard_error_choice(frame.drop(columns="minibatch_size"), 3)
        assert without.index.tolist() == [best]  # no draw size (sgd): the best mean
    assert picked_cheaper > 10


def test_divergence_ranks_last_and_has_no_mean(searched):
    tmp_path, fake, found = searched
    table = pd.read_csv(tmp_path / "docs" / "search.csv", dtype={"diverged": str}, keep_default_na=False,
                        na_values=[""])
    for model, buffer in (("hcr", 500), ("der", 200)):
        target = fake.diverge_at_seed_2[(model, buffer)]
        cell = table[(table["model"] == model) & (table["buffer_size"] == buffer)]
        [row] = [r for _, r in cell.iterrows() if _key(_config_of_row(r, model)) == target]
        assert row["rank"] == 1 and row["confirmed"] and not row["chosen"]  # the best seed 0, then diverged
        assert row["diverged"] == "2" and math.isnan(row["mean"]) and math.isnan(row["std"])
    hcr = table[table["model"] == "hcr"]
    at_seed0 = hcr[hcr["diverged"].fillna("").str.split().map(lambda s: "0" in s)]
    assert len(at_seed0) > 0 and at_seed0["rank"].isna().all() and not at_seed0["confirmed"].any()
    for buffer in BUFFERS:  # diverged seed-0 runs come last in the report's seed-0 table
        lines = [line for line in found["docs first"].split("## Every seed-0 run")[1].splitlines()
                 if line.startswith(f"| hcr | {buffer} |")]
        flags = [line.rstrip(" |").endswith("| yes") for line in lines]
        assert flags == sorted(flags) and any(flags)
    code, out = found["first"]
    assert out.count("DIVERGED ") == len([s for s in found["started first"] if fake.accuracy(
        s[0], s[1], s[2], dict(zip(search.SPACES[s[0]], s[3], strict=True))) is None])
    assert "# sgd: no choice at buffer None: every confirmed configuration diverged on a seed" in out


def test_a_second_invocation_starts_nothing(searched):
    tmp_path, fake, found = searched
    code, out = found["second"]
    assert code == 0 and found["started second"] == []
    skipped = "finished or diverged before (skipped), 0 to run"
    assert f"search, seed-0 stage: {SEED0_RUNS} runs: {SEED0_RUNS} {skipped}" in out
    assert f"search, confirmation stage: {CONFIRMATION_RUNS} runs: {CONFIRMATION_RUNS} {skipped}" in out
    assert (tmp_path / "docs" / "search.md").read_text() == found["docs first"]
    code, out = found["dry"]
    lines = [line for line in out.splitlines() if line.startswith(shlex.quote(sys.executable))]
    assert code == 0 and len(lines) == SEED0_RUNS + CONFIRMATION_RUNS
    assert all(line.endswith(("# done", "# diverged")) for line in lines)
    assert f"{SEED0_RUNS} seed-0 runs and {CONFIRMATION_RUNS} confirmation runs, 0 of them to run" in out


def test_report_csv_and_proposed_entries(searched):
    tmp_path, fake, found = searched
    code, out = found["first"]
    markdown = (tmp_path / "docs" / "search.md").read_text()
    docs = tmp_path / "docs"
    assert markdown in out and f"written: {docs / 'search.md'} and {docs / 'search.csv'}" in out
    for title in ("## Budget per model and buffer", "## Chosen", "## Proposed entries of utils/best_args.py",
                  "## Confirmation", "## Every seed-0 run"):
        assert title in markdown
    assert "`--validation`" in markdown and "cifar.py --search --dataset seq-fmnist" in markdown
    table = pd.read_csv(tmp_path / "docs" / "search.csv")
    assert len(table) == SEED0_RUNS  # one row per sampled configuration
    lines = out.split("# BEST_ARGS['seq-fmnist'] of utils/best_args.py")[-1].splitlines()[1:len(MODELS) + 1]
    entries = {}
    exec("entries.update({\n" + "\n".join(lines) + "\n})", {"entries": entries})  # Python dict lines to paste
    for model in ("er", "der", "hcr"):
        for buffer in BUFFERS:
            _, choice = expected_choice(fake, model, buffer)
            config = dict(zip(search.SPACES[model], choice, strict=True))
            assert entries[model][buffer] == {"lr": config["lr"], "batch_size": 10, "n_epochs": 1, **config,
                                              **search.FIXED.get(model, {})}
            assert list(entries[model][buffer])[:3] == ["lr", "batch_size", "n_epochs"]
    assert "sgd" not in entries and lines[0].startswith("# sgd: no choice")  # sgd diverged at seed 2 throughout
    assert entries["hcr"][200]["gamma"] == 0.5 and entries["hcr"][200]["sigmoid"] == 0.1


def test_every_search_run_is_on_the_validation_split(searched):
    tmp_path, fake, found = searched
    assert len(fake.commands) == SEED0_RUNS + CONFIRMATION_RUNS
    for argv in fake.commands:
        assert "--validation" in argv and "--load_best_args" not in argv  # every value given, none looked up
        assert Path(_flag(argv, "--results_path")).parent == tmp_path / "results" / "search" / "runs"
        assert [_flag(argv, "--batch_size"), _flag(argv, "--n_epochs")] == ["10", "1"]  # seq-fmnist's protocol
    assert not (tmp_path / "results" / "runs").exists()  # nothing in the grid's own folder
    code, out = _main(["--summarize", "--results", str(tmp_path / "results")])
    assert code == 1 and "no finished runs" in out  # the grid's table never sees the search


def test_dry_run_before_anything_ran(tmp_path):
    code, out = _main([*_argv(tmp_path), "--dry_run", "--", "--debug_mode"])
    lines = [shlex.split(line) for line in out.splitlines() if line.startswith(shlex.quote(sys.executable))]
    assert code == 0 and len(lines) == SEED0_RUNS and not (tmp_path / "results").exists()
    assert all(argv[-2:] == ["--validation", "--debug_mode"] and _flag(argv, "--seed") == "0" for argv in lines)
    assert "er buffer 200: 6 of 6 configurations (the whole space, smaller than the budget), the best 3" in out
    assert "hcr buffer 500: 8 of 54 configurations, the best 3 confirmed with seeds 1 and 2" in out
    code, other = _main([*_argv(tmp_path), "--dry_run", "--sample_seed", "1"])
    assert code == 0 and {line for line in other.splitlines() if "--model hcr" in line} != {
        line for line in out.splitlines() if "--model hcr" in line}


def test_a_crash_is_no_divergence_and_is_run_again(tmp_path, monkeypatch):
    spec = search.Search("seq-fmnist", ("er",), (200,), (), 2, 1)
    config = search.sample("er", 2)[1]
    fake = FakeMain(tmp_path / "fake", spec, {}, crash=[("er", 200, 0, _key(config))])
    monkeypatch.setattr(runs, "MAIN", tmp_path / "fake" / "main.py")
    argv = ["--search", "--dataset", "seq-fmnist", "--models", "er", "--buffers", "200", "--budget", "2", "--top",
            "1", "--results", str(tmp_path / "results"), "--docs", str(tmp_path / "search.md")]
    code, out = _main(argv)
    assert code == 1 and "FAILED " in out and "DIVERGED" not in out and "not complete" in out
    assert not (tmp_path / "search.md").exists() and len(fake.started) == 2
    code, out = _main(argv)
    assert code == 0 and fake.started[2] == ("er", 200, 0, _key(config))  # the crashed run, again
    assert len(fake.started) == 3 + 2 and (tmp_path / "search.md").exists()


def test_any_dataset_any_model(tmp_path, monkeypatch, capsys):
    """A domain-IL dataset (its domain-IL accuracy, batch 128), and hcr on seq-tinyimg, which has no
    hcr entry in utils/best_args.py: search runs need none."""
    spec = search.Search("perm-fmnist", ("er",), (200,), (), 2, 1)
    fake = FakeMain(tmp_path / "fake", spec, {})
    monkeypatch.setattr(runs, "MAIN", tmp_path / "fake" / "main.py")
    code, out = _main(["--search", "--dataset", "perm-fmnist", "--models", "er", "--buffers", "200", "--budget",
                       "2", "--top", "1", "--results", str(tmp_path / "results"), "--docs", str(tmp_path / "s.md")])
    configs = search.sample("er", 2)
    best = max(configs, key=lambda c: fake.accuracy("er", 200, 0, c))
    assert code == 0 and len(fake.started) == 2 + 2
    assert f'"er": {{200: {{"lr": {best["lr"]!r}, "batch_size": 128, "n_epochs": 1, "minibatch_size": ' \
           f'{best["minibatch_size"]}}}}},' in out
    code, out = _main(["--search", "--dataset", "seq-tinyimg", "--models", "hcr", "--buffers", "500", "--results",
                       str(tmp_path / "results"), "--dry_run"])
    lines = [shlex.split(line) for line in out.splitlines() if line.startswith(shlex.quote(sys.executable))]
    assert code == 0 and len(lines) == search.BUDGET
    assert all([_flag(a, "--batch_size"), _flag(a, "--n_epochs"), _flag(a, "--gamma")] == ["32", "100", "0.5"]
               and "--load_best_args" not in a for a in lines)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--search takes no --seeds"),
    (["--models", "joint"], "no search space for joint"),
    (["--models", "hcr", "--", "--alpha", "0.3"], "--alpha after -- clash with the search"),
    (["--models", "er", "--", "--validation"], "--validation after -- clash with the search"),
    (["--models", "er", "--", "--icr_mode", "gradient"], "unrecognized arguments: --icr_mode gradient"),
])
def test_bad_searches_are_refused(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        cifar.main(["--search", "--dataset", "seq-fmnist", "--results", str(tmp_path), "--dry_run", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_documented_spaces_are_the_committed_ones():
    """docs/search_spaces.md's table row per model holds the values of SPACES and FIXED."""
    text = (REPO / "docs" / "search_spaces.md").read_text()
    rows = {cells[0].strip("` "): cells for cells in (
        [c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
        if line.startswith("| `"))}
    header = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| model")).strip(
        "|").split("|")]
    assert set(rows) == set(search.SPACES)
    for model, cells in rows.items():
        row = dict(zip(header, cells, strict=True))
        for name in ("lr", "minibatch_size", "alpha", "beta"):
            values = search.SPACES[model].get(name)
            assert row[name] == ("-" if values is None else ", ".join(f"{v:g}" for v in values)), (model, name)
        fixed = search.FIXED.get(model, {})
        assert row["fixed"] == ("-" if not fixed else ", ".join(f"{k} {v:g}" for k, v in fixed.items()))
        assert row["configurations"] == str(len(search.configurations(model)))
    assert list(itertools.chain(search.SPACES["hcr"].values())) == [(0.01, 0.03, 0.1), (10, 64), (0.01, 0.1, 0.5),
                                                                    (0.5, 1.0, 2.0)]
    assert search.SPACES["derpp"]["alpha"] == (0.1, 0.2, 0.5, 1.0) and search.SPACES["derpp"]["beta"] == (0.5, 1.0)


def test_csv_rows_match_the_runs(searched):
    """Each row's seed accuracies are those its runs wrote (read back from the run folders)."""
    tmp_path, fake, found = searched
    with open(tmp_path / "docs" / "search.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        model = row["model"]
        buffer = int(row["buffer_size"]) if row["buffer_size"] else None
        config = _config_of_row(row, model)
        for seed in (0, 1, 2):
            value = row[f"seed {seed}"]
            expected = fake.accuracy(model, buffer, seed, config)
            if value:
                assert float(value) == pytest.approx(expected)
            elif seed == 0 or row["confirmed"] == "True":
                assert expected is None and str(seed) in row["diverged"].split()


def test_a_gradient_mode_search_proposes_hcr_gradient_entries(tmp_path, monkeypatch):
    spec = search.Search("seq-fmnist", ("hcr",), (200,), ("--icr_mode", "gradient"), 2, 1)
    fake = FakeMain(tmp_path / "fake", spec, {})
    monkeypatch.setattr(runs, "MAIN", tmp_path / "fake" / "main.py")
    code, out = _main(["--search", "--dataset", "seq-fmnist", "--models", "hcr", "--buffers", "200", "--budget", "2",
                       "--top", "1", "--results", str(tmp_path / "results"), "--docs", str(tmp_path / "s.md"),
                       "--", "--icr_mode", "gradient"])
    assert code == 0 and all(argv[-2:] == ["--icr_mode", "gradient"] for argv in fake.commands)
    assert '\n"hcr-gradient": {200: {' in out and '\n"hcr": {' not in out


def test_the_report_says_whether_best_args_holds_the_choice(monkeypatch):
    from utils import best_args

    entries = {"sgd": {None: {"lr": 0.03, "batch_size": 10, "n_epochs": 1}},  # the protocol
               "der": {500: {"lr": 0.1, "batch_size": 10, "n_epochs": 1, "minibatch_size": 10, "alpha": 1.0}}}
    monkeypatch.setitem(best_args.BEST_ARGS, "seq-fmnist", entries)
    spec, row = search.Search("seq-fmnist", ("der",), (500,)), {"model": "der", "buffer_size": 500, "lr": 0.1,
                                                                 "minibatch_size": 10, "alpha": 1.0}
    assert search_report.holds(row, spec) == "holds it"
    assert search_report.holds({**row, "lr": 0.03}, spec) == "differs"
    assert search_report.holds({**row, "buffer_size": 200}, spec) == "no entry"
