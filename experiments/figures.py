"""The grid's figures (PNG, matplotlib's Agg canvas, no display needed), written by ``cifar.py
--summarize`` next to the summary (experiments/tables.py), or anywhere with write_figures:

- ``accuracy_vs_buffer_<dataset>.png``: per reported setting, the accuracy after the last task
  against the buffer size for each replay model (mean over seeds, 95% CI error bars, the values of
  experiments/tables.py's table), the buffer-free models (sgd, joint) as horizontal reference lines;
- ``matrix_<dataset>_<model>.png``: the accuracy matrix of one run of the model (seed 0, or its
  lowest, at its smallest buffer): accuracy on task i after training task t, read from the run's
  final checkpoint (experiments.runs.accuracy_matrix_of), since the CSV rows hold only the means."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy

from experiments.runs import LABELS, accuracy_matrix_of, column, run_folder_of_key, settings_of

HEATMAP_MODELS = ("hcr", "derpp")


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path


def _label(model: str, flags: str, note: str) -> str:
    return " ".join([model, *([flags] if flags else []), *(["(DEBUG)"] if note else [])])


def buffer_plot_data(table, dataset: str) -> dict:
    """What accuracy_vs_buffer plots, from experiments.tables.summary_table's frame: per reported
    setting, ``series`` (label: buffers, means, CI lows and highs, by buffer) of the replay models and
    ``references`` (label: mean, CI low, CI high) of the buffer-free ones."""
    data = {}
    for setting in settings_of(dataset):
        c = column(setting)
        series, references = {}, {}
        for (model, flags, note), rows in table.groupby(["model", "flags", "note"], sort=False):
            label = _label(model, flags, note)
            if rows["buffer_size"].isna().all():
                r = rows.iloc[0]
                references[label] = (float(r[f"{c}_mean"]), float(r[f"{c}_ci95_low"]), float(r[f"{c}_ci95_high"]))
                continue
            rows = rows.dropna(subset=["buffer_size"]).sort_values("buffer_size")
            series[label] = {"buffer": [int(b) for b in rows["buffer_size"]],
                             "mean": [float(v) for v in rows[f"{c}_mean"]],
                             "low": [float(v) for v in rows[f"{c}_ci95_low"]],
                             "high": [float(v) for v in rows[f"{c}_ci95_high"]]}
        data[setting] = {"series": series, "references": references}
    return data


def accuracy_vs_buffer(table, dataset: str, path: Path) -> dict:
    """Write the accuracy-against-buffer figure of ``table`` (summary_table's frame) to ``path``;
    return what the figure shows, read back from its lines and error bars, in buffer_plot_data's
    layout (a value without error bar, one seed, has low = high = mean), with each panel's visible
    y-range (``ylim``)."""
    data = buffer_plot_data(table, dataset)
    figure = Figure(figsize=(6.4 * len(data), 4.8))
    axes = figure.subplots(1, len(data), squeeze=False)[0]
    buffers = sorted({b for d in data.values() for s in d["series"].values() for b in s["buffer"]})
    plotted = {}
    for ax, (setting, d) in zip(axes, data.items(), strict=True):
        series, references = {}, {}
        if buffers:  # before plotting: the dodge below is a shift from the log-scale positions
            ax.set_xscale("log")
        for k, (label, s) in enumerate(d["series"].items()):
            # side by side around the buffer (a shift in points: the data keep the buffer sizes)
            dodge = offset_copy(ax.transData, figure, x=5 * (k - (len(d["series"]) - 1) / 2), units="points")
            below = [0.0 if math.isnan(lo) else m - lo for m, lo in zip(s["mean"], s["low"], strict=True)]
            above = [0.0 if math.isnan(hi) else hi - m for m, hi in zip(s["mean"], s["high"], strict=True)]
            bars = ax.errorbar(s["buffer"], s["mean"], yerr=[below, above], marker="o", capsize=4, label=label,
                               transform=dodge)
            # the dodge keeps the bars out of autoscaling: register their extent in data coordinates
            ax.update_datalim([(b, y) for b, *ys in zip(s["buffer"], s["mean"], s["low"], s["high"], strict=True)
                               for y in ys if not math.isnan(y)])
            line, _, (ranges,) = bars.lines
            series[label] = {"buffer": [int(x) for x in line.get_xdata()],
                             "mean": [float(y) for y in line.get_ydata()],
                             "low": [float(seg[0][1]) for seg in ranges.get_segments()],
                             "high": [float(seg[1][1]) for seg in ranges.get_segments()]}
        for i, (label, (mean, low, high)) in enumerate(d["references"].items()):
            color = f"C{(len(d['series']) + i) % 10}"
            line = ax.axhline(mean, linestyle="--", color=color, label=f"{label} (no buffer)")
            if not math.isnan(low):
                ax.axhspan(low, high, color=color, alpha=0.12)
            references[label] = (float(line.get_ydata()[0]), low, high)
        ax.autoscale_view()
        if buffers:
            ax.set_xticks(buffers, [str(b) for b in buffers])
            ax.minorticks_off()
            ax.set_xlim(buffers[0] / 1.4, buffers[-1] * 1.4)
        ax.set_xlabel("buffer size (examples)")
        ax.set_ylabel(f"{LABELS[setting]} accuracy after the last task (%)")
        ax.set_title(f"{dataset}: {LABELS[setting]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        plotted[setting] = {"series": series, "references": references, "ylim": ax.get_ylim()}
    figure.suptitle("mean over seeds, 95% confidence interval of the mean (t-distribution)", fontsize="small")
    _save(figure, path)
    return plotted


def accuracy_matrix(rows: list[list[float]], title: str, path: Path) -> np.ndarray:
    """Write the heatmap of an accuracy matrix (rows R[t] as the history holds them: R[t][i] after
    training task t on task i; entries past the diagonal, the accuracy on a task not trained yet,
    are left out) to ``path``; return the plotted matrix (NaN above the diagonal)."""
    n = len(rows)
    matrix = np.full((n, n), np.nan)
    for t, row in enumerate(rows):
        matrix[t, : t + 1] = row[: t + 1]
    figure = Figure(figsize=(1.2 + 0.55 * max(n, 5), 0.8 + 0.5 * max(n, 5)))
    ax = figure.subplots()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0, vmax=100)
    figure.colorbar(image, ax=ax, label="accuracy (%)")
    if n <= 10:
        for t in range(n):
            for i in range(t + 1):
                ax.text(i, t, f"{matrix[t, i]:.0f}", ha="center", va="center", fontsize="small",
                        color="black" if matrix[t, i] > 60 else "white")
    ticks = range(0, n, max(1, n // 10))
    ax.set_xticks(list(ticks), [str(i + 1) for i in ticks])
    ax.set_yticks(list(ticks), [str(t + 1) for t in ticks])
    ax.set_xlabel("evaluated on task i")
    ax.set_ylabel("after training task t")
    ax.set_title(title, fontsize="medium")
    _save(figure, path)
    return matrix


def matrix_run(runs, model: str, seed: int = 0):
    """The run of ``model`` whose matrix is shown (collect's frame): seed ``seed`` (else the lowest),
    the smallest buffer, then the first flags in order (none first); None without runs of it."""
    mine = runs[runs["model"] == model]
    if mine.empty:
        return None
    if (mine["seed"] == seed).any():
        mine = mine[mine["seed"] == seed]
    return mine.sort_values(["seed", "buffer_size", "flags"], na_position="first").iloc[0]


def write_figures(results: Path, dataset: str, runs, table, folder: Path | None = None,
                  models: tuple[str, ...] = HEATMAP_MODELS, seed: int = 0) -> list[Path]:
    """Write ``dataset``'s figures of the finished runs in ``results`` into ``folder`` (default:
    ``results``; e.g. docs/) and return their paths: the accuracy-against-buffer figure of ``table``
    and, for each of ``models`` with a run in ``runs`` whose checkpoint is kept, its accuracy matrix
    (``runs``, ``table``: experiments.tables' frames)."""
    results = Path(results)
    folder = results if folder is None else Path(folder)
    path = folder / f"accuracy_vs_buffer_{dataset}.png"
    accuracy_vs_buffer(table, dataset, path)
    written = [path]
    setting = settings_of(dataset)[0]
    for model in models:
        run = matrix_run(runs, model, seed)
        rows = None if run is None else accuracy_matrix_of(run_folder_of_key(results, run["key"]), setting)
        if not rows:
            continue
        buffer = "" if pd.isna(run["buffer_size"]) else f", buffer {run['buffer_size']}"
        flags = f", {run['flags']}" if run["flags"] else ""
        title = f"{dataset}: {model}{buffer}, seed {run['seed']}{flags}\n{LABELS[setting]} accuracy (%)"
        path = folder / f"matrix_{dataset}_{model}.png"
        accuracy_matrix(rows, title, path)
        written.append(path)
    return written
