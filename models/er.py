"""Experience Replay: one cross-entropy over the stream batch and a buffer draw together."""
import torch

from models.continual_model import Batch, ReplayModel


class Er(ReplayModel):
    NAME = "er"
    STORES = ("labels",)
    FUSE_FORWARD = True  # the stream batch and the draw go through the network as one batch

    def replay_terms(self, stream: Batch, draws: list[Batch]) -> dict[str, torch.Tensor]:
        [draw] = draws
        return {"ce": self.loss(torch.cat((stream.outputs, draw.outputs)), torch.cat((stream.labels, draw.labels)))}
