"""kill -9 during ``gridvit.train(..., checkpoint_dir=d, resume=True)``, again and again, then finish.

A child process (forked from a forkserver that has imported torch and gridvit) trains a tiny model on a toy
climate (single-threaded, seeded) and logs ``start <epoch>`` as each epoch begins. The parent waits for the
first epoch to start, sleeps a seeded random delay (0 to 3 epochs), sends SIGKILL, then checks the folder:
every checkpoint/model file must load (:func:`gridvit.checkpoint.load_checkpoint`, :func:`gridvit.load`), the
checkpoint must hold every epoch that had finished (at most the epoch in progress is lost), and any other
file must be a hidden temporary file of an interrupted write. After the kills one run goes to the end, and
its model is compared with an uninterrupted run's. Writes benchmarks/results/stress_kill.{json,md}.

    python benchmarks/stress_kill.py            # 20 kills (tests/test_faults.py runs the same with 5)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

TEMP_FILE = re.compile(r"^(\.(last\.pt|model\.gvt|\.gridvit-write-test)\..+\.tmp|\.gridvit-write-test)$")

WINDOW = 3.0  # kills land up to this many (mean) epochs after a run's first epoch starts
PRELOAD = ["torch", "xarray", "gridvit.training", "gridvit.examples"]


def _child(folder: str, epochs: int, n_time: int, progress: str) -> None:
    """Train in a forked process, appending ``start <epoch>`` to ``progress`` as each epoch begins."""
    import torch

    import gridvit
    from gridvit.examples import toy_climate
    from gridvit.training import Trainer

    torch.set_num_threads(1)
    real = Trainer._epoch

    def announced(self, *args, **kw):
        with open(progress, "a") as f:
            f.write(f"start {self.epoch}\n")
        return real(self, *args, **kw)

    Trainer._epoch = announced
    ds = toy_climate(n_time=n_time, shape=(16, 32), seed=0)
    gridvit.train(ds, epochs=epochs, checkpoint_dir=folder, resume=True, seed=0, dim=16, depth=1, heads=2,
                  patch=4, batch_size=4, patience=10**6, device="cpu", progress=False)
    with open(progress, "a") as f:
        f.write("done\n")


def _context():
    """A forkserver that imports torch and gridvit once; each training run is a fresh process forked from it
    (a real process that SIGKILL ends, without paying the imports every time)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _lines(progress: Path) -> list[str]:
    return progress.read_text().split() if progress.exists() else []


def _start(ctx, folder: Path, epochs: int, n_time: int, progress: Path):
    progress.unlink(missing_ok=True)
    proc = ctx.Process(target=_child, args=(str(folder), epochs, n_time, str(progress)), daemon=True)
    proc.start()
    return proc


def _wait_first_epoch(proc, progress: Path, timeout: float = 300.0) -> None:
    """Until the child starts an epoch, or ends cleanly with none left (resumed from a finished run)."""
    t0 = time.perf_counter()
    while not {"start", "done"} & set(_lines(progress)):
        if not proc.is_alive() or time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"training child exited ({proc.exitcode}) or stalled before its first epoch")
        time.sleep(0.002)


def _started(lines: list[str]) -> list[int]:
    return [int(lines[i + 1]) for i, w in enumerate(lines) if w == "start"]


def run_to_end(ctx, folder: Path, epochs: int, n_time: int, progress: Path) -> tuple[list[str], float]:
    """Train to the end in a child process; (progress words, seconds per epoch after the first start)."""
    proc = _start(ctx, folder, epochs, n_time, progress)
    _wait_first_epoch(proc, progress)
    t0 = time.perf_counter()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"training child failed with exit code {proc.exitcode}")
    lines = _lines(progress)
    return lines, (time.perf_counter() - t0) / max(len(_started(lines)), 1)


def check_folder(folder: Path) -> dict[str, Any]:
    """Load every file in ``folder``: {"checked", "corrupt" (names), "temp_files", "epoch" (of last.pt)}."""
    import gridvit
    from gridvit.checkpoint import load_checkpoint

    out: dict[str, Any] = {"checked": [], "corrupt": [], "temp_files": [], "epoch": None}
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        if TEMP_FILE.match(path.name):
            out["temp_files"].append(path.name)
            continue
        try:
            if path.suffix == ".gvt":
                gridvit.load(path)
            else:
                out["epoch"] = int(load_checkpoint(path)["epoch"])
            out["checked"].append(path.name)
        except Exception as err:  # noqa: BLE001 (any failure to load is what we count)
            out["corrupt"].append(f"{path.name}: {type(err).__name__}: {err}")
    return out


