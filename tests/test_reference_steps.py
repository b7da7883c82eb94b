"""Every method's training step against a step written out by hand (tests/reference_helpers.py):
same draws (same generator calls), same forward passes, each loss term, the SGD update and the
buffer insertion. Each test also checks that the model's step is far from deliberately wrong
steps (draws merged, a term dropped or reweighted, no update, augmented inputs stored, ...), so
it is known to fail on such a rewrite."""
import pytest
import torch

from tests.reference_helpers import STORED, Step, make_model, reference_step

RTOL, ATOL = 1e-5, 1e-6  # float rounding: fused vs separate passes, written-out vs autograd gradients
FAR = 20.0  # a wrong step must be at least this many tolerances away from the model's step

HYPER = {"lr": 0.05, "batch_size": 8, "n_epochs": 1, "buffer_size": 50, "minibatch_size": 10,
         "alpha": 0.3, "beta": 0.7, "sigmoid": 0.9, "gamma": 0.5}
NAMES = {"sgd": ("lr", "batch_size", "n_epochs"),
         "er": ("lr", "batch_size", "n_epochs", "buffer_size", "minibatch_size"),
         "er_ace": ("lr", "batch_size", "n_epochs", "buffer_size", "minibatch_size"),
         "der": ("lr", "batch_size", "n_epochs", "buffer_size", "minibatch_size", "alpha"),
         "derpp": ("lr", "batch_size", "n_epochs", "buffer_size", "minibatch_size", "alpha", "beta"),
         "hcr": tuple(HYPER)}
COMMON = ("no_update", "store_augmented", "stream_only")
VARIANTS = {
    "sgd": ("no_update", "double:ce"),
    "er": (*COMMON, "separate_ce", "double:ce"),
    "er_ace": (*COMMON, "no_mask", "mask_replay", "drop:replay", "double:replay", "double:ce"),
    "der": (*COMMON, "drop:ce", "drop:alpha", "double:alpha", "logits_after"),
    "derpp": (*COMMON, "one_draw", "swap_draws", "drop:ce", "drop:alpha", "drop:beta", "double:alpha",
              "double:beta", "logits_after"),
    "hcr": (*COMMON, "one_draw", "swap_draws", "drop:ce", "drop:alpha", "drop:beta", "drop:sigmoid", "drop:gamma",
            "double:alpha", "double:beta", "double:sigmoid", "double:gamma", "logits_after", "kernel_order:2",
            "kernel_gamma:1", "icr_attached"),
}


def hyper(method: str, **overrides) -> dict:
    return {**{k: HYPER[k] for k in NAMES[method]}, **overrides}


def fill_buffer(model, method: str, count: int, seed: int = 0, shape=(1, 28, 28)) -> None:
    """Known contents: random images, labels of three old classes, and stored logits far from the
    network's (so that every logit term is large) that cluster by class (so that the teacher's triplet
    distances, hence the ICR term, differ much from the student's)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    fields = {"examples": torch.rand(count, *shape, generator=g),
              "labels": labels,
              "logits": 8 * torch.nn.functional.one_hot(labels, 10) + torch.randn(count, 10, generator=g)}
    model.buffer.add_data(**{k: fields[k] for k in STORED[method]})


def stream_batch(n: int = 8, seed: int = 1, shape=(1, 28, 28)):
    """(augmented, labels, raw): the "augmented" batch is the mirrored raw batch, so that storing it
    instead of the raw one is visible."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(n, *shape, generator=g)
    labels = 6 + torch.arange(n) % 2
    return raw.flip(-1), labels, raw


def distance(model_loss, model_state, model_buffer, expected: Step) -> float:
    """Largest error over loss, network state and buffer contents, in units of the tolerance."""
    pairs = [(model_loss, expected.loss)]
    pairs += [(model_state[k], v) for k, v in expected.state.items()]
    pairs += list(zip(model_buffer, expected.buffer, strict=True))
    worst = 0.0
    for got, want in pairs:
        assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
        if not want.is_floating_point():
            worst = max(worst, 0.0 if torch.equal(got, want) else float("inf"))
            continue
        err = (got - want).abs() / (ATOL + RTOL * want.abs())
        worst = max(worst, float(err.max()) if err.numel() else 0.0)
    return worst


