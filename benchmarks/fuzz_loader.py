"""Fuzz ``gridvit.load`` with seeded mutations of a real small model file.

The base file is tests/fixtures/tiny_v1.gvt (a format-1 file written by the release before strict loading)
saved again in today's format (2, with a SHA-256 digest). Each mutation writes one file:

- header mutations (the JSON ``meta``): a value replaced by one of the wrong type, a number made huge,
  negative, zero or not finite, a key dropped, a key added, and the model inflated (``dim=2048, depth=16``);
- tensor mutations: a tensor dropped (or every ``model.*`` one), reshaped, retyped, renamed or added;
- byte mutations of the file: bits flipped anywhere, in the safetensors header only, or the file truncated.

Header and tensor mutations are written as a well-formed file (digest recomputed, or format 1 without
one, chosen at random), so it is the loader's checks, not the digest, that must catch them; byte
mutations keep the original digest. Each file is loaded once and its outcome recorded:

- ``refused``: a :class:`~gridvit.checkpoint.CheckpointError` (wanted for every harmful mutation);
- ``loaded_equal``: loaded, holds exactly the file's weights, and its rollout equals the original's;
- ``loaded_changed``: loaded, holds exactly the file's weights, and its forecast differs (or it refuses to
  forecast with a ValueError): a well-formed file whose values were changed (e.g. a channel mean), which
  no loader can tell from a model trained that way;
- failures: ``crash`` (any other exception from ``load``), ``random_model`` (a loaded model whose weights
  are not the file's), ``memory`` (peak RSS growth during ``load`` above max(4 × file size, 64 MiB)).

Memory: the resident-set high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs`` before each
load and read after it; growth = VmHWM − VmRSS before the load (Linux; elsewhere ``ru_maxrss`` growth, which
only shows a new all-time peak). Writes benchmarks/results/fuzz_loader.{json,md}.

    python benchmarks/fuzz_loader.py            # 1200 mutations, ~2 min on one core
    python benchmarks/fuzz_loader.py --quick    # 200 (tests/test_model_files.py runs these)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import struct
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_v1.gvt"
FLOOR = 64 * 2**20  # the memory bound is max(4 × file size, 64 MiB)
WRONG = [None, True, False, "x", "../../evil", 3, -1, 0, 1.5, [], {}, [1, 2], {"a": 1}, [[[]]], "1" * 300]
NUMBERS = [10**12, 2**62, 2**64, -(10**9), -1, 0, 1e308, -1e308, math.inf, -math.inf, math.nan, 0.5, 2048]
INFLATE = {"dim": 2048, "depth": 16}
HEADER_KINDS = ("header:type", "header:number", "header:drop_key", "header:extra_key", "header:inflate")
TENSOR_KINDS = ("tensor:drop", "tensor:drop_weights", "tensor:reshape", "tensor:retype", "tensor:rename",
                "tensor:extra")
BYTE_KINDS = ("bytes:flip", "bytes:header_flip", "bytes:truncate")
KINDS = HEADER_KINDS + TENSOR_KINDS + BYTE_KINDS
FAILURES = ("crash", "random_model", "memory")

sys.path.insert(0, str(Path(__file__).resolve().parent))


def forecast_input():
    """The input the fixture's reference rollout was made from (tests/fixtures/make_tiny_v1.py)."""
    from gridvit.examples import toy_climate

    ds = toy_climate(n_time=48, shape=(8, 16), freq="6h", seed=20)
    ds["t2m"][:, 0, :3] = np.nan
    return ds.isel(time=slice(0, 40))


def base_file(folder: Path) -> Path:
    """The fixture saved again in today's format (with its digest)."""
    import gridvit

    return gridvit.load(FIXTURE).save(folder / "base.gvt")


# ---------------------------------------------------------------------------------------------- mutations

def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON tree, the root excluded."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out += _paths(v, prefix + (k,))
    return out


def _parent(tree: Any, path: tuple) -> Any:
    for k in path[:-1]:
        tree = tree[k]
    return tree