def kill_cycle(workdir: Path, *, kills: int, epochs: int, n_time: int = 96, seed: int = 0) -> dict[str, Any]:
    """Reference run, then ``kills`` SIGKILLed runs and a final resumed run; returns per-kill records."""
    import gridvit

    rng = np.random.default_rng(seed)
    ctx = _context()
    ref_dir, dirty, progress = workdir / "reference", workdir / "killed", workdir / "progress.txt"
    _, per_epoch = run_to_end(ctx, ref_dir, epochs, n_time, progress)
    records = []
    for k in range(kills):
        proc = _start(ctx, dirty, epochs, n_time, progress)
        _wait_first_epoch(proc, progress)
        delay = float(rng.uniform(0.0, WINDOW * per_epoch))
        time.sleep(delay)
        proc.kill()  # SIGKILL
        proc.join()
        lines = _lines(progress)
        started = _started(lines)
        state = check_folder(dirty)
        saved = state["epoch"] or 0
        done = "done" in lines
        current = started[-1] if started else saved  # no epoch started: the run had already finished
        records.append({
            "kill": k + 1, "delay_s": round(delay, 3), "exitcode": proc.exitcode, "finished_before_kill": done,
            "epoch_in_progress": current, "checkpoint_epoch": state["epoch"],
            "lost_checkpoint": saved < current, "epochs_lost": 0 if done else current + 1 - saved,
            "corrupt": state["corrupt"], "temp_files": state["temp_files"], "checked": state["checked"],
        })
    lines, _ = run_to_end(ctx, dirty, epochs, n_time, progress)
    final = check_folder(dirty)
    a = gridvit.load(ref_dir / "model.gvt").model.state_dict()
    b = gridvit.load(dirty / "model.gvt").model.state_dict()
    diff = max(float((a[n] - b[n]).abs().max()) for n in a)
    return {"kills": records, "epochs": epochs, "seconds_per_epoch": per_epoch, "final_epoch": final["epoch"],
            "final_corrupt": final["corrupt"], "final_temp_files": final["temp_files"],
            "final_resumed_from": (_started(lines) or [final["epoch"]])[0], "max_abs_weight_diff_vs_uninterrupted": diff}


def summary(result: dict[str, Any]) -> dict[str, int]:
    """Counts over the kills: corrupt files, lost checkpoints, the most epochs of work lost to one kill."""
    kills = result["kills"]
    return {"kills": len(kills), "corrupt": sum(len(r["corrupt"]) for r in kills) + len(result["final_corrupt"]),
            "lost": sum(r["lost_checkpoint"] for r in kills), "max_epochs_lost": max(r["epochs_lost"] for r in kills)}


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    s = summary(result)
    return [
        {"result": f"checkpoints lost/corrupt after {s['kills']} × kill -9 during training",
         "value": f"{s['lost']}/{s['corrupt']}", "goal": "0/0", "met": s["lost"] == 0 and s["corrupt"] == 0},
        {"result": "most epochs of work lost to one kill", "value": str(s["max_epochs_lost"]), "goal": "≤ 1",
         "met": s["max_epochs_lost"] <= 1},
        {"result": "resumed model vs uninterrupted run (max |Δweight|)",
         "value": f"{result['max_abs_weight_diff_vs_uninterrupted']:.1e}", "goal": "≤ 1e-5",
         "met": result["max_abs_weight_diff_vs_uninterrupted"] <= 1e-5},
    ]


def markdown(result: dict[str, Any]) -> str:
    s = summary(result)
    rows = "\n".join(
        f"| {r['kill']} | {r['delay_s']:.2f} | {r['epoch_in_progress']} | {r['checkpoint_epoch']} | "
        f"{r['epochs_lost']} | {len(r['checked'])} | {len(r['corrupt'])} | {', '.join(r['temp_files']) or '-'} |"
        for r in result["kills"])
    return (f"# kill -9 during training\n\n{s['kills']} kills of `gridvit.train(..., checkpoint_dir=d, resume=True)` "
            f"({result['epochs']} epochs, {result['seconds_per_epoch']:.2f} s/epoch), seeded random delays after "
            "a run's first epoch starts (0 to 3 epochs).\n\n"
            f"**checkpoints lost/corrupt: {s['lost']}/{s['corrupt']}**; most epochs lost to one kill: "
            f"{s['max_epochs_lost']}; final run resumed from epoch {result['final_resumed_from']} and reached "
            f"epoch {result['final_epoch']}; max |weight difference| vs an uninterrupted run: "
            f"{result['max_abs_weight_diff_vs_uninterrupted']:.1e}.\n\n"
            "| kill | delay after epoch start (s) | epoch in progress | checkpoint epoch after kill | epochs lost "
            "| files loaded | corrupt | temp files left |\n|---|---|---|---|---|---|---|---|\n" + rows + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = kill_cycle(Path(tmp), kills=args.kills, epochs=args.epochs, seed=args.seed)
    s = summary(result)
    print(f"checkpoints lost/corrupt: {s['lost']}/{s['corrupt']}")
    for r in result["kills"]:
        print(f"kill {r['kill']:2d}: {r['delay_s']:.2f} s into the run, epoch in progress {r['epoch_in_progress']}, "
              f"checkpoint epoch {r['checkpoint_epoch']}, epochs lost {r['epochs_lost']}, "
              f"temp files {r['temp_files'] or '-'}")
    print(f"final run resumed at epoch {result['final_resumed_from']}, reached {result['final_epoch']}; max |Δweight| "
          f"vs uninterrupted: {result['max_abs_weight_diff_vs_uninterrupted']:.1e}")
    write_results("stress_kill", result, markdown(result))


if __name__ == "__main__":
    main()
