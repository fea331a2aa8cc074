"""Surrogate: a trained model with everything needed to forecast from xarray and write xarray back.

``predict(ds)`` gives the next step after the last time of ``ds``; ``rollout(ds, steps)`` feeds predictions
back ``steps`` times; ``save``/``gridvit.load`` keep config, weights, normalisation and grid in one
safetensors file (no code is ever loaded). ``step(u)`` is the shared ``(B, C, H, W) -> (B, C, H, W)``
signature of gridvit's solvers (physical units), for models with ``history=1`` and no calendar channels.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from gridvit.checkpoint import CheckpointError, open_model_file, save_model_file
from gridvit.config import TrainConfig
from gridvit.data import DataSpec, FieldReader, Normaliser, describe, to_dataset
from gridvit.data.normalise import DIVERGENCE_FACTOR
from gridvit.data.spec import as_dataset
from gridvit.forcings import calendar_channels
from gridvit.history import empty_history, history_to_dict
from gridvit.model import GridViT
from gridvit.model.correction import SolverStep
from gridvit.model_file import Checked, check_model_file, materialise
from gridvit.solvers.registry import scheme_to_dict


class RolloutDivergedError(RuntimeError):
    """A rollout left the range of the training data (see :meth:`Normaliser.divergence_bound`) or produced
    non-finite values.

    Attributes:
        step: the rollout step (1-based) at which it happened; steps before it were within bounds.
        peak: the largest |normalised value| of that step (inf or nan when non-finite).
        bound: the bound it was checked against (normalised units).
    """

    def __init__(self, message: str, *, step: int, peak: float, bound: float):
        super().__init__(message)
        self.step, self.peak, self.bound = step, peak, bound


class Surrogate:
    """A trained gridvit model with its data layout, statistics and static/forcing channels.

    Attributes:
        model: the ``torch.nn.Module`` (:class:`gridvit.model.GridViT`).
        config: the :class:`TrainConfig` it was trained with.
        spec: the training data's layout (:class:`gridvit.data.DataSpec`).
        normaliser: channel means/stds and the valid-cell mask.
        solver: for a learned correction, the classical step ``S^k`` whose result the network corrects
            (:class:`gridvit.model.correction.SolverStep`); None for a pure surrogate.
        history: per-epoch training record, an ``xr.Dataset`` with dim ``epoch`` (1-based): ``loss``,
            ``val_loss`` (NaN without a validation split), ``lr``, ``wall_time`` (s, cumulative) and
            ``samples`` (windows seen, cumulative); see :mod:`gridvit.history`. Empty for an untrained model
            or a file written before histories were saved. Plot with :func:`gridvit.analysis.plot_history`.
    """

    def __init__(self, model: GridViT, *, config: TrainConfig, spec: DataSpec, normaliser: Normaliser,
                 static: np.ndarray | None = None, static_names: tuple[str, ...] = (),
                 forcing_names: tuple[str, ...] = (), solver: SolverStep | None = None,
                 history: xr.Dataset | None = None):
        self.model, self.config, self.spec, self.normaliser = model, config, spec, normaliser
        self.solver = solver
        self.history = empty_history() if history is None else history
        self.static_names, self.forcing_names = tuple(static_names), tuple(forcing_names)
        self.static = None if static is None else torch.as_tensor(np.asarray(static, np.float32))
        self._valid = torch.as_tensor(normaliser.valid)
        self._weights = torch.as_tensor(spec.grid.area_weights(), dtype=torch.float32)

    # ------------------------------------------------------------------ tensors in, tensors out

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def inputs(self, states: torch.Tensor, times: Any) -> torch.Tensor:
        """Model inputs (B, T*C + E, H, W): states (B, T*C, H, W), then static, then calendar channels.

        With a solver, ``S^k`` of the last state follows the states as one more state (B, C, H, W), so the
        network's residual base is the classical prediction. ``times`` (B,) are the times of the last input
        state (used for calendar channels).
        """
        parts = [states]
        b, c = states.shape[0], len(self.spec.channels)
        if self.solver is not None:
            parts.append(self.solver(states[:, -c:]).to(states.dtype))  # (B, C, H, W)
        if self.static is not None:
            parts.append(self.static.to(states)[None].expand(b, -1, -1, -1))  # (B, E_s, H, W)
        if self.forcing_names:
            f = calendar_channels(np.asarray(times).reshape(-1), self.spec.time, self.spec.grid, self.forcing_names)
            parts.append(torch.from_numpy(f).to(states))  # (B, F, H, W)
        return torch.cat(parts, dim=1)

    def forward(self, states: torch.Tensor, times: Any, lead: Any = None) -> torch.Tensor:
        """One model step in normalised units: (B, T*C, H, W) -> (B, C, H, W), masked cells set to 0.
        ``lead``: for a lead-conditioned model, an int or (B,) leads (None: the first)."""
        extra = {} if lead is None else {"lead": lead}  # single-lead networks take no lead
        out = self.model(self.inputs(states, times), self.spec.grid, **extra)
        return out * self._valid.to(out.device)

    def model_inputs(self, ds: xr.Dataset | xr.DataArray) -> torch.Tensor:
        """The exact network input for forecasting from the end of ``ds``: (S, T*C + E, H, W), normalised.

        For analysis (``self.model(x, self.spec.grid, return_attention=True)``); S = samples (1 without a
        sample dim).
        """
        states, times = self._initial_states(ds)
        return self.inputs(states, [times[-1]] * states.shape[0])

    def step(self, u: torch.Tensor) -> torch.Tensor:
        """The solvers' signature: (B, C, H, W) -> (B, C, H, W) in physical units, ``lead`` saved steps on.

        Only for models with ``history=1`` and no calendar channels (PDE surrogates).
        """
        if self.config.history != 1 or self.forcing_names or self.normaliser.clim is not None:
            raise ValueError("step(u) needs a model with history=1, no calendar channels and no climatology; "
                             "use predict/rollout")
        mean = torch.as_tensor(self.normaliser.mean, dtype=u.dtype, device=u.device)[:, None, None]
        std = torch.as_tensor(self.normaliser.std, dtype=u.dtype, device=u.device)[:, None, None]
        z = torch.nan_to_num((u - mean) / std)
        out = self.forward(z.to(self.device, torch.float32), [None] * u.shape[0]).to(u)
        return out * std + mean

    # ------------------------------------------------------------------ xarray in, xarray out

    @property
    def leads(self) -> tuple[int, ...] | None:
        """The leads (saved steps) of a lead-conditioned model; None for a single-lead model."""
        return self.model.cfg.leads

    def predict(self, ds: xr.Dataset | xr.DataArray, *, lead: int | None = None, regrid: bool = False) -> xr.Dataset:
        """The forecast ``lead`` saved steps after the last time of ``ds``, in one model step from its last
        inputs (default: the model's lead, or a lead-conditioned model's first; ``regrid``: see :meth:`rollout`)."""
        return self.rollout(ds, steps=1, lead=lead if lead is not None else self.config.lead, regrid=regrid)

    @torch.no_grad()
    def rollout(self, ds: xr.Dataset | xr.DataArray, steps: int, *, lead: int | None = None, paths: int = 3,
                regrid: bool = False) -> xr.Dataset:
        """Forecast ``steps`` times after the last time of ``ds``, each ``config.lead`` saved steps apart.

        A single-lead model feeds its predictions back ``steps`` times. A lead-conditioned model (``leads``)
        combines its leads (Stormer's path averaging, applied step by step): the forecast F(τ) at each
        τ = 1…steps (in units of ``leads[0]``) is the mean, over the ``paths`` largest trained leads ℓ ≤ τ,
        of the ℓ-step forecast from F(τ − ℓ) and the states before it (observed ones at and before the
        initial time). With leads (1, 3, 6, 12, 24) and ``paths=3``, +24 h averages the direct 24-h forecast
        with 12 h from F(12) and 6 h from F(18). ``paths=1``: the largest lead each time (fewest steps).
        ``lead=k`` instead chains the lead-k forecast alone (``steps`` times, k saved steps apart; with
        ``history > 1`` only for k = ``leads[0]``).

        Args:
            regrid: zero-shot resolution transfer: when ``ds`` lies on another grid of the same geometry,
                periodicity and extent (e.g. 1° data for a model trained at 2°), run the same network there
                with the mask, climatology and static fields interpolated to that grid (bilinear, wrapping
                periodic axes; see :mod:`gridvit.regrid`). False: such data are refused.

        Returns:
            A Dataset laid out like the training data with a time dim of length ``steps`` continuing the
            time axis; NaN where the training data were masked.

        Raises:
            ValueError: ``ds`` has another grid, other variables, another time step or too few steps, or its
                input steps hold inf values or a variable missing (NaN) everywhere; a lead the model was not
                trained for; ``paths`` < 1.
            RolloutDivergedError: at the first step whose values leave the training data's range (more than
                4× farther from the training mean/climatology than any training value, see
                :meth:`gridvit.data.Normaliser.divergence_bound`) or are non-finite; the rollout stops there.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if isinstance(paths, bool) or not isinstance(paths, int) or paths < 1:
            raise ValueError(f"paths must be a positive int, got {paths!r}")
        spacing = self._rollout_spacing(lead, steps)
        ds = as_dataset(ds)  # a path is opened once here
        if regrid:
            from gridvit.regrid import on_grid

            moved = on_grid(self, self._describe(ds))
            if moved is not self:
                return moved.rollout(ds, steps, lead=lead, paths=paths)
        states, times = self._initial_states(ds)  # (S, T*C, H, W), (n,) source times
        future = self.spec.time.advance(times[-1], steps * spacing)  # (steps*spacing,)
        self.model.eval()
        bound = torch.as_tensor(self.normaliser.divergence_bound(), dtype=torch.float32, device=self.device)
        if self.leads is not None and lead is None:
            outs = self._combine(states, times[-1], future, steps, paths, bound)
        else:
            outs = self._chain(states, times[-1], future, steps, spacing, bound)
        z = torch.stack(outs, dim=1).numpy()  # (S, steps, C, H, W)
        valid_times = future[spacing - 1 :: spacing]
        phys = self.normaliser.denormalise(z, valid_times)
        if not self.spec.dims.sample:
            phys = phys[0]  # (steps, C, H, W)
        samples = ds[self.spec.dims.sample].values if self.spec.dims.sample else None
        return to_dataset(phys, self.spec, times=valid_times, samples=samples,
                          valid=self.normaliser.valid)

    def _rollout_spacing(self, lead: int | None, steps: int) -> int:
        """Saved steps between rollout outputs for ``lead`` (validated)."""
        if lead is None or lead == self.config.lead:
            return self.config.lead
        if self.leads is None:
            raise ValueError(f"this model forecasts lead {self.config.lead} only, not {lead!r}")
        if lead not in self.leads:
            raise ValueError(f"lead {lead!r} is not one the model was trained for: {list(self.leads)}")
        if steps > 1 and self.config.history > 1:
            raise ValueError(f"chaining lead {lead} needs history=1 (the model's {self.config.history} inputs are "
                             f"{self.config.lead} step(s) apart); combine the leads with lead=None instead")
        return lead

    def _chain(self, states: torch.Tensor, t_last: Any, future: np.ndarray, steps: int, spacing: int,
               bound: torch.Tensor) -> list[torch.Tensor]:
        """Feed the ``spacing``-step forecast back ``steps`` times: ``steps`` × (S, C, H, W) normalised."""
        c = len(self.spec.channels)
        lead = spacing if self.leads is not None else None
        outs = []
        for k in range(steps):
            nxt = self.forward(states, [t_last] * states.shape[0], lead)  # (S, C, H, W)
            self._check_bounded(nxt, k + 1, bound)
            outs.append(nxt.float().cpu())
            states = torch.cat([states[:, c:], nxt], dim=1)  # drop the oldest state
            t_last = future[(k + 1) * spacing - 1]
        return outs

    def _combine(self, states: torch.Tensor, t0: Any, future: np.ndarray, steps: int, paths: int,
                 bound: torch.Tensor) -> list[torch.Tensor]:
        """The path-averaged forecasts F(1…steps) of :meth:`rollout`: ``steps`` × (S, C, H, W) normalised."""
        c, h, base = len(self.spec.channels), self.config.history, self.config.lead
        s = states.shape[0]
        known = {i + 1 - h: states[:, i * c:(i + 1) * c] for i in range(h)}  # F at τ <= 0: observed
        units = [ell // base for ell in self.leads]
        for tau in range(1, steps + 1):
            use = [u for u in units if u <= tau][-paths:]  # the largest leads that fit
            x = torch.cat([torch.cat([known[tau - u - h + 1 + i] for i in range(h)], dim=1) for u in use])
            t_last = [t0 if tau == u else future[(tau - u) * base - 1] for u in use for _ in range(s)]
            lead = torch.tensor([u * base for u in use for _ in range(s)], device=states.device)
            out = self.forward(x, t_last, lead).reshape(len(use), s, c, *states.shape[-2:])  # (paths, S, C, H, W)
            known[tau] = out.mean(dim=0)  # (S, C, H, W)
            self._check_bounded(known[tau], tau, bound)
        return [known[tau].float().cpu() for tau in range(1, steps + 1)]

    def _initial_states(self, data: xr.Dataset | xr.DataArray) -> tuple[torch.Tensor, np.ndarray]:
        ds = as_dataset(data)
        names = [v.name for v in self.spec.variables]
        missing = [v for v in names if v not in ds.data_vars]
        if missing:
            raise ValueError(f"the dataset lacks variable(s) {missing} the model was trained on ({names}); "
                             f"it has {list(ds.data_vars)}")
        d = self.spec.dims
        spec = self._describe(ds)
        times = ds[d.time].values if d.time in ds.coords else np.arange(ds.sizes[d.time])
        self._check_compatible(spec, times)
        reader = FieldReader(ds, spec, in_memory=False)
        t, c, lead = self.config.history, len(self.spec.channels), self.config.lead
        need = 1 + lead * (t - 1)
        if reader.n_times < need:
            raise ValueError(f"the dataset has {reader.n_times} time steps; the model needs the last {need} "
                             f"(history={t}, lead={lead})")
        idx = reader.n_times - 1 - lead * np.arange(t)[::-1]  # history steps ending at the last time
        raw = np.stack([reader.read(s, idx) for s in range(reader.n_samples)])  # (S, T, C, H, W)
        self._check_inputs(raw, times[idx])
        z = self.normaliser.normalise(raw, times[idx])
        z = np.where(np.isfinite(z) & self.normaliser.valid, z, 0.0).astype(np.float32)
        states = torch.from_numpy(z.reshape(z.shape[0], t * c, *z.shape[-2:])).to(self.device)  # (S, T*C, H, W)
        return states, times

    def _describe(self, ds: xr.Dataset) -> DataSpec:
        """``ds``'s layout read with the model's dim names and periodicity."""
        d = self.spec.dims
        dims = {"time": d.time, "y": d.y, "x": d.x, "channels": list(d.channels)}
        if d.sample:
            dims["sample"] = d.sample
        return describe(ds, variables=[v.name for v in self.spec.variables], dims=dims, allow_single_step=True,
                        periodic={"y": self.spec.grid.periodic_y, "x": self.spec.grid.periodic_x})

    def _check_compatible(self, spec: DataSpec, times: np.ndarray) -> None:
        diff = _grid_difference(spec, self.spec)
        if diff:
            raise ValueError(f"the dataset's grid ({spec.grid.kind} {spec.grid.shape}) differs from the one the "
                             f"model was trained on ({self.spec.grid.kind} {self.spec.grid.shape}): {diff}; "
                             "regrid to the model's grid, or pass regrid=True to run the model on this grid "
                             "(same geometry and extent)")
        if spec.channel_names != self.spec.channel_names:
            raise ValueError(f"the dataset's channels {spec.channel_names} differ from the model's "
                             f"{self.spec.channel_names}")
        same_axis = spec.time.kind == self.spec.time.kind
        if same_axis and len(times) > 1:  # the times must lie on the model's axis (a short monthly slice may
            expected = self.spec.time.advance(times[0], len(times) - 1)  # look like a fixed 31-day step)
            same_axis = bool(np.all(np.asarray(expected) == np.asarray(times[1:])))
        if not same_axis:
            raise ValueError(f"the dataset's time step {spec.time.step!r} ({spec.time.kind}) differs from the "
                             f"model's {self.spec.time.step!r} ({self.spec.time.kind})")

    def _check_inputs(self, raw: np.ndarray, times: np.ndarray) -> None:
        """Refuse input states (S, T, C, H, W) with inf values or a channel NaN at every valid cell of a step
        (NaN at single cells is filled with the training mean/climatology, as in training)."""
        names = self.spec.channel_names
        inf = np.isinf(raw).any(axis=(0, 1, 3, 4))  # (C,)
        if inf.any():
            raise ValueError(f"the input steps hold inf values in {[n for n, b in zip(names, inf) if b]}; "
                             "replace them with finite values (or NaN where data are missing)")
        seen = (np.isfinite(raw) & self.normaliser.valid).any(axis=(0, 3, 4))  # (T, C) any finite valid cell
        if not seen.all():
            t, c = np.argwhere(~seen)[0]
            raise ValueError(f"variable {names[c]!r} is NaN at every cell at input time {times[t]}; the model "
                             f"needs its last {raw.shape[1]} step(s) (history={self.config.history}) to hold data")

    def _check_bounded(self, z: torch.Tensor, step: int, bound: torch.Tensor) -> None:
        """Raise RolloutDivergedError when (S, C, H, W) ``z`` is non-finite or beyond ``bound`` (C,)."""
        over = z.abs().amax(dim=(0, 2, 3))  # (C,); NaN propagates
        bad = ~(over <= bound)
        if bad.any():
            c = int(bad.nonzero()[0])
            peak, lim = float(over[c]), float(bound[c])
            what = ("non-finite values" if not np.isfinite(peak) else
                    f"{peak:.3g} standard deviations from the mean, beyond the bound {lim:.3g} "
                    f"({DIVERGENCE_FACTOR:g}x the training data's largest)")
            raise RolloutDivergedError(
                f"rollout diverged at step {step}: {self.spec.channel_names[c]!r} reached {what}; the rollout was "
                "stopped. The model is unstable this far out (train with rollout_steps > 1, or roll out fewer steps)",
                step=step, peak=peak, bound=lim)

    # ------------------------------------------------------------------ files

    def meta(self) -> dict[str, Any]:
        """JSON-able description: configs, data layout, statistics, channel names."""
        solver = None if self.solver is None else {"scheme": scheme_to_dict(self.solver.scheme),
                                                     "substeps": self.solver.substeps}
        return {"train_config": asdict(self.config), "model_config": asdict(self.model.cfg),
                "spec": self.spec.to_dict(), "normaliser": self.normaliser.to_dict(),
                "static_names": list(self.static_names), "forcing_names": list(self.forcing_names),
                "solver": solver, "history": history_to_dict(self.history)}

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (weights + JSON header); atomic."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.static is not None:
            tensors["static"] = self.static
        if self.normaliser.clim is not None:
            tensors["climatology"] = torch.from_numpy(self.normaliser.clim)
        return save_model_file(path, tensors, self.meta())

    @classmethod
    def from_meta(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> "Surrogate":
        """Rebuild from :meth:`meta` and the tensors of a model file (``model.*`` weights, static, climatology).

        Strict: every weight the header's model needs must be there with its exact shape and dtype, no other
        tensor may be, and the statistics, climatology and static fields must fit the spec's grid and
        channels (see :func:`gridvit.model_file.check_model_file`).

        Raises:
            CheckpointError: naming what is missing or wrong.
        """
        tensors = dict(tensors or {})
        checked = check_model_file(meta, {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()})
        return _rebuild(cls, checked, meta, tensors)


def _grid_difference(got: DataSpec, want: DataSpec) -> str:
    """What differs between two grids, in words (kind, shape, a coordinate or periodicity); "" when they
    match: same cells in the same order, coordinates equal to 1e-6 relative (any float dtype), longitudes
    compared modulo 360°."""
    a, b = got.grid, want.grid
    if a.kind != b.kind or a.shape != b.shape:
        return f"the kind or shape differs, expected {b.kind} {b.shape}"
    for role, dim, u, v in (("y", want.dims.y, a.y, b.y), ("x", want.dims.x, a.x, b.x)):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        if role == "x" and a.kind == "sphere":
            u = v + (u - v + 180.0) % 360.0 - 180.0  # the same longitude written as 0…360 or −180…180
        close = np.isclose(u, v, rtol=1e-6, atol=1e-9)
        if not close.all():
            i = int(np.argmin(close))
            return f"the {role} coordinate {dim!r} differs (index {i}: {u[i]:g}, expected {v[i]:g})"
    if a.periodic != b.periodic:
        return f"the periodicity (y, x) differs: {a.periodic}, expected {b.periodic}"
    return ""


def load(path: str | Path, *, max_bytes: int | None = None) -> Surrogate:
    """Load a model saved by :meth:`Surrogate.save` (a ``.gvt`` file, or a run folder holding ``model.gvt``).

    Loading executes no code from the file (safetensors + JSON) and writes nothing. It is strict, and
    checks before allocating: the header and the tensors' shapes are checked against each other
    (:func:`gridvit.model_file.check_model_file`) before any tensor is read or the network built, so a
    header cannot make it allocate more than the file's own tensors; files written since format 2 also
    carry a SHA-256 digest of header and tensors, checked on read.

    Args:
        max_bytes: refuse files larger than this many bytes (default 2 GiB, or ``$GRIDVIT_MAX_MODEL_BYTES``).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a gridvit model file (a pickle is refused unread), too large, damaged (digest),
            or its header and tensors disagree: weights missing, extra or of another shape/dtype, statistics
            that do not fit the grid, unsafe names (path separators, ``..``), a scheme outside the allow-list.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.gvt"
    mf = open_model_file(path, max_bytes=max_bytes)
    try:
        checked = check_model_file(mf.meta, mf.shapes)  # before a tensor is read or the network allocated
    except CheckpointError as err:
        raise CheckpointError(f"{str(path)!r} is a damaged or unsafe gridvit model file: {err}") from None
    tensors = mf.read()  # the shapes checked above (safetensors reads what its header says)
    try:
        sur = _rebuild(Surrogate, checked, mf.meta, tensors)
    except CheckpointError as err:
        raise CheckpointError(f"{str(path)!r} is a damaged or unsafe gridvit model file: {err}") from None
    sur.model.eval()
    return sur


def _rebuild(cls: type[Surrogate], checked: Checked, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
             ) -> Surrogate:
    """A ``cls`` from a header that passed :func:`check_model_file` and the file's tensors."""
    try:
        model = materialise(checked.model_config, {k[len("model."):]: v for k, v in tensors.items()
                                                   if k.startswith("model.")})
        clim, static = tensors.get("climatology"), tensors.get("static")
        normaliser = Normaliser.from_dict(meta["normaliser"], None if clim is None else clim.numpy())
        solver = None if checked.solver is None else SolverStep(*checked.solver, normaliser.mean, normaliser.std)
        return cls(model, config=checked.config, spec=checked.spec, normaliser=normaliser,
                   static=None if static is None else static.numpy(), static_names=checked.static_names,
                   forcing_names=checked.forcing_names, solver=solver, history=checked.history)
    except Exception as err:  # not expected after the checks; never a traceback from deep inside torch
        lines = str(err).splitlines()
        raise CheckpointError(f"the model could not be rebuilt: {type(err).__name__}: "
                              f"{lines[0][:300] if lines else ''}") from None
