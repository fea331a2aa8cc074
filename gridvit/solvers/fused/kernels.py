"""numba kernels of the explicit schemes: one compiled loop per step or Runge–Kutta stage.

Every kernel walks each plane (one sample, or one sample and channel) row by row. The 5-point kernel
reads its neighbour rows in place (a ghost row only at a bounded y edge) and treats the two edge columns
apart. The nonlinear kernels keep the rows they need in a ring of three *padded rows* (W + 2 wide, ghost
cells included), filled exactly as :func:`gridvit.solvers.grid_ops.pad` fills them: y ghosts first
(``a * u_edge + b`` or the wrapped row), then x ghosts of that row, so corners are ghosts of ghosts. Each
input row is copied into the ring once, and the update over a row is a plain loop LLVM vectorises.

A boundary is passed as ``bc = (periodic, a, b)`` (float64): 1.0 for a periodic axis, else the ghost
rule ``ghost = a * u_edge + b`` of :meth:`Boundary.ghost`. Coefficient arrays come in the state's dtype,
so float32 states are computed in float32 as the torch path does. Planes are spread over threads with
``prange`` (threads over the batch); the number of threads is numba's (set from torch's by the caller).
:data:`PARALLEL` holds these kernels, :data:`SERIAL` their serial twins (the same functions compiled with
``parallel=False``, which never start numba's thread pool), each compiled on its first call.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from numba import njit, prange

from gridvit.solvers.fused.jit import jit, serial_twin


@njit(inline="always")
def _fill(ring, slot, plane, k, bcy, bcx):
    """Padded row ``k`` (-1..H) of ``plane`` (H, W) into ``ring[slot]`` (W + 2)."""
    h, w = plane.shape
    row = ring[slot]
    if 0 <= k < h or bcy[0] == 1.0:  # a plain loop: a slice assignment checks for overlap (and is slower serial)
        src = plane[k % h]
        for j in range(w):
            row[j + 1] = src[j]
    else:
        edge = plane[0] if k < 0 else plane[h - 1]
        a, b = bcy[1], bcy[2]
        for j in range(w):
            row[j + 1] = edge[j] * a + b
    if bcx[0] == 1.0:
        row[0] = row[w]
        row[w + 1] = row[1]
    else:
        row[0] = row[1] * bcx[1] + bcx[2]
        row[w + 1] = row[w] * bcx[1] + bcx[2]


@njit(inline="always")
def _ghost_row(dst, edge, bc):
    """``dst = a * edge + b``: the ghost row beyond ``edge`` of a bounded axis."""
    for j in range(edge.shape[0]):
        dst[j] = edge[j] * bc[1] + bc[2]


@jit
def stencil5(u, out, coef, bcy, bcx):
    """``out = c0 u + c1 u_S + c2 u_N + c3 u_W + c4 u_E`` for (B, C, H, W); S/N: y ∓ 1, W/E: x ∓ 1.

    ``coef`` = (c0, c1, c2, c3, c4) in u's dtype. Heat FTCS, upwind advection and each Lax–Wendroff
    sweep are this stencil with their own coefficients. Having no corners, it reads the neighbour rows
    in place (ghost rows only at a bounded y edge) and treats the two edge columns apart, so the
    interior loop is a plain vectorisable sweep.
    """
    batch, chans, h, w = u.shape
    c0, cs, cn, cw, ce = coef[0], coef[1], coef[2], coef[3], coef[4]
    py, px = bcy[0] == 1.0, bcx[0] == 1.0
    for bc in prange(batch * chans):
        plane, dst = u[bc // chans, bc % chans], out[bc // chans, bc % chans]  # (H, W)
        lo, hi = np.empty(w, dtype=u.dtype), np.empty(w, dtype=u.dtype)
        if not py:
            _ghost_row(lo, plane[0], bcy)
            _ghost_row(hi, plane[h - 1], bcy)
        for i in range(h):
            c, o = plane[i], dst[i]
            s = plane[i - 1] if i > 0 else (plane[h - 1] if py else lo)
            n = plane[i + 1] if i < h - 1 else (plane[0] if py else hi)
            for j in range(1, w - 1):
                o[j] = c0 * c[j] + cs * s[j] + cn * n[j] + cw * c[j - 1] + ce * c[j + 1]
            west = c[w - 1] if px else c[0] * bcx[1] + bcx[2]
            east = c[0] if px else c[w - 1] * bcx[1] + bcx[2]
            o[0] = c0 * c[0] + cs * s[0] + cn * n[0] + cw * west + ce * c[1]
            o[w - 1] = c0 * c[w - 1] + cs * s[w - 1] + cn * n[w - 1] + cw * c[w - 2] + ce * east


@jit(parallel=False)  # a serial loop over steps; each stencil5 call is parallel
def stencil5_run(u, x, y, coef, bcy, bcx, steps):
    """``steps`` >= 1 applications of :func:`stencil5` to ``u``, through the buffers x and y in turn (all
    (B, C, H, W)); returns the buffer holding the result. The loop itself is compiled: no Python per step."""
    stencil5(u, x, coef, bcy, bcx)
    for _ in range(steps - 1):
        stencil5(x, y, coef, bcy, bcx)
        x, y = y, x
    return x


@jit
def gray_scott(u, out, coef, bcy, bcx):
    """One forward-Euler Gray–Scott step of (B, 2, H, W): ``w' = w + dt (D ∇²_h w + R(w))``.

    ``coef`` = (dt, du, dv, feed, kill, 1/dy², 1/dx², -2 (1/dy² + 1/dx²)) in u's dtype.
    """
    batch, _, h, w = u.shape
    dt, du, dv, f, k, cy, cx, cc = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7]
    for p in prange(batch):
        ra = np.empty((3, w + 2), dtype=u.dtype)
        rb = np.empty((3, w + 2), dtype=u.dtype)
        for k0 in (-1, 0):
            _fill(ra, k0 + 1, u[p, 0], k0, bcy, bcx)
            _fill(rb, k0 + 1, u[p, 1], k0, bcy, bcx)
        for i in range(h):
            _fill(ra, (i + 2) % 3, u[p, 0], i + 1, bcy, bcx)
            _fill(rb, (i + 2) % 3, u[p, 1], i + 1, bcy, bcx)
            sa, ca, na = ra[i % 3], ra[(i + 1) % 3], ra[(i + 2) % 3]
            sb, cb, nb = rb[i % 3], rb[(i + 1) % 3], rb[(i + 2) % 3]
            oa, ob = out[p, 0, i], out[p, 1, i]
            for j in range(w):
                a, b = ca[j + 1], cb[j + 1]
                lap_a = cc * a + cy * (sa[j + 1] + na[j + 1]) + cx * (ca[j] + ca[j + 2])
                lap_b = cc * b + cy * (sb[j + 1] + nb[j + 1]) + cx * (cb[j] + cb[j + 2])
                uv2 = a * b * b
                oa[j] = a + dt * (du * lap_a - uv2 - f * a + f)
                ob[j] = b + dt * (dv * lap_b + uv2 - (f + k) * b)


@jit
def burgers_stage(u, u0, out, coef, bcy, bcx, upwind):
    """An SSP-RK3 stage of viscous Burgers, (B, 2, H, W): ``out = α u0 + β (u + dt L(u))``.

    ``L(u) = ν ∇²_h u - (a ∂x + b ∂y) u`` with (a, b) = (u, v) at the point, the advective differences
    upwind (``upwind`` = 1) or central (0). ``coef`` = (α, β, dt, ν/dy², ν/dx², 1/dy, 1/dx, 1/(2dy), 1/(2dx), -2ν (1/dy² + 1/dx²)) in
    u's dtype.
    """
    batch, _, h, w = u.shape
    al, be, dt, vy, vx, iy, ix, hy, hx, vc = (coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6],
                                             coef[7], coef[8], coef[9])
    for p in prange(batch):
        rings = np.empty((2, 3, w + 2), dtype=u.dtype)
        for ch in range(2):
            _fill(rings[ch], 0, u[p, ch], -1, bcy, bcx)
            _fill(rings[ch], 1, u[p, ch], 0, bcy, bcx)
        for i in range(h):
            for ch in range(2):
                _fill(rings[ch], (i + 2) % 3, u[p, ch], i + 1, bcy, bcx)
            a_row, b_row = rings[0, (i + 1) % 3], rings[1, (i + 1) % 3]
            for ch in range(2):
                s, c, n = rings[ch, i % 3], rings[ch, (i + 1) % 3], rings[ch, (i + 2) % 3]
                o, base = out[p, ch, i], u0[p, ch, i]
                for j in range(w):
                    a, b, v = a_row[j + 1], b_row[j + 1], c[j + 1]
                    lap = vx * (c[j] + c[j + 2]) + vy * (s[j + 1] + n[j + 1]) + vc * v
                    if upwind:
                        ddx = (v - c[j]) if a > 0 else (c[j + 2] - v)
                        ddy = (v - s[j + 1]) if b > 0 else (n[j + 1] - v)
                        adv = a * ix * ddx + b * iy * ddy
                    else:
                        adv = a * hx * (c[j + 2] - c[j]) + b * hy * (n[j + 1] - s[j + 1])
                    o[j] = al * base[j] + be * (v + dt * (lap - adv))


@jit
def burgers_upwind3_stage(u, u0, out, coef):
    """An SSP-RK3 stage of periodic viscous Burgers with third-order upwind-biased advection, (B, 2, H, W):
    ``out = α u0 + β (u + dt L(u))`` (see ``BurgersUpwind3``). ``coef`` = (α, β, dt, ν/dy², ν/dx², 1/(6dy),
    1/(6dx), -2ν (1/dy² + 1/dx²)) in u's dtype. Each plane is first copied with two wrapped ghost cells a side.
    """
    batch, _, h, w = u.shape
    al, be, dt, vy, vx, iy, ix, vc = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7]
    for p in prange(batch):
        q = np.empty((2, h + 4, w + 4), dtype=u.dtype)  # both velocity planes, periodically padded by 2
        for ch in range(2):
            for r in range(h + 4):
                src, row = u[p, ch, (r - 2) % h], q[ch, r]
                for j in range(w):
                    row[j + 2] = src[j]
                row[0], row[1], row[w + 2], row[w + 3] = row[w], row[w + 1], row[2], row[3]
        for ch in range(2):
            for i in range(h):
                ss, s, c, n, nn = q[ch, i], q[ch, i + 1], q[ch, i + 2], q[ch, i + 3], q[ch, i + 4]
                a_row, b_row = q[0, i + 2], q[1, i + 2]
                o, base = out[p, ch, i], u0[p, ch, i]
                for j in range(w):
                    k = j + 2
                    a, b, v = a_row[k], b_row[k], c[k]
                    lap = vx * (c[k - 1] + c[k + 1]) + vy * (s[k] + n[k]) + vc * v
                    if a > 0:
                        ddx = 2 * c[k + 1] + 3 * v - 6 * c[k - 1] + c[k - 2]
                    else:
                        ddx = 6 * c[k + 1] - c[k + 2] - 3 * v - 2 * c[k - 1]
                    if b > 0:
                        ddy = 2 * n[k] + 3 * v - 6 * s[k] + ss[k]
                    else:
                        ddy = 6 * n[k] - nn[k] - 3 * v - 2 * s[k]
                    o[j] = al * base[j] + be * (v + dt * (lap - (a * ix * ddx + b * iy * ddy)))


@jit
def navier_stokes_stage(psi, om, om0, out, coef, force, arakawa):
    """An SSP-RK3 stage of vorticity Navier–Stokes, periodic (B, 1, H, W): ``out = α ω0 + β (ω + dt L)``.

    ``L = J(ψ, ω) + ν ∇²_h ω - μ ω + f(y)`` with Arakawa's Jacobian (``arakawa`` = 1) or J++ (0), ψ given.
    ``coef`` = (α, β, dt, ν/dy², ν/dx², μ, 1/(4 dx dy), 1/(12 dx dy), -2ν (1/dy² + 1/dx²)) in ω's
    dtype; ``force``: f per row (H,).
    """
    planes, _, h, w = om.shape
    al, be, dt, vy, vx, mu, c4, c12, vc = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7], coef[8]
    per = np.ones(3)
    for p in prange(planes):
        rp = np.empty((3, w + 2), dtype=om.dtype)
        rw = np.empty((3, w + 2), dtype=om.dtype)
        for k0 in (-1, 0):
            _fill(rp, k0 + 1, psi[p, 0], k0, per, per)
            _fill(rw, k0 + 1, om[p, 0], k0, per, per)
        for i in range(h):
            _fill(rp, (i + 2) % 3, psi[p, 0], i + 1, per, per)
            _fill(rw, (i + 2) % 3, om[p, 0], i + 1, per, per)
            ps, pc, pn = rp[i % 3], rp[(i + 1) % 3], rp[(i + 2) % 3]
            ws, wc, wn = rw[i % 3], rw[(i + 1) % 3], rw[(i + 2) % 3]
            o, base, fi = out[p, 0, i], om0[p, 0, i], force[i]
            for j in range(w):
                pe, pw, pnn, pss = pc[j + 2], pc[j], pn[j + 1], ps[j + 1]
                we, ww, wnn, wss = wc[j + 2], wc[j], wn[j + 1], ws[j + 1]
                jpp = (pe - pw) * (wnn - wss) - (pnn - pss) * (we - ww)
                if arakawa:
                    jpx = pe * (wn[j + 2] - ws[j + 2]) - pw * (wn[j] - ws[j]) - pnn * (wn[j + 2] - wn[j]) + pss * (ws[j + 2] - ws[j])
                    jxp = wnn * (pn[j + 2] - pn[j]) - wss * (ps[j + 2] - ps[j]) - we * (pn[j + 2] - ps[j + 2]) + ww * (pn[j] - ps[j])
                    jac = (jpp + jpx + jxp) * c12
                else:
                    jac = jpp * c4
                v = wc[j + 1]
                lap = vx * (we + ww) + vy * (wnn + wss) + vc * v
                o[j] = al * base[j] + be * (v + dt * (jac + lap - mu * v + fi))


PARALLEL = SimpleNamespace(stencil5=stencil5, stencil5_run=stencil5_run, gray_scott=gray_scott,
                           burgers_stage=burgers_stage, burgers_upwind3_stage=burgers_upwind3_stage,
                           navier_stokes_stage=navier_stokes_stage)
_stencil5_serial = serial_twin(stencil5)
SERIAL = SimpleNamespace(stencil5=_stencil5_serial, stencil5_run=serial_twin(stencil5_run, stencil5=_stencil5_serial),
                         gray_scott=serial_twin(gray_scott), burgers_stage=serial_twin(burgers_stage),
                         burgers_upwind3_stage=serial_twin(burgers_upwind3_stage),
                         navier_stokes_stage=serial_twin(navier_stokes_stage))