def check_step(method: str, model, x, y, raw, variants=(), **where) -> Step:
    """Run the reference (and the wrong variants) and the model from the same RNG state; the model
    must match the reference, use the same random numbers, and be far from every variant. ``where``:
    reference_step's task and seen_before."""
    state = torch.get_rng_state()
    expected = reference_step(method, model, x, y, raw, **where)
    rng_after = torch.get_rng_state()
    wrong = {}
    for variant in variants:
        torch.set_rng_state(state)
        wrong[variant] = reference_step(method, model, x, y, raw, variant, **where)
    torch.set_rng_state(state)
    loss, reported = model.observe(x, y, raw)
    torch.testing.assert_close(loss, expected.info["trained"], rtol=RTOL, atol=ATOL)
    loss = reported  # compared with the reference's loss below, which counts every term
    assert torch.equal(torch.get_rng_state(), rng_after), "the step made other random calls than the reference"
    got_state = {k: v.detach() for k, v in model.net.state_dict().items()}
    assert got_state.keys() == expected.state.keys()
    got_buffer = model.buffer.get_all_data() if method != "sgd" else ()
    if method != "sgd":
        assert len(got_buffer) == len(expected.buffer), "the buffer stores other fields than the reference"
    err = distance(loss, got_state, got_buffer, expected)
    assert err <= 1.0, f"{method}: step differs from the reference by {err:.3g} tolerances"
    for variant, step in wrong.items():
        far = distance(loss, got_state, got_buffer, step)
        assert far > FAR, f"{method}: the test would not notice the wrong step {variant!r} ({far:.3g} tolerances)"
    return expected


@pytest.mark.parametrize("method,mode", [("sgd", None), ("er", None), ("er_ace", None), ("der", None), ("derpp", None),
                                         ("hcr", "faithful"), ("hcr", "gradient")])
def test_step_matches_reference(method, mode):
    """Partly filled buffer (30 of 50 slots, draws of 10): parameters, reported loss and buffer after
    one step equal the written-out step; the new examples are the raw inputs, in slots 30..37."""
    torch.manual_seed(0)
    # the gradient-mode ICR term is a KL between Bernoullis with q in sigmoid([-1/2, 1/2]) (about 1e-2):
    # a large gamma makes its share of the update, and its KL direction, well above float rounding
    extra = {"icr_mode": mode, "gamma": 500.0 if mode == "gradient" else HYPER["gamma"]} if mode else {}
    model = make_model(method, **hyper(method, **extra))
    if method != "sgd":
        fill_buffer(model, method, 30)
    x, y, raw = stream_batch()
    variants = list(VARIANTS[method])
    if mode == "gradient":
        variants[variants.index("icr_attached")] = "icr_reversed_kl"
    expected = check_step(method, model, x, y, raw, variants)
    if method != "sgd":
        assert len(model.buffer) == 38 and model.buffer.num_seen == 38
        assert torch.equal(model.buffer.get_all_data()[0][30:], raw)
    if method == "hcr":  # the triplet terms were exercised, not zero for want of triplets
        assert expected.info["triplets_sigmoid"] > 0 and expected.info["triplets_gamma"] > 0
        assert expected.info["icr"] != 0


@pytest.mark.parametrize("method", ["er", "er_ace", "der", "derpp", "hcr"])
def test_first_step_with_empty_buffer(method):
    """Empty buffer: cross-entropy on the stream only; the buffer then holds the raw batch."""
    torch.manual_seed(1)
    model = make_model(method, **hyper(method))
    x, y, raw = stream_batch(seed=2)
    check_step(method, model, x, y, raw, ("no_update", "store_augmented", "logits_after")
               if method not in ("er", "er_ace") else ("no_update", "store_augmented"))
    assert torch.equal(model.buffer.get_all_data()[0], raw)


@pytest.mark.parametrize("method", ["er", "derpp"])
def test_step_with_full_buffer_uses_the_reservoir(method):
    """Full buffer (20 slots, 30 examples seen): draws of 10 and a reservoir insertion that replaces
    some slots and drops some of the stream examples."""
    torch.manual_seed(2)
    model = make_model(method, **hyper(method, buffer_size=20))
    fill_buffer(model, method, 30, seed=3)
    x, y, raw = stream_batch(seed=4)
    before = model.buffer.get_all_data()[0].clone()
    check_step(method, model, x, y, raw, ("no_update", "store_augmented", "one_draw" if method == "derpp" else
                                          "stream_only"))
    after = model.buffer.get_all_data()[0]
    assert len(model.buffer) == 20 and model.buffer.num_seen == 38
    kept = [any(torch.equal(r, a) for a in after) for r in raw]
    assert any(kept) and not all(kept), "the seed should both insert and drop stream examples"
    assert 0 < int((after != before).flatten(1).any(1).sum()) < 20


