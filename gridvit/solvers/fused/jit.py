"""``jit``: numba's ``njit`` with the on-disk cache where it can be written, without it where not;
``serial_twin``: a kernel's Python function compiled a second time, without threads."""

from __future__ import annotations

import types
from typing import Any, Callable

from numba import njit


def jit(fn: Callable | None = None, *, parallel: bool = True) -> Callable:
    """Compile ``fn`` lazily (parallel over ``prange`` unless ``parallel=False``), cached on disk (next to
    this file, else numba's user-wide cache dir). Where no cache directory is writable numba refuses
    ``cache=True`` at decoration; the kernel is then compiled once per process instead."""
    if fn is None:
        return lambda f: jit(f, parallel=parallel)
    try:
        return njit(cache=True, parallel=parallel)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(parallel=parallel)(fn)


def serial_twin(kernel: Any, **calls: Any) -> Callable:
    """``kernel``'s Python function compiled with ``parallel=False`` (its ``prange`` runs as ``range``, and
    numba's thread pool is never started), lazily and disk-cached like :func:`jit`.

    The twin is a copy of the function named ``<name>_serial``: numba keys its disk cache by module,
    qualified name and line, not by ``parallel``, so a twin under the same name would load the threaded
    machine code (or the threaded kernel the serial one). ``calls`` rebinds global names the body calls,
    e.g. ``stencil5=stencil5_serial`` so that a compiled loop over steps calls the serial step; the other
    globals are those of the kernel's module as they are now.
    """
    fn = kernel.py_func
    twin = types.FunctionType(fn.__code__, {**fn.__globals__, **calls}, f"{fn.__name__}_serial", fn.__defaults__)
    twin.__qualname__, twin.__module__, twin.__doc__ = f"{fn.__qualname__}_serial", fn.__module__, fn.__doc__
    return jit(twin, parallel=False)
