"""Reading a dask-backed variable straight from its file(s) when its dask graph only opens them.

``xr.open_zarr(path)``, ``xr.open_dataset(path, chunks=...)`` and ``xr.open_mfdataset(paths)`` give
variables whose dask arrays are ``from_array`` wrappers of xarray's lazily indexed backend arrays (one per
file, concatenated along one dim for several files). Indexing those backend arrays directly reads exactly
the values the graph would (the same decoding, masking and dtype), without building and running a dask
graph per window — ~10× faster a window (``benchmarks/loader.py``) — and reads only the window's steps where
dask's chunks (e.g. one chunk per netCDF file) would load far more. :func:`backend_pieces` recognises such
graphs; anything else (a computed variable such as ``ds.t2m - 273.15``, an ``isel`` on the dask array) is
left to dask.
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np

Piece = tuple[int, int, Any]  # (start, stop) along the concatenation axis, and the backend array there


def backend_pieces(arr: Any) -> tuple[int, list[Piece]] | None:
    """(axis, pieces) when the dask array ``arr`` is backend arrays read as-is, concatenated along ``axis``.

    Returns None for any other graph, so the caller computes it through dask.
    """
    try:
        from dask.array.core import getter, getter_inline, getter_nofancy
    except ImportError:  # pragma: no cover - dask is an xarray extra
        return None
    graph = arr.__dask_graph__()
    layers, deps = getattr(graph, "layers", None), getattr(graph, "dependencies", None)
    if layers is None or deps is None:
        return None
    getters = (getter, getter_inline, getter_nofancy)
    whole = _opened(arr.name, layers, deps, getters)
    if whole is not None:
        return (0, [(0, arr.shape[0], whole)]) if _fits(whole, arr.shape, arr.dtype) else None
    return _concatenated(arr, layers, deps, getters)


def _opened(name: str, layers: Mapping, deps: Mapping, getters: tuple) -> Any:
    """The one backend array the layer ``name`` reads block by block with dask's getter, else None."""
    sources = deps.get(name, set())
    if len(sources) != 1 or name not in layers:
        return None
    (source,) = sources
    held = layers.get(source)
    if held is None or deps.get(source) or len(held) != 1:
        return None
    (key,) = held.keys()
    original = held[key]
    if not (hasattr(original, "shape") and hasattr(original, "dtype") and hasattr(original, "__getitem__")):
        return None
    task = layers[name][next(iter(layers[name].keys()))]  # every block of a from_array layer is alike
    args = getattr(task, "args", ())
    if getattr(task, "func", None) not in getters or not args or getattr(args[0], "key", None) != key:
        return None
    return original


def _concatenated(arr: Any, layers: Mapping, deps: Mapping, getters: tuple) -> tuple[int, list[Piece]] | None:
    """Backend arrays joined along one axis by ``da.concatenate`` (``open_mfdataset``): block (…, i, …) of
    ``arr`` is an alias of block (…, b, …) of source j, the sources in order and each read whole."""
    layer = layers.get(arr.name)
    if layer is None:
        return None
    targets: dict[tuple, tuple] = {}
    for key in layer.keys():
        value = layer[key]
        value = getattr(value, "target", value)  # a task-spec Alias, or a plain key tuple
        if not (isinstance(key, tuple) and isinstance(value, tuple) and len(value) == len(key)):
            return None
        targets[key[1:]] = value
    if len(targets) != int(np.prod(arr.numblocks)):
        return None
    names = list(dict.fromkeys(t[0] for _, t in sorted(targets.items())))
    if set(names) != set(deps.get(arr.name, ())):
        return None
    originals = [_opened(n, layers, deps, getters) for n in names]
    if any(o is None for o in originals):
        return None
    for axis in range(arr.ndim):
        if _joined_along(axis, arr, originals, names, targets):
            stops = np.cumsum([o.shape[axis] for o in originals])
            return axis, [(int(stop - o.shape[axis]), int(stop), o) for stop, o in zip(stops, originals)]
    return None


def _joined_along(axis: int, arr: Any, originals: list, names: list[str], targets: Mapping[tuple, tuple]) -> bool:
    others = [d for d in range(arr.ndim) if d != axis]
    if sum(o.shape[axis] for o in originals) != arr.shape[axis]:
        return False
    if any(o.dtype != arr.dtype or any(o.shape[d] != arr.shape[d] for d in others) for o in originals):
        return False
    line = [targets[tuple(i if d == axis else 0 for d in range(arr.ndim))] for i in range(arr.numblocks[axis])]
    j, b = 0, -1  # the sources in order, each one's blocks 0, 1, 2, …
    for name, *block in line:
        if name != names[j] or block[axis] != b + 1:
            if j + 1 < len(names) and name == names[j + 1] and block[axis] == 0:
                j, b = j + 1, 0
                continue
            return False
        b += 1
    if j != len(names) - 1:
        return False
    return all(t == (line[i[axis]][0], *(line[i[axis]][1 + axis] if d == axis else i[d] for d in range(arr.ndim)))
               for i, t in targets.items())


def _fits(original: Any, shape: tuple[int, ...], dtype: Any) -> bool:
    return tuple(original.shape) == tuple(shape) and original.dtype == dtype


def read_pieces(axis: int, pieces: list[Piece], key: tuple[Hashable, ...]) -> np.ndarray:
    """``np.asarray(concatenation[key])`` for a basic ``key`` (ints and slices, one per dim), reading each
    piece only where the key's ``axis`` entry (a slice of positive step, or an int) reaches it."""
    total = pieces[-1][1]
    wanted = np.arange(total)[key[axis]]
    scalar = np.ndim(wanted) == 0
    wanted = np.atleast_1d(wanted)
    parts = []
    for start, stop, original in pieces:
        local = wanted[(wanted >= start) & (wanted < stop)] - start
        if local.size == 0:
            continue
        step = int(local[1] - local[0]) if local.size > 1 else 1
        if step < 1 or not np.array_equal(local, local[0] + step * np.arange(local.size)):
            raise ValueError("a read along the concatenation axis must be an increasing, evenly spaced slice")
        sub = key[:axis] + (slice(int(local[0]), int(local[-1]) + 1, step),) + key[axis + 1:]
        parts.append(np.asarray(original[sub]))
    out_axis = axis - sum(isinstance(k, (int, np.integer)) for k in key[:axis])  # ints drop their dims
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=out_axis)
    return np.take(out, 0, axis=out_axis) if scalar else out
