"""Written-out reference of one training step of every method, independent of the model classes
and of models/hcr_losses.py: the buffer draws (the same generator calls as ``Buffer.get_draws``),
the forward passes, each loss term, the plain SGD update and the reservoir insertion.

``variant`` computes a deliberately wrong step (two draws merged, a term dropped or reweighted,
no update, ...): the tests check that the model's step is far from every such variant, so that
they are known to fail on that kind of wrong rewrite.

Also the builders the tests share: main.py's arguments, a dataset, a model, main.main in-process."""
import copy
import math
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import main
from datasets import get_all_datasets
from main import parse_args
from models import get_all_models

CPU = torch.device("cpu")
DRAWS = {"sgd": 0, "er": 1, "er_ace": 1, "der": 1, "derpp": 2, "hcr": 4}
# The fields each method stores, in the buffer's order (examples, labels, logits).
STORED = {"er": ("examples", "labels"), "er_ace": ("examples", "labels"), "der": ("examples", "logits"),
          "derpp": ("examples", "labels", "logits"), "hcr": ("examples", "labels", "logits")}
MARGIN = 0.2  # semihard triplet margin
KERNEL_GAMMA, KERNEL_ORDER = 2.0, 3  # Taylor-expanded Gaussian kernel of the correlation congruence


def make_args(model: str, dataset: str = "seq-fmnist", **hyper) -> Namespace:
    """A complete Namespace, as main.py parses it, with the given hyper-parameters (True: a switch
    given, False: left out)."""
    argv = ["--model", model, "--dataset", dataset, "--device", "cpu", "--offline", "--data_path", "unused"]
    for name, value in hyper.items():
        if isinstance(value, bool):
            argv += [f"--{name}"] if value else []
        else:
            argv += [f"--{name}", str(value)]
    return parse_args(argv, get_all_models(), get_all_datasets())


def make_dataset(name: str, data_path: str | Path = "unused", batch_size: int = 8, **options):
    """The dataset ``name`` as main.py builds it for an sgd run reading ``data_path`` (no loader workers)."""
    args = make_args("sgd", name, lr=0.1, batch_size=batch_size, n_epochs=1, **options)
    args.data_path, args.num_workers = str(data_path), 0
    return get_all_datasets()[name](args, CPU)


def run_main(capsys, argv: list[str]) -> tuple[int, list[str], str]:
    """main.main in-process: (exit status, stderr lines, stdout); argparse's refusals included."""
    try:
        code = main.main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err.splitlines(), captured.out


def make_model(name: str, dataset: str = "seq-fmnist", **hyper):
    args = make_args(name, dataset, **hyper)
    data = get_all_datasets()[dataset](args, CPU)
    model = get_all_models()[name](data.get_backbone(), args, data, CPU)
    model.net.train()
    return model


@dataclass
class Step:
    loss: torch.Tensor
    state: dict[str, torch.Tensor]  # the network's state_dict after the step (weights and BN statistics)
    buffer: tuple[torch.Tensor, ...]  # every filled slot after the step, fields in the buffer's order
    info: dict


# --- HCR loss terms, written out from the specification ---------------------------------------------

def kernel(logits: torch.Tensor, gamma: float = KERNEL_GAMMA, order: int = KERNEL_ORDER) -> torch.Tensor:
    """K(S) = sum_{p=0..order} exp(-2 gamma) (2 gamma)^p / p! S^p (element-wise), S = x x^T of L2-normalised rows."""
    x = logits / logits.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = x @ x.T
    return sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * sim ** p for p in range(order + 1))


def correlation_congruence(student: torch.Tensor, teacher: torch.Tensor, gamma: float = KERNEL_GAMMA,
                           order: int = KERNEL_ORDER) -> torch.Tensor:
    return ((kernel(student, gamma, order) - kernel(teacher, gamma, order)) ** 2).mean()


def consecutive_correlation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    gap = (student - teacher).abs()
    n = gap.shape[0]
    return sum((gap[i] * gap[i + 1]).sum() for i in range(n - 1)) / (n - 1)


def unit(rows: torch.Tensor) -> torch.Tensor:
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)


def semihard(e: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int, int]]:
    """Every (a, p, n) with y_a == y_p, a != p, y_n != y_a and 0 < d(a, n) - d(a, p) <= margin."""
    with torch.no_grad():
        d = (e[:, None, :] - e[None, :, :]).pow(2).sum(-1).sqrt()
    y = labels.tolist()
    n = len(y)
    return [(a, p, m) for a in range(n) for p in range(n) if p != a and y[p] == y[a]
            for m in range(n) if y[m] != y[a] and 0 < float(d[a, m] - d[a, p]) <= MARGIN]


