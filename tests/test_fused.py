"""The fused CPU path (numba) equals the torch path; scheme.run(u, n) equals n steps; the path switches."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import gridvit.solvers as gs
from gridvit.solvers import fused, runner

pytestmark = pytest.mark.usefixtures("one_thread")

H, W = 11, 13  # odd, unequal
DX, DY = 1.0 / W, 0.8 / H  # dx != dy
BCS = ["periodic", "dirichlet", "neumann", ("dirichlet", "periodic"), {"y": "neumann", "x": "dirichlet"}]


def bounded_schemes(bc) -> list[gs.Scheme]:
    kw = {"bc": bc} if bc == "periodic" else {"bc": bc, "bc_value": 0.3}
    h = {"dx": DX, "dy": DY}
    return [
        gs.HeatFTCS(dt=1e-4, diffusivity=0.1, **h, **kw),
        gs.AdvectionUpwind(dt=1e-2, vx=1.0, vy=-0.5, **h, **kw),
        gs.AdvectionUpwind(dt=1e-2, vx=-0.7, vy=0.6, **h, **kw),
        gs.AdvectionLaxWendroff(dt=1e-2, vx=1.0, vy=-0.5, **h, **kw),
        gs.AdvectionLaxWendroff(dt=1e-2, vx=0.0, vy=0.5, **h, **kw),
        gs.BurgersUpwind(dt=1e-3, viscosity=0.01, **h, **kw),
        gs.BurgersCentral(dt=1e-3, viscosity=0.05, **h, **kw),
        gs.GrayScottExplicit(dt=0.5, du=2e-5, dv=1e-5, **h, **kw),
    ]


def navier_stokes() -> list[gs.Scheme]:
    h = {"dx": 2 * math.pi / W, "dy": 1.7 * math.pi / H}
    return [gs.NavierStokesArakawa(dt=1e-2, viscosity=1e-2, drag=0.1, forcing=0.5, **h),
            gs.NavierStokesCentral(dt=1e-2, viscosity=1e-3, **h)]


FUSED = ([s for bc in BCS for s in bounded_schemes(bc)] + navier_stokes()
         + [gs.BurgersUpwind3(dt=1e-3, dx=DX, dy=DY, viscosity=0.01)])  # periodic only


def state(scheme: gs.Scheme, batch: int = 3, seed: int = 0) -> torch.Tensor:
    """A (batch, C, H, W) float64 state of mixed sign (Burgers: both wind directions)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, scheme.channels or 2, H, W, dtype=torch.float64, generator=g)
    return 0.3 * u.abs() if scheme.pde == "gray_scott" else u


def label(s: gs.Scheme) -> str:
    return f"{s.label}[{s.params().get('bc', '')}]"


@pytest.mark.parametrize("scheme", FUSED, ids=label)
def test_fused_equals_torch_path(scheme):
    u = state(scheme)
    assert fused.eligible(u) and scheme.has_fused
    got = scheme(u)
    with fused.torch_path():
        assert not fused.eligible(u)
        ref = scheme(u)
    assert got.shape == ref.shape and got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    # float32 runs in float32 on both paths: equal to float32 rounding
    got32 = scheme(u.float())
    with fused.torch_path():
        ref32 = scheme(u.float())
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32, ref32, rtol=1e-5, atol=1e-5)


def test_upwind3_on_the_smallest_grid_and_refusing_bounded_boundaries():
    # 3×3, the smallest grid a step takes: two ghost cells wrap more than once per side on both paths
    scheme = gs.BurgersUpwind3(dt=1e-3, dx=0.3, dy=0.2, viscosity=0.01)
    u = torch.randn(2, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with fused.torch_path():
        ref = scheme(u)
    torch.testing.assert_close(scheme(u), ref, rtol=1e-12, atol=1e-12)
    for bc in ("dirichlet", ("periodic", "neumann")):
        with pytest.raises(ValueError, match="periodic boundaries on both axes"):
            gs.BurgersUpwind3(dt=1e-3, dx=0.1, dy=0.1, bc=bc)
    with pytest.raises(ValueError, match="2 ghost cells need periodic"):
        gs.pad(u, gs.boundaries("neumann"), (0.1, 0.1), 2)


def test_fused_many_steps_and_non_contiguous_input():
    scheme = gs.BurgersUpwind(dt=1e-3, dx=DX, dy=DY, viscosity=0.01, bc="neumann")
    u = state(scheme)
    view = u.transpose(0, 1).contiguous().transpose(0, 1)  # same values, channel-major memory
    assert not view.is_contiguous()
    got = scheme.run(view, 20)
    with fused.torch_path():
        ref = scheme.run(u, 20)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scheme", [
    gs.HeatSpectral(dt=1e-3, dx=DX, dy=DY), gs.HeatCrankNicolson(dt=1e-3, dx=DX, dy=DY, bc="neumann"),
    gs.GrayScottIMEX(dt=0.5, dx=DX, dy=DY)], ids=label)
