"""Where the time of an HCR step goes: the released pipeline, ours, and the compute floor.

    python scripts/benchmark.py [--device cuda] [--steps N] [--repeats R] [--nets resnet18 mlp]
                                [--threads T] [--epoch_examples E] [--amp] [--channels_last] [--fuse_forward]

For ResNet-18 (seq-cifar10 shapes, batch = minibatch = 32) and the MLP (seq-fmnist shapes,
batch = minibatch = 10), with a full buffer of 500, it times one training step of:

(a) the released pipeline: the buffer is a CPU tensor of [0, 1] images; each of the four draws
    augments its images one at a time through PIL (ToPILImage, RandomCrop(32, 4),
    RandomHorizontalFlip, ToTensor, Normalize; seq-fmnist: no buffer transform) and copies the
    stack to the device; the stream batch goes through the per-image PIL train transform
    (timed inline: the released loader workers could overlap this part, shown on its own);
    same losses and forward passes as models/hcr.py; insertion by a per-example reservoir loop.
(b) ours: the TensorLoader batch (uint8 on the device, batched augmentation) and Hcr.observe, as
    main.py runs it by default: one fused forward pass for a network without BatchNorm (the MLP).
(b1) ours with one forward pass per batch (--no-fuse_forward), like (a) and (c); timed only where
    it differs from (b).
(c) the floor: five forward passes (the stream batch and four draws) with cross-entropy, one
    backward and one SGD step on tensors already on the device (in the memory layout of (b)).

The variants are interleaved (a, b, b1, c, a, ...) after warm-up steps; each number is the
median over --repeats blocks of --steps steps. Then it times one epoch of task 1 (--epoch_examples
examples) for sgd, derpp and hcr (dataset.train_loader + model.observe, fresh model and empty
buffer) and for the released pipeline of hcr. Data are random uint8 images (no files, no network).
As main.py does, CPU runs use deterministic algorithms. --amp and --channels_last (main.py's flags)
change the network of all three variants; --fuse_forward changes our models only. On a small,
busy CPU machine use --threads 1: several threads of tiny kernels then mostly wait for each other.
"""
import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import main  # noqa: E402
from datasets import get_all_datasets  # noqa: E402
from datasets.continual_dataset import ContinualDataset, PILDataset  # noqa: E402
from models import get_all_models  # noqa: E402
from models.continual_model import PlainSGD, build_network  # noqa: E402
from models.hcr_losses import (  # noqa: E402
    consecutive_correlation,
    correlation_congruence,
    triplet_distribution_kl,
    triplet_softmax_loss,
)
from utils.errors import UserError  # noqa: E402
from utils.experiment import build, resolve_device, set_seed, use_deterministic_kernels  # noqa: E402
from utils.training import evaluate  # noqa: E402

NETS = {"resnet18": {"dataset": "seq-cifar10", "batch": 32, "default_steps": (20, 100)},
        "mlp": {"dataset": "seq-fmnist", "batch": 10, "default_steps": (50, 200)}}
