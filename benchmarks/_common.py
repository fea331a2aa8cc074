"""Shared helpers for benchmark scripts: machine description, robust timing, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, logical cores, torch threads and versions: written next to every timing."""
    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_span(start: tuple[float, float, float]) -> dict[str, list[float]]:
    """The machine's load average (1, 5, 15 min) at ``start`` (an earlier ``os.getloadavg()``) and now."""
    return {"start": [round(x, 2) for x in start], "end": [round(x, 2) for x in os.getloadavg()]}


def median_time(fn: Callable[[], Any], *, warmup: int = 2, repeats: int = 7, sync: Callable[[], Any] | None = None) -> dict[str, float]:
    """Median (and min/max) wall time in seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def write_results(name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` (payload + machine + UTC date) and ``results/<name>.md`` (markdown + machine)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    m = machine()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    payload = {"machine": m, "date": date, **payload}
    jpath = RESULTS / f"{name}.json"
    mpath = RESULTS / f"{name}.md"
    jpath.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    desc = ", ".join(f"{k}: {v}" for k, v in m.items())
    mpath.write_text(f"{markdown.rstrip()}\n\nMachine: {desc}. Date: {date}.\n")
    return jpath, mpath
