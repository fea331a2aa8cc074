"""What a model file must hold: its JSON header checked against its tensors before anything is allocated.

:func:`check_model_file` reads nothing but the header and the tensors' shapes and dtypes. It builds the
network on the ``meta`` device (no memory), and requires the file's ``model.*`` tensors to be exactly that
network's state (names, shapes, dtypes, hence parameter count); the statistics, climatology, static fields
and valid mask to fit the spec's grid and channels; and a wrapped classical scheme to come from the
allow-list of :mod:`gridvit.solvers.registry`. Only then does :func:`materialise` allocate the network, of
the size the file's own tensors hold. Every failure is a :class:`~gridvit.checkpoint.CheckpointError`
naming what is missing or wrong.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from gridvit.checkpoint import CheckpointError, numel, state_problems
from gridvit.config import TrainConfig
from gridvit.data import DataSpec
from gridvit.data.timeaxis import CLIMATOLOGY_GROUPS
from gridvit.forcings import calendar_names
from gridvit.history import history_from_dict
from gridvit.model import GridViT, ModelConfig
from gridvit.patches import check_patch

Shapes = Mapping[str, tuple[tuple[int, ...], torch.dtype]]  # tensor name -> (shape, dtype)
T = TypeVar("T")

SECTIONS = {"train_config": dict, "model_config": dict, "spec": dict, "normaliser": dict, "static_names": list,
            "forcing_names": list}
# every field the format-1 writer wrote: a file lacking one would silently take a default (e.g. another
# head count over the same weights); fields added since may be absent (older files take their defaults)
REQUIRED = {
    "model_config": ("history", "channels", "extra_channels", "patch", "dim", "depth", "heads", "mlp_ratio", "bias",
                     "slope_max", "slope_min", "length_scale", "abs_pos_embed", "pos_grid", "attention"),
    "train_config": ("variables", "history", "lead", "rollout_steps", "patch", "dim", "depth", "heads", "mlp_ratio",
                     "bias", "epochs", "time_budget", "batch_size", "lr", "weight_decay", "warmup", "grad_clip",
                     "val_fraction", "patience", "calendar", "climatology", "seed", "device", "progress"),
}
NORMALISER_KEYS = {"mean", "std", "clim_by", "valid_shape", "valid", "zmax"}
DTYPE_KEYS = ("dtype", "y_dtype", "x_dtype")
MAX_ITEMSIZE = 64  # bytes per array element a header may ask for (a 16-character unicode string)
MAX_SUBSTEPS = 1_000_000  # scheme steps per model step a learned correction may ask for
FLOATS = (torch.float32, torch.float64)


@dataclass(frozen=True)
class Checked:
    """A header that passed :func:`check_model_file`, parsed.

    Attributes:
        config, model_config, spec: the parsed configs and data layout.
        static_names, forcing_names: extra input channel names.
        solver: the wrapped classical scheme and its substeps per model step (None for a pure surrogate).
        state: the network's expected state on the meta device (shapes and dtypes, no memory).
        history: the per-epoch training history (empty for files written before it was saved).
    """

    config: TrainConfig
    model_config: ModelConfig
    spec: DataSpec
    static_names: tuple[str, ...]
    forcing_names: tuple[str, ...]
    solver: Any
    state: dict[str, torch.Tensor]
    history: Any = None


def check_model_file(meta: Any, shapes: Shapes) -> Checked:
    """Check a model file's header ``meta`` against its tensors' ``shapes``, allocating nothing they do not
    justify.

    Raises:
        CheckpointError: naming the first problem found (a missing or mistyped header entry, a config the
            code refuses, tensors missing, unexpected or of the wrong shape/dtype, statistics that do not
            fit the grid, a scheme outside the allow-list).
    """
    try:
        return _check_model_file(meta, shapes)
    except CheckpointError:
        raise
    except Exception as err:  # a shape of header the checks did not foresee: still never a raw traceback
        raise CheckpointError(f"the header is damaged: {type(err).__name__}: {_line(err)}") from None


def _check_model_file(meta: Any, shapes: Shapes) -> Checked:
    if not isinstance(meta, dict):
        raise CheckpointError(f"the header is a {type(meta).__name__}, not a mapping")
    for key, kind in SECTIONS.items():
        if not isinstance(meta.get(key), kind):
            got = "missing" if key not in meta else f"a {type(meta[key]).__name__}"
            raise CheckpointError(f"the header's {key!r} is {got}, expected a {kind.__name__}")
    for key, fields in REQUIRED.items():
        missing = [f for f in fields if f not in meta[key]]
        if missing:
            raise CheckpointError(f"the header's {key!r} lacks {missing} (it would silently take defaults)")
    names = {key: _names(key, meta[key]) for key in ("static_names", "forcing_names")}
    _check_dtypes(meta["spec"])
    config = _section("train_config", lambda: TrainConfig(**meta["train_config"]))
    mcfg = _section("model_config", lambda: _model_config(meta["model_config"]))
    spec = _section("spec", lambda: DataSpec.from_dict(meta["spec"]))
    c, (h, w) = len(spec.channels), spec.grid.shape
    _check_spec_parts(spec)
    _check_grid(spec)
    _check_time(spec)
    solver = _section("solver", lambda: _solver(meta.get("solver")))
    history = _section("history", lambda: history_from_dict(meta.get("history")))
    _check_layout(config, mcfg, spec, names["static_names"], names["forcing_names"], corrected=solver is not None)
    clim_by = _check_normaliser(meta["normaliser"], c, h, w)
    model_shapes = {k[len("model."):]: v for k, v in shapes.items() if k.startswith("model.")}
    extras = {"climatology": None if clim_by is None else ((CLIMATOLOGY_GROUPS[clim_by], c, h, w), FLOATS),
              "static": ((len(names["static_names"]), h, w), (torch.float32,)) if names["static_names"] else None}
    _check_extras({k: v for k, v in shapes.items() if not k.startswith("model.")}, extras)
    state = expected_state(mcfg, model_shapes)
    return Checked(config, mcfg, spec, names["static_names"], names["forcing_names"], solver, state, history)


def expected_state(mcfg: ModelConfig, found: Shapes) -> dict[str, torch.Tensor]:
    """The network's state (on the meta device) after checking that ``found`` is exactly it.

    Builds nothing of the header's size before the tensor count agrees with the file: the count is
    extrapolated from 1- and 2-block probes, so a header claiming 10⁹ blocks builds two small probes.
    """
    if not found:
        raise CheckpointError("the file holds no model weights (no 'model.*' tensors); refusing to return an "
                              "untrained network")
    probes = {d: _on_meta(dataclasses.replace(mcfg, depth=d)).state_dict() for d in (1, 2)}
    count = len(probes[1]) + (mcfg.depth - 1) * (len(probes[2]) - len(probes[1]))
    if count != len(found):
        raise CheckpointError(f"the header's model_config (depth={mcfg.depth}) implies {count} model tensors, the "
                              f"file holds {len(found)}")
    state = probes[mcfg.depth] if mcfg.depth in probes else _on_meta(mcfg).state_dict()
    want, have = numel(t.shape for t in state.values()), numel(s for s, _ in found.values())
    if want != have:
        raise CheckpointError(f"the header's model_config implies {want:,} parameters, the file's model tensors "
                              f"hold {have:,}")
    problems = state_problems(state, found)
    if problems:
        raise CheckpointError(f"the model tensors do not match the header's model_config: {'; '.join(problems)}")
    return state


def materialise(mcfg: ModelConfig, state: Mapping[str, torch.Tensor]) -> GridViT:
    """The network on CPU holding exactly ``state``, which :func:`expected_state` has checked (and
    ``load_state_dict(strict=True)`` checks again).

    It is built on CPU, not on meta, so the buffers derived from the config (ALiBi slopes) are computed as in
    training; the checks bound that allocation by the file's own tensors. The caller's random stream is left
    as it was.
    """
    with torch.random.fork_rng(devices=[]):
        model = GridViT(mcfg)
    model.load_state_dict(dict(state), strict=True, assign=True)
    return model


def _on_meta(mcfg: ModelConfig) -> GridViT:
    try:
        with torch.device("meta"):
            return GridViT(mcfg)
    except Exception as err:  # sizes past int64, an overflowing mlp width…
        raise CheckpointError(f"the header's model_config cannot be built: {type(err).__name__}: "
                              f"{_line(err)}") from None


def _solver(d: Any) -> tuple[Any, int] | None:
    """A learned correction's ``{"scheme": ..., "substeps": k}`` entry as (scheme, k), the scheme rebuilt
    through the allow-list of :func:`gridvit.solvers.registry.scheme_from_dict`; None for a pure surrogate."""
    if d is None:
        return None
    from gridvit.solvers.registry import scheme_from_dict

    if not isinstance(d, dict) or set(d) != {"scheme", "substeps"}:
        raise ValueError("it must be a mapping with exactly the keys 'scheme' and 'substeps'")
    k = d["substeps"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SUBSTEPS:
        raise ValueError(f"substeps must be an int in [1, {MAX_SUBSTEPS}], got {str(k)[:40]}")
    return scheme_from_dict(d["scheme"]), k


def _section(name: str, make: Callable[[], T]) -> T:
    """``make()``; any error it raises (the code's own validation) becomes a CheckpointError naming ``name``."""
    try:
        return make()
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"the header's {name!r} is refused: {type(err).__name__}: {_line(err)}") from None


