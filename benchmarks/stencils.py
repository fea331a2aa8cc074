"""Steps per second of gridvit's finite-difference schemes beside plain numpy and py-pde's numba backend.

For every scheme in ``gridvit.solvers``, at 128², 512² and 1024² with batch 1 and 16 (float64, periodic
unless said), times one ``step(u)`` call of:

- ``gridvit``: ``u = step.run(u, k)``, the multi-step runner ``simulate`` uses: the fused numba loop
  (:mod:`gridvit.solvers.fused`) for the explicit schemes, the torch step for the spectral/implicit ones;
- ``step``: ``u = step(u)`` called once per step (the same kernels plus ~5-10 µs of Python per call);
- ``torch``: the torch path of the fused schemes (forced with ``fused.torch_path()``; eager ops);
- ``numpy``: the same arithmetic written plainly with ``np.roll`` (or ``np.fft`` / ``np.matmul`` where the
  scheme is spectral), one array op per term — the baseline every stencil must at least match;
- ``py-pde``: py-pde's explicit Euler on its numba backend for the three schemes it shares (5-point
  diffusion, first-order upwind advection, Gray–Scott), timed inside its compiled loop (its best case;
  batch 1 only — py-pde evolves one field at a time, so batch 16 is 16 of those); at 128² and 1024²
  (each grid costs a 10-25 s numba compilation; ``--pypde-all-sizes`` adds 512²).

All three run on ``--threads`` threads (default 1: torch, numba, BLAS/OpenMP alike). On this shared
2-core machine two threads per process stall whenever another process holds a core (an OpenMP
barrier waits for the descheduled thread), which made 2-thread timings vary by 10-100×; one thread
each is the comparison that stays reproducible.

Before timing, each numpy step is checked against the torch step (one step, 1e-10 relative) and each
py-pde stepper against gridvit over 20 steps (1e-10 relative), so the rows compare the same arithmetic.
Variants of one configuration are timed in interleaved rounds (medians after warm-up); achieved
bandwidth is the compulsory traffic (read + write the state once per stage) over the median time,
beside the machine's measured copy bandwidth. The fused kernels' first-call cost is measured in fresh
processes, once with an empty numba cache (compilation) and once with it filled (loading).

    .venv/bin/python benchmarks/stencils.py                 # full run (~10 min here), writes benchmarks/results/
    .venv/bin/python benchmarks/stencils.py --quick         # 128² only, nothing written
    .venv/bin/python benchmarks/stencils.py --device cuda   # GPU: graph-captured runner (benchmarks/stencils_cuda.py)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)  # before numpy, torch and numba start their thread pools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import load_span, machine, median_time, write_results  # noqa: E402

import gridvit.solvers as gs  # noqa: E402
from gridvit.solvers import fused, pypde  # noqa: E402
from gridvit.solvers.spectral import LaplaceEigen, continuous_k2  # noqa: E402

SIZES, BATCHES = (128, 512, 1024), (1, 16)
ROUND_S = 0.05  # each timing sample runs whole steps for at least this long
ROUNDS = 5
PYPDE_SIZES = (128, 1024)  # py-pde compiles per grid (10-25 s each here): 512² only with --pypde-all-sizes
HEAVY_S = 1.5  # skip a (size, batch) config of a variant whose single step takes longer than this


# --- plain numpy versions: one np.roll / array op per term ---------------------------------------------

def roll(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a[i + dy, j + dx]`` on a periodic grid (a is (B, C, H, W))."""
    if dy:
        a = np.roll(a, -dy, axis=-2)
    if dx:
        a = np.roll(a, -dx, axis=-1)
    return a


def np_laplacian(a, dy, dx):
    return (roll(a, 1, 0) + roll(a, -1, 0) - 2 * a) / dy**2 + (roll(a, 0, 1) + roll(a, 0, -1) - 2 * a) / dx**2


