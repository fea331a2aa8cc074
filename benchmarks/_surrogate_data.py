"""Data of ``surrogate_vs_stencil.py``: spectral resampling, fine-grid reference trajectories restricted to
the evaluation grid, and an on-disk cache of them keyed by everything that shapes them.

The cache (``benchmarks/.cache/``, git-ignored) holds one ``.npz`` per key: a hash of the case's
data-relevant fields (pde, extent, parameters, initial-condition options, reference scheme, step), the
grid, the refinement factor, the number of trajectories and steps, the seed and :data:`DATA_VERSION`. A
changed case, preset or generating code gives another key, so stale data are never read; files of old keys
are simply left unused (delete the folder to reclaim the space).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import xarray as xr

CACHE = Path(__file__).resolve().parent / ".cache"
DATA_VERSION = 2  # bump when the code that generates trajectories changes what it produces
CHUNK = 8  # trajectories simulated together: small batches stay in cache (2× faster per trajectory than 64 on a
#           CPU) and each takes the time step its own states allow; fixed, so the data do not depend on the device


def resample_axis(a: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Resample a periodic, cell-centred axis of ``a`` to ``m`` points by Fourier truncation / zero padding.

    Keeps the modes ``|k| < min(n, m)/2`` and shifts their phase from the old cell centres ``(j + 1/2)/n``
    to the new ``(j + 1/2)/m``: exact for fields band-limited below both Nyquist frequencies.
    """
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    n = a.shape[-1]
    if n != m:
        f = np.fft.fft(a, axis=-1)
        k = np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(int)  # integer wavenumbers (n,)
        keep = np.abs(k) < min(n, m) / 2
        g = np.zeros(a.shape[:-1] + (m,), dtype=complex)  # (..., m) spectrum on the new grid
        g[..., k[keep] % m] = f[..., keep] * np.exp(2j * np.pi * k[keep] * (0.5 / m - 0.5 / n))
        a = np.real(np.fft.ifft(g, axis=-1)) * (m / n)
    return np.moveaxis(a, -1, axis)