def _line(err: BaseException) -> str:
    lines = str(err).splitlines()
    return lines[0][:300] if lines else ""


def _names(key: str, values: list) -> tuple[str, ...]:
    if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in values):
        raise CheckpointError(f"the header's {key!r} must be a list of names (strings of 1-256 characters)")
    return tuple(values)


def _model_config(d: dict[str, Any]) -> ModelConfig:
    d = dict(d)
    if isinstance(d.get("pos_grid"), list):
        d["pos_grid"] = tuple(d["pos_grid"])
    return ModelConfig(**d)


def _check_dtypes(spec: dict[str, Any]) -> None:
    """Every dtype string in the spec names a plain array dtype of at most MAX_ITEMSIZE bytes per element
    (a header must not make numpy allocate gigabytes for a few list items, nor build object arrays)."""
    stack = [spec]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if key in DTYPE_KEYS and isinstance(node, dict):
                _dtype(value)
            elif isinstance(value, (dict, list)):
                stack.append(value)


def _dtype(value: Any) -> None:
    try:
        dt = np.dtype(value) if isinstance(value, str) and len(value) <= 32 else None
    except Exception:
        dt = None
    if dt is None or dt.kind not in "biufcmMUS" or dt.itemsize > MAX_ITEMSIZE or dt.shape or dt.names:
        raise CheckpointError(f"the header's spec names dtype {str(value)[:40]!r}; expected a numeric, datetime or "
                              f"short string dtype (at most {MAX_ITEMSIZE} bytes per element)")