BUFFER, TEST_EXAMPLES = 500, 200
HYPER = {"sgd": {"lr": 0.03}, "derpp": {"lr": 0.03, "alpha": 0.2, "beta": 0.5},
         "hcr": {"lr": 0.03, "alpha": 0.01, "beta": 0.3, "gamma": 0.5, "sigmoid": 0.01}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, device: torch.device) -> float:
    """Seconds taken by n calls of fn, with the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return time.perf_counter() - start


def make_args(model: str, net: str, opts: argparse.Namespace, separate: bool = False) -> argparse.Namespace:
    """The Namespace main.py would build for this model, with explicit hyper-parameters
    (``separate``: with --no-fuse_forward)."""
    batch = NETS[net]["batch"]
    flags = {**HYPER[model], "batch_size": batch, "n_epochs": 1}
    argv = ["--model", model, "--dataset", NETS[net]["dataset"], "--device", opts.device, "--offline"]
    argv += [f"--{f}" for f in ("amp", "channels_last") if getattr(opts, f)]
    if model != "sgd":
        flags.update(buffer_size=BUFFER, minibatch_size=batch)
        if separate:  # (b1): one pass per batch whatever --fuse_forward says
            argv.append("--no-fuse_forward")
        elif opts.fuse_forward:
            argv.append("--fuse_forward")
    return main.parse_args(argv + [str(x) for k, v in flags.items() for x in (f"--{k}", v)],
                           get_all_models(), get_all_datasets())


def fake_data(net: str, per_task: int) -> tuple[torch.Tensor, ...]:
    """Random uint8 images of the dataset's shape, in the layout of ``ContinualDataset.load``:
    labels 0..9 in turn, so that every task has ``per_task`` training examples."""
    shape = (3, 32, 32) if net == "resnet18" else (1, 28, 28)
    n_train = per_task * 5
    return (torch.randint(0, 256, (n_train, *shape), dtype=torch.uint8), torch.arange(n_train) % 10,
            torch.randint(0, 256, (TEST_EXAMPLES, *shape), dtype=torch.uint8), torch.arange(TEST_EXAMPLES) % 10)


class ReleasedHcr:
    """HCR the released way: CPU buffer, per-image PIL augmentation, per-example reservoir."""

    def __init__(self, dataset: ContinualDataset, data: tuple[torch.Tensor, ...]) -> None:
        self.args, self.device = dataset.args, dataset.device
        self.net = build_network(dataset.get_backbone(), self.args, self.device).train()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.args.lr)
        images, labels = data[:2]
        in_task = labels < dataset.N_CLASSES_PER_TASK  # task 1, as the loaders of (b) see it
        self.stream = PILDataset(images[in_task], labels[in_task], dataset.pil_train_transform())
        augments = type(dataset).train_transform is not ContinualDataset.train_transform
        self.draw_transform = (transforms.Compose([transforms.ToPILImage(), *dataset.pil_train_transform().transforms])
                               if augments else None)
        self.examples = torch.zeros(BUFFER, *images.shape[1:])
        self.labels = torch.zeros(BUFFER, dtype=torch.long)
        self.logits = torch.zeros(BUFFER, 10)
        self.num_seen, self.order, self.stream_s = 0, [], 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
        for i in range(len(y)):  # mammoth's reservoir(), one example at a time
            slot = self.num_seen if self.num_seen < BUFFER else np.random.randint(0, self.num_seen + 1)
            self.num_seen += 1
            if slot < BUFFER:
                self.examples[slot], self.labels[slot], self.logits[slot] = x[i], y[i], z[i]

    def draw(self) -> tuple[torch.Tensor, ...]:
        filled = min(self.num_seen, BUFFER)
        choice = np.random.choice(filled, size=min(self.args.minibatch_size, filled), replace=False)
        x = (torch.stack([self.draw_transform(e) for e in self.examples[choice]]) if self.draw_transform
             else self.examples[choice])
        return x.to(self.device), self.labels[choice].to(self.device), self.logits[choice].to(self.device)

    def next_batch(self) -> tuple[torch.Tensor, ...]:
        start = time.perf_counter()
        if len(self.order) < self.args.batch_size:  # a new shuffled epoch; the last partial batch dropped
            self.order = torch.randperm(len(self.stream)).tolist()
        index, self.order = self.order[:self.args.batch_size], self.order[self.args.batch_size:]
        x, y, raw = (torch.stack(t) for t in zip(*(self.stream[i] for i in index), strict=True))
        x, y = x.to(self.device), y.to(self.device)
        self.stream_s += time.perf_counter() - start
        return x, y, raw

    def step(self) -> None:
        args, loss_fn = self.args, F.cross_entropy
        x, y, raw = self.next_batch()
        outputs = self.net(x)
        loss = loss_fn(outputs, y)
        if self.num_seen > 0:  # as released: each draw, then its forward pass and loss term
            x1, _, z1 = self.draw()
            o1 = self.net(x1)
            loss = loss + args.alpha * (correlation_congruence(o1, z1) + consecutive_correlation(o1, z1))
            x2, y2, _ = self.draw()
            loss = loss + args.beta * loss_fn(self.net(x2), y2)
            x3, y3, _ = self.draw()
            loss = loss + args.sigmoid * triplet_softmax_loss(self.net(x3), y3)
            x4, y4, z4 = self.draw()
            loss = loss + args.gamma * triplet_distribution_kl(self.net(x4), z4, y4, mode=args.icr_mode)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.add(raw, y.cpu(), outputs.detach().cpu())


def floor_step_fn(dataset: ContinualDataset, shape: torch.Size, sizes: list[int] | None = None):
    """(c): a forward pass with cross-entropy per batch of ``sizes`` (default: the stream batch and the
    four draws), one backward, one SGD step; data already on device."""
    args, device = dataset.args, dataset.device
    net = build_network(dataset.get_backbone(), args, device).train()
    opt = PlainSGD(net.parameters(), lr=args.lr)  # the update of (b)
    sizes = sizes or [args.batch_size] + 4 * [args.minibatch_size]  # the stream batch and the four draws
    # Through the train transform once (not timed), so the passes see the memory layout of (b): the
    # augmentation's gather leaves images channels-last, and convolution kernels depend on the layout.
    xs = [dataset.train_transform(torch.rand(n, *shape, device=device)) for n in sizes]
    ys = [torch.randint(0, 10, (n,), device=device) for n in sizes]

    def step() -> None:
        loss = sum(F.cross_entropy(net(x), y) for x, y in zip(xs, ys, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def bench_steps(net: str, opts: argparse.Namespace) -> dict[str, float]:
    data = fake_data(net, opts.epoch_examples)
    ours = build(make_args("hcr", net, opts), data).model
    separate = build(make_args("hcr", net, opts, separate=True), data).model
    dataset = ours.dataset
    released = ReleasedHcr(dataset, data)
    # Fill the buffers with the same BUFFER examples, so every draw is full from the first step.
    images, labels = data[:2]
    index = torch.arange(BUFFER) % len(labels)
    fill, fill_y, fill_z = images[index].float() / 255, labels[index], torch.randn(BUFFER, 10)
    released.add(fill, fill_y, fill_z)
    for model in (ours, separate):
        model.net.train()
        model.buffer.add_data(fill.to(model.device), labels=fill_y.to(model.device), logits=fill_z.to(model.device))
    loader = dataset.train_loader([0])
    batches = (batch for _ in itertools.count() for batch in loader)  # endless epochs
    variants = {"a": released.step, "b": lambda: ours.observe(*next(batches)),
                "b1": lambda: separate.observe(*next(batches)), "c": floor_step_fn(dataset, images.shape[1:])}
    if not ours.fuse_forward:  # (b) already runs one pass per batch: (b1) would repeat it
        del variants["b1"]
    for fn in variants.values():
        timed(fn, opts.warmup, ours.device)
    per_step = {k: [] for k in [*variants, "a_stream"]}
    for _ in range(opts.repeats):
        for name, fn in variants.items():
            released.stream_s = 0.0
            per_step[name].append(timed(fn, opts.steps[net], ours.device) / opts.steps[net])
            if name == "a":
                per_step["a_stream"].append(released.stream_s / opts.steps[net])
    times = {k: 1000 * statistics.median(v) for k, v in per_step.items()}
    return {"b1": times["b"], **times}


def bench_epochs(net: str, opts: argparse.Namespace) -> dict[str, float]:
    """Median seconds of one epoch of task 1 (fresh model, empty buffer) per model."""
    data = fake_data(net, opts.epoch_examples)

    def ours(name: str):
        def run() -> float:
            model = build(make_args(name, net, opts), data).model
            model.net.train()
            return timed(lambda: [model.observe(*b) for b in model.dataset.train_loader([0])], 1, model.device)
        return run

    def released() -> float:
        dataset = build(make_args("hcr", net, opts), data).dataset
        return timed(ReleasedHcr(dataset, data).step, len(dataset.train_loader([0])), dataset.device)

    runs = {"sgd": ours("sgd"), "derpp": ours("derpp"), "hcr": ours("hcr"), "hcr released": released}
    times = {k: [] for k in runs}
    for _ in range(opts.repeats):
        for name, run in runs.items():
            times[name].append(run())
    steps = len(build(make_args("sgd", net, opts), data).dataset.train_loader([0]))
    return {"steps": steps, **{k: statistics.median(v) for k, v in times.items()}}


# The online Split CIFAR-10 protocol (seq-cifar10-online): batches and draws of 10, one pass over 5 tasks
# of 10000 images (1000 steps each), a full buffer of 500. Evaluations see 48000 test images in a run:
# all 5 tasks before training (10000), the seen tasks after each (2000 + 4000 + ... + 10000 = 30000)
# and the next task before each (4 x 2000).
ONLINE_STEPS, ONLINE_EVAL_IMAGES = 5000, 48000
ONLINE_HYPER = {"sgd": {}, "er": {}, "er_ace": {}, "derpp": {"alpha": 0.1, "beta": 0.5},
                "hcr": {"alpha": 0.1, "beta": 0.5, "sigmoid": 0.1, "gamma": 0.5}}
ONLINE_PASSES = {"sgd": [10], "er": [20], "er_ace": [10, 10], "derpp": [10] * 3, "hcr": [10] * 5}  # floor's batches
LAYOUTS = {"default": [], "channels_last": ["--channels_last"], "bf16": ["--amp"],
           "channels_last+bf16": ["--channels_last", "--amp"]}


def online_args(model: str, flags: list[str]) -> argparse.Namespace:
    hyper = {"lr": 0.01, "batch_size": 10, "n_epochs": 1, **ONLINE_HYPER[model]}
    if model != "sgd":
        hyper.update(buffer_size=BUFFER, minibatch_size=10)
    argv = ["--model", model, "--dataset", "seq-cifar10-online", "--device", "cpu", "--offline", *flags]
    return main.parse_args(argv + [str(x) for k, v in hyper.items() for x in (f"--{k}", v)],
                           get_all_models(), get_all_datasets())


def bench_online(opts: argparse.Namespace) -> None:
    """Per model and memory layout, interleaved: the step with a full buffer, its floor (ONLINE_PASSES
    forward passes with cross-entropy, one backward, one SGD step), evaluation per 1000 images, and the
    run they add up to (ONLINE_STEPS steps and ONLINE_EVAL_IMAGES evaluated images)."""
    data = fake_data("resnet18", opts.epoch_examples)
    images, labels = data[:2]
    index = torch.arange(BUFFER) % len(labels)
    fill, fill_y, fill_z = images[index].float() / 255, labels[index], torch.randn(BUFFER, 10)
    step_fns, eval_fns = {}, {}
    layouts = {name: LAYOUTS[name] for name in opts.layouts}
    for layout, flags in layouts.items():
        for model_name in opts.online_models:
            model = build(online_args(model_name, flags), data).model
            model.net.train()
            model.begin_task(0)
            if model_name != "sgd":
                model.buffer.add_data(fill, **{k: v for k, v in (("labels", fill_y), ("logits", fill_z))
                                               if k in model.STORES})
            loader = model.dataset.train_loader([0])
            batches = (batch for _ in itertools.count() for batch in loader)
            step_fns[model_name, layout] = (lambda m=model, b=batches: m.observe(*next(b)))
            step_fns[model_name + " floor", layout] = floor_step_fn(model.dataset, images.shape[1:],
                                                                    ONLINE_PASSES[model_name])
        test = [(0, model.dataset.test_loader(0))]  # TEST_EXAMPLES images of classes 0 and 1
        eval_fns[layout] = (lambda m=model, t=test: evaluate(m, m.dataset, t))
    for fn in [*step_fns.values(), *eval_fns.values()]:
        timed(fn, opts.warmup, torch.device("cpu"))
    steps = {k: [] for k in step_fns}
    evals = {k: [] for k in eval_fns}
    for _ in range(opts.repeats):
        for key, fn in step_fns.items():
            steps[key].append(1000 * timed(fn, opts.online_steps, torch.device("cpu")) / opts.online_steps)
        for key, fn in eval_fns.items():
            evals[key].append(timed(fn, 1, torch.device("cpu")) * 1000 / (TEST_EXAMPLES // 2))
    step = {k: statistics.median(v) for k, v in steps.items()}
    per_1000 = {k: statistics.median(v) for k, v in evals.items()}
    print("| model | layout | step ms | floor ms | step / floor | evaluation s per 1000 images | run minutes |")
    print("|---|---|---|---|---|---|---|")
    for model_name in opts.online_models:
        for layout in layouts:
            ms, floor = step[model_name, layout], step[model_name + " floor", layout]
            run_s = ONLINE_STEPS * ms / 1000 + ONLINE_EVAL_IMAGES / 1000 * per_1000[layout]
            print(f"| {model_name} | {layout} | {ms:.1f} | {floor:.1f} | {ms / floor:.2f} | {per_1000[layout]:.2f} "
                  f"| {run_s / 60:.1f} |")
    print(f"\nseq-cifar10-online shapes (batch and draws of 10, reduced ResNet-18, no augmentation), buffer "
          f"{BUFFER} full; run minutes = {ONLINE_STEPS} steps + {ONLINE_EVAL_IMAGES} evaluated images (test split).")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--nets", nargs="+", choices=list(NETS), default=list(NETS))
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per block (default: per net/device).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps per variant before timing.")
    parser.add_argument("--repeats", type=int, default=3, help="Blocks per variant; the median is reported.")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch.set_num_threads.")
    parser.add_argument("--epoch_examples", type=int, default=2000, help="Examples in the timed epoch.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--amp", action="store_true", help="main.py's --amp, for the network of (a), (b), (c).")
    parser.add_argument("--channels_last", action="store_true", help="main.py's --channels_last, likewise.")
    parser.add_argument("--fuse_forward", action="store_true", help="main.py's --fuse_forward: (b) and epochs only.")
    parser.add_argument("--online", action="store_true",
                        help="Instead: the seq-cifar10-online step of --online_models per memory layout, its "
                             "floor, evaluation, and the whole run they add up to.")
    parser.add_argument("--online_models", nargs="+", choices=list(ONLINE_HYPER), default=list(ONLINE_HYPER))
    parser.add_argument("--online_steps", type=int, default=10, help="Timed steps per block with --online.")
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=["default", "channels_last"],
                        help="With --online: main.py's speed flags to compare (bf16: --amp).")
    opts = parser.parse_args(argv)
    if min(opts.threads, opts.repeats, opts.steps or 1) < 1 or opts.warmup < 0:
        parser.error("--threads, --repeats and --steps must be positive, --warmup non-negative")
    if opts.epoch_examples < 2 * (10 if opts.online else max(NETS[n]["batch"] for n in opts.nets)):
        parser.error("--epoch_examples must hold at least two batches")
    return opts


def run(argv: list[str] | None = None) -> None:
    opts = parse(argv)
    try:
        device = resolve_device(opts.device)
    except UserError as e:
        sys.exit(f"benchmark.py: error: {e}")
    torch.set_num_threads(opts.threads)
    if device.type == "cpu":
        use_deterministic_kernels()  # as main.py does on CPU
    set_seed(opts.seed)
    cuda = device.type == "cuda"
    opts.steps = {n: opts.steps or NETS[n]["default_steps"][cuda] for n in opts.nets}
    name = torch.cuda.get_device_name(device) if cuda else f"{platform.processor() or platform.machine()} CPU"
    print(f"device: {device} ({name}) | torch {torch.__version__} | threads {torch.get_num_threads()} "
          f"| cpu_count {os.cpu_count()} | load avg {os.getloadavg()[0]:.1f} | python {platform.python_version()}")
    if opts.online:
        print(f"warm-up {opts.warmup} | repeats {opts.repeats} (median) of {opts.online_steps} steps\n")
        bench_online(opts)
        return
    flags = [f for f in ("amp", "channels_last", "fuse_forward") if getattr(opts, f)] or ["none"]
    print(f"steps {opts.steps} | warm-up {opts.warmup} | repeats {opts.repeats} (median) | buffer {BUFFER} "
          f"| flags {' '.join(flags)}\n")
    steps = {n: bench_steps(n, opts) for n in opts.nets}
    print("| net | batch | (a) released ms/step | (a) img/s | (a) stream PIL ms | (b) ours ms/step | (b) img/s "
          "| (b1) ours, one pass per batch, ms/step | (c) floor ms/step | (c) img/s | b/c | b1/c | a/b |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, t in steps.items():
        batch = NETS[n]["batch"]
        rate = {k: 1000 * batch / t[k] for k in "abc"}
        print(f"| {n} | {batch} | {t['a']:.2f} | {rate['a']:.0f} | {t['a_stream']:.2f} | {t['b']:.2f} "
              f"| {rate['b']:.0f} | {t['b1']:.2f} | {t['c']:.2f} | {rate['c']:.0f} | {t['b'] / t['c']:.2f} "
              f"| {t['b1'] / t['c']:.2f} | {t['a'] / t['b']:.2f} |")
    print("\n(b) runs main.py's default: one fused forward pass for networks without BatchNorm (the MLP),")
    print("one pass per batch otherwise; (b1) forces one pass per batch (--no-fuse_forward), as (c) does.")
    print("(a) stream PIL: the part of (a) spent making the stream batch; loader workers can overlap it.")
    print("img/s counts the stream images of a step (batch size), not the buffer draws.\n")
    epochs = {n: bench_epochs(n, opts) for n in opts.nets}
    print(f"| net | epoch steps ({opts.epoch_examples} examples) | sgd s | derpp s | hcr s | hcr released s |")
    print("|---|---|---|---|---|---|")
    for n, e in epochs.items():
        print(f"| {n} | {e['steps']} | {e['sgd']:.3f} | {e['derpp']:.3f} | {e['hcr']:.3f} | {e['hcr released']:.3f} |")
    print("\nEpochs: one epoch of task 1 from an empty buffer (median of the repeats); "
          "hcr released runs (a)'s step over the same examples.")


if __name__ == "__main__":
    run()
