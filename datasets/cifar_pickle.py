"""A restricted unpickler for the official CIFAR-10 python batches: they are pickles, and a plain
unpickler runs whatever a tampered file names. This one rebuilds only what the official files hold
(dicts, lists, strings, numbers, integer numpy arrays) and refuses anything else before it is called."""
import pickle

import numpy as np

_LATIN1 = ("latin1", "latin-1")
_INT_CODES = frozenset(f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8))


class Refused(Exception):
    """A pickle asks for something the official files never contain; the message says what."""


def shown(text: object, limit: int = 80) -> str:
    """``text`` for a one-line message: printable as is, else escaped; cut at ``limit`` characters."""
    text = text if isinstance(text, str) and text.isprintable() else ascii(text)
    return text if len(text) <= limit else f"{text[:limit]}..."


class _CheckedArray(np.ndarray):
    """The array ``_reconstruct`` yields: its ``__setstate__`` (pickle's BUILD) accepts only an integer dtype and raw
    bytes, and rebuilds the dtype from its type string, so that flags a crafted dtype state set (e.g. "holds objects",
    which makes numpy read the bytes as pointers) never reach the array."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise ValueError("the state of an array is not a 4- or 5-tuple")
        dtype, data = state[-3], state[-1]
        if not isinstance(dtype, np.dtype) or dtype.kind not in "iu" or dtype.fields or dtype.subdtype:
            raise Refused(f"a numpy array of dtype {shown(str(dtype))}")
        if not isinstance(data, bytes | str):  # str: the Python 2 string of an official file, decoded as latin1
            raise ValueError("the data of an array are not a string of bytes")
        super().__setstate__((*state[:-3], np.dtype(dtype.str), state[-2], data))


_NDARRAY = object()  # what numpy.ndarray stands for: only ever the first argument of _reconstruct, never called


def _reconstruct(subtype: object, _shape: object, _typecode: object) -> np.ndarray:
    """numpy's ``_reconstruct``, the first step of unpickling an array: an empty array that BUILD then fills."""
    if subtype is not _NDARRAY:
        raise Refused(f"numpy's _reconstruct of {shown(type(subtype).__name__)}")
    return _CheckedArray((0,), np.uint8)


def _dtype(code: object, _align: object = False, copy: object = True) -> np.dtype:
    """``numpy.dtype(code, align, copy)`` for an integer type string such as "u1" (what numpy pickles). A copy, as
    numpy makes, takes the byte order of the state BUILD then sets; ``_CheckedArray`` drops the rest of that state."""
    if not isinstance(code, str) or code not in _INT_CODES:
        raise Refused(f"numpy.dtype({shown(ascii(code))})")
    return np.dtype(code, copy=copy in (True, 1))


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 uses it to write bytes at protocol 2: a str to bytes, latin1 only."""
    if not isinstance(text, str) or encoding not in _LATIN1:
        raise Refused(f"_codecs.encode of {shown(type(text).__name__)} with encoding {shown(encoding)}")
    return text.encode("latin1")


# Every global an official file (Python 2, numpy 1.x) or a rewrite by numpy 2 (protocols 2 to 4) names, mapped to a
# restricted stand-in; nothing is imported by name.
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds dicts, lists, strings, numbers and integer numpy arrays, and refuses any other
    global before anything is called (a plain unpickler runs whatever a tampered file names)."""

    def find_class(self, module: str, name: str) -> object:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise Refused(f"{shown(module)}.{shown(name)}")
        return found
