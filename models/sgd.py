"""Fine-tuning with plain SGD: the lower bound, which forgets catastrophically. Its one term is
the stream's cross-entropy, the base class's default."""
from models.continual_model import ContinualModel


class Sgd(ContinualModel):
    NAME = "sgd"
