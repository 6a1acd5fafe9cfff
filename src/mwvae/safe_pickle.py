"""Unpickling that can only rebuild NumPy arrays, never run code.

Plain `pickle.load` executes whatever a file asks for (`os.system` included).
Every pickle this project reads goes through `restricted_loads`, which
resolves only the globals it is given.
"""

from __future__ import annotations

import importlib
import io
import pickle
import warnings

# What a protocol-2 pickle of NumPy arrays needs, and nothing more.
NUMPY_ARRAY_GLOBALS = frozenset(
    {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for a global outside the allowed set."""


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: frozenset[tuple[str, str]], **kwargs):
        super().__init__(file, **kwargs)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise UnsafePickleError(
                f"refusing to unpickle global '{module}.{name}': this file is not a plain "
                "array pickle and may run code. Delete it and fetch the data again."
            )
        with warnings.catch_warnings():
            # numpy>=2 reaches numpy.core through a deprecation shim.
            warnings.simplefilter("ignore", DeprecationWarning)
            return getattr(importlib.import_module(module), name)


def restricted_loads(
    data: bytes, allowed: frozenset[tuple[str, str]] = NUMPY_ARRAY_GLOBALS, encoding: str = "latin1"
):
    """Unpickle `data`, resolving only the `allowed` (module, name) globals."""
    return RestrictedUnpickler(io.BytesIO(data), allowed, encoding=encoding).load()