def mutate_header(rng: np.random.Generator, meta: dict, kind: str) -> tuple[dict, str]:
    """A copy of ``meta`` with one mutation of ``kind``, and its description."""
    meta = copy.deepcopy(meta)
    if kind == "header:inflate":
        keys = rng.choice(list(INFLATE), size=rng.integers(1, len(INFLATE) + 1), replace=False)
        for k in keys:
            meta["model_config"][k] = INFLATE[k]
        return meta, "model_config " + ", ".join(f"{k}={INFLATE[k]}" for k in keys)
    paths = _paths(meta)
    if kind == "header:number":
        paths = [p for p in paths if isinstance(_parent(meta, p)[p[-1]], (int, float))]
    elif kind == "header:drop_key":
        paths = [p for p in paths if isinstance(_parent(meta, p), dict)]
    elif kind == "header:extra_key":
        paths = [p + ("zz_extra",) for p in paths if isinstance(_parent(meta, p)[p[-1]], dict)] + [("zz_extra",)]
    path = paths[rng.integers(len(paths))]
    parent, key = _parent(meta, path), path[-1]
    where = "/".join(map(str, path))
    if kind == "header:drop_key":
        del parent[key]
        return meta, f"drop {where}"
    pool = NUMBERS if kind == "header:number" else WRONG
    value = copy.deepcopy(pool[rng.integers(len(pool))])
    while kind == "header:type" and _json_type(value) == _json_type(parent[key]):
        value = copy.deepcopy(WRONG[rng.integers(len(WRONG))])
    parent[key] = value
    return meta, f"{where} = {str(value)[:40]}"


def _json_type(v: Any) -> str:
    return "bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else type(v).__name__


def mutate_tensors(rng: np.random.Generator, tensors: dict[str, torch.Tensor], kind: str
                   ) -> tuple[dict[str, torch.Tensor], str]:
    """A copy of ``tensors`` with one mutation of ``kind``, and its description."""
    tensors = dict(tensors)
    names = sorted(tensors)
    name = names[rng.integers(len(names))]
    t = tensors[name]
    if kind == "tensor:drop":
        del tensors[name]
        return tensors, f"drop {name}"
    if kind == "tensor:drop_weights":
        return {k: v for k, v in tensors.items() if not k.startswith("model.")}, "drop every model.* tensor"
    if kind == "tensor:reshape":
        choices = [t.reshape(-1), t.reshape(1, *t.shape), t[..., :-1] if t.shape and t.shape[-1] > 1 else t[None],
                   torch.cat([t, t], dim=0) if t.ndim else t.reshape(1, 1)]
        if t.ndim >= 2:
            choices.append(t.transpose(0, 1).contiguous() if t.shape[0] != t.shape[1] else t.reshape(-1))
        choices = [c for c in choices if c.shape != t.shape]  # never a no-op
        new = choices[rng.integers(len(choices))]
        tensors[name] = new.contiguous()
        return tensors, f"{name} {tuple(t.shape)} -> {tuple(new.shape)}"
    if kind == "tensor:retype":
        dtypes = [d for d in (torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.bool, torch.uint8)
                  if d != t.dtype]
        d = dtypes[rng.integers(len(dtypes))]
        tensors[name] = t.to(d)
        return tensors, f"{name} {t.dtype} -> {d}"
    if kind == "tensor:rename":
        new = name + ("_" if rng.random() < 0.5 else ".x")
        tensors[new] = tensors.pop(name)
        return tensors, f"{name} -> {new}"
    extra = ["model.extra.weight", "model.blocks.9.attn.qkv.weight", "evil", "model." + name][rng.integers(4)]
    tensors[extra] = torch.zeros(int(rng.integers(1, 64)))
    return tensors, f"add {extra}"


