"""Tests of models/hcr_losses.py against independent (plain Python / brute-force) computations."""

import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import miners as pml_miners

from models.hcr_losses import (
    consecutive_correlation,
    correlation_congruence,
    semihard_triplets,
    triplet_distribution_kl,
    triplet_softmax_loss,
)

torch.set_num_threads(2)
MARGIN = 0.2


def _normalized_rows(x: torch.Tensor) -> list[list[float]]:
    rows = x.tolist()
    return [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in rows]


def _dist(u: list[float], v: list[float]) -> float:
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))


def _brute_force_semihard(x: torch.Tensor, labels: torch.Tensor, margin: float = MARGIN):
    """Triple loop over (a, p, n) on float64 Python numbers; also counts exact ties d_an == d_ap."""
    e = _normalized_rows(x)
    y = labels.tolist()
    triplets, ties = [], 0
    for a in range(len(y)):
        for p in range(len(y)):
            for n in range(len(y)):
                if a == p or y[a] != y[p] or y[n] == y[a]:
                    continue
                gap = _dist(e[a], e[n]) - _dist(e[a], e[p])
                ties += gap == 0
                if 0 < gap <= margin:
                    triplets.append((a, p, n))
    return triplets, ties


def _triplet_dists(x: torch.Tensor, triplets) -> list[tuple[float, float]]:
    e = _normalized_rows(x)
    return [(_dist(e[a], e[p]), _dist(e[a], e[n])) for a, p, n in triplets]


def _as_list(indices) -> list[tuple[int, int, int]]:
    return list(zip(*(i.tolist() for i in indices), strict=True))


def _clustered_batch(seed: int, n: int = 14, dim: int = 3, classes: int = 3, dtype=torch.float64):
    """Random embeddings with duplicated rows (exact ties), some duplicates across classes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=g)
    x[1] = x[0]  # duplicate, usually same or different class
    x[5] = x[3]
    labels[5] = (labels[3] + 1) % classes  # duplicate with a different label: exact ties d_an == d_ap
    x[8] = 2.5 * x[6]  # same direction, so identical after normalisation
    labels[8] = labels[6]
    return x, labels


def _kernel(sim: float, gamma: float, order: int) -> float:
    return sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * sim**p for p in range(order + 1))


# --------------------------------------------------------------------------- correlation congruence


@pytest.mark.parametrize("gamma,order", [(2.0, 3), (0.5, 5)])
def test_correlation_congruence_matches_double_loop(gamma, order):
    g = torch.Generator().manual_seed(0)
    s, t = (
        torch.randn(6, 5, generator=g, dtype=torch.float64),
        torch.randn(6, 5, generator=g, dtype=torch.float64),
    )
    es, et = _normalized_rows(s), _normalized_rows(t)
    total = 0.0
    for i in range(6):
        for j in range(6):
            ks = _kernel(sum(a * b for a, b in zip(es[i], es[j], strict=True)), gamma, order)
            kt = _kernel(sum(a * b for a, b in zip(et[i], et[j], strict=True)), gamma, order)
            total += (ks - kt) ** 2
    value = correlation_congruence(s, t, gamma=gamma, order=order)
    assert value.item() == pytest.approx(total / 36, rel=1e-12, abs=1e-15)


def test_correlation_congruence_hand_made_2x2():
    # student rows orthogonal: S_s = I; teacher rows identical (after scaling): S_t = all ones.
    # K(1) = e^-4 (1 + 4 + 8 + 32/3) = e^-4 * 71/3, K(0) = e^-4 (only the p = 0 term).
    # Diagonals agree; each off-diagonal differs by e^-4 * 68/3 -> mean = (e^-4 * 68/3)^2 * 2 / 4.
    student = torch.tensor([[3.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    expected = (math.exp(-4) * 68 / 3) ** 2 / 2
    assert correlation_congruence(student, teacher).item() == pytest.approx(expected, rel=1e-12)
    assert correlation_congruence(student, student).item() == 0.0


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_correlation_congruence_gradient_matches_finite_differences(order):
    """The hand-written backward against numerical derivatives of the forward."""
    g = torch.Generator().manual_seed(order)
    s = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: correlation_congruence(x, t, gamma=1.5, order=order), (s,))


def test_correlation_congruence_gradient_at_a_zero_row_matches_autograd_of_the_formula():
    """F.normalize clamps a zero row's norm to eps: the gradient must follow that clamp."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(6, 4, generator=g, dtype=torch.float64)
    s[2] = 0.0
    s.requires_grad_()
    t = torch.randn(6, 4, generator=g, dtype=torch.float64)

    def kernel(x):
        e = torch.nn.functional.normalize(x, dim=1)
        sim = e @ e.T
        return sum(math.exp(-4) * 4**p / math.factorial(p) * sim**p for p in range(4))

    expected = torch.autograd.grad(((kernel(s) - kernel(t)) ** 2).mean(), s)[0]
    actual = torch.autograd.grad(correlation_congruence(s, t), s)[0]
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10 * expected.abs().max().item())