def np_ssprk3(rhs, a, dt):
    a1 = a + dt * rhs(a)
    a2 = 0.75 * a + 0.25 * (a1 + dt * rhs(a1))
    return a / 3 + 2 / 3 * (a2 + dt * rhs(a2))


def np_heat_ftcs(s):
    return lambda a: a + s.diffusivity * s.dt * np_laplacian(a, s.dy, s.dx)


def np_fft_multiplier(mult: np.ndarray):
    return lambda a: np.fft.irfft2(np.fft.rfft2(a) * mult, s=a.shape[-2:])


def np_heat_spectral(s, shape):
    k2 = continuous_k2(shape, s.spacing, dtype=torch.float64, device="cpu").numpy()
    return np_fft_multiplier(np.exp(-s.diffusivity * s.dt * k2))


def np_heat_cn(s, shape):
    eig = LaplaceEigen(shape, s.spacing, s.bcs, dtype=torch.float64, device="cpu")
    qy, qx, lam = eig.qy.numpy(), eig.qx.numpy(), eig.eigenvalues.numpy()
    a2 = 0.5 * s.diffusivity * s.dt
    mult = (1 + a2 * lam) / (1 - a2 * lam)
    return lambda a: qy @ ((qy.T @ a @ qx) * mult) @ qx.T


def np_upwind(s):
    cx, cy = s.vx * s.dt / s.dx, s.vy * s.dt / s.dy  # both > 0 here
    return lambda a: a - cx * (a - roll(a, 0, -1)) - cy * (a - roll(a, -1, 0))


def np_lax_wendroff(s):
    cx, cy = s.vx * s.dt / s.dx, s.vy * s.dt / s.dy

    def sweep(a, c, oy, ox):
        e, w = roll(a, oy, ox), roll(a, -oy, -ox)
        return a - 0.5 * c * (e - w) + 0.5 * c * c * (e - 2 * a + w)

    return lambda a: sweep(sweep(a, cx, 0, 1), cy, 1, 0)


def np_burgers(s, upwind: bool):
    def rhs(a):
        u, v = a[:, 0:1], a[:, 1:2]
        e, w, n, so = roll(a, 0, 1), roll(a, 0, -1), roll(a, 1, 0), roll(a, -1, 0)
        if upwind:
            adv = u * np.where(u > 0, a - w, e - a) / s.dx + v * np.where(v > 0, a - so, n - a) / s.dy
        else:
            adv = u * (e - w) / (2 * s.dx) + v * (n - so) / (2 * s.dy)
        lap = (e + w - 2 * a) / s.dx**2 + (n + so - 2 * a) / s.dy**2
        return s.viscosity * lap - adv

    return lambda a: np_ssprk3(rhs, a, s.dt)


def np_gray_scott_reaction(s, a):
    u, v = a[:, 0:1], a[:, 1:2]
    uv2 = u * v * v
    return np.concatenate([-uv2 + s.feed * (1 - u), uv2 - (s.feed + s.kill) * v], axis=1)


def np_gray_scott_explicit(s):
    d = np.array([s.du, s.dv]).reshape(1, 2, 1, 1)
    return lambda a: a + s.dt * (d * np_laplacian(a, s.dy, s.dx) + np_gray_scott_reaction(s, a))


def np_gray_scott_imex(s, shape):
    eig = LaplaceEigen(shape, s.spacing, s.bcs, dtype=torch.float64, device="cpu")
    d = np.array([s.du, s.dv]).reshape(2, 1, 1)
    inv = 1.0 / (1.0 - s.dt * d * eig.eigenvalues.numpy())
    return lambda a: np.fft.irfft2(np.fft.rfft2(a + s.dt * np_gray_scott_reaction(s, a)) * inv, s=a.shape[-2:])