def _check_grid(spec: DataSpec) -> None:
    """Grid coordinates finite and strictly monotonic, and equal to the spec's stored y/x coordinates."""
    g = spec.grid
    for role, dim, values in (("y", spec.dims.y, g.y), ("x", spec.dims.x, g.x)):
        v = np.asarray(values, dtype=np.float64)
        step = np.diff(v)
        if v.ndim != 1 or not v.size or not np.isfinite(v).all() or not (np.all(step > 0) or np.all(step < 0)):
            raise CheckpointError(f"the header's grid {role} coordinate is not a finite, strictly monotonic 1-D axis")
        stored = spec.coords.get(dim, {}).get("values") if isinstance(spec.coords.get(dim), dict) else None
        if stored is not None and (np.shape(stored) != v.shape or not np.array_equal(np.asarray(stored, np.float64), v)):
            raise CheckpointError(f"the header's coordinate {dim!r} differs from the grid's {role} axis")
    if g.kind == "sphere" and np.ptp(np.asarray(g.x, np.float64)) >= 360.0:
        raise CheckpointError("the header's longitudes span 360° or more")


def _check_spec_parts(spec: DataSpec) -> None:
    """The free-form parts of the spec that forecasts are written with: attrs are mappings, every coordinate
    entry is ``{"attrs": {...}, "values"?: [...]}``, and the channels unpack into their variables' levels."""
    d, names = spec.dims, {v.name for v in spec.variables}
    dicts = [spec.attrs, spec.coords, *(v.attrs for v in spec.variables), *(c.at for c in spec.channels)]
    if not all(isinstance(x, dict) for x in dicts):
        raise CheckpointError("the header's spec holds attrs, coords or channel levels that are not mappings")
    for name, entry in spec.coords.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("attrs"), dict) and set(entry) <= {"values", "attrs"}):
            raise CheckpointError(f"the header's coordinate {str(name)[:40]!r} is not {{'attrs': {{...}}, 'values': [...]}}")
    for dim in (d.y, d.x, *d.channels):
        if dim in spec.coords and "values" not in spec.coords[dim]:
            raise CheckpointError(f"the header's coordinate {str(dim)[:40]!r} has no values")
    if len(names) != len(spec.variables) or any(c.variable not in names for c in spec.channels):
        raise CheckpointError("the header's channels name variables the spec does not hold (or a variable twice)")
    for var in spec.variables:
        if not {d.time, d.y, d.x} <= set(var.dims):
            raise CheckpointError(f"the header's variable {var.name!r} lacks the time/y/x dims {[d.time, d.y, d.x]}")
        chans = [c for c in spec.channels if c.variable == var.name]
        levels = [dim for dim in var.dims if dim in d.channels]
        if not chans or any(set(c.at) != set(levels) for c in chans) or \
                math.prod(len({str(c.at[e]) for c in chans}) for e in levels) != len(chans):
            raise CheckpointError(f"the header's channels of {var.name!r} do not unpack into its levels {levels}")