@pytest.mark.slow
def test_derpp_step_on_seq_cifar10_with_batchnorm_and_augmented_draws(one_thread):
    """ResNet-18 (BatchNorm: one forward pass per batch, stream first, running statistics compared
    too) with seq-cifar10's train transform on the draws; the buffer stores the raw stream images."""
    torch.manual_seed(3)
    model = make_model("derpp", "seq-cifar10", **hyper("derpp", batch_size=4, minibatch_size=3, buffer_size=10))
    fill_buffer(model, "derpp", 6, seed=5, shape=(3, 32, 32))
    g = torch.Generator().manual_seed(6)
    raw = torch.rand(4, 3, 32, 32, generator=g)
    x, y = model.dataset.train_transform(raw), torch.tensor([6, 7, 7, 6])
    assert not torch.equal(x, raw)
    check_step("derpp", model, x, y, raw, ("store_augmented", "one_draw", "no_draw_transform", "fuse"))
    assert torch.equal(model.buffer.get_all_data()[0][6:], raw)


def hcr_weights_after_steps(gamma: float, mode: str):
    torch.manual_seed(7)
    model = make_model("hcr", **hyper("hcr", gamma=gamma, icr_mode=mode))
    fill_buffer(model, "hcr", 30, seed=8)
    losses = []
    for s in range(3):
        losses.append(model.observe(*stream_batch(seed=20 + s)).released)
    return torch.stack(losses), [p.detach().clone() for p in model.net.parameters()]


def test_faithful_icr_changes_only_the_reported_loss():
    """Faithful mode: gamma 0 and 0.5 give bit-identical weights after three steps, different losses.
    Gradient mode: the weights differ."""
    loss_0, weights_0 = hcr_weights_after_steps(0.0, "faithful")
    loss_half, weights_half = hcr_weights_after_steps(0.5, "faithful")
    assert all(torch.equal(a, b) for a, b in zip(weights_0, weights_half, strict=True))
    assert (loss_half > loss_0).all()
    _, grad_0 = hcr_weights_after_steps(0.0, "gradient")
    _, grad_half = hcr_weights_after_steps(0.5, "gradient")
    assert all(torch.equal(a, b) for a, b in zip(weights_0, grad_0, strict=True))  # gamma 0: the modes agree
    assert not all(torch.equal(a, b) for a, b in zip(grad_0, grad_half, strict=True))


def test_er_ace_masks_the_stream_by_what_was_seen():
    """ER-ACE in task 4 of seq-fmnist (classes 6 and 7; 0-5 seen before), buffer of old classes 0-2:
    a batch of class 6 alone keeps 6-9 (6 present, 7-9 unseen); the next batch, of class 7 alone, keeps
    7-9 and masks 6 (seen in this task's first batch); a batch of 6 alone then keeps 6 and 7-9 (7, the
    highest seen, stays); a batch of both keeps 6-9. The replayed
    batch's cross-entropy is over every class. Far from the step without the mask, with the mask on the
    replayed batch too, and without or with a doubled replay term."""
    torch.manual_seed(9)
    model = make_model("er_ace", **hyper("er_ace"))
    fill_buffer(model, "er_ace", 30, seed=10)
    model.begin_task(3)
    seen: tuple[int, ...] = ()
    for labels in ([6] * 8, [7] * 8, [6] * 8, [6, 7] * 4):
        x, _, raw = stream_batch(seed=11 + len(seen))
        y = torch.tensor(labels)
        check_step("er_ace", model, x, y, raw, VARIANTS["er_ace"], task=3, seen_before=seen)
        seen += tuple(labels)


def test_er_ace_step_on_the_online_cifar_protocol(one_thread):
    """seq-cifar10-online's reduced ResNet-18 (BatchNorm: the stream batch and the draw in separate
    passes) without augmentation: the draw is only normalised, the buffer keeps the raw images."""
    torch.manual_seed(12)
    model = make_model("er_ace", "seq-cifar10-online", **hyper("er_ace", batch_size=4, minibatch_size=3,
                                                                buffer_size=10))
    fill_buffer(model, "er_ace", 6, seed=13, shape=(3, 32, 32))
    model.begin_task(2)
    g = torch.Generator().manual_seed(14)
    raw = torch.rand(4, 3, 32, 32, generator=g)
    x, y = model.dataset.train_transform(raw), torch.tensor([4, 5, 5, 4])
    check_step("er_ace", model, x, y, raw, ("no_mask", "mask_replay", "store_augmented", "fuse"), task=2)
    assert torch.equal(model.buffer.get_all_data()[0][6:], raw)