def triplet_gaps(e: torch.Tensor, triplets: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    a, p, m = (torch.tensor(idx) for idx in zip(*triplets, strict=True))
    return (e[a] - e[p]).norm(dim=1), (e[a] - e[m]).norm(dim=1)


def triplet_softmax(outputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """mean softplus(d_ap - d_an) over the semihard triplets of normalize(outputs); 0 if none."""
    e = unit(outputs)
    triplets = semihard(e, labels)
    if not triplets:
        return outputs.sum() * 0, 0
    d_ap, d_an = triplet_gaps(e, triplets)
    return F.softplus(d_ap - d_an).mean(), len(triplets)


def icr(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, mode: str,
        detach: bool = True, reverse: bool = False) -> tuple[torch.Tensor, int]:
    """Triplets mined on the normalised student; q = sigmoid((d_an - d_ap) / 4) for student and teacher.
    faithful: 1000 * N * KLDiv(log [q_s; 1 - q_s] || [q_t; 1 - q_t], batchmean over 2N), a constant;
    gradient: mean over triplets of KL(Bernoulli(q_t) || Bernoulli(q_s))."""
    s, t = unit(student), unit(teacher)
    triplets = semihard(s, labels)
    if not triplets:
        return student.sum() * 0, 0
    d_ap, d_an = triplet_gaps(s, triplets)
    q_s = torch.sigmoid((d_an - d_ap) / 4)
    d_ap, d_an = triplet_gaps(t, triplets)
    q_t = torch.sigmoid((d_an - d_ap) / 4)
    if reverse:
        q_s, q_t = q_t, q_s
    kl = q_t * (q_t.log() - q_s.log()) + (1 - q_t) * ((1 - q_t).log() - (1 - q_s).log())
    n = len(triplets)
    if mode == "faithful":
        value = 1000 * n * kl.sum() / (2 * n)
        return (value.detach() if detach else value), n
    return kl.mean(), n


# --- the step ------------------------------------------------------------------------------------------

def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def reservoir(contents: list[torch.Tensor], num_seen: int, capacity: int, new: list[torch.Tensor]) -> list:
    """Insert the batch one example at a time: the j-th stream example goes to slot j while j < capacity,
    else to r = floor(u (j + 1)) (u uniform, drawn in float64 for the whole batch) when r < capacity."""
    size = new[0].shape[0]
    u = torch.rand(size, dtype=torch.float64)
    storage = [(c if c is not None else n[:0]).clone() for c, n in zip(contents, new, strict=True)]
    for i in range(size):
        j = num_seen + i
        if j < capacity:
            storage = [torch.cat([s, n[i:i + 1]]) for s, n in zip(storage, new, strict=True)]
            continue
        r = int(u[i] * (j + 1))
        if r < capacity:
            for s, n in zip(storage, new, strict=True):
                s[r] = n[i]
    return storage


def kept_classes(labels: torch.Tensor, task: int, seen_before: tuple[int, ...], per_task: int,
                 n_classes: int) -> list[int]:
    """ER-ACE's stream classes: those in the batch, and every class from the highest one seen so far
    (the earlier tasks' classes, the labels of this task's earlier batches, this batch) on."""
    present = set(labels.tolist())
    highest = max([task * per_task - 1, *seen_before, *present])
    return sorted(present | set(range(highest, n_classes)))


def reference_step(method: str, model, x: torch.Tensor, y: torch.Tensor, raw: torch.Tensor,
                   variant: str | None = None, task: int = 0, seen_before: tuple[int, ...] = ()) -> Step:
    """One step of ``method`` computed from a copy of ``model``'s network and buffer contents.

    Variants (wrong steps): one_draw (all draws share the first draw's slots), swap_draws (draws used
    in reverse order), stream_only (buffer ignored), drop:<term>, double:<term>, no_update,
    store_augmented (the buffer gets the augmented inputs), logits_after (stored logits computed after
    the update), no_draw_transform (draws not augmented), separate_ce (ER: stream and buffer
    cross-entropies averaged separately and added), fuse (one forward pass despite BatchNorm),
    no_mask (ER-ACE: the stream's ordinary cross-entropy), mask_replay (ER-ACE: the replayed batch's
    cross-entropy masked like the stream's),
    kernel_gamma:<g> and kernel_order:<p> (another kernel in the correlation congruence), icr_attached
    (the faithful ICR value keeps its gradient), icr_reversed_kl (KL(student || teacher) instead).
    ER-ACE's stream classes depend on where the stream is: ``task`` and the labels of this task's
    earlier batches (``seen_before``)."""
    args, dataset = model.args, model.dataset
    net = copy.deepcopy(model.net)
    buffer = model.buffer if method != "sgd" else None
    filled = len(buffer) if buffer is not None else 0
    contents = list(buffer.get_all_data()) if filled else None
    info: dict = {}

    # draws: one randperm per draw, then the train transform on all gathered examples together
    draws = []
    if filled and variant != "stream_only":
        n = min(args.minibatch_size, filled)
        slots = [torch.randperm(filled)[:n] for _ in range(DRAWS[method])]
        if variant == "one_draw":
            slots = [slots[0]] * len(slots)
        if variant == "swap_draws":
            slots = slots[::-1]
        fields = [c.index_select(0, torch.cat(slots)) for c in contents]
        if variant != "no_draw_transform":
            fields[0] = dataset.train_transform(fields[0])
        draws = [dict(zip(STORED[method], parts, strict=True)) for parts in zip(*(f.split(n) for f in fields),
                                                                                 strict=True)]

    # forward passes: one fused pass without BatchNorm, else one per batch (stream first, then draws in order)
    if method == "er":
        batches = [torch.cat([x] + [d["examples"] for d in draws])]
    else:
        batches = [x] + [d["examples"] for d in draws]
    if has_batchnorm(net) and variant != "fuse":
        outs = [net(b) for b in batches]
    else:
        outs = list(net(torch.cat(batches)).split([len(b) for b in batches]))

    terms: dict[str, torch.Tensor] = {}
    if method == "er":
        target = torch.cat([y] + [d["labels"] for d in draws])
        if variant == "separate_ce" and draws:
            terms["ce"] = F.cross_entropy(outs[0][:len(y)], y) + F.cross_entropy(outs[0][len(y):], target[len(y):])
        else:
            terms["ce"] = F.cross_entropy(outs[0], target)
        stream_out = outs[0][:len(y)]
    elif method == "er_ace":
        stream_out = outs[0]
        keep = kept_classes(y, task, seen_before, dataset.N_CLASSES_PER_TASK, stream_out.shape[1])
        if variant == "no_mask":
            keep = list(range(stream_out.shape[1]))
        # the softmax over the kept columns only, the labels renumbered among them
        terms["ce"] = F.cross_entropy(stream_out[:, keep], torch.tensor([keep.index(c) for c in y.tolist()]))
        if draws:
            replayed = outs[1]
            if variant == "mask_replay":
                dropped = [c for c in range(replayed.shape[1]) if c not in keep]
                replayed = replayed.index_fill(1, torch.tensor(dropped, dtype=torch.long), -1e9)
            terms["replay"] = F.cross_entropy(replayed, draws[0]["labels"])
    else:
        stream_out = outs[0]
        terms["ce"] = F.cross_entropy(stream_out, y)
    if draws and method == "der":
        terms["alpha"] = args.alpha * F.mse_loss(outs[1], draws[0]["logits"])
    if draws and method == "derpp":
        terms["alpha"] = args.alpha * F.mse_loss(outs[1], draws[0]["logits"])
        terms["beta"] = args.beta * F.cross_entropy(outs[2], draws[1]["labels"])
    if draws and method == "hcr":
        o1, o2, o3, o4 = outs[1:]
        z1, z4 = draws[0]["logits"], draws[3]["logits"]
        gamma = float(variant[13:]) if variant and variant.startswith("kernel_gamma:") else KERNEL_GAMMA
        order = int(variant[13:]) if variant and variant.startswith("kernel_order:") else KERNEL_ORDER
        terms["alpha"] = args.alpha * (correlation_congruence(o1, z1, gamma, order) + consecutive_correlation(o1, z1))
        terms["beta"] = args.beta * F.cross_entropy(o2, draws[1]["labels"])
        tsl, info["triplets_sigmoid"] = triplet_softmax(o3, draws[2]["labels"])
        terms["sigmoid"] = args.sigmoid * tsl
        value, info["triplets_gamma"] = icr(o4, z4, draws[3]["labels"], args.icr_mode,
                                            variant != "icr_attached", variant == "icr_reversed_kl")
        terms["gamma"] = args.gamma * value
        info["icr"] = value.detach()
    if variant and variant.startswith("drop:"):
        del terms[variant[5:]]
    if variant and variant.startswith("double:"):
        terms[variant[7:]] = 2 * terms[variant[7:]]
    loss = sum(terms.values())
    # what the update follows: all but the faithful ICR value, a constant (the released code's .item())
    faithful_icr = terms.get("gamma", 0.0) if method == "hcr" and args.icr_mode == "faithful" else 0.0
    info["trained"] = (loss - faithful_icr).detach()

    params = [p for p in net.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params)
    if variant != "no_update":
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(args.lr * g)

    stored: tuple = ()
    if buffer is not None:
        logits = stream_out.detach()
        if variant == "logits_after":
            with torch.no_grad():
                logits = net(x)
        new = {"examples": x if variant == "store_augmented" else raw, "labels": y, "logits": logits}
        stored = tuple(reservoir(contents or [None] * len(STORED[method]), buffer.num_seen, buffer.capacity,
                                 [new[k] for k in STORED[method]]))
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return Step(loss.detach(), state, stored, info)