def _check_time(spec: DataSpec) -> None:
    """A time axis of a known kind whose step parses (a frequency, or a finite number for numeric axes)."""
    t = spec.time
    if t.kind not in ("datetime", "cftime", "numeric") or not all(isinstance(v, str) for v in (t.step, t.calendar)):
        raise CheckpointError(f"the header's time axis is not one gridvit writes (kind {str(t.kind)[:20]!r})")
    try:
        if t.kind == "numeric":
            ok = math.isfinite(float(t.step)) and float(t.step) > 0
        else:
            import pandas as pd

            ok = pd.tseries.frequencies.to_offset(t.step) is not None
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise CheckpointError(f"the header's time step {t.step[:20]!r} is not a valid step for a {t.kind} axis")


def _check_layout(config: TrainConfig, mcfg: ModelConfig, spec: DataSpec, static: tuple[str, ...],
                  forcing: tuple[str, ...], *, corrected: bool = False) -> None:
    """The model's input/output channels and patch agree with the data layout (a learned correction's
    network takes the scheme's prediction as one more state)."""
    c, shape = len(spec.channels), spec.grid.shape
    wanted = {"history": config.history + corrected, "channels": c, "extra_channels": len(static) + len(forcing)}
    for key, value in wanted.items():
        if getattr(mcfg, key) != value:
            raise CheckpointError(f"model_config.{key}={getattr(mcfg, key)!r} does not match the rest of the header "
                                  f"({value}: history from train_config, channels from spec, extras from "
                                  "static_names + forcing_names)")
    leads = None if config.leads is None else tuple(config.leads)
    if mcfg.leads != leads:
        raise CheckpointError(f"model_config.leads={mcfg.leads!r} does not match train_config.leads={config.leads!r}")
    if (mcfg.cell_linear is not None) != config.linear_base or mcfg.cell_linear not in (None, tuple(shape)):
        raise CheckpointError(f"model_config.cell_linear={mcfg.cell_linear!r} does not match the spec's grid {shape} "
                              "and train_config.linear_base")
    if leads is not None and corrected:
        raise CheckpointError("a learned correction cannot be lead-conditioned (train_config.leads with a solver)")
    if forcing not in ((), calendar_names(spec.time), calendar_names(spec.time, "diurnal")):
        raise CheckpointError(f"forcing_names {list(forcing)} are not the calendar channels of the spec's time axis "
                              f"{list(calendar_names(spec.time))}")
    try:
        check_patch(shape, mcfg.patch)
    except ValueError as err:
        raise CheckpointError(f"model_config.patch does not fit the spec's grid: {err}") from None


