"""Every model's training step: it changes the weights, stores pre-update logits, and HCR
composes the reference terms with the right weights on the right draws."""
import argparse
import copy

import pytest
import torch
import torch.nn.functional as F

from models.continual_model import PlainSGD
from models.hcr_losses import (
    consecutive_correlation,
    correlation_congruence,
    triplet_distribution_kl,
    triplet_softmax_loss,
)
from utils.experiment import build

HYPER = {"lr": 0.01, "batch_size": 8, "n_epochs": 1, "buffer_size": 50, "minibatch_size": 12,
         "alpha": 0.05, "beta": 0.7, "gamma": 0.5, "sigmoid": 0.9, "icr_mode": "faithful", "fuse_forward": False}


@pytest.fixture(autouse=True)
def deterministic():
    """As main.py does on CPU: repeated-index gathers then backpropagate in a fixed order."""
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def tiny_data(per_class: int = 4) -> tuple[torch.Tensor, ...]:
    """In-memory seq-fmnist-shaped data (``ContinualDataset.load``'s layout): no files needed."""
    labels = torch.arange(10 * per_class) % 10
    return torch.zeros(len(labels), 1, 28, 28, dtype=torch.uint8), labels, torch.zeros(10, 1, 28, 28,
                                                                                         dtype=torch.uint8), labels[:10]


def make_model(name: str, **overrides) -> torch.nn.Module:
    args = argparse.Namespace(model=name, dataset="seq-fmnist", data_path="unused", validation=False, device="cpu",
                              seed=None, debug_mode=False, loader="tensor", num_workers=0, offline=True,
                              **{**HYPER, **overrides})
    return build(args, tiny_data()).model