def resample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(..., H, W) periodic cell-centred field -> (..., h, w), spectrally (see :func:`resample_axis`)."""
    return resample_axis(resample_axis(a, shape[0], -2), shape[1], -1)


def initial_states(case: Any, n: int, samples: int, seed: int) -> np.ndarray:
    """(S, C, n, n) float64 band-limited random initial states of ``case`` (drawn on the n² grid)."""
    from gridvit.solvers.initial import gaussian_random_field

    opts = dict(case.ic)
    amplitude = opts.pop("amplitude", 1.0)
    u0 = gaussian_random_field((n, n), (case.extent, case.extent), samples=samples, channels=case.channels,
                               seed=seed, **opts)
    return amplitude * u0.numpy()


def reference(case: Any, u0: np.ndarray, *, grid: int, steps: int, device: str) -> np.ndarray:
    """Fine-grid trajectories of ``case.reference`` from ``u0`` (S, C, n_f, n_f), restricted to grid²:
    (S, steps + 1, C, grid, grid), saved every surrogate step.

    float32 (roundoff far below the discretisation error), :data:`CHUNK` trajectories at a time; explicit
    schemes at half their stability limit, re-chosen from the chunk's state at every saved step
    (``simulate(..., adapt_dt=True)``'s rule).
    """
    import gridvit.solvers as gs

    n = u0.shape[-1]
    scheme = gs.scheme_for(case.pde, case.reference, dt=case.step, dx=case.extent / n, dy=case.extent / n,
                           **case.params)  # unconditionally stable references take the surrogate's step
    limit, by_m, chunks = 0.5 * scheme.cfl_limit, {}, []  # by_m: one scheme per substep count (its caches)
    for start in range(0, u0.shape[0], CHUNK):
        u = torch.tensor(u0[start:start + CHUNK], dtype=torch.float32, device=device)  # (chunk, C, n_f, n_f)
        out = [resample(u0[start:start + CHUNK], (grid, grid))]
        with torch.inference_mode():
            for _ in range(steps):
                m = 1 if math.isinf(limit) else math.ceil(case.step * scheme.rate(u) / limit)
                if m not in by_m:
                    by_m[m] = scheme.with_dt(case.step / m)
                u = advance(by_m[m], u, m)
                if not bool(torch.isfinite(u).all()):
                    raise FloatingPointError(f"{case.pde}: the {n}² reference blew up; lower the step")
                out.append(resample(u.double().cpu().numpy(), (grid, grid)))
        chunks.append(np.stack(out, axis=1))  # (chunk, T, C, grid, grid)
    return np.concatenate(chunks)  # (S, T, C, grid, grid)


def advance(step: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` steps of ``step`` from u (B, C, H, W): the scheme's multi-step ``run`` where it has one (gridvit's
    fastest: fused compiled steps on the CPU, a replayed CUDA graph on GPUs), else a loop of ``step(u)``."""
    if hasattr(step, "run"):
        return step.run(u, n)
    for _ in range(n):
        u = step(u)
    return u


def data_key(case: Any, *, grid: int, fine: int, samples: int, steps: int, seed: int) -> str:
    """The cache key of a set of trajectories: a hash of every input that changes them."""
    inputs = {"version": DATA_VERSION, "pde": case.pde, "extent": case.extent, "params": case.params,
              "ic": case.ic, "reference": case.reference, "step": case.step, "grid": grid, "fine": fine,
              "samples": samples, "steps": steps, "seed": seed}
    text = json.dumps(inputs, sort_keys=True)
    return f"{case.pde}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def trajectories(case: Any, *, grid: int, fine: int, samples: int, steps: int, seed: int, device: str,
                 cache: Path | None = CACHE) -> tuple[np.ndarray, dict[str, Any]]:
    """Reference trajectories (S, steps + 1, C, grid, grid) from seeded initial states, cached on disk.

    Args:
        case: the benchmark case (``surrogate_vs_stencil.Case``).
        grid, fine: evaluation grid side and reference refinement factor (reference on ``fine * grid``²).
        samples, steps, seed: trajectories, saved steps each, and the initial-state seed.
        device: torch device of the reference run (not part of the key: devices agree to float32 roundoff).
        cache: the cache folder (None: always generate, store nothing).

    Returns:
        The trajectories and ``{"key", "cached", "generation_s"}``: ``cached`` says whether they were
        loaded; ``generation_s`` is the time it took to generate them (in this run, or when cached).
    """
    key = data_key(case, grid=grid, fine=fine, samples=samples, steps=steps, seed=seed)
    path = None if cache is None else Path(cache) / f"{key}.npz"
    if path is not None and path.exists():
        with np.load(path) as f:
            return f["traj"], {"key": key, "cached": True, "generation_s": float(f["generation_s"])}
    start = time.perf_counter()
    u0 = initial_states(case, fine * grid, samples, seed=seed)  # (S, C, n_f, n_f)
    traj = reference(case, u0, grid=grid, steps=steps, device=device).astype(np.float32)  # (S, T, C, N, N)
    generation_s = time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, traj=traj, generation_s=generation_s)
        os.replace(tmp, path)  # atomic: a killed run leaves no half-written file under the key
    return traj, {"key": key, "cached": False, "generation_s": generation_s}


def as_dataset(case: Any, traj: np.ndarray) -> xr.Dataset:
    """(S, T, C, H, W) trajectories -> the (sample, time, y, x) layout of ``gridvit.solvers.simulate``."""
    import gridvit.solvers as gs

    s, t, _, h, w = traj.shape
    centres = lambda k: (np.arange(k) + 0.5) * case.extent / k  # noqa: E731
    coords = {"sample": np.arange(s), "time": np.arange(t) * case.step,
              "y": ("y", centres(h), {"periodic": 1}), "x": ("x", centres(w), {"periodic": 1})}
    data = {f: (("sample", "time", "y", "x"), traj[:, :, c].astype(np.float32))
            for c, f in enumerate(gs.PDES[case.pde].fields)}
    return xr.Dataset(data, coords=coords)
