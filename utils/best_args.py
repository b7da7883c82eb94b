"""Best hyper-parameters: BEST_ARGS[dataset][model][buffer size] (None for buffer-free models).

seq-cifar10: the released HCR code (hcr, er, sgd) and the DER paper (der, derpp); batch_size =
minibatch_size = 32 and 50 epochs everywhere (docs/method.md, "Best hyper-parameters").
seq-mnist, perm-mnist, rot-mnist and seq-tinyimg (sgd, er, der, derpp): mammoth's published values,
utils/best_args.py of aimagelab/mammoth at commit 0d727a7235cf836698418ca33a973431d1d671f0. The
Fashion-MNIST twins (seq-fmnist, perm-fmnist, rot-fmnist) use the MNIST values, except where
`cifar.py --search` chose on their validation split, with one budget for every method: er, der,
derpp, hcr and hcr-gradient (hcr's entries under --icr_mode gradient) on seq-fmnist at buffers 200
and 500 and on perm-fmnist and rot-fmnist at buffer 500 (docs/search_<dataset>.md and
docs/search_<dataset>_hcr_gradient.md); er_ace (class-IL only) on seq-fmnist at 200 and 500
(docs/search_seq-fmnist_er_ace.md). seq-cifar10-online: every entry from its own equal-budget
search (docs/search_seq-cifar10-online.md: sgd, er, er_ace, der, derpp and hcr; hcr-gradient is
still being searched). hcr has published values for seq-cifar10 only. Where there is no entry,
--load_best_args says so.
"""

def _cifar(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 32, "n_epochs": 50, **kwargs}


def _fmnist(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 10, "n_epochs": 1, **kwargs}


def _domain(lr: float, **kwargs: float) -> dict:  # P-MNIST and R-MNIST: batch 128, one epoch per task
    return {"lr": lr, "batch_size": 128, "n_epochs": 1, **kwargs}


def _online(lr: float, **kwargs: float) -> dict:  # the online protocol: batches of 10 (draws of 10 too), one pass
    return {"lr": lr, "batch_size": 10, "n_epochs": 1, **kwargs}


def _tinyimg(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 32, "n_epochs": 100, **kwargs}


MNIST_BASELINES = {  # mammoth's seq-mnist entries (batch 10, one epoch)
    "sgd": {None: _fmnist(0.03)},
    "er": {
        200: _fmnist(0.01, minibatch_size=10),
        500: _fmnist(0.1, minibatch_size=10),
        5120: _fmnist(0.1, minibatch_size=10),
    },
    "der": {
        200: _fmnist(0.03, minibatch_size=10, alpha=0.2),
        500: _fmnist(0.03, minibatch_size=128, alpha=1.0),
        5120: _fmnist(0.1, minibatch_size=128, alpha=0.5),
    },
    "derpp": {
        200: _fmnist(0.03, minibatch_size=128, alpha=0.2, beta=1.0),
        500: _fmnist(0.03, minibatch_size=10, alpha=1.0, beta=0.5),
        5120: _fmnist(0.1, minibatch_size=64, alpha=0.2, beta=0.5),
    },
}
PERMUTED_BASELINES = {  # mammoth's perm-mnist entries
    "sgd": {None: _domain(0.2)},
    "er": {size: _domain(0.2, minibatch_size=128) for size in (200, 500, 5120)},
    "der": {
        200: _domain(0.2, minibatch_size=128, alpha=1.0),
        500: _domain(0.2, minibatch_size=128, alpha=1.0),
        5120: _domain(0.2, minibatch_size=128, alpha=0.5),
    },
    "derpp": {
        200: _domain(0.1, minibatch_size=128, alpha=1.0, beta=1.0),
        500: _domain(0.2, minibatch_size=128, alpha=1.0, beta=0.5),
        5120: _domain(0.2, minibatch_size=128, alpha=0.5, beta=1.0),
    },
}
ROTATED_BASELINES = {  # mammoth's rot-mnist entries
    "sgd": {None: _domain(0.2)},
    "er": {size: _domain(0.2, minibatch_size=128) for size in (200, 500, 5120)},
    "der": {
        200: _domain(0.2, minibatch_size=128, alpha=1.0),
        500: _domain(0.2, minibatch_size=128, alpha=0.5),
        5120: _domain(0.2, minibatch_size=128, alpha=0.5),
    },
    "derpp": {
        200: _domain(0.1, minibatch_size=128, alpha=1.0, beta=0.5),
        500: _domain(0.2, minibatch_size=128, alpha=0.5, beta=1.0),
        5120: _domain(0.2, minibatch_size=128, alpha=0.5, beta=0.5),
    },
}

