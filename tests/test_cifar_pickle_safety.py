"""The CIFAR-10 reader unpickles only what the official files hold: a crafted batch that names any other global is
refused with one line naming the file, and its payload never runs."""
import builtins
import io
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from datasets.cifar_pickle import CifarUnpickler
from datasets.seq_cifar10 import read_cifar_batches
from tests.conftest import CIFAR_DIR, CIFAR_PER_CLASS, read_cifar_fixture
from utils.errors import UserError


class _Payload:
    """Unpickling it calls ``func(*args)``: what a tampered file would run."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _copy(cifar10_path: str, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the session CIFAR-10 (which must stay untouched): (data path, batches folder)."""
    data = tmp_path / "data"
    shutil.copytree(cifar10_path, data)
    return data, data / "CIFAR10" / CIFAR_DIR


def _plant(folder: Path, cifar10_path: str, payload: object, name: str = "data_batch_1") -> Path:
    """Rewrite ``folder/name`` as the fixture's batch with ``payload`` as its batch label; the file's path."""
    entry = read_cifar_fixture(cifar10_path, name)
    entry["batch_label"] = payload
    path = folder / name
    path.write_bytes(pickle.dumps(entry))
    return path


def _one_line_refusal(error: pytest.ExceptionInfo, path: Path, needs: str) -> None:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    assert "refused" in message and needs in message, message


def test_the_official_layout_still_reads(cifar10_path):
    folder = Path(cifar10_path) / "CIFAR10" / CIFAR_DIR
    for name in ("data_batch_1", "test_batch"):
        images, labels = read_cifar_batches(folder, [name])
        entry = read_cifar_fixture(cifar10_path, name)
        assert images.shape == (10 * CIFAR_PER_CLASS[name], 3, 32, 32) and images.dtype == torch.uint8
        assert labels.tolist() == entry["labels"]
        assert images.numpy().tobytes() == entry["data"].tobytes()


def test_an_os_system_payload_is_refused_and_never_runs(cifar10_path, tmp_path):
    marker = tmp_path / "marker"
    _, folder = _copy(cifar10_path, tmp_path)
    path = _plant(folder, cifar10_path, _Payload(os.system, f"touch {marker}"))
    with pytest.raises(UserError) as error:
        read_cifar_batches(folder, ["data_batch_1"])
    _one_line_refusal(error, path, "system")
    assert not marker.exists()


def test_main_exits_2_with_one_line_and_the_payload_never_runs(cifar10_path, tmp_path, capsys, one_thread):
    marker = tmp_path / "marker"
    data, folder = _copy(cifar10_path, tmp_path)
    path = _plant(folder, cifar10_path, _Payload(os.system, f"touch {marker}"))
    code = main.main(["--dataset", "seq-cifar10", "--data_path", str(data), "--model", "sgd", "--lr", "0.1",
                      "--batch_size", "4", "--n_epochs", "1", "--debug_mode", "--offline", "--seed", "0",
                      "--device", "cpu", "--results_path", str(tmp_path / "results")])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2 and captured.out == ""
    assert len(lines) == 1 and lines[0].startswith("main.py: error: "), captured.err
    assert str(path) in lines[0] and "refused" in lines[0], lines[0]
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    pytest.param(lambda marker: _Payload(builtins.eval, f"open({str(marker)!r}, 'w')"), id="builtins.eval"),
    pytest.param(lambda marker: _Payload(builtins.exec, f"open({str(marker)!r}, 'w')"), id="builtins.exec"),
    pytest.param(lambda marker: _Payload(getattr, str(marker), "upper"), id="builtins.getattr"),
    pytest.param(lambda marker: _Payload(np.load, str(marker)), id="numpy.load"),
    pytest.param(lambda marker: _Payload(shutil.rmtree, str(marker)), id="shutil.rmtree"),
])
def test_other_globals_are_refused_too(cifar10_path, tmp_path, payload):
    marker = tmp_path / "marker"
    _, folder = _copy(cifar10_path, tmp_path)
    path = _plant(folder, cifar10_path, payload(marker))
    with pytest.raises(UserError) as error:
        read_cifar_batches(folder, ["data_batch_1"])
    _one_line_refusal(error, path, "which the official files never contain")
    assert not marker.exists()


