"""Schemes to and from JSON, from an allow-list: how a model file names the classical step it wraps.

``scheme_to_dict(HeatFTCS(dt=0.1, dx=1, dy=1))`` gives ``{"class": "HeatFTCS", "params": {...}}`` with every
init field of the scheme (dt, dx, dy, its coefficients, ``bc`` as ``{"y": {"kind", "value"}, "x": ...}``,
``bc_value``); :func:`scheme_from_dict` rebuilds it. Only the schemes gridvit ships (:data:`ALLOWED`) are
rebuilt, only with their own init fields, each of a JSON type matching its annotation, and through the
scheme's own validation: a file never names a class, module or callable that is then imported or called.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from gridvit.solvers import advection, burgers, heat, navier_stokes, reaction_diffusion
from gridvit.solvers.base import Scheme
from gridvit.solvers.grid_ops import AXES, Boundary

ALLOWED: dict[str, type[Scheme]] = {
    cls.__name__: cls
    for cls in (heat.HeatFTCS, heat.HeatSpectral, heat.HeatCrankNicolson, advection.AdvectionUpwind,
                advection.AdvectionLaxWendroff, burgers.BurgersUpwind, burgers.BurgersCentral,
                burgers.BurgersUpwind3,
                reaction_diffusion.GrayScottExplicit, reaction_diffusion.GrayScottIMEX,
                navier_stokes.NavierStokesArakawa, navier_stokes.NavierStokesCentral)
}
MAX_STRING = 64  # longest string a parameter may hold (boundary kinds are a few characters)


def _init_fields(cls: type[Scheme]) -> dict[str, str]:
    """{name: annotation} of the dataclass fields a scheme takes at construction."""
    return {f.name: str(f.type) for f in dataclasses.fields(cls) if f.init}


def scheme_to_dict(scheme: Scheme) -> dict[str, Any]:
    """A JSON-able description ``{"class": name, "params": {field: value}}`` of a shipped scheme.

    Raises:
        TypeError: ``scheme`` is not an instance of one of the shipped classes in :data:`ALLOWED`.
    """
    name = type(scheme).__name__
    if ALLOWED.get(name) is not type(scheme):
        raise TypeError(f"only gridvit's shipped schemes {sorted(ALLOWED)} can be saved, got {type(scheme).__name__}")
    params: dict[str, Any] = {}
    for field in _init_fields(type(scheme)):
        if field == "bc":  # the parsed (y, x) pair, whatever form it was given in
            params["bc"] = {ax: {"kind": b.kind, "value": float(b.value)} for ax, b in zip(AXES, scheme.bcs)}
        else:
            params[field] = getattr(scheme, field)
    return {"class": name, "params": params}


def scheme_from_dict(d: Any) -> Scheme:
    """Rebuild a scheme from :func:`scheme_to_dict`'s output, accepting only the allow-list.

    Raises:
        ValueError: ``d`` is not ``{"class", "params"}``, the class is not one of :data:`ALLOWED`, a
            parameter is unknown, missing or of the wrong type, or the scheme's own validation refuses the
            values (e.g. an unstable dt); the message names the problem.
    """
    if not isinstance(d, Mapping) or set(d) != {"class", "params"}:
        got = sorted(map(str, d)) if isinstance(d, Mapping) else type(d).__name__
        raise ValueError(f"a scheme must be a mapping with exactly the keys 'class' and 'params', got {got}")
    name, params = d["class"], d["params"]
    cls = ALLOWED.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"scheme class {str(name)[:80]!r} is not one of gridvit's shipped schemes {sorted(ALLOWED)}")
    if not isinstance(params, Mapping):
        raise ValueError(f"{name}: params must be a mapping, got {type(params).__name__}")
    fields = _init_fields(cls)
    unknown = sorted(str(k)[:40] for k in params if k not in fields)
    missing = sorted(k for k in fields if k not in params)
    if unknown or missing:
        raise ValueError(f"{name}: unknown parameter(s) {unknown} and missing parameter(s) {missing}; "
                         f"it takes exactly {sorted(fields)}")
    kwargs = {k: _value(name, k, fields[k], params[k]) for k in fields}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: {err}") from None


def _value(cls: str, key: str, annotation: str, value: Any) -> Any:
    """Check one parameter against its annotation (JSON scalars only; ``bc`` a kind, pair or mapping)."""
    if key == "bc":
        return _bc(cls, value)
    kinds = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}.get(annotation)
    if kinds is None:
        raise ValueError(f"{cls}: parameter {key!r} has annotation {annotation!r}, which no file may set")
    if (isinstance(value, bool) and annotation != "bool") or not isinstance(value, kinds):
        raise ValueError(f"{cls}: parameter {key!r} must be {annotation}, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{cls}: parameter {key!r} must be finite, got {value}")
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise ValueError(f"{cls}: parameter {key!r} is a string of {len(value)} characters (at most {MAX_STRING})")
    return value


def _bc(cls: str, value: Any) -> Any:
    """A boundary spec: a kind string, a (y, x) pair or a {"y", "x"} mapping of kinds or {"kind", "value"}."""
    if isinstance(value, str):
        return _value(cls, "bc kind", "str", value)
    items = list(value.items()) if isinstance(value, Mapping) else None
    if items is None and isinstance(value, list) and len(value) == 2:
        items = list(zip(AXES, value))
    if items is None or len(items) != 2 or {k for k, _ in items} != set(AXES):
        raise ValueError(f"{cls}: bc must be a kind, a [y, x] pair or a mapping with keys 'y' and 'x', "
                         f"got {type(value).__name__}")
    out = {}
    for axis, item in items:
        if isinstance(item, Mapping):
            if set(item) != {"kind", "value"}:
                raise ValueError(f"{cls}: bc[{axis!r}] must have exactly the keys 'kind' and 'value'")
            kind = _value(cls, f"bc[{axis!r}].kind", "str", item["kind"])
            number = _value(cls, f"bc[{axis!r}].value", "float", item["value"])
            try:
                out[axis] = Boundary(kind, number)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{cls}: bc[{axis!r}]: {err}") from None
        else:
            out[axis] = _value(cls, f"bc[{axis!r}]", "str", item)
    return out