def test_correlation_congruence_needs_a_kernel_term():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="order"):
        correlation_congruence(x, x, order=0)


# --------------------------------------------------------------------------- consecutive correlation


def test_consecutive_correlation_matches_loop_and_depends_on_order():
    g = torch.Generator().manual_seed(1)
    s, t = (
        torch.randn(7, 4, generator=g, dtype=torch.float64),
        torch.randn(7, 4, generator=g, dtype=torch.float64),
    )
    d = (s - t).abs().tolist()
    expected = sum(sum(d[i][j] * d[i + 1][j] for j in range(4)) for i in range(6)) / 6
    assert consecutive_correlation(s, t).item() == pytest.approx(expected, rel=1e-12)

    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    assert consecutive_correlation(s[perm], t[perm]).item() != pytest.approx(expected, rel=1e-6)


def test_consecutive_correlation_single_row_is_zero():
    s = torch.randn(1, 4, requires_grad=True)
    value = consecutive_correlation(s, torch.randn(1, 4))
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(s.grad).all()


# --------------------------------------------------------------------------- semihard mining


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semihard_triplets_match_brute_force_with_ties(seed):
    x, labels = _clustered_batch(seed)
    expected, ties = _brute_force_semihard(x, labels)
    assert ties > 0, "the batch must contain exact ties d_an == d_ap"
    assert expected, "the batch must contain semihard triplets"
    indices = semihard_triplets(x, labels, MARGIN)
    assert all(i.dtype == torch.long for i in indices)
    assert _as_list(indices) == expected


@pytest.mark.parametrize("n", [12, 40])  # torch.cdist switches to its matmul path above 25 rows
def test_semihard_triplets_match_pytorch_metric_learning(n):
    miner = pml_miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard")
    for seed in range(3):
        x, labels = _clustered_batch(seed, n=n, dim=4, classes=4, dtype=torch.float32)
        ours, theirs = semihard_triplets(x, labels, MARGIN), miner(x, labels)
        assert len(theirs[0]) > 0
        assert [i.tolist() for i in ours] == [i.tolist() for i in theirs]
        assert all(i.dtype == j.dtype for i, j in zip(ours, theirs, strict=True))


