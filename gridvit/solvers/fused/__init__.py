"""The fused CPU path: each explicit scheme's step (or Runge–Kutta stage) as one compiled numba loop.

``scheme(u)`` takes this path by itself when it can: ``u`` on the CPU, float32 or float64, and no
gradient to record (``torch.is_grad_enabled()`` and ``u.requires_grad`` not both true). The torch path
stays for GPUs and autograd, and the two agree to rounding (1e-12 in float64; tested). Fused:

- ``heat/ftcs``, ``advection/upwind``, ``advection/lax_wendroff`` (each sweep): the 5-point kernel;
- ``burgers/upwind``, ``burgers/central``, ``burgers/upwind3`` (periodic): one kernel per SSP-RK3 stage;
- ``gray_scott/explicit``: one kernel per step;
- ``navier_stokes/arakawa``, ``navier_stokes/central``: one kernel per stage (Jacobian, Laplacian, drag,
  forcing and the stage combination); ψ still comes from torch's FFT.

all with periodic, Dirichlet and Neumann boundaries on either axis (Navier–Stokes and upwind3 are periodic only).
The spectral, Crank–Nicolson and IMEX schemes are FFT/matrix work and stay on torch.

``scheme.run(u, steps)`` (:func:`run`) writes into two buffers in turn instead of a tensor per step, and
for the 5-point schemes (heat FTCS, upwind advection) loops over the steps inside compiled code.

Compiled code is cached on disk (numba's ``cache=True``): the first call on a machine compiles (threaded
kernels: from ~5 s for the 5-point kernel to about a minute for Navier–Stokes, per dtype, see
``benchmarks/results/stencils.md``; their serial twins: 2–3 s each, measured on the 2-core dev machine)
and later processes load it in well under a second.

Threads: with ``n = min(torch.get_num_threads(), NUMBA_NUM_THREADS)`` > 1, the kernels run threaded over
the batch (B·C planes for the 5-point kernel) after ``numba.set_num_threads(n)``; the first such call
starts numba's thread pool, which has NUMBA_NUM_THREADS threads (all cores unless set). Under GNU OpenMP
(numba's "omp" layer, the libgomp torch uses too) starting it also sets OpenMP's thread count, and so
torch's, to NUMBA_NUM_THREADS; gridvit sets torch's back. Idle OpenMP workers spin-wait, so a process at
one torch thread with the pool started would hold a second core and starve whatever else runs there.
So with ``n == 1`` gridvit neither calls ``numba.set_num_threads`` nor starts the pool: the steps run the
kernels' serial twins (the same functions compiled with ``parallel=False``, compiled and disk-cached
apart on their first call), and no numba or OpenMP setting of the process changes. A process can go
from one to the other as torch's thread count changes. :func:`torch_path` forces the torch path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from gridvit.solvers.grid_ops import Boundaries, Boundary

AVAILABLE = importlib.util.find_spec("numba") is not None
_state = {"enabled": True, "threads": 0, "pid": 0}
_DTYPES = (torch.float32, torch.float64)


@contextlib.contextmanager
def torch_path() -> Iterator[None]:
    """Within this block every scheme runs its torch path (for tests and benchmarks)."""
    before = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = before


def eligible(u: torch.Tensor) -> bool:
    """True when ``scheme(u)`` may take the fused path: numba present and enabled, CPU, float32/64, no grad,
    and not in a process forked after its parent started numba's thread pool (a threaded fused call; numba's
    threads, GNU OpenMP here, do not survive a fork: such a child is terminated when it launches a kernel, so
    it takes the torch path). A parent that only ran serial kernels (one thread) forks safely."""
    return (_state["enabled"] and u.is_cpu and u.dtype in _DTYPES and AVAILABLE
            and not (u.requires_grad and torch.is_grad_enabled()) and _state["pid"] in (0, os.getpid()))


def compiled(serial: bool = False) -> Any:
    """The kernels (``stencil5``, ``stencil5_run``, ``gray_scott``, ``burgers_stage``, ``burgers_upwind3_stage``,
    ``navier_stokes_stage``; imported, with numba, on first use): threaded, or their serial twins."""
    from gridvit.solvers.fused import kernels

    return kernels.SERIAL if serial else kernels.PARALLEL


def _follow_torch_threads() -> bool:
    """True (serial) when numba would run one thread (see the module notes), and then nothing is set;
    otherwise numba's parallel loops get as many threads as torch uses (capped by numba's pool), and the
    first such call starts numba's threading layer and records this process as its owner (:func:`eligible`)."""
    import numba

    threads = torch.get_num_threads()
    n = min(threads, numba.config.NUMBA_NUM_THREADS)
    if n == 1:
        return True
    if n != _state["threads"]:
        numba.set_num_threads(n)
        if torch.get_num_threads() != threads:  # starting the OpenMP pool set OpenMP's count, torch's too
            torch.set_num_threads(threads)
        _state["threads"] = n
        _state["pid"] = _state["pid"] or os.getpid()
    return False