def batch(n: int = 8, classes: tuple[int, ...] = (0, 1, 2, 3), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([classes[i % len(classes)] for i in range(n)])
    # a bright row per class plus noise, so that classes are told apart and triplets exist
    raw = 0.5 * torch.rand(n, 1, 28, 28, generator=g)
    raw[torch.arange(n), 0, 2 * labels] += 0.5
    return raw, labels, raw


def fill(model, steps: int = 4) -> None:
    for s in range(steps):
        model.observe(*batch(seed=100 + s))


@pytest.mark.parametrize("name", ["sgd", "er", "der", "derpp", "hcr"])
def test_observe_changes_weights_and_stores_pre_update_logits(name):
    torch.manual_seed(0)
    model = make_model(name)
    if name != "sgd":
        fill(model)
    before = copy.deepcopy(model.net)
    x, y, raw = batch(seed=7)
    loss = model.observe(x, y, raw)
    assert torch.isfinite(torch.stack(loss)).all()
    changed = [not torch.equal(a, b) for a, b in zip(before.parameters(), model.net.parameters(), strict=True)]
    assert all(changed)
    if name in ("der", "derpp", "hcr"):
        # the newest example always lands in slot `seen - 1` while the buffer is not full
        stored = model.buffer.get_all_data()[-1]
        torch.testing.assert_close(stored[-8:], before(x).detach())


@pytest.mark.parametrize("name", ["er", "derpp", "hcr"])
def test_buffer_stores_unaugmented_inputs_and_labels(name):
    torch.manual_seed(0)
    model = make_model(name)
    x, y, raw = batch(seed=3)
    model.observe(x + 5.0, y, raw)  # the "augmented" batch differs from what must be stored
    examples, labels = model.buffer.get_all_data()[:2]
    torch.testing.assert_close(examples, raw)
    torch.testing.assert_close(labels, y)


def hcr_reference_step(model, x, y, icr_weight_mode: str):
    """The update the reference prescribes, written out from docs/method.md, "The training step"."""
    args, net = model.args, copy.deepcopy(model.net)
    buffer = copy.deepcopy(model.buffer)
    draws = [buffer.get_data(args.minibatch_size) for _ in range(4)]
    loss = F.cross_entropy(net(x), y)
    (x1, _, z1), (x2, y2, _), (x3, y3, _), (x4, y4, z4) = draws
    o1 = net(x1)
    loss = loss + args.alpha * (correlation_congruence(o1, z1) + consecutive_correlation(o1, z1))
    loss = loss + args.beta * F.cross_entropy(net(x2), y2)
    loss = loss + args.sigmoid * triplet_softmax_loss(net(x3), y3)
    icr = triplet_distribution_kl(net(x4), z4, y4, mode=icr_weight_mode)
    loss = loss + args.gamma * icr
    grads = torch.autograd.grad(loss, list(net.parameters()))
    with torch.no_grad():
        updated = [p - args.lr * g for p, g in zip(net.parameters(), grads, strict=True)]
    return loss.detach(), updated, icr


@pytest.mark.parametrize("mode", ["faithful", "gradient"])
def test_hcr_step_matches_reference_composition(mode):
    torch.manual_seed(1)
    model = make_model("hcr", icr_mode=mode, minibatch_size=40)
    fill(model, steps=6)
    x, y, raw = batch(seed=11)
    state = torch.get_rng_state()
    expected_loss, expected_params, icr = hcr_reference_step(model, x, y, mode)
    torch.set_rng_state(state)
    loss = model.observe(x, y, raw)
    torch.testing.assert_close(loss.released, expected_loss)
    for p, q in zip(model.net.parameters(), expected_params, strict=True):
        torch.testing.assert_close(p, q)
    assert icr != 0  # the draw did contain semihard triplets, so the ICR term was exercised


def params_after_step(gamma: float, mode: str):
    torch.manual_seed(2)
    model = make_model("hcr", gamma=gamma, icr_mode=mode, minibatch_size=40)
    fill(model, steps=6)
    loss = model.observe(*batch(seed=5))
    return loss, [p.detach().clone() for p in model.net.parameters()]


def test_faithful_icr_changes_reported_loss_but_not_the_update():
    """gamma changes only the released code's reported value: the update, and the loss it follows
    (what a run prints), stay the same."""
    loss_without, params_without = params_after_step(0.0, "faithful")
    loss_with, params_with = params_after_step(10.0, "faithful")
    assert loss_with.released > loss_without.released
    assert torch.equal(loss_with.trained, loss_without.trained) and torch.equal(loss_without.trained,
                                                                               loss_without.released)
    for a, b in zip(params_without, params_with, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gradient_icr_changes_the_update():
    _, params_without = params_after_step(0.0, "gradient")
    _, params_with = params_after_step(10.0, "gradient")
    assert any(not torch.equal(a, b) for a, b in zip(params_without, params_with, strict=True))


@pytest.mark.parametrize("mode", ["faithful", "gradient"])
def test_single_class_buffer_gives_finite_loss_and_weights(mode):
    torch.manual_seed(3)
    model = make_model("hcr", icr_mode=mode)
    for s in range(4):
        model.observe(*batch(classes=(4,), seed=s))  # every draw is single-class: no triplet
    loss = model.observe(*batch(classes=(4,), seed=9))
    assert torch.isfinite(torch.stack(loss)).all()
    assert all(torch.isfinite(p).all() for p in model.net.parameters())


def test_fused_forward_matches_separate_passes_without_batchnorm():
    torch.manual_seed(4)
    separate, fused = make_model("hcr"), make_model("hcr", fuse_forward=True)
    fill(separate)
    fused.net.load_state_dict(separate.net.state_dict())
    fused.buffer = copy.deepcopy(separate.buffer)
    x, y, raw = batch(seed=21)
    state = torch.get_rng_state()
    loss_separate = separate.observe(x, y, raw)
    torch.set_rng_state(state)
    loss_fused = fused.observe(x, y, raw)
    torch.testing.assert_close(loss_fused, loss_separate, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flag,backbone,expected", [
    (None, "mlp", True), (None, "resnet18", False),  # default: fuse only without BatchNorm
    (True, "resnet18", True), (False, "mlp", False),  # --fuse_forward / --no-fuse_forward
])
def test_fuse_forward_default_depends_on_batchnorm(flag, backbone, expected):
    from backbone.resnet18 import ResNet18

    model = make_model("hcr", fuse_forward=flag)
    if backbone == "resnet18":
        model.set_network(ResNet18(10))
    assert model.fuse_forward is expected
    if backbone == "resnet18":
        return  # the fmnist batches below do not fit ResNet-18
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    fill(model, steps=1)
    model.observe(*batch(seed=22))
    assert len(calls) == 1 + (1 if expected else 5)  # first step: empty buffer, stream only


@pytest.mark.slow
def test_speed_flags_keep_the_network_function():
    from backbone.resnet18 import ResNet18
    from models.continual_model import FastForward

    torch.manual_seed(5)
    net = ResNet18(10).eval()
    x = torch.rand(4, 3, 32, 32)
    expected = net(x)
    channels_last = FastForward(copy.deepcopy(net), channels_last=True, amp=False, device=torch.device("cpu"))
    torch.testing.assert_close(channels_last(x), expected, rtol=1e-4, atol=1e-4)
    assert channels_last.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    amp = FastForward(copy.deepcopy(net), channels_last=False, amp=True, device=torch.device("cpu"))
    out = amp(x)
    assert out.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: close to, but not equal to, the float32 outputs
    torch.testing.assert_close(out, expected, rtol=0.05, atol=0.05)
    assert not torch.equal(out, expected)


def test_plain_sgd_updates_exactly_as_torch_optim_sgd():
    """Three steps of PlainSGD and of torch.optim.SGD (defaults) from the same weights on the same
    batches give bit-identical weights; a parameter without gradient stays as it is."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    frozen = torch.nn.Linear(2, 2)  # never in the loss: its .grad stays None
    twin, twin_frozen = copy.deepcopy(net), copy.deepcopy(frozen)
    ours = PlainSGD([*net.parameters(), *frozen.parameters()], lr=0.1)
    reference = torch.optim.SGD([*twin.parameters(), *twin_frozen.parameters()], lr=0.1)
    for step in range(3):
        x, y = torch.randn(4, 6), torch.tensor([0, 1, 2, step % 3])
        for model, opt in ((net, ours), (twin, reference)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for a, b in zip([*net.parameters(), *frozen.parameters()], [*twin.parameters(), *twin_frozen.parameters()],
                    strict=True):
        assert torch.equal(a, b)
    assert all(p.grad is not None for p in net.parameters())
    ours.zero_grad()
    assert all(p.grad is None for p in net.parameters())
