"""GPU stencil steps: the graph-captured runner ``scheme.run(u, k)`` vs eager ``u = scheme(u)``, batch 16, float32.

For heat FTCS, upwind advection, Burgers (upwind, central), Gray–Scott explicit and Navier–Stokes
(Arakawa) at 32², 128² and 1024², batch 16, float32 (as the surrogate benchmark runs), times per step:

- ``eager``: ``u = scheme(u)`` k times, then one synchronisation (each step a chain of kernel launches
  from Python);
- ``graph``: ``scheme.run(u, k)``: ``runner.CHUNK`` steps captured once in a CUDA graph and replayed.

Reference costs, measured in the same run:

- *one kernel launch*: per-op time of k eager ``add_`` on a one-element tensor, synchronised once;
- *launch chain*: a step's eager time on a 3×3 grid, batch 1 (all of its launches, next to no arithmetic);
- *device copy bandwidth*: 2 × bytes / time of ``dst.copy_(src)`` on 256 MiB; heat FTCS's achieved
  bandwidth is its compulsory traffic (read + write the state) per graph step over it.

Goals (issue 15): a 32² rollout costs ≤ 2× one kernel launch per step; heat FTCS at 1024² reaches ≥ 50 %
of the copy bandwidth. Runs in about a minute on one GPU (``--quick``: 32² only, nothing written);
``--dry-run`` runs the same code on the CPU with tiny grids (no graphs; for checking the script).

    .venv/bin/python benchmarks/stencils.py --device cuda      # or: benchmarks/stencils_cuda.py
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import load_span, machine, median_time, write_results  # noqa: E402

import gridvit.solvers as gs  # noqa: E402
from gridvit.solvers import runner  # noqa: E402

SIZES, BATCH = (32, 128, 1024), 16
REPEAT_S = 0.02  # each timing sample runs whole steps for at least this long


def _h(n: int, extent: float = 1.0) -> dict:
    return {"dx": extent / n, "dy": extent / n}


def _gray_scott(n: int) -> gs.Scheme:
    s = gs.GrayScottExplicit(dt=0.5, **_h(n, 2.5))
    return s.with_dt(min(s.dt, 0.4 / s.rate(None)))  # a stable diffusion number at every size


SCHEMES: dict[str, tuple[Callable[[int], gs.Scheme], int]] = {
    "heat/ftcs": (lambda n: gs.HeatFTCS(dt=0.2 / n**2, diffusivity=1.0, **_h(n)), 1),
    "advection/upwind": (lambda n: gs.AdvectionUpwind(dt=0.5 / n, vx=0.6, vy=0.4, **_h(n)), 1),
    "burgers/upwind": (lambda n: gs.BurgersUpwind(dt=0.1 / n, viscosity=1.0 / n, **_h(n)), 2),
    "burgers/central": (lambda n: gs.BurgersCentral(dt=0.1 / n, viscosity=1.0 / n, **_h(n)), 2),
    "gray_scott/explicit": (lambda n: _gray_scott(n), 2),
    "navier_stokes/arakawa": (lambda n: gs.NavierStokesArakawa(dt=0.5 / n, viscosity=1e-3, **_h(n, 2 * math.pi)), 1),
}


def state(name: str, n: int, batch: int, device: torch.device) -> torch.Tensor:
    """(batch, C, n, n) float32: Gray–Scott spots or a seeded random field (velocities scaled to 0.25)."""
    if name.startswith("gray_scott"):
        return gs.gray_scott_spots((n, n), samples=batch, seed=0).float().to(device)
    c = SCHEMES[name][1]
    u = gs.gaussian_random_field((n, n), (1.0, 1.0), samples=batch, channels=c, seed=0)
    return (0.25 * u if c == 2 else u).float().to(device)


def per_step(advance: Callable[[int], None], sync: Callable[[], None], repeats: int = 5) -> float:
    """Median seconds per step of ``advance(k)``, k chosen so one sample lasts >= REPEAT_S."""
    advance(1)
    sync()
    t0 = time.perf_counter()
    advance(runner.CHUNK)
    sync()
    one = max((time.perf_counter() - t0) / runner.CHUNK, 1e-7)
    k = runner.CHUNK * max(1, math.ceil(REPEAT_S / one / runner.CHUNK))
    return median_time(lambda: advance(k), warmup=1, repeats=repeats, sync=sync)["median_s"] / k


def eager(scheme: gs.Scheme, u: torch.Tensor) -> Callable[[int], None]:
    box = [u.clone()]

    def advance(k: int) -> None:
        with torch.no_grad():
            for _ in range(k):
                box[0] = scheme(box[0])

    return advance


def graphed(scheme: gs.Scheme, u: torch.Tensor) -> Callable[[int], None]:
    box = [u.clone()]

    def advance(k: int) -> None:
        with torch.no_grad():
            box[0] = scheme.run(box[0], k)

    return advance


def one_launch(device: torch.device, sync: Callable[[], None]) -> float:
    """Seconds per eager ``add_`` on a one-element tensor (one kernel launch, nothing to compute)."""
    x = torch.zeros(1, device=device)

    def advance(k: int) -> None:
        for _ in range(k):
            x.add_(1.0)

    return per_step(advance, sync)


def copy_bandwidth(device: torch.device, sync: Callable[[], None], mib: int) -> float:
    """GB/s of ``dst.copy_(src)`` (read + write) on ``mib`` MiB of float32."""
    src = torch.rand(mib * 2**18, device=device)
    dst = torch.empty_like(src)
    t = median_time(lambda: dst.copy_(src), warmup=3, repeats=9, sync=sync)["median_s"]
    return 2 * src.numel() * 4 / t / 1e9


def measure(device: torch.device, sizes, batch: int, mib: int) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = {"one_launch_s": one_launch(device, sync), "copy_GBs": copy_bandwidth(device, sync, mib), "rows": [],
           "chain_s": {}}
    for name, (make, _) in SCHEMES.items():
        tiny = state(name, 3, 1, device)
        out["chain_s"][name] = per_step(eager(make(3).with_dt(1e-9), tiny), sync)
        for n in sizes:
            scheme, u = make(n), state(name, n, batch, device)
            scheme.check(u)
            row = {"case": name, "n": n, "batch": batch,
                   "eager_s": per_step(eager(scheme, u), sync), "graph_s": per_step(graphed(scheme, u), sync)}
            row["bytes"] = 2 * u.numel() * u.element_size() * (3 if "burgers" in name or "navier" in name else 1)
            row["graph_GBs"] = row["bytes"] / row["graph_s"] / 1e9
            out["rows"].append(row)
            print(f"{name:22s} {n:5d}² eager {1e6 * row['eager_s']:9.1f} µs  graph {1e6 * row['graph_s']:9.1f} µs",
                  flush=True)
    return out


def goals(result: dict) -> dict:
    launch, copy = result["one_launch_s"], result["copy_GBs"]
    small = [(r["case"], r["graph_s"] / launch) for r in result["rows"] if r["n"] == min(result["sizes"])]
    heat = [r["graph_GBs"] / copy * 100 for r in result["rows"] if r["case"] == "heat/ftcs" and r["n"] == 1024]
    return {"small_vs_launch": small, "heat_1024_pct_copy": heat[0] if heat else None}


def markdown(result: dict, seconds: float, load: dict) -> str:
    launch, copy, n0 = result["one_launch_s"], result["copy_GBs"], min(result["sizes"])
    lines = [
        f"# GPU stencil steps: graph-captured runner vs eager (batch {result['batch']}, float32)", "",
        f"µs per step (median). eager: `u = scheme(u)` per step; graph: `scheme.run(u, k)` ({runner.CHUNK} steps "
        f"per captured CUDA graph). One kernel launch (eager `add_` on one element): {1e6 * launch:.1f} µs. "
        f"Launch chain: a step's eager time on a 3×3 grid, batch 1. Device copy bandwidth: {copy:.0f} GB/s.", "",
        "| scheme | grid | eager µs | graph µs | eager / graph | graph / one launch | graph / launch chain | graph GB/s | % of copy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        chain = result["chain_s"][r["case"]]
        lines.append(f"| {r['case']} | {r['n']}² | {1e6 * r['eager_s']:.1f} | {1e6 * r['graph_s']:.1f} | "
                     f"{r['eager_s'] / r['graph_s']:.1f} | {r['graph_s'] / launch:.1f} | {r['graph_s'] / chain:.2f} | "
                     f"{r['graph_GBs']:.0f} | {100 * r['graph_GBs'] / copy:.0f} |")
    g = goals(result)
    lines += ["", "## Goals", "",
              f"- {n0}² rollout ≤ 2× one kernel launch per step: "
              + ", ".join(f"{c} {x:.1f}×" for c, x in g["small_vs_launch"]),
              "- heat/ftcs 1024² ≥ 50 % of the device copy bandwidth: "
              + ("—" if g["heat_1024_pct_copy"] is None else f"{g['heat_1024_pct_copy']:.0f} %"), "",
              "Launch chains (eager step, 3×3, batch 1): " + ", ".join(
                  f"{c} {1e6 * s:.0f} µs" for c, s in result["chain_s"].items()), "",
              f"Total run time {seconds:.0f} s; load average {load['start']} → {load['end']}."]
    return "\n".join(lines)


def headline(result: dict) -> list[dict]:
    """Rows for benchmarks/README.md: small-grid step vs one launch; heat 1024² bandwidth."""
    g = result["goals"]
    small = g["small_vs_launch"]
    rows = [{"result": f"GPU {min(result['sizes'])}² step (graph runner) in units of one kernel launch",
             "value": ", ".join(f"{c} {x:.1f}×" for c, x in small), "goal": "≤ 2×", "met": all(x <= 2 for _, x in small)}]
    if g["heat_1024_pct_copy"] is not None:
        rows.append({"result": "GPU heat/ftcs 1024² b16, % of device copy bandwidth",
                     "value": f"{g['heat_1024_pct_copy']:.0f} %", "goal": "≥ 50 %", "met": g["heat_1024_pct_copy"] >= 50})
    return rows


def main(*, quick: bool = False, dry_run: bool = False) -> None:
    if not dry_run and not torch.cuda.is_available():
        raise SystemExit("stencils --device cuda needs a CUDA GPU (torch.cuda.is_available() is False); "
                         "use --dry-run to check the script on the CPU")
    device = torch.device("cpu" if dry_run else "cuda")
    sizes = (8, 16) if dry_run else ((SIZES[0],) if quick else SIZES)
    batch = 2 if dry_run else BATCH
    t0, load0 = time.perf_counter(), os.getloadavg()
    print(machine(), flush=True)
    result = {"device": str(device), "sizes": list(sizes), "batch": batch, "dtype": "float32", "chunk": runner.CHUNK,
              **measure(device, sizes, batch, mib=4 if dry_run else 256)}
    result["goals"] = goals(result)
    seconds, load = time.perf_counter() - t0, load_span(load0)
    md = markdown(result, seconds, load)
    print(md)
    if not (quick or dry_run):
        write_results("stencils_cuda", {**result, "seconds": seconds, "load_average": load}, md)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{SIZES[0]}² only, nothing written")
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU, tiny grids, nothing written")
    args = parser.parse_args()
    main(quick=args.quick, dry_run=args.dry_run)