@pytest.mark.parametrize("n", [12, 40])
def test_semihard_triplets_margin_boundary_matches_pytorch_metric_learning(n):
    """A margin equal to a triplet's float32 gap, as pml computes it, keeps that triplet (exact ties)."""
    x, labels = _clustered_batch(4, n=n, dim=4, classes=4, dtype=torch.float32)
    anchor, pos, neg = pml_miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard")(x, labels)
    dist = pml_distances.LpDistance()(x)
    for k in range(0, len(anchor), max(1, len(anchor) // 10)):
        boundary = float(dist[anchor[k], neg[k]] - dist[anchor[k], pos[k]])
        theirs = pml_miners.TripletMarginMiner(margin=boundary, type_of_triplets="semihard")(x, labels)
        ours = semihard_triplets(x, labels, boundary)
        assert (anchor[k].item(), pos[k].item(), neg[k].item()) in _as_list(ours)
        assert [i.tolist() for i in ours] == [i.tolist() for i in theirs]


def test_semihard_triplets_empty_and_no_grad():
    x = torch.randn(5, 3, requires_grad=True)
    indices = semihard_triplets(x, torch.zeros(5, dtype=torch.long))
    assert all(i.dtype == torch.long and i.numel() == 0 for i in indices)
    x2, labels = _clustered_batch(0)
    indices = semihard_triplets(x2.requires_grad_(), labels)
    assert not any(i.requires_grad for i in indices)


# --------------------------------------------------------------------------- triplet losses


@pytest.mark.parametrize("seed", [0, 3])
def test_triplet_softmax_loss_matches_loop(seed):
    x, labels = _clustered_batch(seed)
    triplets, _ = _brute_force_semihard(x, labels)
    per_triplet = [
        -math.log(math.exp(-dap) / (math.exp(-dan) + math.exp(-dap)))
        for dap, dan in _triplet_dists(x, triplets)
    ]
    x = x.clone().requires_grad_()
    value = triplet_softmax_loss(x, labels)
    assert value.item() == pytest.approx(sum(per_triplet) / len(per_triplet), rel=1e-12)
    value.backward()  # duplicated rows give d_ap == 0: the gradient must stay finite
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def _icr_case(seed: int):
    x, labels = _clustered_batch(seed)
    g = torch.Generator().manual_seed(100 + seed)
    teacher = x + 0.3 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    triplets, _ = _brute_force_semihard(x, labels)
    return x, teacher, labels, triplets


def _q(dists) -> list[float]:
    return [1 / (1 + math.exp(-(dan - dap) / 4)) for dap, dan in dists]


@pytest.mark.parametrize("seed", [0, 2])
def test_triplet_distribution_kl_faithful_matches_kldivloss(seed):
    student, teacher, labels, triplets = _icr_case(seed)
    q_s = torch.tensor(_q(_triplet_dists(student, triplets)), dtype=torch.float64)
    q_t = torch.tensor(_q(_triplet_dists(teacher, triplets)), dtype=torch.float64)
    stacked_s = torch.cat([q_s, 1 - q_s]).unsqueeze(1)
    stacked_t = torch.cat([q_t, 1 - q_t]).unsqueeze(1)
    n = len(triplets)
    expected = 1000 * torch.nn.KLDivLoss(reduction="batchmean")(torch.log(stacked_s), stacked_t).item() * n

    student = student.clone().requires_grad_()
    value = triplet_distribution_kl(student, teacher, labels, mode="faithful")
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert not value.requires_grad
    assert triplet_distribution_kl(student, teacher, labels).item() == value.item()  # faithful is the default


@pytest.mark.parametrize("seed", [0, 2])
def test_triplet_distribution_kl_gradient_matches_bernoulli_loop(seed):
    student, teacher, labels, triplets = _icr_case(seed)
    pairs = zip(_q(_triplet_dists(student, triplets)), _q(_triplet_dists(teacher, triplets)), strict=True)
    kls = [qt * math.log(qt / qs) + (1 - qt) * math.log((1 - qt) / (1 - qs)) for qs, qt in pairs]
    expected = sum(kls) / len(kls)

    student = student.clone().requires_grad_()
    value = triplet_distribution_kl(student, teacher, labels, mode="gradient")
    assert value.item() == pytest.approx(expected, rel=1e-10)
    value.backward()
    assert torch.isfinite(student.grad).all() and student.grad.abs().sum() > 0

    faithful = triplet_distribution_kl(student, teacher, labels, mode="faithful")
    assert faithful.item() == pytest.approx(500 * len(triplets) * value.item(), rel=1e-10)


def test_unknown_icr_mode_raises():
    x, labels = _clustered_batch(0)
    with pytest.raises(ValueError, match="mode"):
        triplet_distribution_kl(x, x, labels, mode="exact")


def _no_triplet_batches():
    g = torch.Generator().manual_seed(7)
    single_class = (torch.randn(6, 4, generator=g), torch.zeros(6, dtype=torch.long))
    # three classes on orthogonal axes: d_ap ~ 0, d_an ~ sqrt(2), so d_an - d_ap > margin always
    far_apart = torch.eye(3).repeat_interleave(3, dim=0) + 1e-3 * torch.randn(9, 3, generator=g)
    return [single_class, (far_apart, torch.arange(3).repeat_interleave(3))]


@pytest.mark.parametrize("batch", _no_triplet_batches(), ids=["single_class", "far_apart"])
def test_no_triplet_gives_finite_zero_and_finite_gradient(batch):
    x, labels = batch
    assert semihard_triplets(x, labels)[0].numel() == 0
    x = x.clone().requires_grad_()
    teacher = x.detach() + 0.1
    terms = [
        triplet_softmax_loss(x, labels),
        triplet_distribution_kl(x, teacher, labels, mode="faithful"),
        triplet_distribution_kl(x, teacher, labels, mode="gradient"),
    ]
    for term in terms:
        assert term.ndim == 0 and term.item() == 0.0
    loss = x.pow(2).sum() + sum(terms)
    loss.backward()
    assert torch.isfinite(x.grad).all()