def np_navier_stokes(s, shape):
    k2 = continuous_k2(shape, s.spacing, dtype=torch.float64, device="cpu").numpy()
    k2[0, 0] = 1.0
    inv = 1.0 / k2
    inv[0, 0] = 0.0
    c = 1.0 / (12 * s.dx * s.dy)

    def rhs(w):
        p = np.fft.irfft2(np.fft.rfft2(w) * inv, s=w.shape[-2:])
        pe, pw, pn, ps = roll(p, 0, 1), roll(p, 0, -1), roll(p, 1, 0), roll(p, -1, 0)
        we, ww, wn, ws = roll(w, 0, 1), roll(w, 0, -1), roll(w, 1, 0), roll(w, -1, 0)
        pne, pnw, pse, psw = roll(p, 1, 1), roll(p, 1, -1), roll(p, -1, 1), roll(p, -1, -1)
        wne, wnw, wse, wsw = roll(w, 1, 1), roll(w, 1, -1), roll(w, -1, 1), roll(w, -1, -1)
        j = (pe - pw) * (wn - ws) - (pn - ps) * (we - ww)
        j += pe * (wne - wse) - pw * (wnw - wsw) - pn * (wne - wnw) + ps * (wse - wsw)
        j += wn * (pne - pnw) - ws * (pse - psw) - we * (pne - pse) + ww * (pnw - psw)
        return c * j + s.viscosity * np_laplacian(w, s.dy, s.dx)

    return lambda w: np_ssprk3(rhs, w, s.dt)


# --- the cases -----------------------------------------------------------------------------------------

@dataclass
class Case:
    """One scheme: how to build it on an n×n unit (or 2π) grid, its state, numpy twin and stage count."""

    name: str
    make: Callable[[int], gs.Scheme]
    channels: int
    numpy: Callable[[gs.Scheme, tuple[int, int]], Callable[[np.ndarray], np.ndarray]]
    stages: int = 1
    pypde: bool = False
    extent: float = 1.0
    state: str = "grf"


def _h(n: int, extent: float = 1.0) -> dict:
    return {"dx": extent / n, "dy": extent / n}


CASES = [
    Case("heat/ftcs", lambda n: gs.HeatFTCS(dt=0.2 / n**2, diffusivity=1.0, **_h(n)), 1,
         lambda s, sh: np_heat_ftcs(s), pypde=True),
    Case("heat/spectral", lambda n: gs.HeatSpectral(dt=1e-3, diffusivity=1.0, **_h(n)), 1, np_heat_spectral),
    Case("heat/crank_nicolson (neumann)", lambda n: gs.HeatCrankNicolson(dt=1e-3, diffusivity=1.0, bc="neumann", **_h(n)), 1,
         np_heat_cn),
    Case("advection/upwind", lambda n: gs.AdvectionUpwind(dt=0.5 / n, vx=0.6, vy=0.4, **_h(n)), 1,
         lambda s, sh: np_upwind(s), pypde=True),
    Case("advection/lax_wendroff", lambda n: gs.AdvectionLaxWendroff(dt=0.5 / n, vx=0.6, vy=0.4, **_h(n)), 1,
         lambda s, sh: np_lax_wendroff(s)),
    Case("burgers/upwind", lambda n: gs.BurgersUpwind(dt=0.1 / n, viscosity=1.0 / n, **_h(n)), 2,
         lambda s, sh: np_burgers(s, True), stages=3),
    Case("burgers/central", lambda n: gs.BurgersCentral(dt=0.1 / n, viscosity=1.0 / n, **_h(n)), 2,
         lambda s, sh: np_burgers(s, False), stages=3),
    Case("gray_scott/explicit", lambda n: gs.GrayScottExplicit(dt=0.5, **_h(n, 2.5)), 2,
         lambda s, sh: np_gray_scott_explicit(s), pypde=True, extent=2.5, state="spots"),
    Case("gray_scott/imex", lambda n: gs.GrayScottIMEX(dt=1.0, **_h(n, 2.5)), 2, np_gray_scott_imex,
         extent=2.5, state="spots"),
    Case("navier_stokes/arakawa", lambda n: gs.NavierStokesArakawa(dt=0.5 / n, viscosity=1e-3, **_h(n, 2 * math.pi)), 1,
         np_navier_stokes, stages=3, extent=2 * math.pi),
]


