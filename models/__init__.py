"""Model registry: every ``ContinualModel`` subclass with a ``NAME`` in this package."""
from models.continual_model import ContinualModel
from utils.registry import named_subclasses


def get_all_models() -> dict[str, type[ContinualModel]]:
    return named_subclasses(__name__, __path__, ContinualModel)