def _kernel(scheme, dtype: np.dtype, serial: bool) -> Callable[[np.ndarray, np.ndarray], None]:
    """The scheme's fused step ``f(a, out)`` for arrays of ``dtype``, serial or threaded, built once each
    (constants bound)."""
    return scheme.cached(("fused", dtype, serial), lambda: scheme._fused(dtype, compiled(serial)))


def array(u: torch.Tensor) -> np.ndarray:
    """A contiguous numpy view (or copy) of CPU ``u``, without autograd's bookkeeping."""
    if u.requires_grad:
        u = u.detach()
    return (u if u.is_contiguous() else u.contiguous()).numpy()


def step(scheme, u: torch.Tensor) -> torch.Tensor:
    """One fused step of ``scheme`` for an eligible (B, C, H, W) ``u`` -> (B, C, H, W)."""
    a = array(u)
    out = np.empty_like(a)
    _kernel(scheme, a.dtype, _follow_torch_threads())(a, out)
    return torch.from_numpy(out)


def run(scheme, u: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` >= 1 fused steps of ``scheme``, ping-ponging two buffers (no tensor per step); a scheme whose
    step is one 5-point stencil (``scheme.stencil5()`` constants) loops inside the compiled code."""
    a = array(u)
    x, y = np.empty_like(a), np.empty_like(a)
    serial = _follow_torch_threads()
    if hasattr(scheme, "stencil5"):
        consts = scheme.cached(("fused_stencil5", a.dtype), lambda: scheme.stencil5(a.dtype))
        return torch.from_numpy(compiled(serial).stencil5_run(a, x, y, *consts, steps))
    f = _kernel(scheme, a.dtype, serial)
    f(a, x)
    for _ in range(steps - 1):
        f(x, y)
        x, y = y, x
    return torch.from_numpy(x)


def bind(kernel: Callable, *args: Any) -> Callable[[np.ndarray, np.ndarray], None]:
    """``f(a, out)`` = ``kernel(a, out, *args)``."""
    def f(a: np.ndarray, out: np.ndarray) -> None:
        kernel(a, out, *args)

    return f


def bc_array(b: Boundary, h: float) -> np.ndarray:
    """``(periodic, a, b)`` of one axis for the kernels (ghost = a * u_edge + b when not periodic)."""
    return np.array([1.0, 0.0, 0.0] if b.periodic else [0.0, *b.ghost(h)])


def constants(values: Sequence[float], bcs: Boundaries, spacing: tuple[float, float], dtype: np.dtype) -> tuple:
    """(coefficients in ``dtype``, y boundary, x boundary) as the kernels take them."""
    return np.array(values, dtype=dtype), bc_array(bcs[0], spacing[0]), bc_array(bcs[1], spacing[1])


def five_point(centre: float, neighbours: dict[tuple[int, int], float]) -> list[float]:
    """(centre, S, N, W, E) coefficients from ``{(axis, offset): c}`` (axis 0 = y, 1 = x)."""
    return [centre, *(neighbours.get(k, 0.0) for k in ((0, -1), (0, 1), (1, -1), (1, 1)))]


STAGES = ((0.0, 1.0), (0.75, 0.25), (1.0 / 3.0, 2.0 / 3.0))  # SSP-RK3 stage k: out = α u0 + β (v + dt L(v))


def stage_constants(values: Sequence[float], bcs: Boundaries, spacing: tuple[float, float], dtype: np.dtype) -> list:
    """:func:`constants` of the three SSP-RK3 stages, ``(α, β, *values)`` each (see :data:`STAGES`)."""
    return [constants((a, b, *values), bcs, spacing, dtype) for a, b in STAGES]


def ssprk3(stage: Callable[[np.ndarray, np.ndarray, np.ndarray, int], None]) -> Callable[[np.ndarray, np.ndarray], None]:
    """``f(a, out)``: SSP-RK3 by three fused stages; ``stage(v, u0, dst, k)`` writes stage k's ``α u0 + β (v + dt L(v))``."""
    def f(a: np.ndarray, out: np.ndarray) -> None:
        u1, u2 = np.empty_like(a), np.empty_like(a)
        stage(a, a, u1, 0)
        stage(u1, a, u2, 1)
        stage(u2, a, out, 2)

    return f
