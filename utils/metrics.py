"""Continual-learning summary metrics over an accuracy matrix (docs/method.md, "Evaluation and metrics").

``results[t][i]`` is the accuracy on task i after training task t; row t - 1 also holds,
at index t, the accuracy on task t measured just before training it. Inputs are never
modified.
"""
from collections.abc import Sequence

import numpy as np


def backward_transfer(results: Sequence[Sequence[float]]) -> float:
    """BWT = mean over i < T-1 of R[T-1][i] - R[i][i]."""
    last = len(results) - 1
    return float(np.mean([results[last][i] - results[i][i] for i in range(last)]))


def forward_transfer(results: Sequence[Sequence[float]], random_results: Sequence[float]) -> float:
    """FWT = mean over i >= 1 of R[i-1][i] - b[i], b = accuracies of the random initialisation."""
    return float(np.mean([results[i - 1][i] - random_results[i] for i in range(1, len(results))]))


def forgetting(results: Sequence[Sequence[float]]) -> float:
    """Mean over i < T-1 of (max over t of R[t][i]) - R[T-1][i], missing entries read as 0."""
    n_tasks = len(results)
    padded = np.zeros((n_tasks, n_tasks))
    for t, row in enumerate(results):
        padded[t, : len(row)] = row[:n_tasks]
    best = padded.max(axis=0)
    return float(np.mean([best[i] - padded[-1, i] for i in range(n_tasks - 1)]))
