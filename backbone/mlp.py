"""The two-hidden-layer MLP mammoth uses for MNIST-like data (784-100-100-10, ReLU)."""
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, input_size: int, num_classes: int, hidden_size: int = 100) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, num_classes),
        )
        # mammoth initialises this network with Xavier-uniform weights and zero biases.
        for module in self.layers:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
