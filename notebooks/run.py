"""Execute the notebooks top to bottom and store their outputs (what ``make notebooks`` runs).

    python notebooks/run.py                      # full run of all three, outputs written into the .ipynb files
    python notebooks/run.py 02_pde_surrogate     # one notebook
    python notebooks/run.py --quick --no-write   # GRIDVIT_QUICK=1 smoke run, files left unchanged

Each notebook runs with ``notebooks/`` as its working directory in this interpreter's ``python3`` kernel
(ipykernel installed in the same environment) and reads ``GRIDVIT_QUICK`` from the environment.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 2_000_000


def execute(path: Path, *, timeout: int = 1800) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in memory (cwd = its folder) and return it with outputs; raises on a cell error."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="notebook names (default: all)")
    ap.add_argument("--quick", action="store_true", help="set GRIDVIT_QUICK=1 (short training budgets)")
    ap.add_argument("--no-write", action="store_true", help="do not write the outputs back")
    args = ap.parse_args()
    os.environ["GRIDVIT_QUICK"] = "1" if args.quick else "0"
    chosen = [p for p in NOTEBOOKS if not args.names or p.stem in args.names or p.name in args.names]
    if not chosen:
        raise SystemExit(f"no notebook matches {args.names}; have {[p.stem for p in NOTEBOOKS]}")
    for path in chosen:
        t0 = time.perf_counter()
        nb = execute(path)
        text = nbformat.writes(nb)
        size = len(text.encode())
        print(f"{path.name}: {time.perf_counter() - t0:.0f} s, {size / 1e6:.2f} MB", flush=True)
        if size > MAX_BYTES:
            raise SystemExit(f"{path.name} would be {size / 1e6:.2f} MB with outputs (limit 2 MB); lower figure dpi")
        if not args.no_write:
            path.write_text(text)


if __name__ == "__main__":
    main()