def test_spectral_schemes_stay_on_torch(scheme):
    assert not scheme.has_fused


def test_grad_takes_the_torch_path():
    scheme = gs.HeatFTCS(dt=1e-4, dx=DX, dy=DY, diffusivity=0.1, bc="dirichlet")
    u = state(scheme).requires_grad_(True)
    assert not fused.eligible(u)
    out = scheme(u)
    assert out.requires_grad  # recorded by autograd
    with torch.no_grad():
        assert fused.eligible(u)
        fast = scheme(u)
    assert not fast.requires_grad
    torch.testing.assert_close(fast, out.detach(), rtol=1e-12, atol=1e-12)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch (and so the fused path) at ``n`` threads within the block; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def needs_two_numba_threads():
    from numba import config

    if config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here (NUMBA_NUM_THREADS=1): the fused path is always serial")


SERIAL_CHILD = """
import multiprocessing, os, numba, torch
import gridvit.solvers as gs
from gridvit.solvers import fused
from numba.np.ufunc import parallel

torch.set_num_threads(1)
u = torch.randn(3, 2, 11, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
for scheme in (gs.HeatFTCS(dt=1e-4, dx=0.1, dy=0.1, bc="neumann"), gs.BurgersUpwind(dt=1e-3, dx=0.1, dy=0.1)):
    got = scheme.run(u, 3), scheme(u)  # HeatFTCS.run: the compiled loop over steps (stencil5_run)
    with fused.torch_path():
        ref = scheme.run(u, 3), scheme(u)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
assert not parallel._is_initialized, "numba's threading layer was launched"
assert torch.get_num_threads() == 1 and fused._state["pid"] == 0


def child(queue):
    queue.put((fused.eligible(u), scheme.run(u, 3).numpy()))


ctx = multiprocessing.get_context("fork")  # safe: no OpenMP threads to lose
queue = ctx.Queue()
proc = ctx.Process(target=child, args=(queue,))
proc.start()
eligible, got = queue.get(timeout=60)
proc.join(60)
assert proc.exitcode == 0 and eligible
torch.testing.assert_close(torch.from_numpy(got), scheme.run(u, 3), rtol=0, atol=0)

# two threads, numba's pool of three: threaded kernels, and torch keeps its two threads
torch.set_num_threads(2)
torch.testing.assert_close(scheme.run(u, 3), ref[0], rtol=1e-12, atol=1e-12)
assert parallel._is_initialized and fused._state["pid"] == os.getpid()
assert (torch.get_num_threads(), numba.get_num_threads()) == (2, 2)
print("ok")
"""


