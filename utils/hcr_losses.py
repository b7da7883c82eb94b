"""Loss terms of Hierarchical Correlations Replay (HCR).

One pure function per equation of the specification (HCR_REFERENCE.md, sections 3 and 4).
Every function takes raw network outputs (logits) and L2-normalises rows itself where the
reference does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ICR_MODES = ("faithful", "gradient")


def correlation_congruence(student: Tensor, teacher: Tensor, gamma: float = 2.0, order: int = 3) -> Tensor:
    """Correlation congruence with a Taylor-expanded Gaussian kernel.

    ``S = x x^T`` on row-normalised ``x``;
    ``K(S) = sum_{p=0..order} exp(-2 gamma) (2 gamma)^p / p! * S^p`` (element-wise powers);
    returns ``mean_{i,j} (K(S_s)[i, j] - K(S_t)[i, j])^2``.
    """

    def kernel(x: Tensor) -> Tensor:
        x = F.normalize(x, dim=1)
        sim = x @ x.T
        return sum(
            math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * sim**p for p in range(order + 1)
        )

    return (kernel(student) - kernel(teacher)).pow(2).mean()


def consecutive_correlation(student: Tensor, teacher: Tensor) -> Tensor:
    """Correlation of consecutive rows of the absolute logit gap (raw logits, order dependent).

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
    ``TripletMarginMiner(margin, type_of_triplets="semihard")`` with its default ``LpDistance``.

    ``e = normalize(embeddings)``, ``d(i, j) = ||e_i - e_j||`` (``torch.cdist``, as pml does);
    keeps every ``(a, p, n)`` with ``y_a == y_p``, ``a != p``, ``y_n != y_a`` and
    ``0 < d(a, n) - d(a, p) <= margin``, in lexicographic ``(a, p, n)`` order.
    Callers pass already-normalised rows; normalising again matches pml, which does the same.
    """
    e = F.normalize(embeddings, p=2, dim=1)
    dist = torch.cdist(e, e, p=2)
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    # (a, p) pairs first, in lexicographic order; then, per pair, the negatives n: this
    # touches (pairs x n) entries instead of n^3, and the order stays lexicographic in (a, p, n).
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    anchor, pos = torch.nonzero(positive, as_tuple=True)
    gap = dist[anchor] - dist[anchor, pos].unsqueeze(1)  # gap[k, n] = d(a_k, n) - d(a_k, p_k)
    pair, neg = torch.nonzero(~same[anchor] & (gap > 0) & (gap <= margin), as_tuple=True)
    return anchor[pair], pos[pair], neg


def _triplet_distances(e: Tensor, triplets: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``(d_ap, d_an) = (||e_a - e_p||, ||e_a - e_n||)`` for the given triplet indices."""
    anchor, pos, neg = triplets
    return (e[anchor] - e[pos]).norm(dim=1), (e[anchor] - e[neg]).norm(dim=1)


def triplet_softmax_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.2) -> Tensor:
    """Softmax triplet loss on semihard triplets of ``e = normalize(embeddings)``.

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
    """Instance-level correlation (ICR) term on semihard triplets mined on the student.

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
    s = F.normalize(student_logits, dim=1)
    t = F.normalize(teacher_logits, dim=1)
    triplets = semihard_triplets(s, labels, margin)
    n_triplets = triplets[0].numel()
    if n_triplets == 0:
        return s.new_zeros(()) if mode == "faithful" else s.sum() * 0.0
    d_ap_s, d_an_s = _triplet_distances(s, triplets)
    d_ap_t, d_an_t = _triplet_distances(t, triplets)
    u_s, u_t = (d_an_s - d_ap_s) / 4, (d_an_t - d_ap_t) / 4  # q = sigmoid(u)

    if mode == "faithful":
        with torch.no_grad():
            q_s, q_t = torch.sigmoid(u_s), torch.sigmoid(u_t)
            stacked_s = torch.cat([q_s, 1 - q_s]).unsqueeze(1)
            stacked_t = torch.cat([q_t, 1 - q_t]).unsqueeze(1)
            return 1000 * F.kl_div(stacked_s.log(), stacked_t, reduction="batchmean") * n_triplets

    q_t = torch.sigmoid(u_t)
    kl = q_t * (F.logsigmoid(u_t) - F.logsigmoid(u_s)) + (1 - q_t) * (F.logsigmoid(-u_t) - F.logsigmoid(-u_s))
    return kl.mean()