def initial_state(case: Case, n: int, batch: int) -> torch.Tensor:
    """(B, C, n, n) float64 state: a seeded random field (scaled to a stable size) or Gray–Scott spots."""
    if case.state == "spots":
        return gs.gray_scott_spots((n, n), samples=batch, seed=0)
    u = gs.gaussian_random_field((n, n), (case.extent, case.extent), samples=batch, channels=case.channels, seed=0)
    return 0.25 * u if case.channels == 2 else u


def scheme_for(case: Case, n: int) -> gs.Scheme:
    s = case.make(n)
    if isinstance(s, gs.GrayScottExplicit):  # keep the explicit diffusion number stable at every size
        s = s.with_dt(min(s.dt, 0.4 / s.rate(None)))
    return s


# --- timing --------------------------------------------------------------------------------------------

def multi_runner(scheme: gs.Scheme, state: torch.Tensor) -> Callable[[int], None]:
    """``run(k)``: advance a private copy of ``state`` by ``scheme.run(u, k)``."""
    box = [state]

    def run(k: int) -> None:
        box[0] = scheme.run(box[0], k)

    return run


def runner(step: Callable, state, *, torch_path: bool = False) -> Callable[[int], None]:
    """``run(k)``: advance a private copy of ``state`` by k steps (on the forced torch path if asked)."""
    box = [state]

    def run(k: int) -> None:
        for _ in range(k):
            box[0] = step(box[0])

    def run_torch(k: int) -> None:
        with fused.torch_path():
            run(k)

    return run_torch if torch_path else run


COMPILE_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import torch
import gridvit.solvers as gs
torch.set_num_threads(1)
out = {"import_s": time.perf_counter() - t0}
for scheme, c in [(gs.HeatFTCS(dt=1e-5, dx=0.1, dy=0.1), 1), (gs.BurgersUpwind(dt=1e-3, dx=0.1, dy=0.1), 2),
                  (gs.GrayScottExplicit(dt=0.1, dx=0.1, dy=0.1), 2), (gs.NavierStokesArakawa(dt=1e-3, dx=0.1, dy=0.1), 1)]:
    u = torch.rand(1, c, 16, 16, dtype=torch.float64)
    t0 = time.perf_counter()
    scheme(u)
    out[scheme.label] = time.perf_counter() - t0
print(json.dumps(out))
"""


def compile_cost() -> dict[str, dict[str, float]]:
    """First-call seconds of four fused kernels (float64) in fresh processes: with an empty numba cache
    directory (compiling) and then with the cache it left (loading)."""
    import json
    import subprocess
    import tempfile

    root = str(Path(__file__).resolve().parents[1])
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": root}
        for label in ("cold", "cached"):
            done = subprocess.run([sys.executable, "-c", COMPILE_PROBE], env=env, capture_output=True, text=True,
                                  check=True, timeout=600)
            out[label] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def pypde_runner(scheme: gs.Scheme, u: torch.Tensor, check: bool) -> Callable[[int], None]:
    """py-pde's compiled Euler loop for ``scheme`` from sample 0 of ``u``; checked against gridvit if asked."""
    t0 = time.perf_counter()
    advance, current = pypde.stepper(scheme, u[0].numpy(), backend="numba")
    advance(1)
    compile_s = time.perf_counter() - t0
    if check:
        ref = u[:1]
        for _ in range(21):
            ref = scheme(ref)
        advance(20)
        err = float(np.abs(current() - ref[0].numpy()).max() / float(ref.abs().max()))
        assert err < 1e-10, f"py-pde disagrees with gridvit on {scheme.label}: {err:.2e}"
    print(f"    py-pde compiled in {compile_s:.1f} s", flush=True)
    return advance