RELEASED_HCR_CIFAR = {  # the released code's hcr values on seq-cifar10
    200: _cifar(0.01, minibatch_size=32, alpha=0.01, beta=0.9, gamma=0.5, sigmoid=0.01),
    500: _cifar(0.03, minibatch_size=32, alpha=0.01, beta=0.3, gamma=0.5, sigmoid=0.01),
    5120: _cifar(0.03, minibatch_size=32, alpha=0.5, beta=0.3, gamma=0.5, sigmoid=0.5),
}


BEST_ARGS: dict[str, dict[str, dict[int | None, dict]]] = {
    "seq-cifar10": {
        "sgd": {None: _cifar(0.1)},
        "er": {size: _cifar(0.1, minibatch_size=32) for size in (200, 500, 5120)},
        "der": {size: _cifar(0.03, minibatch_size=32, alpha=0.3) for size in (200, 500, 5120)},
        "derpp": {
            200: _cifar(0.03, minibatch_size=32, alpha=0.1, beta=0.5),
            500: _cifar(0.03, minibatch_size=32, alpha=0.2, beta=0.5),
            5120: _cifar(0.03, minibatch_size=32, alpha=0.1, beta=1.0),
        },
        "hcr": RELEASED_HCR_CIFAR,
        "hcr-gradient": RELEASED_HCR_CIFAR,  # not searched in gradient mode: the released values
    },
    "seq-cifar10-online": {  # docs/search_seq-cifar10-online.md
        "sgd": {None: _online(0.01)},
        "er": {200: _online(0.01, minibatch_size=10), 1000: _online(0.1, minibatch_size=10)},
        "er_ace": {200: _online(0.1, minibatch_size=10), 1000: _online(0.1, minibatch_size=10)},
        "der": {200: _online(0.1, minibatch_size=10, alpha=0.5), 1000: _online(0.1, minibatch_size=10, alpha=0.5)},
        "derpp": {200: _online(0.01, minibatch_size=10, alpha=0.2, beta=1.0),
                  1000: _online(0.1, minibatch_size=10, alpha=0.1, beta=1.0)},
        "hcr": {size: _online(0.01, minibatch_size=10, alpha=0.5, beta=2.0, sigmoid=0.1, gamma=0.5)
                for size in (200, 1000)},
    },
    "seq-fmnist": {  # sgd and buffer 5120: the MNIST values; buffers 200 and 500: docs/search_seq-fmnist*.md
        "sgd": MNIST_BASELINES["sgd"],
        "er": {**MNIST_BASELINES["er"], 200: _fmnist(0.01, minibatch_size=64), 500: _fmnist(0.1, minibatch_size=10)},
        "der": {**MNIST_BASELINES["der"], 200: _fmnist(0.03, minibatch_size=10, alpha=1.0),
                500: _fmnist(0.03, minibatch_size=10, alpha=1.0)},
        "derpp": {**MNIST_BASELINES["derpp"], 200: _fmnist(0.01, minibatch_size=10, alpha=1.0, beta=1.0),
                  500: _fmnist(0.03, minibatch_size=10, alpha=1.0, beta=1.0)},
        "er_ace": {200: _fmnist(0.03, minibatch_size=10), 500: _fmnist(0.03, minibatch_size=10)},
        "hcr": {
            200: _fmnist(0.01, minibatch_size=10, alpha=0.5, beta=1.0, sigmoid=0.1, gamma=0.5),
            500: _fmnist(0.03, minibatch_size=64, alpha=0.5, beta=2.0, sigmoid=0.1, gamma=0.5),
        },
        "hcr-gradient": {
            200: _fmnist(0.01, minibatch_size=10, alpha=0.5, beta=1.0, sigmoid=0.1, gamma=0.5),
            500: _fmnist(0.03, minibatch_size=64, alpha=0.5, beta=0.5, sigmoid=0.1, gamma=0.5),
        },
    },
    "seq-mnist": MNIST_BASELINES,
    "perm-mnist": PERMUTED_BASELINES,
    "perm-fmnist": {  # sgd, buffers 200 and 5120: the P-MNIST values; buffer 500: docs/search_perm-fmnist*.md
        "sgd": PERMUTED_BASELINES["sgd"],
        "er": {**PERMUTED_BASELINES["er"], 500: _domain(0.03, minibatch_size=64)},
        "der": {**PERMUTED_BASELINES["der"], 500: _domain(0.1, minibatch_size=64, alpha=0.5)},
        "derpp": {**PERMUTED_BASELINES["derpp"], 500: _domain(0.1, minibatch_size=10, alpha=0.5, beta=0.5)},
        "hcr": {500: _domain(0.03, minibatch_size=64, alpha=0.5, beta=0.5, sigmoid=0.1, gamma=0.5)},
        "hcr-gradient": {500: _domain(0.03, minibatch_size=64, alpha=0.5, beta=0.5, sigmoid=0.1, gamma=0.5)},
    },
    "rot-mnist": ROTATED_BASELINES,
    "rot-fmnist": {  # sgd, buffers 200 and 5120: the R-MNIST values; buffer 500: docs/search_rot-fmnist*.md
        "sgd": ROTATED_BASELINES["sgd"],
        "er": {**ROTATED_BASELINES["er"], 500: _domain(0.1, minibatch_size=64)},
        "der": {**ROTATED_BASELINES["der"], 500: _domain(0.1, minibatch_size=64, alpha=0.5)},
        "derpp": {**ROTATED_BASELINES["derpp"], 500: _domain(0.1, minibatch_size=64, alpha=1.0, beta=1.0)},
        "hcr": {500: _domain(0.03, minibatch_size=64, alpha=0.5, beta=2.0, sigmoid=0.1, gamma=0.5)},
        "hcr-gradient": {500: _domain(0.03, minibatch_size=64, alpha=0.5, beta=2.0, sigmoid=0.1, gamma=0.5)},
    },
    "seq-tinyimg": {  # mammoth's seq-tinyimg entries
        "sgd": {None: _tinyimg(0.03)},
        "er": {200: _tinyimg(0.1, minibatch_size=32), 500: _tinyimg(0.03, minibatch_size=32),
               5120: _tinyimg(0.1, minibatch_size=32)},
        "der": {size: _tinyimg(0.03, minibatch_size=32, alpha=0.1) for size in (200, 500, 5120)},
        "derpp": {
            200: _tinyimg(0.03, minibatch_size=32, alpha=0.1, beta=1.0),
            500: _tinyimg(0.03, minibatch_size=32, alpha=0.2, beta=0.5),
            5120: _tinyimg(0.03, minibatch_size=32, alpha=0.1, beta=0.5),
        },
    },
}


def lookup(dataset: str, model: str, buffer_size: int | None) -> dict:
    """The entry for (dataset, model, buffer size); KeyError with a one-line message saying which
    entries exist for that dataset and model (or, without any, for that dataset) when there is none."""
    entry = BEST_ARGS.get(dataset, {}).get(model, {}).get(buffer_size)
    if entry is None:
        wanted = f"{dataset}/{model}" + ("" if buffer_size is None else f" with buffer {buffer_size}")
        by_buffer = BEST_ARGS.get(dataset, {}).get(model)
        if by_buffer:
            known = f"{dataset}/{model} has entries for buffer sizes {', '.join(str(b) for b in by_buffer)}"
        elif dataset in BEST_ARGS:
            known = f"models with entries on {dataset}: {', '.join(BEST_ARGS[dataset])}"
        else:
            known = f"datasets with entries: {', '.join(BEST_ARGS)}"
        raise KeyError(f"no best arguments for {wanted}; {known}")
    return dict(entry)
