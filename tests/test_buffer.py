"""Tests of utils/buffer.py (docs/method.md, "Reservoir buffer"): reservoir sampling over the whole stream."""
import io
import math

import pytest
import torch

from utils.buffer import Buffer, reservoir_slots


def _items(ids: list[int] | range) -> dict[str, torch.Tensor]:
    """One batch whose every field encodes the stream id, so any mix-up between fields shows."""
    ids_t = torch.tensor(list(ids), dtype=torch.long)
    n = len(ids_t)
    return {
        "examples": ids_t.float().view(n, 1, 1, 1).expand(n, 3, 4, 4).clone(),
        "labels": ids_t.clone(),
        "logits": ids_t.float().view(n, 1).expand(n, 10).clone() / 7,
        "task_labels": ids_t // 10,
    }


def _ids_of(examples: torch.Tensor) -> list[int]:
    return examples[:, 0, 0, 0].long().tolist()


def _check_consistent(fields: tuple[torch.Tensor, ...]) -> list[int]:
    """Every returned row of every field comes from the same example; return the ids."""
    examples, labels, logits, task_labels = fields
    ids = labels.tolist()
    assert _ids_of(examples) == ids
    assert torch.equal(examples, torch.tensor(ids, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, 3, 4, 4))
    assert torch.equal(logits, torch.tensor(ids, dtype=torch.float).view(-1, 1).expand(-1, 10) / 7)
    assert task_labels.tolist() == [i // 10 for i in ids]
    return ids


def _stream(buffer: Buffer, batch_sizes: list[int], start: int = 0) -> int:
    seen = start
    for size in batch_sizes:
        buffer.add_data(**_items(range(seen, seen + size)))
        seen += size
    return seen


# --- capacity, length, fill order --------------------------------------------------------


@pytest.mark.parametrize("capacity,batch_sizes", [
    (10, [1, 1, 3, 7, 2, 25, 1]),
    (10, [40]),  # first batch larger than the capacity
    (5, [2, 2, 2, 2, 2, 100]),
])
def test_length_is_min_of_seen_and_capacity(capacity, batch_sizes):
    buffer = Buffer(capacity)
    assert len(buffer) == 0 and buffer.is_empty()
    seen = 0
    for size in batch_sizes:
        buffer.add_data(**_items(range(seen, seen + size)))
        seen += size
        assert buffer.num_seen == seen
        assert len(buffer) == min(seen, capacity)
        fields = buffer.get_all_data()
        assert all(len(f) == min(seen, capacity) for f in fields)
        ids = _check_consistent(fields)
        assert len(set(ids)) == len(ids), "one example stored twice"
        assert set(ids) <= set(range(seen)), "a slot holds something never inserted"
        assert not buffer.is_empty()


@pytest.mark.parametrize("batch_sizes", [[10], [1] * 10, [3, 6, 1], [4, 4, 2]])
def test_first_capacity_examples_fill_slots_in_order(batch_sizes):
    buffer = Buffer(10)
    _stream(buffer, batch_sizes)
    assert _check_consistent(buffer.get_all_data()) == list(range(10))


def test_partial_fill_keeps_stream_order():
    buffer = Buffer(50)
    _stream(buffer, [7, 1, 12])
    assert _check_consistent(buffer.get_all_data()) == list(range(20))


@pytest.mark.parametrize("capacity", [0, -3])
def test_non_positive_capacity_raises(capacity):
    with pytest.raises(ValueError):
        Buffer(capacity)


# --- the reservoir rule ------------------------------------------------------------------


def test_last_writer_wins_inside_a_batch(monkeypatch):
    """Controlled random numbers: stream positions 3..6 offered to a full buffer of capacity 3.

    u * (j + 1), truncated, is the drawn slot r in [0, j]:
      j=3: 0.3 * 4 = 1.2 -> slot 1    j=4: 0.1 * 5 = 0.5 -> slot 0
      j=5: 0.2 * 6 = 1.2 -> slot 1    j=6: 0.9 * 7 = 6.3 -> 6 >= 3, dropped
    One by one, j=5 overwrites what j=3 wrote in slot 1, so j=3 must be dropped.
    """
    uniforms = torch.tensor([0.3, 0.1, 0.2, 0.9], dtype=torch.float64)

    def fake_rand(*size, **kwargs):
        assert math.prod(size[0] if isinstance(size[0], tuple | list | torch.Size) else size) == 4
        return uniforms.to(kwargs.get("dtype", torch.float64))

    buffer = Buffer(3)
    buffer.add_data(**_items(range(3)))
    monkeypatch.setattr(torch, "rand", fake_rand)
    assert reservoir_slots(3, 4, 3, "cpu").tolist() == [3, 0, 1, 3]
    buffer.add_data(**_items(range(3, 7)))
    monkeypatch.undo()
    assert _check_consistent(buffer.get_all_data()) == [4, 5, 2]
    assert buffer.num_seen == 7


def _sequential_reservoir(batches: list[list[int]], uniforms: list[list[float]], capacity: int) -> list[int]:
    """Textbook reservoir sampling, one example at a time: example j (0-based) takes slot j
    while j < capacity, else slot r = floor(u_j * (j + 1)) when r < capacity."""
    slots: list[int | None] = [None] * capacity
    j = 0
    for batch, batch_u in zip(batches, uniforms, strict=True):
        assert len(batch) == len(batch_u)
        for item, u in zip(batch, batch_u, strict=True):
            if j < capacity:
                slots[j] = item
            else:
                r = int(u * (j + 1))
                if r < capacity:
                    slots[r] = item
            j += 1
    return [s for s in slots if s is not None]


def test_batched_insertion_matches_one_by_one_reference(monkeypatch):
    """Record the random numbers the buffer draws and replay them through the sequential
    reference: the contents must match exactly (including the many in-batch collisions of
    batches larger than the capacity)."""
    capacity = 16
    sizes = [5, 40, 1, 3, 64, 2, 100, 17, 250, 9]
    real_rand = torch.rand
    drawn: list[list[float]] = []

    def recording_rand(*args, **kwargs):
        out = real_rand(*args, **kwargs)
        drawn.append(out.double().flatten().tolist())
        return out

    monkeypatch.setattr(torch, "rand", recording_rand)
    torch.manual_seed(1234)
    buffer = Buffer(capacity)
    batches, seen = [], 0
    for size in sizes:
        batch = list(range(seen, seen + size))
        n_calls = len(drawn)
        buffer.add_data(**_items(batch))
        assert len(drawn) == n_calls + 1, "expected one draw of uniforms per inserted batch"
        batches.append(batch)
        seen += size
        got = _check_consistent(buffer.get_all_data())
        assert got == _sequential_reservoir(batches, drawn, capacity)
    monkeypatch.undo()


def test_reservoir_inclusion_is_uniform():
    """1000 ids into capacity 100, in batches of 1..333 (several larger than the capacity),
    repeated R = 400 times. Every id must be kept with probability 100 / 1000 = 0.1, so its
    count c_i ~ Binomial(400, 0.1): mean 40, variance 36.

    * Pearson X = sum_i (c_i - 40)^2 / 36 has mean 1000 and sd ~ sqrt(2 * 1000) = 44.7
      (chi-square, 999-1000 degrees of freedom); the bounds 1000 +- 5 sd are ~6 sd apart
      from the Wilson-Hilferty tail, so a correct buffer fails with probability < 1e-6,
      while a biased rule (e.g. first writer wins, or a slot drawn from [0, j)) moves X
      by hundreds.
    * Block sums of 100 consecutive ids have mean 4000 and sd <= 60; we allow 5 sd.
    * The position of an id inside its batch must not matter either (same bound).
    """
    capacity, n_ids, reps = 100, 1000, 400
    sizes = [250, 1, 3, 16, 150, 30, 333, 7, 60, 150]
    assert sum(sizes) == n_ids
    torch.manual_seed(0)
    counts = torch.zeros(n_ids, dtype=torch.long)
    for _ in range(reps):
        buffer = Buffer(capacity)
        seen = 0
        for size in sizes:
            ids = torch.arange(seen, seen + size)
            buffer.add_data(ids.float().view(-1, 1), labels=ids)
            seen += size
            assert len(buffer) == min(seen, capacity)
        labels = buffer.get_all_data()[1]
        assert len(labels) == capacity and len(labels.unique()) == capacity
        counts[labels] += 1
    p = capacity / n_ids
    expected, var = reps * p, reps * p * (1 - p)
    pearson = float(((counts.double() - expected) ** 2).sum() / var)
    sd = math.sqrt(2 * n_ids)
    assert n_ids - 5 * sd < pearson < n_ids + 5 * sd, f"chi-square {pearson:.1f} for {n_ids} ids"
    block_sd = math.sqrt(100 * var)
    for start in range(0, n_ids, 100):
        block = int(counts[start:start + 100].sum())
        assert abs(block - 100 * expected) < 5 * block_sd, f"ids {start}..{start + 99} kept {block} times"
    # first vs second half of each batch larger than 16
    halves = [[], []]
    seen = 0
    for size in sizes:
        if size >= 16:
            halves[0] += range(seen, seen + size // 2)
            halves[1] += range(seen + size // 2, seen + 2 * (size // 2))
        seen += size
    for half in halves:
        total = int(counts[half].sum())
        assert abs(total - len(half) * expected) < 5 * math.sqrt(len(half) * var), (total, len(half))


# --- stored fields ---------------------------------------------------------------------


def test_fields_shapes_and_dtypes():
    buffer = Buffer(6)
    examples = torch.rand(4, 3, 32, 32)
    labels = torch.tensor([3, 1, 4, 1])
    logits = torch.randn(4, 10, requires_grad=True)
    task_labels = torch.tensor([0, 0, 1, 1])
    buffer.add_data(examples, labels=labels, logits=logits * 2, task_labels=task_labels)
    out = buffer.get_all_data()
    assert len(out) == 4
    assert [tuple(t.shape) for t in out] == [(4, 3, 32, 32), (4,), (4, 10), (4,)]
    assert [t.dtype for t in out] == [torch.float32, torch.long, torch.float32, torch.long]
    assert torch.equal(out[0], examples)
    assert torch.equal(out[1], labels)
    assert torch.equal(out[2], logits.detach() * 2)
    assert torch.equal(out[3], task_labels)
    assert not any(t.requires_grad for t in out), "logits must be stored detached"
    drawn = buffer.get_data(3)
    assert [tuple(t.shape) for t in drawn] == [(3, 3, 32, 32), (3,), (3, 10), (3,)]
    assert [t.dtype for t in drawn] == [torch.float32, torch.long, torch.float32, torch.long]


def test_only_the_stored_fields_are_returned():
    buffer = Buffer(5)
    buffer.add_data(torch.rand(3, 1, 28, 28), labels=torch.tensor([7, 8, 9]))
    out = buffer.get_data(10)
    assert len(out) == 2
    assert sorted(out[1].tolist()) == [7, 8, 9]
    assert len(buffer.get_all_data()) == 2


@pytest.mark.parametrize("second", [
    {"labels": None, "logits": None},  # fewer fields
    {"logits": torch.zeros(2, 10)},  # more fields
    {"labels": None, "logits": torch.zeros(2, 10)},  # different fields
])
def test_mismatched_fields_raise(second):
    buffer = Buffer(4)
    buffer.add_data(torch.zeros(3, 2), labels=torch.tensor([1, 2, 3]))
    kwargs = {"labels": torch.tensor([5, 6])}
    kwargs.update(second)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    with pytest.raises(ValueError):
        buffer.add_data(torch.ones(2, 2), **kwargs)
    assert buffer.num_seen == 3
    assert buffer.get_all_data()[1].tolist() == [1, 2, 3]


# --- drawing -----------------------------------------------------------------------------


def test_get_data_distinct_and_clamped():
    buffer = Buffer(100)
    _stream(buffer, [30, 7])
    for size in (1, 10, 36, 37):
        ids = _check_consistent(buffer.get_data(size))
        assert len(ids) == size and len(set(ids)) == size
        assert set(ids) <= set(range(37))
    for size in (38, 50, 1000):
        ids = _check_consistent(buffer.get_data(size))
        assert sorted(ids) == list(range(37)), "a draw larger than the filled part returns each slot once"
    _stream(buffer, [500], start=37)
    ids = _check_consistent(buffer.get_data(1000))
    assert len(ids) == 100 and len(set(ids)) == 100


def test_get_data_draws_slots_uniformly():
    """3000 draws of 5 out of 20 filled slots: each slot is drawn with probability 5/20, so
    its count is Binomial(3000, 0.25) (mean 750, sd 23.7); allow 5 sd per slot."""
    buffer = Buffer(20)
    _stream(buffer, [20])
    torch.manual_seed(3)
    counts = torch.zeros(20, dtype=torch.long)
    for _ in range(3000):
        ids = buffer.get_data(5)[1]
        assert len(ids.unique()) == 5
        counts[ids] += 1
    sd = math.sqrt(3000 * 0.25 * 0.75)
    assert (counts - 750).abs().max() < 5 * sd, counts.tolist()


def test_transform_applies_to_examples_only_and_per_call():
    buffer = Buffer(10)
    _stream(buffer, [10])
    calls = []

    def shift(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x + 1000

    for _ in range(2):  # the stored examples are not changed by a draw
        examples, labels, logits, task_labels = buffer.get_data(4, transform=shift)
        ids = labels.tolist()
        assert torch.equal(examples, torch.tensor(ids, dtype=torch.float).view(-1, 1, 1, 1).expand(-1, 3, 4, 4) + 1000)
        assert torch.equal(logits, torch.tensor(ids, dtype=torch.float).view(-1, 1).expand(-1, 10) / 7)
        assert task_labels.tolist() == [i // 10 for i in ids]
    assert calls == [(4, 3, 4, 4), (4, 3, 4, 4)]
    examples, labels, *_ = buffer.get_all_data(transform=shift)
    assert torch.equal(examples[:, 0, 0, 0], labels.float() + 1000)
    assert calls[-1] == (10, 3, 4, 4)
    _check_consistent(buffer.get_all_data())

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)

    first = buffer.get_all_data(transform=noisy)[0]
    second = buffer.get_all_data(transform=noisy)[0]
    assert not torch.equal(first, second), "the transform must run afresh on every draw"


def test_get_draws_equal_repeated_get_data():
    """``get_draws(k, m)`` takes the same slots as k calls of ``get_data(m)`` (same random
    stream), returns each draw's fields consistent, and transforms all of them in one call."""
    buffer = Buffer(30)
    _stream(buffer, [45])
    torch.manual_seed(11)
    one_by_one = [buffer.get_data(7) for _ in range(4)]
    torch.manual_seed(11)
    calls = []

    def record(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return x

    together = buffer.get_draws(4, 7, transform=record)
    assert calls == [28]
    assert len(together) == 4
    for single, draw in zip(one_by_one, together, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(single, draw, strict=True))
        ids = _check_consistent(draw)
        assert len(set(ids)) == 7
    assert len({tuple(d[1].tolist()) for d in together}) == 4, "the draws are independent"
    small = Buffer(30)
    _stream(small, [5])
    assert [len(d[0]) for d in small.get_draws(3, 7)] == [5, 5, 5], "each draw is clamped to the filled part"


def test_get_all_data_in_slot_order():
    buffer = Buffer(8)
    _stream(buffer, [5])
    assert _check_consistent(buffer.get_all_data()) == [0, 1, 2, 3, 4]


def test_empty_buffer():
    buffer = Buffer(4)
    assert buffer.is_empty() and len(buffer) == 0
    with pytest.raises(ValueError):
        buffer.get_data(1)
    buffer.add_data(torch.zeros(1, 2), labels=torch.tensor([0]))
    assert not buffer.is_empty() and len(buffer) == 1


# --- state dict --------------------------------------------------------------------------


def _snapshot(buffer: Buffer) -> list[torch.Tensor]:
    return [t.clone() for t in buffer.get_all_data()]


def _equal(a: list[torch.Tensor], b: list[torch.Tensor] | tuple) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _slot_ids(fields: list[torch.Tensor] | tuple) -> list[int]:
    """Stream id held by each slot (read from the examples, which every field agrees with)."""
    return _ids_of(fields[0])


def test_state_dict_round_trip_through_a_checkpoint():
    torch.manual_seed(5)
    source = Buffer(20)
    _stream(source, [7, 30, 3])
    before = _snapshot(source)
    blob = io.BytesIO()
    torch.save(source.state_dict(), blob)
    blob.seek(0)
    restored = Buffer(20)
    restored.load_state_dict(torch.load(blob))
    assert restored.num_seen == 40 and len(restored) == 20
    assert _equal(before, restored.get_all_data())
    # the same random numbers then give the same insertions
    torch.manual_seed(99)
    _stream(source, [11, 50], start=40)
    torch.manual_seed(99)
    _stream(restored, [11, 50], start=40)
    assert restored.num_seen == source.num_seen == 101
    after = _snapshot(source)
    assert _equal(after, restored.get_all_data())
    assert not _equal(before, after), "61 more examples should have replaced some of 20 slots"


def test_loaded_buffer_does_not_share_storage_with_the_source():
    """Restoring a state must give an independent buffer (as nn.Module.load_state_dict copies)."""
    source = Buffer(4)
    _stream(source, [4])
    before = _snapshot(source)
    restored = Buffer(4)
    restored.load_state_dict(source.state_dict())
    _stream(restored, [20], start=4)
    assert source.num_seen == 4
    assert _slot_ids(source.get_all_data()) == _slot_ids(before) == [0, 1, 2, 3], \
        "inserting into the restored buffer changed the source"
    assert _equal(before, source.get_all_data())


def test_state_dict_is_a_snapshot():
    """A state taken before further insertions restores the contents at the time it was taken."""
    source = Buffer(4)
    _stream(source, [4])
    before = _snapshot(source)
    state = source.state_dict()
    _stream(source, [20], start=4)
    restored = Buffer(4)
    restored.load_state_dict(state)
    assert restored.num_seen == 4
    assert _slot_ids(restored.get_all_data()) == _slot_ids(before) == [0, 1, 2, 3], \
        "the state changed after it was taken: its num_seen and contents disagree"
    assert _equal(before, restored.get_all_data())


def test_load_state_dict_with_another_capacity_raises():
    source = Buffer(4)
    _stream(source, [2])
    with pytest.raises(ValueError):
        Buffer(5).load_state_dict(source.state_dict())
