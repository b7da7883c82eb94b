"""Loss terms of Hierarchical Correlations Replay (HCR).

One pure function per equation of docs/method.md (each function names its section).
Every function takes raw network outputs (logits) and L2-normalises rows itself where the
reference does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ICR_MODES = ("faithful", "gradient")
NORMALIZE_EPS = 1e-12  # F.normalize's default


def correlation_congruence(student: Tensor, teacher: Tensor, gamma: float = 2.0, order: int = 3) -> Tensor:
    """Correlation congruence with a Taylor-expanded Gaussian kernel
    (docs/method.md, "Correlation congruence").

    ``S = x x^T`` on row-normalised ``x``;
    ``K(S) = sum_{p=0..order} exp(-2 gamma) (2 gamma)^p / p! * S^p`` (element-wise powers);
    returns ``mean_{i,j} (K(S_s)[i, j] - K(S_t)[i, j])^2``.

    The constant p = 0 term cancels in the difference, so it is left out, and the polynomial
    is evaluated in Horner form; student and teacher go through one stacked computation, and
    the gradient is written out (``_CorrelationCongruence``). Per-op overhead dominates on
    draws of a few dozen rows, so fewer ops is what makes it fast.
    """
    if order < 1:
        raise ValueError(f"the kernel expansion needs order >= 1, got {order}")
    coefficients = [math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) for p in range(1, order + 1)]
    return _CorrelationCongruence.apply(student, teacher, coefficients)


def _power_series(sim: Tensor, coefficients: list[float]) -> Tensor:
    """``sum_{p >= 1} c_p sim^p`` (``coefficients`` = c_1, c_2, ...), element-wise, in Horner form."""
    value = sim * coefficients[-1]
    for c in reversed(coefficients[:-1]):
        value = (value + c) * sim
    return value


class _CorrelationCongruence(torch.autograd.Function):
    """``correlation_congruence`` with its gradient written out: fewer ops than autograd
    records for it, and on small draws the ops, not the arithmetic, are the cost.

    With ``x = s / r`` the normalised student rows (``r = max(||s||, eps)``), ``S = x x^T``,
    ``D = K(S) - K(S_t)`` and ``L = mean(D^2)``:
    ``dL/dS = 2 / n^2 D K'(S)``; ``dL/dx = 2 dL/dS x`` (``dL/dS`` is symmetric);
    ``dL/ds = (dL/dx - x (x . dL/dx)) / r``, the projection only where ``||s|| >= eps``."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor, coefficients: list[float]) -> Tensor:
        n = student.shape[0]
        stacked = torch.cat([student, teacher.to(student.dtype)])
        norm = stacked.norm(dim=1, keepdim=True)
        radius = norm.clamp_min(NORMALIZE_EPS)
        x = (stacked / radius).view(2, n, -1)
        sim = torch.bmm(x, x.transpose(1, 2))  # (2, n, n): S_s and S_t
        kernel = _power_series(sim, coefficients)
        diff = kernel[0] - kernel[1]
        ctx.save_for_backward(x[0], sim[0], diff, radius[:n], norm[:n])
        ctx.coefficients = coefficients
        return diff.square().mean()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        x, sim, diff, radius, norm = ctx.saved_tensors
        c = ctx.coefficients  # K'(S) = c_1 + sum_{p >= 2} p c_p S^(p-1)
        derivative = _power_series(sim, [p * c_p for p, c_p in enumerate(c[1:], 2)]) + c[0] if len(c) > 1 else c[0]
        grad_sim = (diff * derivative).mul_(grad * (4 / diff.numel()))
        grad_x = grad_sim.mm(x)  # 2 dL/dS x, the 2 folded into the factor above
        projection = (x * grad_x).sum(1, keepdim=True).mul_(norm >= NORMALIZE_EPS)
        return grad_x.sub_(x * projection).div_(radius), None, None


def _normalized_pair(student: Tensor, teacher: Tensor) -> Tensor:
    """Row-normalised student and teacher stacked as (2, n, d), in one normalisation: on draws
    of a few dozen rows the per-op overhead, not the arithmetic, is the cost."""
    stacked = torch.cat([student, teacher.to(student.dtype)])
    return F.normalize(stacked, dim=1).view(2, student.shape[0], -1)


def consecutive_correlation(student: Tensor, teacher: Tensor) -> Tensor:
    """Correlation of consecutive rows of the absolute logit gap (raw logits, order dependent)
    (docs/method.md, "Consecutive correlation").

    ``D = |s - t|``; returns ``mean_{i=0..n-2} sum_j D[i, j] * D[i+1, j]`` (0 when n < 2).
    """
    gap = (student - teacher).abs()
    if gap.shape[0] < 2:
        return gap.sum() * 0.0  # zero that stays attached to the graph
    return (gap[:-1] * gap[1:]).sum(dim=1).mean()


