"""Reservoir memory buffer (docs/method.md, "Reservoir buffer"), kept on the training device.

Storage tensors have one extra "discard" row at index ``capacity``: examples the
reservoir rejects are written there, so a whole batch is inserted with a single
``index_copy_`` and no data-dependent host synchronisation.
"""
from collections.abc import Callable

import torch

from utils.errors import UserError

Transform = Callable[[torch.Tensor], torch.Tensor]
FIELDS = ("examples", "labels", "logits", "task_labels")


def reservoir_slots(num_seen: int, batch_size: int, capacity: int, device: torch.device | str) -> torch.Tensor:
    """Slot of each of ``batch_size`` new examples; ``capacity`` means "dropped".

    The j-th example of the stream (0-based) goes to slot j while j < capacity, else to a
    uniform r in [0, j] when r < capacity. When several examples of one batch pick the
    same slot, the last one wins, exactly as if they had been inserted one by one.
    """
    seen = torch.arange(num_seen, num_seen + batch_size, device=device)
    drawn = (torch.rand(batch_size, device=device, dtype=torch.float64) * (seen + 1)).long()
    slots = torch.where(seen < capacity, seen, drawn).clamp_(max=capacity)
    order = torch.arange(batch_size, device=device)
    last_writer = torch.full((capacity + 1,), -1, device=device, dtype=torch.long)
    last_writer.scatter_reduce_(0, slots, order, reduce="amax")
    return torch.where(last_writer.index_select(0, slots) == order, slots, capacity)


class Buffer:
    """Fixed-capacity reservoir of (example, label, logits, task label) over the whole stream."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.num_seen = 0
        self._storage: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return min(self.num_seen, self.capacity)

    def is_empty(self) -> bool:
        return self.num_seen == 0

    def add_data(
        self,
        examples: torch.Tensor,
        labels: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
        task_labels: torch.Tensor | None = None,
    ) -> None:
        """Offer a batch to the reservoir (vectorised, no per-example Python loop)."""
        batch = {k: v for k, v in zip(FIELDS, (examples, labels, logits, task_labels), strict=True) if v is not None}
        if not self._storage:
            try:
                self._storage = {
                    k: torch.zeros((self.capacity + 1, *v.shape[1:]), dtype=v.dtype, device=self.device)
                    for k, v in batch.items()
                }
            except (RuntimeError, torch.OutOfMemoryError):  # CPU and CUDA allocation failures
                raise UserError(f"a buffer of {self.capacity} examples does not fit in memory") from None
        elif batch.keys() != self._storage.keys():
            raise ValueError(f"buffer stores {sorted(self._storage)}, got {sorted(batch)}")
        slots = reservoir_slots(self.num_seen, examples.shape[0], self.capacity, self.device)
        for name, values in batch.items():
            self._storage[name].index_copy_(0, slots, values.detach().to(self.device))
        self.num_seen += examples.shape[0]

    def _select(self, index: torch.Tensor, transform: Transform | None) -> tuple[torch.Tensor, ...]:
        out = [self._storage[k].index_select(0, index) for k in FIELDS if k in self._storage]
        if transform is not None:
            out[0] = transform(out[0])
        return tuple(out)

    def get_data(self, size: int, transform: Transform | None = None) -> tuple[torch.Tensor, ...]:
        """Draw min(size, len(self)) distinct slots uniformly without replacement.

        Returns the stored fields in the order (examples, labels, logits, task_labels),
        leaving out those never stored. ``transform`` maps a batch of examples to a
        batch, with independent randomness per example (e.g. a fresh crop and flip).
        """
        return self.get_draws(1, size, transform)[0]

    def get_draws(self, count: int, size: int, transform: Transform | None = None) -> list[tuple[torch.Tensor, ...]]:
        """``count`` independent draws as ``get_data`` makes them, gathered and transformed
        together (one gather per field instead of one per draw); the same random slots as
        ``count`` calls of ``get_data``."""
        if self.is_empty():
            raise ValueError("cannot draw from an empty buffer")
        n = min(size, len(self))
        choice = torch.cat([torch.randperm(len(self), device=self.device)[:n] for _ in range(count)])
        fields = self._select(choice, transform)
        return list(zip(*(field.split(n) for field in fields), strict=True))

    def get_all_data(self, transform: Transform | None = None) -> tuple[torch.Tensor, ...]:
        """Every filled slot, in slot order."""
        return self._select(torch.arange(len(self), device=self.device), transform)

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "num_seen": self.num_seen,
                "storage": {k: v.detach().cpu().clone() for k, v in self._storage.items()}}

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"buffer capacity {self.capacity} differs from the saved {state['capacity']}")
        self.num_seen = state["num_seen"]
        self._storage = {k: v.to(self.device, copy=True) for k, v in state["storage"].items()}
