"""The experiment layer: what manages many runs of main.py (grids, searches, launchers, tables,
statistics, figures). It imports the training engine (main.py, utils/, models/, datasets/); the
engine never imports it. cifar.py is its command line."""
