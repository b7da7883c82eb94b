"""scripts/search_hcr_fmnist.py: which runs it starts and which configuration it chooses, with
main.py replaced by a stub that writes a known accuracy for every run."""
import itertools

from scripts import search_hcr_fmnist as search
from utils.loggers import append_row


def fake_accuracy(buffer_size: int, seed: int, config: dict) -> float:
    """A fixed, distinct accuracy per run: seed 0 favours lr 0.03, seeds 1 and 2 favour beta 0.5."""
    base = 70 + 5 * (config["lr"] == 0.03) + 2 * (config["alpha"] == 0.1) + (config["minibatch_size"] == 64)
    return base + (3 * (config["beta"] == 0.5) if seed else config["beta"]) + buffer_size / 1000 + seed / 100


def test_grid_then_confirmation_of_the_best_four_chosen_by_the_three_seed_mean(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "class-il" / "seq-fmnist" / "hcr" / "mean_accs.csv"
    started = []

    def fake_run(results, buffer_size, seed, config):
        started.append((buffer_size, seed, tuple(config.values())))
        append_row(csv, {"task5": fake_accuracy(buffer_size, seed, config), "model": "hcr",
                         "buffer_size": buffer_size, "seed": seed, **config})

    monkeypatch.setattr(search, "run", fake_run)
    monkeypatch.setattr("sys.argv", ["search_hcr_fmnist.py", "--results_path", str(tmp_path)])
    search.main()

    configs = [dict(zip(search.GRID, v, strict=True)) for v in itertools.product(*search.GRID.values())]
    grid = [(b, 0, tuple(c.values())) for b in search.BUFFERS for c in configs]
    assert sorted(s for s in started if s[1] == 0) == sorted(grid)
    assert len(started) == len(grid) + len(search.BUFFERS) * 4 * 2  # then 4 configurations per buffer, seeds 1, 2
    chosen = capsys.readouterr().out.split("chosen (best mean) per buffer size:")[1]
    for buffer_size in search.BUFFERS:
        top = sorted(configs, key=lambda c: -fake_accuracy(buffer_size, 0, c))[:4]
        best = max(top, key=lambda c: sum(fake_accuracy(buffer_size, s, c) for s in (0, 1, 2)))
        assert best["beta"] == 0.5  # seed 0 alone would have chosen beta 1.0
        row = next(line for line in chosen.splitlines() if line.startswith(f"| {buffer_size:13d} |"))
        assert [float(x) for x in row.strip("|").split("|")[1:5]] == [best[k] for k in search.GRID]

    runs = len(started)
    search.main()  # everything is in the CSV: nothing runs again
    assert len(started) == runs
