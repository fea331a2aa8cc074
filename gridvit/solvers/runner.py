"""Multi-step runs of a scheme: a replayed CUDA graph on GPUs, a plain loop of fused steps on the CPU.

An eager step on a GPU is a chain of small kernel launches (tens for an SSP-RK3 scheme); on a small grid
the launches, not the arithmetic, set the time. :func:`run` captures ``CHUNK`` steps once per
(scheme, shape, dtype, device) in a :class:`torch.cuda.CUDAGraph` with a static state buffer, then
replays it, so a step costs about one graph launch divided by ``CHUNK`` plus the kernels' own time.
"""

from __future__ import annotations

import torch

from gridvit.solvers import fused
from gridvit.solvers.grid_ops import check_grid

CHUNK = 8  # steps captured in one CUDA graph


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int, got {steps!r} ({type(steps).__name__})")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return steps


def uses_graph(u: torch.Tensor) -> bool:
    """True when :func:`run` replays a CUDA graph for ``u``: a CUDA tensor and no gradient to record."""
    return u.is_cuda and not (u.requires_grad and torch.is_grad_enabled())


def _graph(scheme, u: torch.Tensor, k: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """(graph, static state): replaying the graph advances the static (B, C, H, W) state by k steps."""
    def capture() -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        static = u.detach().clone()
        stream = torch.cuda.Stream(device=u.device)
        stream.wait_stream(torch.cuda.current_stream(u.device))
        with torch.cuda.stream(stream), torch.no_grad():  # warm-up off the capture: caches, FFT plans
            for _ in range(2):
                scheme(static.clone())
        torch.cuda.current_stream(u.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            v = static
            for _ in range(k):
                v = scheme(v)
            static.copy_(v)
        return graph, static

    return scheme.cached(("cuda_graph", tuple(u.shape), u.dtype, u.device, k), capture)


def run(scheme, u: torch.Tensor, steps: int) -> torch.Tensor:
    """Advance (B, C, H, W) ``u`` by ``steps`` steps of ``scheme`` -> (B, C, H, W) (a new tensor).

    Equal to calling ``scheme`` ``steps`` times. On CUDA without autograd recording, whole chunks of
    :data:`CHUNK` steps replay a captured CUDA graph (the rest run eagerly); elsewhere it loops, so the
    CPU takes the fused path (:mod:`gridvit.solvers.fused`) and autograd records every step.
    """
    check_grid(u, scheme.channels, scheme.label)
    steps = _check_steps(steps)
    if uses_graph(u) and steps >= CHUNK:
        graph, static = _graph(scheme, u, CHUNK)
        static.copy_(u)
        for _ in range(steps // CHUNK):
            graph.replay()
        u, steps = static.clone(), steps % CHUNK
    elif steps == 0:
        return u.clone()
    elif scheme.has_fused and fused.eligible(u):
        return fused.run(scheme, u, steps)
    for _ in range(steps):
        u = scheme(u)
    return u
