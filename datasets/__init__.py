"""Dataset registry: every ``ContinualDataset`` subclass with a ``NAME`` in this package."""
from datasets.continual_dataset import ContinualDataset
from utils.registry import named_subclasses


def get_all_datasets() -> dict[str, type[ContinualDataset]]:
    return named_subclasses(__name__, __path__, ContinualDataset)
