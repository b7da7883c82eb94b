"""Best hyper-parameters: BEST_ARGS[dataset][model][buffer size] (None for buffer-free models).

seq-cifar10: the released HCR code (hcr, er, sgd) and the DER paper (der, derpp);
batch_size = minibatch_size = 32 and 50 epochs everywhere (docs/method.md, "Best hyper-parameters").
seq-fmnist: mammoth's seq-mnist values (batch 10, 1 epoch); hcr has no published values there:
ours come from scripts/search_hcr_fmnist.py on the validation split (docs/search_hcr_fmnist.md).
"""

def _cifar(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 32, "n_epochs": 50, **kwargs}


def _fmnist(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 10, "n_epochs": 1, **kwargs}


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
        "hcr": {
            200: _cifar(0.01, minibatch_size=32, alpha=0.01, beta=0.9, gamma=0.5, sigmoid=0.01),
            500: _cifar(0.03, minibatch_size=32, alpha=0.01, beta=0.3, gamma=0.5, sigmoid=0.01),
            5120: _cifar(0.03, minibatch_size=32, alpha=0.5, beta=0.3, gamma=0.5, sigmoid=0.5),
        },
    },
    "seq-fmnist": {
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
        "hcr": {
            200: _fmnist(0.01, minibatch_size=10, alpha=0.5, beta=1.0, gamma=0.5, sigmoid=0.1),
            500: _fmnist(0.01, minibatch_size=64, alpha=0.5, beta=2.0, gamma=0.5, sigmoid=0.1),
            5120: _fmnist(0.03, minibatch_size=64, alpha=0.1, beta=2.0, gamma=0.5, sigmoid=0.1),
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