def test_one_thread_never_launches_numba_threads():
    """At one torch thread the fused path runs the serial twins: numba's threading layer (OpenMP, whose idle
    workers spin) is never launched, torch keeps one thread, results equal the torch path, and a fork is safe.
    Then at two threads (numba's pool of three) the threaded kernels run and torch keeps two threads. In a
    fresh process, so that no earlier test's threads count."""
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    env["NUMBA_NUM_THREADS"] = "3"
    done = subprocess.run([sys.executable, "-c", SERIAL_CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split()[-1:] == ["ok"], done.stderr[-2000:]


def test_numba_threads_follow_torch_above_one():
    import numba

    needs_two_numba_threads()
    scheme = gs.HeatFTCS(dt=1e-4, dx=DX, dy=DY)
    with torch_threads(2):
        scheme(state(scheme))
        assert numba.get_num_threads() == 2 and torch.get_num_threads() == 2
        assert fused._state["pid"] == os.getpid()  # the pool runs: a forked child must not use it
    scheme(state(scheme))  # back at one thread: the serial twin, bound under its own key
    assert {k[2] for k in scheme._cache if k[0] == "fused"} == {False, True}


def test_jit_without_a_writable_cache(monkeypatch):
    """Where numba cannot cache (no writable directory), the kernel compiles per process, silently."""
    from numba import prange

    from gridvit.solvers.fused import jit as jit_module

    real = jit_module.njit

    def njit(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return real(**options)

    monkeypatch.setattr(jit_module, "njit", njit)

    def add_one(x):
        for i in prange(x.shape[0]):
            x[i] += 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = jit_module.jit(add_one)
    x = torch.zeros(4, dtype=torch.float64).numpy()
    f(x)
    assert x.tolist() == [1.0] * 4


def _run_in_child(scheme, u, queue):
    queue.put((fused.eligible(u), scheme.run(u, 3).numpy()))


def test_fused_kernels_work_in_a_child_forked_after_threads():
    """A process forked after the parent ran threaded kernels steps correctly: numba's OpenMP threads do not
    survive a fork (the child would be terminated), so the child takes the torch path. (A parent that only
    ran serial kernels forks safely: test_one_thread_never_launches_numba_threads.)"""
    import multiprocessing

    needs_two_numba_threads()
    scheme = gs.HeatFTCS(dt=1e-4, dx=DX, dy=DY, diffusivity=0.1)
    u = state(scheme, batch=4)
    with torch_threads(2), torch.no_grad():
        ref = scheme.run(u, 3)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run_in_child, args=(scheme, u, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    eligible, got = queue.get(timeout=5)
    assert not eligible and fused.eligible(u)
    torch.testing.assert_close(torch.from_numpy(got), ref, rtol=1e-12, atol=1e-12)


# --- scheme.run(u, steps) ---------------------------------------------------------------------------

RUN_CASES = [FUSED[0], FUSED[5], gs.HeatSpectral(dt=1e-3, dx=DX, dy=DY), FUSED[-1]]


@pytest.mark.parametrize("scheme", RUN_CASES, ids=label)
def test_run_equals_repeated_steps(scheme):
    u = state(scheme, batch=2)
    ref = u
    for _ in range(5):
        ref = scheme(ref)
    got = scheme.run(u, 5)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    same = scheme.run(u, 0)
    assert torch.equal(same, u) and same.data_ptr() != u.data_ptr()


@pytest.mark.parametrize("scheme", [s for s in RUN_CASES if s.has_fused] + [FUSED[3], FUSED[7]], ids=label)
def test_serial_and_threaded_kernels_agree(scheme):
    """The serial twins (one thread) and the threaded kernels (two) give the same steps, float64: the 5-point
    step and its compiled loop over steps (heat, Lax–Wendroff), Burgers, Navier–Stokes, Gray–Scott."""
    needs_two_numba_threads()
    u = state(scheme, batch=4)
    serial = scheme.run(u, 3), scheme(u)
    with torch_threads(2):
        threaded = scheme.run(u, 3), scheme(u)
    for a, b in zip(serial, threaded):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_run_records_autograd_on_cpu():
    scheme = gs.HeatFTCS(dt=1e-4, dx=DX, dy=DY, diffusivity=0.1)
    u = state(scheme, batch=1).requires_grad_(True)
    assert not runner.uses_graph(u)
    scheme.run(u, 3).sum().backward()
    torch.testing.assert_close(u.grad, torch.ones_like(u))  # FTCS conserves the total on a periodic grid


@pytest.mark.parametrize("steps, error", [(1.5, TypeError), (True, TypeError), (-1, ValueError)])
def test_run_bad_steps(steps, error):
    scheme = gs.HeatFTCS(dt=1e-4, dx=DX, dy=DY)
    with pytest.raises(error, match="steps"):
        scheme.run(state(scheme), steps)


def test_cpu_never_uses_a_graph():
    assert not runner.uses_graph(torch.zeros(1, 1, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (graph-captured runner)")
@pytest.mark.parametrize("scheme", [FUSED[0], FUSED[6], gs.HeatSpectral(dt=1e-3, dx=DX, dy=DY), FUSED[-2]], ids=label)
def test_cuda_graph_run_equals_eager(scheme):
    u = state(scheme, batch=2).cuda()
    assert runner.uses_graph(u)
    ref = u
    for _ in range(2 * runner.CHUNK + 3):
        ref = scheme(ref)
    got = scheme.run(u, 2 * runner.CHUNK + 3)
    again = scheme.run(u, 2 * runner.CHUNK + 3)  # the cached graph replays from a fresh state
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(again, got, rtol=0, atol=0)


def test_cuda_benchmark_report_from_a_result():
    """benchmarks/stencils_cuda.py turns a (synthetic) result into goals, a table and README rows."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import stencils_cuda as sc

    rows = [{"case": "heat/ftcs", "n": n, "batch": 16, "eager_s": 4e-5, "graph_s": g, "bytes": 1e6, "graph_GBs": 1e6 / g / 1e9}
            for n, g in ((32, 8e-6), (1024, 1e-4))]
    result = {"sizes": [32, 1024], "batch": 16, "one_launch_s": 5e-6, "copy_GBs": 20.0, "rows": rows,
              "chain_s": {"heat/ftcs": 4e-5}}
    result["goals"] = sc.goals(result)
    assert result["goals"]["small_vs_launch"] == [("heat/ftcs", pytest.approx(1.6))]
    assert result["goals"]["heat_1024_pct_copy"] == pytest.approx(50.0)
    md = sc.markdown(result, 1.0, {"start": [0, 0, 0], "end": [0, 0, 0]})
    assert "| heat/ftcs | 32² | 40.0 | 8.0 | 5.0 | 1.6 | 0.20 |" in md
    assert [r["met"] for r in sc.headline(result)] == [True, True]
