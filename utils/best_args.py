"""Best hyper-parameters: BEST_ARGS[dataset][model][buffer size] (None for buffer-free models).

seq-cifar10: the released HCR code (hcr, er, sgd) and the DER paper (der, derpp);
batch_size = minibatch_size = 32 and 50 epochs everywhere (HCR_REFERENCE.md section 5).
seq-fmnist: mammoth's seq-mnist values (batch 10, 1 epoch).
"""

def _cifar(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 32, "n_epochs": 50, **kwargs}


def _fmnist(lr: float, **kwargs: float) -> dict:
    return {"lr": lr, "batch_size": 10, "n_epochs": 1, **kwargs}


BEST_ARGS: dict[str, dict[str, dict[int | None, dict]]] = {
    "seq-cifar10": {
        "sgd": {None: _cifar(0.1)},
    },
    "seq-fmnist": {
        "sgd": {None: _fmnist(0.03)},
    },
}


def lookup(dataset: str, model: str, buffer_size: int | None) -> dict:
    """The entry for (dataset, model, buffer size); KeyError with a one-line message listing
    the entries that exist when there is none."""
    entry = BEST_ARGS.get(dataset, {}).get(model, {}).get(buffer_size)
    if entry is None:
        known = ", ".join(
            f"{d}/{m}" + ("" if b is None else f"/{b}")
            for d, by_model in BEST_ARGS.items() for m, by_buffer in by_model.items() for b in by_buffer
        )
        wanted = f"{dataset}/{model}" + ("" if buffer_size is None else f"/{buffer_size}")
        raise KeyError(f"no best arguments for {wanted}; entries: {known}")
    return dict(entry)