def _check_normaliser(d: dict[str, Any], c: int, h: int, w: int) -> str | None:
    """Statistics for C channels, a valid mask of (C, H, W) packed bits; returns ``clim_by``."""
    if set(d) - NORMALISER_KEYS or not {"mean", "std", "valid_shape", "valid"} <= set(d):
        raise CheckpointError(f"the header's normaliser has keys {sorted(map(str, d))[:10]}, expected "
                              f"{sorted(NORMALISER_KEYS)} (clim_by and zmax optional)")
    rules = {"mean": (lambda x: True, "finite numbers"), "std": (lambda x: x > 0, "finite numbers > 0"),
             "zmax": (lambda x: x >= 0, "finite numbers >= 0")}
    for key, (ok, words) in rules.items():
        v = d.get(key)
        if key == "zmax" and v is None:  # files written before zmax existed
            continue
        if not (isinstance(v, list) and len(v) == c and all(_real(x) and ok(x) for x in v)):
            raise CheckpointError(f"the header's normaliser {key!r} must be {c} {words} (one per channel)")
    if d.get("clim_by") not in (None, *CLIMATOLOGY_GROUPS):
        raise CheckpointError(f"the header's normaliser 'clim_by' must be None or one of {list(CLIMATOLOGY_GROUPS)}, "
                              f"got {str(d.get('clim_by'))[:40]!r}")
    if d["valid_shape"] != [c, h, w]:
        raise CheckpointError(f"the header's valid mask has shape {str(d['valid_shape'])[:60]}, expected [C, H, W] = "
                              f"{[c, h, w]} from the spec")
    bits = d["valid"]
    if not (isinstance(bits, list) and len(bits) == -(-c * h * w // 8)
            and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in bits)):
        raise CheckpointError(f"the header's valid mask must be {-(-c * h * w // 8)} bytes (0-255) packing "
                              f"{c}x{h}x{w} bits")
    return d.get("clim_by")


def _real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_extras(found: Shapes, expected: dict[str, tuple[tuple[int, ...], tuple[torch.dtype, ...]] | None]) -> None:
    """The non-model tensors are exactly the climatology/static fields the header implies, of their shapes."""
    for name in found:
        if expected.get(name) is None:
            why = "the header implies none" if name in expected else "not a tensor gridvit writes"
            raise CheckpointError(f"unexpected tensor {name[:80]!r} in the file ({why})")
    for name, want in expected.items():
        if want is None:
            continue
        if name not in found:
            raise CheckpointError(f"the file lacks the {name!r} tensor its header implies (shape {want[0]})")
        shape, dtype = found[name]
        if tuple(shape) != want[0] or dtype not in want[1]:
            raise CheckpointError(f"the {name!r} tensor is {tuple(shape)} {dtype}, expected {want[0]} "
                                  f"{' or '.join(str(t) for t in want[1])}")