def test_an_object_dtype_smuggled_through_numpy_is_refused(cifar10_path, tmp_path):
    """numpy.dtype is allowed, but a dtype holding objects would make numpy read the pixel bytes as pointers."""
    _, folder = _copy(cifar10_path, tmp_path)
    path = folder / "data_batch_1"
    entry = read_cifar_fixture(cifar10_path, "data_batch_1")
    path.write_bytes(pickle.dumps(entry, protocol=2).replace(b"X\x02\x00\x00\x00u1", b"X\x02\x00\x00\x00O8"))
    with pytest.raises(UserError) as error:
        read_cifar_batches(folder, ["data_batch_1"])
    _one_line_refusal(error, path, "numpy.dtype('O8')")


class _Reduce:
    """Pickled as ``rv``, what ``__reduce__`` returns: (callable, args[, state])."""

    def __init__(self, *rv) -> None:
        self.rv = rv

    def __reduce__(self):
        return self.rv


def test_a_dtype_state_claiming_objects_never_reaches_the_array(cifar10_path, tmp_path):
    """numpy's dtype.__setstate__ takes flags from the file; flags saying "holds objects" on a uint8 dtype would make
    numpy read the pixel bytes as object pointers. The reader rebuilds each array's dtype from its type string."""
    _, folder = _copy(cifar10_path, tmp_path)
    entry = read_cifar_fixture(cifar10_path, "data_batch_1")
    data = entry["data"]
    tampered = _Reduce(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 0x01 | 0x08 | 0x10))
    entry["data"] = _Reduce(np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                            (1, data.shape, tampered, False, data.tobytes()))
    raw = pickle.dumps(entry)
    assert b"_reconstruct" in raw and b"dtype" in raw
    (folder / "data_batch_1").write_bytes(raw)
    with open(folder / "data_batch_1", "rb") as f:
        array = CifarUnpickler(f, encoding="latin1").load()["data"]
    assert not array.dtype.hasobject and array.dtype.flags == np.dtype(np.uint8).flags
    images, labels = read_cifar_batches(folder, ["data_batch_1"])
    assert images.dtype == torch.uint8 and images.numpy().tobytes() == data.tobytes()


def test_reconstruct_of_anything_but_an_array_is_refused(cifar10_path, tmp_path):
    _, folder = _copy(cifar10_path, tmp_path)
    entry = read_cifar_fixture(cifar10_path, "data_batch_1")
    entry["data"] = _Reduce(np._core.multiarray._reconstruct, (np.dtype, (0,), b"b"))
    path = folder / "data_batch_1"
    path.write_bytes(pickle.dumps(entry))
    with pytest.raises(UserError) as error:
        read_cifar_batches(folder, ["data_batch_1"])
    _one_line_refusal(error, path, "_reconstruct")


class _Python2Pickler(pickle._Pickler):
    """Writes as Python 2 with numpy 1.x wrote the official files: bytes as Python 2 strings (BINSTRING), which
    ``encoding="latin1"`` reads back as str, and numpy's ``_reconstruct`` under its old module name."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        head = pickle.SHORT_BINSTRING + bytes([len(obj)]) if len(obj) < 256 else \
            pickle.BINSTRING + struct.pack("<i", len(obj))
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None) -> None:
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _python2_dumps(obj: object) -> bytes:
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def test_a_python2_protocol_2_batch_reads(cifar10_path, tmp_path):
    _, folder = _copy(cifar10_path, tmp_path)
    fixture = read_cifar_fixture(cifar10_path, "data_batch_1")
    entry = {b"batch_label": b"training batch 1 of 5", b"labels": fixture["labels"], b"data": fixture["data"],
             b"filenames": [name.encode() for name in fixture["filenames"]]}
    raw = _python2_dumps(entry)
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw and b"U\x04data" in raw
    (folder / "data_batch_1").write_bytes(raw)
    images, labels = read_cifar_batches(folder, ["data_batch_1"])
    assert images.shape == (fixture["data"].shape[0], 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == fixture["labels"]
    assert images.numpy().tobytes() == fixture["data"].tobytes()


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_a_batch_rewritten_by_numpy_2_reads(cifar10_path, tmp_path, protocol):
    """Python 3 writes bytes at protocol 2 through _codecs.encode(..., "latin1"); 3 and 4 as raw bytes."""
    _, folder = _copy(cifar10_path, tmp_path)
    fixture = read_cifar_fixture(cifar10_path, "data_batch_1")
    (folder / "data_batch_1").write_bytes(pickle.dumps(fixture, protocol=protocol))
    images, labels = read_cifar_batches(folder, ["data_batch_1"])
    assert labels.tolist() == fixture["labels"]
    assert images.numpy().tobytes() == fixture["data"].tobytes()