def mutate_bytes(rng: np.random.Generator, raw: bytes, kind: str) -> tuple[bytes, str]:
    """``raw`` with bits flipped or cut short, and a description."""
    if kind == "bytes:truncate":
        n = int(rng.integers(0, len(raw)))
        return raw[:n], f"truncate to {n} of {len(raw)} bytes"
    end = len(raw) if kind == "bytes:flip" else 8 + struct.unpack("<Q", raw[:8])[0]
    data = bytearray(raw)
    flips = int(rng.integers(1, 9))
    for _ in range(flips):
        i = int(rng.integers(0, end))
        data[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(data), f"{flips} bit(s) flipped in bytes [0, {end})"


def write_file(meta: dict, tensors: dict[str, torch.Tensor], *, digest: bool) -> bytes:
    """A model file's bytes, in format 2 (digest of these very contents) or format 1 (no digest)."""
    from safetensors.torch import save

    from gridvit.checkpoint import MODEL_FORMAT, digest as sha

    text = json.dumps(meta)
    header = {"format": MODEL_FORMAT, "version": "2" if digest else "1", "meta": text}
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if digest:
        header["sha256"] = sha(text, tensors)
    return save(tensors, metadata=header)


def mutations(n: int, seed: int, base: Path) -> list[tuple[str, str, bytes]]:
    """``n`` seeded (kind, description, file bytes) mutations of ``base``, the kinds taken in turn."""
    from gridvit.checkpoint import load_model_file

    tensors, meta = load_model_file(base)
    raw = base.read_bytes()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        if kind in BYTE_KINDS:
            data, what = mutate_bytes(rng, raw, kind)
        else:
            m, t, what = meta, tensors, ""
            if kind in HEADER_KINDS:
                m, what = mutate_header(rng, meta, kind)
            else:
                t, what = mutate_tensors(rng, tensors, kind)
            v2 = bool(rng.random() < 0.5)
            data, what = write_file(m, t, digest=v2), f"{what} (format {2 if v2 else 1})"
        out.append((kind, what, data))
    return out


# ---------------------------------------------------------------------------------------------- outcomes

def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(field)


def peak_growth(fn: Callable[[], Any]) -> tuple[Any, BaseException | None, int]:
    """Run ``fn``; (result, exception, peak resident-memory growth in bytes during it)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before, read = _status("VmRSS"), lambda: _status("VmHWM")
    except OSError:
        before, read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, \
            lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result, error = None, None
    try:
        result = fn()
    except Exception as err:  # classified by the caller
        error = err
    return result, error, max(0, read() - before)


def classify(path: Path, reference: np.ndarray, ds) -> dict[str, Any]:
    """Load ``path`` and say what happened (see the module docstring)."""
    import gridvit
    from gridvit.checkpoint import CheckpointError
    from gridvit.surrogate import RolloutDivergedError

    size = path.stat().st_size
    sur, err, grew = peak_growth(lambda: gridvit.load(path))
    out: dict[str, Any] = {"bytes": size, "rss_growth": grew, "memory_ok": grew <= max(4 * size, FLOOR)}
    if err is not None:
        ok = isinstance(err, CheckpointError)
        out.update(outcome="refused" if ok else "crash", error=f"{type(err).__name__}: {str(err)[:300]}")
    elif not _holds_file_weights(sur, path):
        out["outcome"] = "random_model"
    else:
        try:
            pred = sur.rollout(ds, steps=1)["t2m"].values
            same = pred.shape == reference.shape and np.array_equal(pred, reference, equal_nan=True)
            out["outcome"] = "loaded_equal" if same else "loaded_changed"
        except (ValueError, RolloutDivergedError) as e:  # a clear refusal to forecast
            out.update(outcome="loaded_changed", error=f"forecast refused: {type(e).__name__}: {str(e)[:200]}")
        except Exception as e:
            out.update(outcome="crash", error=f"forecast: {type(e).__name__}: {str(e)[:300]}")
    if not out["memory_ok"]:
        out["outcome"] = "memory"
    return out


def _holds_file_weights(sur, path: Path) -> bool:
    """True when the model's state is exactly the file's ``model.*`` tensors (nothing random, nothing left out)."""
    from safetensors.torch import load_file

    stored = {k[len("model."):]: v for k, v in load_file(str(path)).items() if k.startswith("model.")}
    state = sur.model.state_dict()
    return set(stored) == set(state) and all(torch.equal(state[k], stored[k]) for k in state)


def run(n: int, seed: int = 0) -> dict[str, Any]:
    """Mutate, load and classify ``n`` files; the counts by kind and outcome, peak memory and failures."""
    import gridvit

    torch.set_num_threads(1)
    ds = forecast_input()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = base_file(folder)
        base_bytes = base.stat().st_size
        reference = gridvit.load(base).rollout(ds, steps=1)["t2m"].values
        by_kind: dict[str, Counter] = defaultdict(Counter)
        failures, changed, peak = [], [], 0
        t0 = time.perf_counter()
        for i, (kind, what, data) in enumerate(mutations(n, seed, base)):
            path = folder / f"m{i}.gvt"
            path.write_bytes(data)
            res = classify(path, reference, ds)
            path.unlink()
            by_kind[kind][res["outcome"]] += 1
            peak = max(peak, res["rss_growth"])
            if res["outcome"] in FAILURES:
                failures.append({"index": i, "kind": kind, "mutation": what, **res})
            elif res["outcome"] == "loaded_changed":
                changed.append({"index": i, "kind": kind, "mutation": what, "note": res.get("error", "")})
        seconds = time.perf_counter() - t0
    totals = Counter()
    for c in by_kind.values():
        totals.update(c)
    return {"mutations": n, "seed": seed, "base_file": str(FIXTURE.relative_to(ROOT)) + " saved in format 2",
            "base_bytes": base_bytes, "seconds": round(seconds, 1),
            "outcomes": dict(totals), "by_kind": {k: dict(by_kind[k]) for k in KINDS},
            "peak_rss_growth_bytes": peak, "memory_bound_bytes": FLOOR,
            "memory_method": "VmHWM reset via /proc/self/clear_refs before each load, minus VmRSS before it",
            "failures": failures, "loaded_changed": changed}


def summary(result: dict[str, Any]) -> dict[str, int]:
    o = result["outcomes"]
    return {k: int(o.get(k, 0)) for k in ("refused", "loaded_equal", "loaded_changed", *FAILURES)}


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    s, n = summary(result), result["mutations"]
    return [
        {"result": f"model-file mutations loaded: uncaught exceptions / random models ({n} tried)",
         "value": f"{s['crash']} / {s['random_model']}", "goal": "0 / 0",
         "met": s["crash"] == 0 and s["random_model"] == 0 and n >= 1000},
        {"result": "loads over max(4 × file, 64 MiB) peak RSS growth",
         "value": f"{s['memory']} (peak {result['peak_rss_growth_bytes'] / 2**20:.1f} MiB)", "goal": "0",
         "met": s["memory"] == 0},
        {"result": "mutations refused / loaded unchanged / loaded as a changed well-formed model",
         "value": f"{s['refused']} / {s['loaded_equal']} / {s['loaded_changed']}", "goal": "", "met": None},
    ]


def markdown(result: dict[str, Any]) -> str:
    s = summary(result)
    cols = ("refused", "loaded_equal", "loaded_changed", *FAILURES)
    rows = "\n".join(f"| {k} | " + " | ".join(str(result["by_kind"][k].get(c, 0)) for c in cols) + " |" for k in KINDS)
    fails = "\n".join(f"- #{f['index']} {f['kind']}: {f['mutation']} -> {f['outcome']} {f.get('error', '')}"
                      for f in result["failures"][:20]) or "none"
    changed = "; ".join(f"#{c['index']} {c['mutation']}" for c in result["loaded_changed"][:20]) or "none"
    return f"""# Fuzzing gridvit.load

{result['mutations']} seeded mutations (seed {result['seed']}) of {result['base_file']} ({result['base_bytes']} bytes),
each loaded once ({result['seconds']} s). Outcomes: {s['refused']} refused with CheckpointError, {s['loaded_equal']}
loaded with the original's forecast, {s['loaded_changed']} loaded as a changed but well-formed model (its weights are
exactly the file's); failures: {s['crash']} uncaught exceptions, {s['random_model']} random models, {s['memory']} loads
over the memory bound. Peak RSS growth during one load: {result['peak_rss_growth_bytes'] / 2**20:.2f} MiB (bound:
max(4 × file size, 64 MiB); measured as {result['memory_method']}).

| mutation | {' | '.join(cols)} |
|---|{'---|' * len(cols)}
{rows}

Loaded as a changed well-formed model: {changed}

Failures: {fails}
"""


def main() -> None:
    from _common import write_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 mutations instead of 1200")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = os.getloadavg()
    result = run(200 if args.quick else 1200, seed=args.seed)
    from _common import load_span

    result.update(mode="quick" if args.quick else "full", load_average=load_span(start))
    write_results("fuzz_loader", result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
