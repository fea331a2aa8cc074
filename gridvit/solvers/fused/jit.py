"""``jit``: numba's ``njit`` with the on-disk cache where it can be written, without it where not."""

from __future__ import annotations

from typing import Callable

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