@torch.no_grad()
def semihard_triplets(
    embeddings: Tensor, labels: Tensor, margin: float = 0.2
) -> tuple[Tensor, Tensor, Tensor]:
    """Semihard triplet indices, identical to pytorch-metric-learning 2.x
    ``TripletMarginMiner(margin, type_of_triplets="semihard")`` with its default ``LpDistance``
    (docs/method.md, "Semihard triplet mining").

    ``e = normalize(embeddings)``, ``d(i, j) = ||e_i - e_j||`` (``torch.cdist``, as pml does);
    keeps every ``(a, p, n)`` with ``y_a == y_p``, ``a != p``, ``y_n != y_a`` and
    ``0 < d(a, n) - d(a, p) <= margin``, in lexicographic ``(a, p, n)`` order.
    Callers pass already-normalised rows; normalising again matches pml, which does the same.
    """
    e = F.normalize(embeddings, p=2, dim=1)
    dist = torch.cdist(e, e, p=2)
    positive = labels.unsqueeze(1) == labels.unsqueeze(0)
    # NaN where y_n == y_a: every comparison with it is false, so no separate label mask is needed.
    negative_dist = dist.masked_fill(positive, float("nan"))
    positive.fill_diagonal_(False)
    # (a, p) pairs first, in lexicographic order; then, per pair, the negatives n: this
    # touches (pairs x n) entries instead of n^3, and the order stays lexicographic in (a, p, n).
    anchor, pos = positive.nonzero().unbind(1)
    gap = negative_dist.index_select(0, anchor) - dist[anchor, pos].unsqueeze(1)  # d(a_k, n) - d(a_k, p_k)
    # 0 < gap <= margin as 0/1 floats, in place: on CPU, comparisons that keep the dtype run
    # several times faster than ones that write a new bool tensor. NaN compares false.
    within_margin = gap.clone().le_(margin)
    pair, neg = gap.gt_(0).mul_(within_margin).bool().nonzero().unbind(1)
    return anchor.index_select(0, pair), pos.index_select(0, pair), neg


def _triplet_distances(e: Tensor, triplets: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``(d_ap, d_an) = (||e_a - e_p||, ||e_a - e_n||)`` for the given triplet indices, on rows
    ``e`` of shape (n, d) or a stack (k, n, d) of k embeddings of the same n examples.

    Read from the matrix of all pairwise differences' norms: its size does not grow with the
    number of triplets (thousands on some draws), and the backward pass scatters one scalar per
    triplet instead of a row. ``cdist`` without its matrix-product shortcut computes exactly
    ``||e_i - e_j||``, in one kernel each way."""
    anchor, pos, neg = triplets
    n = e.shape[-2]
    dist = torch.cdist(e, e, compute_mode="donot_use_mm_for_euclid_dist").flatten(-2)  # [.., i * n + j]
    row = anchor * n
    return dist.index_select(-1, torch.cat([row + pos, row + neg])).chunk(2, dim=-1)


def triplet_softmax_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """Softmax triplet loss on semihard triplets of ``e = normalize(embeddings)``
    (docs/method.md, "Triplet softmax loss").

    ``mean -log(exp(-d_ap) / (exp(-d_an) + exp(-d_ap))) = mean softplus(d_ap - d_an)``;
    0 when no triplet is mined.
    """
    e = F.normalize(embeddings, dim=1)
    triplets = semihard_triplets(e, labels, margin)
    if triplets[0].numel() == 0:
        return e.sum() * 0.0  # zero that stays attached to the graph
    d_ap, d_an = _triplet_distances(e, triplets)
    return F.softplus(d_ap - d_an).mean()


def triplet_distribution_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    margin: float = 0.2,
    mode: str = "faithful",
) -> Tensor:
    """Instance-level correlation (ICR) term on semihard triplets mined on the student
    (docs/method.md, "Instance-level correlation (ICR)").

    With ``s = normalize(student)``, ``t = normalize(teacher)`` and, for each triplet,
    ``q = sigmoid((d_an - d_ap) / 4)``:

    - ``"faithful"``: the released code's value without its gamma weight,
      ``1000 * N * KLDiv(log [q_s; 1 - q_s] || [q_t; 1 - q_t], batchmean)`` on the (2N, 1)
      stacking, i.e. ``500 * sum_k KL_k``; detached, since the released code used ``.item()``.
    - ``"gradient"``: ``mean_k KL(Bernoulli(q_t,k) || Bernoulli(q_s,k))``, differentiable in
      the student.

    ``N`` is the number of triplets; 0 when there is none.
    """
    if mode not in ICR_MODES:
        raise ValueError(f"unknown ICR mode {mode!r}; expected one of {ICR_MODES}")
    if mode == "faithful":
        with torch.no_grad():
            u = _icr_logits(student_logits, teacher_logits, labels, margin)
            if u.numel() == 0:
                return u.new_zeros(())
            q = torch.sigmoid(u)  # rows: q_s, q_t
            stacked = torch.cat([q, 1 - q], dim=1).unsqueeze(2)  # the released (2N, 1) stacking
            return 1000 * F.kl_div(stacked[0].log(), stacked[1], reduction="batchmean") * u.shape[1]

    u = _icr_logits(student_logits, teacher_logits, labels, margin)
    if u.numel() == 0:
        return student_logits.sum() * 0.0  # zero that stays attached to the graph
    u_s, u_t = u
    q_t = torch.sigmoid(u_t)
    kl = q_t * (F.logsigmoid(u_t) - F.logsigmoid(u_s)) + (1 - q_t) * (F.logsigmoid(-u_t) - F.logsigmoid(-u_s))
    return kl.mean()


def _icr_logits(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, margin: float) -> Tensor:
    """``u = (d_an - d_ap) / 4`` (so ``q = sigmoid(u)``) on the semihard triplets mined on the
    normalised student: a (2, N) tensor, row 0 the student's, row 1 the teacher's."""
    st = _normalized_pair(student_logits, teacher_logits)
    triplets = semihard_triplets(st[0], labels, margin)
    if triplets[0].numel() == 0:
        return st.new_zeros(2, 0)
    d_ap, d_an = _triplet_distances(st, triplets)
    return (d_an - d_ap) / 4