def time_variants(runs: dict[str, Callable[[int], None]], estimate: dict[str, float]) -> dict[str, dict]:
    """Median seconds per step of each variant, in interleaved rounds after a warm-up step.

    A variant whose step is estimated (from batch 1) or measured to take over HEAVY_S is skipped.
    """
    single, plan, out = {}, {}, {}
    for name, run in runs.items():
        if estimate.get(name, 0.0) > HEAVY_S:
            out[name] = {"skipped": f"one step would take ~{estimate[name]:.1f} s (16 × batch 1; budget {HEAVY_S} s)"}
            continue
        t0 = time.perf_counter()
        run(1)
        single[name] = time.perf_counter() - t0
        if single[name] > HEAVY_S:
            out[name] = {"skipped": f"one step took {single[name]:.1f} s (budget {HEAVY_S} s)"}
        else:
            plan[name] = max(1, math.ceil(ROUND_S / max(single[name], 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in plan}
    rounds = ROUNDS if max([single[n] for n in plan], default=0.0) < 0.2 else 3
    for _ in range(rounds):
        for name, k in plan.items():
            samples[name].append(median_time(lambda: runs[name](k), warmup=0, repeats=1)["median_s"] / k)
    for name, ts in samples.items():
        out[name] = {"median_s": statistics.median(ts), "min_s": min(ts), "steps_per_call": plan[name], "rounds": rounds}
    return out


def copy_bandwidth() -> dict[str, float]:
    """GB/s of a 128 MB float64 copy (read + write) with torch and numpy."""
    src = torch.rand(16 * 1024 * 1024, dtype=torch.float64)
    dst = torch.empty_like(src)
    a, b = src.numpy(), dst.numpy()
    nbytes = 2 * src.numel() * 8
    t_torch = median_time(lambda: dst.copy_(src), warmup=2, repeats=7)["median_s"]
    t_numpy = median_time(lambda: np.copyto(b, a), warmup=2, repeats=7)["median_s"]
    return {"torch_GBs": nbytes / t_torch / 1e9, "numpy_GBs": nbytes / t_numpy / 1e9}


def bench_case(case: Case, n: int, batch: int, *, check: bool, estimate: dict[str, float], pypde_sizes) -> list[dict]:
    scheme = scheme_for(case, n)
    u = initial_state(case, n, batch)
    scheme.check(u)
    np_step = case.numpy(scheme, (n, n))
    if check:  # the numpy twin computes the same step
        ref, got = scheme(u).numpy(), np_step(u.numpy())
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        assert err < 1e-10, f"numpy twin of {case.name} disagrees: {err:.2e}"
    runs = {"gridvit": multi_runner(scheme, u.clone())}
    if scheme.has_fused:
        scheme.run(u, 2)  # load the kernels (and start numba's threads) before time_variants sizes its rounds
        runs["step"] = runner(scheme, u.clone())
        runs["torch"] = runner(scheme, u.clone(), torch_path=True)
        if check:
            with fused.torch_path():
                ref = scheme(u)
            assert float((scheme(u) - ref).abs().max()) <= 1e-12 * float(ref.abs().max()), f"fused {case.name} disagrees"
    runs["numpy"] = runner(np_step, u.numpy().copy())
    if case.pypde and batch == 1 and n in pypde_sizes:
        runs["py-pde"] = pypde_runner(scheme, u, check)
    timed = time_variants(runs, estimate)
    nbytes = 2 * u.numel() * u.element_size() * case.stages
    rows = []
    for impl, r in timed.items():
        row = {"case": case.name, "n": n, "batch": batch, "impl": impl, **r}
        if "median_s" in r:
            row.update(steps_per_s=1.0 / r["median_s"], us_per_step=1e6 * r["median_s"],
                       compulsory_bytes=nbytes, achieved_GBs=nbytes / r["median_s"] / 1e9)
        rows.append(row)
    return rows


NOTES = """## Notes

- ``gridvit`` is ``step.run(u, k)``, the runner ``simulate`` uses: for the explicit schemes the fused path,
  one compiled numba loop per step (per SSP-RK3 stage for Burgers and Navier–Stokes, whose ψ still comes
  from torch's FFT) with the boundary handling inside it and threads over the batch, writing into two
  buffers in turn. ``step`` is ``u = step(u)`` per call: the same kernels plus the per-call Python
  (argument checks, a fresh output array, which on large states also pays first-touch page faults).
  ``torch`` is the same step through eager torch ops (the path autograd and GPUs take): a handful of
  small ops per stage at ~2-7 µs of dispatch each, which is what kept it behind py-pde on small grids.
- The 5-point kernel reads the neighbour rows in place and handles the two edge columns apart, so the
  interior is a plain vectorised sweep; the nonlinear kernels keep a ring of three padded rows (ghost
  cells included) per field. A first 5-point kernel that padded every row as well was ~1.5× slower at
  128² (16 vs 11 µs a step on a quiet machine).
- Spectral, Crank–Nicolson and IMEX steps stay on torch (FFTs and small matrix products): their rows
  have no step/torch columns, and their ``gridvit`` time is the torch step in a loop.
- % of copy: the compulsory traffic over the better of the two copy bandwidths measured at the start
  of the run (on 128 MB, from memory). States up to a few MB (up to 1024² at batch 1 here, 8 MB) stay in
  the CPU's caches between steps, so those rows can exceed 100 %; batch-16 rows at 512² and 1024²
  (32-128 MB) stream from memory and are the ones to read against the copy bandwidth.
- Single rows of the large batch-16 configurations (few rounds of seconds-long steps) moved by 2× between
  identical calls on this shared machine (e.g. burgers 1024² b16 ``gridvit`` vs ``step``, the same
  kernels); the small-grid rows come from many short rounds and are steadier.
- Threads: with two threads per process on this shared 2-core machine, MKL's threaded FFTs and OpenMP
  regions stalled 10-100× whenever another process held a core, so everything runs on one thread.
"""


# --- report --------------------------------------------------------------------------------------------

def _row(rows: list[dict], case: str, n: int, b: int, impl: str) -> dict | None:
    for r in rows:
        if (r["case"], r["n"], r["batch"], r["impl"]) == (case, n, b, impl) and "median_s" in r:
            return r
    return None


def _us(rows: list[dict], case: str, n: int, b: int, impl: str) -> float | None:
    r = _row(rows, case, n, b, impl)
    return None if r is None else r["us_per_step"]


def _fmt(x: float | None, spec: str = ".0f") -> str:
    return "—" if x is None else format(x, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if (a is None or b is None) else a / b


def compile_lines(cost: dict) -> list[str]:
    """Markdown lines of the first-call cost of the fused kernels."""
    labels = [k for k in cost["cold"] if k != "import_s"]
    lines = ["", "## First call of the fused kernels (fresh process, float64, 16²)", "",
             "| kernel | empty numba cache: compile s | cache filled: load s |", "|---|---|---|"]
    lines += [f"| {k} | {cost['cold'][k]:.2f} | {cost['cached'][k]:.2f} |" for k in labels]
    lines += ["", f"`import gridvit.solvers` took {cost['cold']['import_s']:.2f} s / {cost['cached']['import_s']:.2f} s. "
              "numba caches compiled kernels on disk (next to `gridvit/solvers/fused/kernels.py`, else its user cache "
              "directory), one entry per kernel and dtype, so compilation is paid once per machine and checkout; "
              "the first call of later processes only loads (numba's import and threading start-up included)."]
    return lines


def markdown(rows: list[dict], bandwidth: dict, sizes, seconds: float, load: dict, cost: dict | None) -> tuple[str, dict]:
    """The results table (µs per step, speed-ups measured in the same run) and the goal summary."""
    lines = [
        "# Stencil benchmark: gridvit (fused / torch path) vs plain numpy (np.roll) vs py-pde (numba)",
        "",
        f"µs per step (median, float64, periodic unless said, {torch.get_num_threads()} thread(s) each). gridvit: "
        "`step.run(u, k)` (the fused numba loop for the explicit schemes; the torch step for the others); "
        "step: `u = step(u)` per step; torch: the torch path of the fused schemes. Speed-up = other's time / gridvit's time (> 1: gridvit "
        "faster). py-pde is timed inside its compiled loop, batch 1 only. Bandwidth: compulsory traffic "
        "(read + write the state per stage) / gridvit's time; machine copy bandwidth "
        f"{bandwidth['torch_GBs']:.1f} GB/s (torch), {bandwidth['numpy_GBs']:.1f} GB/s (numpy).",
        "",
        "| scheme | grid | batch | gridvit µs | step µs | torch µs | numpy µs | py-pde µs | vs torch | vs numpy | vs py-pde | GB/s | % of copy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    goals: dict[str, list] = {"vs_numpy": [], "vs_pypde": [], "heat_bandwidth": []}
    copy = max(bandwidth["torch_GBs"], bandwidth["numpy_GBs"])
    for case in CASES:
        for n in sizes:
            for b in BATCHES:
                g, one, t, npy, pp = (_us(rows, case.name, n, b, i) for i in ("gridvit", "step", "torch", "numpy", "py-pde"))
                if g is None and npy is None:
                    continue
                st, sn, sp = _ratio(t, g), _ratio(npy, g), _ratio(pp, g)
                gbs = None if g is None else _row(rows, case.name, n, b, "gridvit")["achieved_GBs"]
                pct = None if gbs is None else 100 * gbs / copy
                if sn is not None:
                    goals["vs_numpy"].append((case.name, n, b, sn))
                if sp is not None:
                    goals["vs_pypde"].append((case.name, n, b, sp))
                if case.name == "heat/ftcs" and n == 1024 and pct is not None:
                    goals["heat_bandwidth"].append((case.name, n, b, pct))
                lines.append(f"| {case.name} | {n}² | {b} | {_fmt(g)} | {_fmt(one)} | {_fmt(t)} | {_fmt(npy)} | {_fmt(pp)} | "
                             f"{_fmt(st, '.2f')} | {_fmt(sn, '.2f')} | {_fmt(sp, '.2f')} | {_fmt(gbs, '.1f')} | {_fmt(pct, '.0f')} |")
    skipped = [f"{r['case']} {r['n']}² batch {r['batch']} {r['impl']}: {r['skipped']}" for r in rows if "skipped" in r]
    slow = [f"{c} {n}² b{b} ({s:.2f}×)" for c, n, b, s in goals["vs_numpy"] if s < 1.0]
    lines += ["", "## Goals", "",
              f"- at least as fast as numpy: met in {len(goals['vs_numpy']) - len(slow)} of {len(goals['vs_numpy'])} "
              "configurations" + ("" if not slow else "; not met: " + ", ".join(slow)),
              "- ≥ 1.5× py-pde (batch 1): " + ", ".join(f"{c} {n}² {s:.2f}×" for c, n, b, s in goals["vs_pypde"]),
              "- heat/ftcs at 1024² ≥ 50 % of the copy bandwidth (the better of torch's and numpy's): "
              + ", ".join(f"batch {b} {p:.0f} %" for c, n, b, p in goals["heat_bandwidth"])]
    if cost:
        lines += compile_lines(cost)
    lines += ["", NOTES.rstrip()]
    if skipped:
        lines += ["", "Skipped (time budget): " + "; ".join(skipped)]
    lines += ["", f"Total run time {seconds:.0f} s. Load average (1, 5, 15 min) at start {load['start']}, at end "
              f"{load['end']} on {os.cpu_count()} cores: other processes share this machine, so absolute times "
              "vary between runs; the ratios come from interleaved rounds of the same run."]
    return "\n".join(lines), goals


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md: ≥ numpy everywhere; ≥ 1.5× py-pde; heat bandwidth; compile cost."""
    goals = result["goals"]
    vs_np, vs_pp, bw = goals["vs_numpy"], goals["vs_pypde"], goals.get("heat_bandwidth", [])
    slow = [f"{c} {n}² b{b} {s:.2f}×" for c, n, b, s in vs_np if s < 1.0]
    rows = [
        {"result": "solver step speed vs plain numpy (np.roll), all schemes/sizes/batches",
         "value": f"≥ numpy in {len(vs_np) - len(slow)}/{len(vs_np)}; min {min(s for *_, s in vs_np):.2f}×"
                  + (f" ({'; '.join(slow)})" if slow else ""), "goal": "≥ 1× everywhere", "met": not slow},
        {"result": "solver step speed vs py-pde (numba), batch 1",
         "value": ", ".join(f"{c} {n}² {s:.2f}×" for c, n, b, s in vs_pp), "goal": "≥ 1.5×",
         "met": all(s >= 1.5 for *_, s in vs_pp)},
    ]
    if bw:
        rows.append({"result": "heat/ftcs 1024² achieved bandwidth, % of copy bandwidth",
                     "value": ", ".join(f"batch {b}: {p:.0f} %" for c, n, b, p in bw), "goal": "≥ 50 %",
                     "met": all(p >= 50 for *_, p in bw)})
    if result.get("compile_cost"):
        cold, cached = result["compile_cost"]["cold"], result["compile_cost"]["cached"]
        keys = [k for k in cold if k != "import_s"]
        rows.append({"result": "fused kernels' first call (compile / from the disk cache)",
                     "value": f"{sum(cold[k] for k in keys):.1f} s / {sum(cached[k] for k in keys):.2f} s for {len(keys)} kernels",
                     "goal": "", "met": None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="128² only, nothing written")
    parser.add_argument("--cases", nargs="*", help="substrings of the case names to run (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch, numba and BLAS (default 1)")
    parser.add_argument("--pypde-all-sizes", action="store_true", help="also time py-pde at 512² (+3 compilations)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: the graph-captured runner on the GPU (benchmarks/stencils_cuda.py)")
    args = parser.parse_args()
    if args.device == "cuda":
        from stencils_cuda import main as cuda_main

        cuda_main(quick=args.quick)
        return
    pypde_sizes = SIZES if args.pypde_all_sizes else PYPDE_SIZES
    torch.set_num_threads(args.threads)
    import pde

    pde.config["backend.numba.multithreading"] = "never" if args.threads == 1 else "always"
    sizes = (128,) if args.quick else SIZES
    cases = [c for c in CASES if not args.cases or any(s in c.name for s in args.cases)]
    t_start, load_start = time.perf_counter(), os.getloadavg()
    print(machine(), flush=True)
    bandwidth = copy_bandwidth()
    cost = None if args.quick else compile_cost()
    if cost:
        print("fused first call (compile / cached):", cost, flush=True)
    rows: list[dict] = []
    for case in cases:
        for n in sizes:
            for b in BATCHES:
                print(f"{case.name} {n}² batch {b}", flush=True)
                estimate = {r["impl"]: b * r["median_s"] for r in rows
                            if (r["case"], r["n"], r["batch"]) == (case.name, n, 1) and "median_s" in r}
                rows += bench_case(case, n, b, check=(b == 1), estimate=estimate, pypde_sizes=pypde_sizes)
                for r in rows[-5:]:
                    if (r["case"], r["n"], r["batch"]) == (case.name, n, b):
                        print(f"    {r['impl']:8s} {_fmt(r.get('us_per_step'), '10.1f')} µs/step {r.get('skipped', '')}", flush=True)
    seconds = time.perf_counter() - t_start
    load = load_span(load_start)
    md, goals = markdown(rows, bandwidth, sizes, seconds, load, cost)
    print(md)
    if not args.quick and not args.cases:
        payload = {"sizes": list(sizes), "batches": list(BATCHES), "dtype": "float64", "threads": args.threads,
                   "copy_bandwidth": bandwidth, "load_average": load, "pypde_sizes": list(pypde_sizes),
                   "compile_cost": cost, "rows": rows, "goals": goals, "seconds": seconds}
        write_results("stencils", payload, md)


if __name__ == "__main__":
    main()
