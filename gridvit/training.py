"""``gridvit.train(ds)``: fit a distance-biased ViT to predict the next step of an xarray dataset.

The loop: AdamW, linear warm-up then cosine decay (by step when ``epochs`` is set, by elapsed time under a
``time_budget``), gradient clipping, an area-weighted masked MSE in normalised units, unrolled multi-step
loss (pushforward: each step's input is the detached previous prediction; with a solver, by default the
loss backpropagates through every unrolled step, solver included), validation each epoch with early
stopping (the best weights are kept), and an atomic checkpoint each epoch that ``resume=True`` continues.

Under ``torchrun`` (see :mod:`gridvit.distributed`) every process runs this loop on its share of each
global batch of the same shuffle, with the model in DistributedDataParallel: the loss is each rank's part
of the global area-weighted sum over the global weight total, so the all-reduced gradient is the one a
single process computes for the same ``batch_size``. Decisions that must agree (time, early stopping) are
taken from rank 0, and only rank 0 writes checkpoints, model files and progress.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr

from gridvit.checkpoint import (CheckpointError, check_writable, load_checkpoint, require_optimizer_state,
                                require_state, save_checkpoint)
from gridvit.config import TrainConfig
from gridvit.data import prepare
from gridvit.data.pipeline import Prepared
from gridvit.distributed import Comm, detect, local_batch_size, process_group, resolve_device, shard_batches
from gridvit.forcings import calendar_names
from gridvit.history import history_dataset
from gridvit.metrics import weighted_mse_loss
from gridvit.model import GridViT, ModelConfig
from gridvit.model.cell_linear import fit_cell_linear
from gridvit.model.correction import SolverStep, substeps_for
from gridvit.model.vit import zero_nonfinite
from gridvit.patches import patch_grid_shape
from gridvit.surrogate import Surrogate

MAX_TOKENS = 1100
CHECKPOINT = "last.pt"


def auto_patch(shape: tuple[int, int], max_tokens: int = MAX_TOKENS) -> int:
    """The smallest patch side giving at most ``max_tokens`` patches (a few hundred to ~1000 tokens)."""
    for p in range(1, min(shape) + 1):
        nh, nw = patch_grid_shape(shape, p)
        if nh * nw <= max_tokens:
            return p
    return min(shape)


def train(data: xr.Dataset | xr.DataArray, *, dims: Mapping[str, Any] | None = None, periodic: Any = None,
          static: xr.Dataset | xr.DataArray | None = None, solver: Any = None,
          checkpoint_dir: str | Path | None = None, resume: bool = False, distributed: bool | None = None,
          **options: Any) -> Surrogate:
    """Train a surrogate on ``data`` and return it.

    Args:
        data: Dataset or named DataArray with time and two spatial dims (optionally ``sample`` and levels).
        dims, periodic: see :func:`gridvit.data.describe`. static: extra (y, x) input fields.
        solver: a :mod:`gridvit.solvers` scheme built for the data's grid, for a **learned correction**: the
            model step becomes ``u_next = S^k(u) + f_θ(u, S^k(u))`` with ``k = lead·Δt_data / solver.dt``
            (a whole number), trained through the scheme with autograd (the unrolled loss backpropagates
            through every step unless ``pushforward=True``). Saved in the model file as data (class and
            parameters). None: a pure surrogate.
        checkpoint_dir: folder for an atomic checkpoint each epoch (``last.pt``) and the final ``model.gvt``.
        resume: continue from ``checkpoint_dir/last.pt`` when it exists (under torchrun: on a filesystem
            every node sees).
        distributed: None (auto): data-parallel when launched by torchrun or inside an initialised
            process group; True: require that; False: a plain single-process run.
        **options: :class:`gridvit.config.TrainConfig` fields (history, lead, patch, epochs, time_budget,
            batch_size (the global batch), lr, val_fraction, seed, device, progress, rollout_steps,
            calendar, num_workers, activation_checkpointing, …).

    Returns:
        The trained :class:`gridvit.Surrogate` (best validation weights; the same weights on every rank).

    Raises:
        ValueError: bad options, data that hold no training window, or a ``batch_size`` not divisible by
            the world size.
    """
    cfg = TrainConfig.from_options(options)
    launch = detect(distributed)
    if launch is not None:
        local_batch_size(cfg.batch_size, launch.world)  # fail before joining a process group
    with process_group(launch, cfg.device) as comm:
        if checkpoint_dir is not None and comm.is_main:
            check_writable(checkpoint_dir)
        prep = prepare(data, variables=cfg.variables, dims=dims, periodic=periodic, static=static,
                       history=cfg.history, lead=cfg.lead, rollout=cfg.rollout_steps, leads=cfg.leads,
                       val_fraction=cfg.val_fraction, patch=cfg.patch, climatology=cfg.climatology)
        if len(prep.windows("train")) == 0:
            raise ValueError("the training split holds no complete window; give more time steps or lower "
                             "val_fraction")
        sur = build_surrogate(prep, cfg, solver=solver)
        Trainer(sur, prep, cfg, checkpoint_dir=checkpoint_dir, resume=resume, comm=comm).run()
        if checkpoint_dir is not None and comm.is_main:
            sur.save(Path(checkpoint_dir) / "model.gvt")
        comm.barrier()
    return sur


def build_surrogate(prep: Prepared, cfg: TrainConfig, *, solver: Any = None) -> Surrogate:
    """An untrained surrogate for ``prep``, seeded by ``cfg.seed``: persistence, or with a ``solver`` (a
    scheme, see :func:`train`) the bare scheme's ``S^k``."""
    forcings = calendar_names(prep.spec.time, "diurnal" if cfg.calendar == "diurnal" else "all") if cfg.calendar else ()
    n_static = 0 if prep.static is None else prep.static.shape[0]
    step = None
    if solver is not None:
        if cfg.leads is not None:
            raise ValueError("a learned correction (solver=...) steps one lead; it cannot be lead-conditioned (leads=...)")
        if prep.normaliser.clim is not None:
            raise ValueError("a solver works on plain mean/std normalisation; pass climatology=None")
        k = substeps_for(solver, prep.spec, lead=cfg.lead, channels=len(prep.spec.channels))
        fresh = solver.with_dt(solver.dt)  # its own constant cache (one built under inference_mode cannot train)
        step = SolverStep(fresh, k, prep.normaliser.mean, prep.normaliser.std)
    if cfg.random_shift:
        _check_shiftable(prep)
    history = cfg.history + (step is not None)  # S^k(u) enters as one more (the last) input state
    mcfg = ModelConfig(history=history, channels=len(prep.spec.channels), extra_channels=n_static + len(forcings),
                       patch=cfg.patch or auto_patch(prep.spec.grid.shape), dim=cfg.dim, depth=cfg.depth,
                       heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, bias=cfg.bias, attention=cfg.attention,
                       decoder=cfg.decoder, decoder_width=cfg.decoder_width, stem_width=cfg.stem_width,
                       leads=None if cfg.leads is None else tuple(cfg.leads),
                       cell_linear=tuple(prep.spec.grid.shape) if cfg.linear_base else None)
    torch.manual_seed(cfg.seed)
    return Surrogate(GridViT(mcfg), config=cfg, spec=prep.spec, normaliser=prep.normaliser, static=prep.static,
                     static_names=prep.static_names, forcing_names=forcings, solver=step)


def _check_shiftable(prep: Prepared) -> None:
    """ValueError unless ``random_shift`` keeps the data's meaning: a plane with a periodic axis, no static
    fields, no masked cells."""
    grid = prep.spec.grid
    if grid.kind != "plane" or not any(grid.periodic):
        raise ValueError("random_shift needs a plane grid with a periodic axis (a shift is a symmetry only "
                         f"there); this grid is a {grid.kind} with periodic (y, x) = {grid.periodic}")
    if prep.static is not None:
        raise ValueError("random_shift cannot be used with static fields: they tie the data to fixed cells")
    if not np.all(prep.normaliser.valid):
        raise ValueError("random_shift cannot be used on data with masked (never finite) cells")


def random_shifts(tensors: list[torch.Tensor], periodic: tuple[bool, bool]) -> list[torch.Tensor]:
    """Roll each sample of every tensor (B, ..., H, W) by one random offset per periodic axis, the same
    offset for a sample across the tensors (inputs and targets move together)."""
    b, (h, w) = tensors[0].shape[0], tensors[0].shape[-2:]
    device = tensors[0].device
    out = list(tensors)
    for axis, (n, wraps) in zip((-2, -1), zip((h, w), periodic)):
        if not wraps:
            continue
        offset = torch.randint(n, (b, 1), device=device)
        index = (torch.arange(n, device=device) - offset) % n  # (B, n): source cell of each target cell
        for i, t in enumerate(out):
            view = [b] + [1] * (t.dim() - 1)
            view[axis] = n
            out[i] = t.gather(axis, index.view(view).expand_as(t))
    return out


class Trainer:
    """Runs the epochs of :func:`train`; state lives on the instance so checkpoints can restore it.

    ``comm`` (default: one process on ``cfg.device``) is this rank's view of a distributed run.
    """

    def __init__(self, sur: Surrogate, prep: Prepared, cfg: TrainConfig, *, checkpoint_dir: str | Path | None,
                 resume: bool, comm: Comm | None = None):
        self.sur, self.prep, self.cfg = sur, prep, cfg
        self.comm = comm or Comm(resolve_device(cfg.device))
        self.device = self.comm.device
        self.local_batch = local_batch_size(cfg.batch_size, self.comm.world)
        sur.model.to(self.device)
        sur.model.activation_checkpointing = cfg.activation_checkpointing
        self.amp = self.device.type == "cuda"  # bf16 autocast on CUDA (float32 master weights and loss)
        # fused (CPU, CUDA): one kernel for every parameter; the per-tensor loop took ~6× as long per step
        self.opt = torch.optim.AdamW(sur.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                     fused=self.device.type in ("cpu", "cuda") or None)
        self.weights = torch.as_tensor(prep.spec.grid.area_weights(), dtype=torch.float32, device=self.device)
        self.valid = torch.as_tensor(prep.normaliser.valid, device=self.device)  # (C, H, W)
        self.n_batches = math.ceil(len(prep.windows("train")) / cfg.batch_size)
        self.epochs = cfg.epochs if cfg.epochs is not None else (None if cfg.time_budget else 20)
        self.path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
        self.epoch, self.step, self.elapsed, self.samples = 0, 0, 0.0, 0
        self.best_val, self.best_state, self.bad_epochs = math.inf, None, 0
        self.log: list[dict[str, float]] = []
        if resume and self.path is not None and self.path.exists():
            self._restore(load_checkpoint(self.path))
        elif sur.model.cell_linear is not None:
            fit_cell_linear(sur, self._linear_batches(), self.device)
        self.lead_weights = self._lead_weights()  # (L,) or None
        self.net = self.comm.wrap(sur.model)  # DistributedDataParallel under a process group

    # -------------------------------------------------------------- schedule

    def progress(self) -> float:
        """Fraction of training done: by steps when epochs are set, by time under a budget (the larger)."""
        p = 0.0
        if self.epochs:
            p = self.step / (self.epochs * self.n_batches)
        if self.cfg.time_budget:
            p = max(p, self.elapsed / self.cfg.time_budget)
        return min(p, 1.0)

    def lr(self) -> float:
        p, w = self.progress(), self.cfg.warmup
        if p < w:
            return self.cfg.lr * (p + 1.0 / max(self.n_batches, 1)) / w if w else self.cfg.lr
        return self.cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * (p - w) / (1.0 - w))))

    def unrolled_steps(self) -> int:
        """Steps in the unrolled loss now: 1 for the first ``rollout_curriculum`` of training, then growing
        linearly to ``rollout_steps``, reached halfway through the rest."""
        k, f = self.cfg.rollout_steps, self.cfg.rollout_curriculum
        p = self.progress()
        if k == 1 or f == 0 or p >= f + (1 - f) / 2:
            return k
        return 1 if p < f else min(k, 1 + int((k - 1) * (p - f) / ((1 - f) / 2)))

    def done(self) -> bool:
        if self.epochs is not None and self.epoch >= self.epochs:
            return True
        if self.cfg.time_budget is not None and self.elapsed >= self.cfg.time_budget:
            return True
        return self.bad_epochs > self.cfg.patience

    # -------------------------------------------------------------- loop

    def _tick(self) -> float:
        """Advance ``elapsed`` (wall-clock seconds of training, validation included); return the increment."""
        now = time.perf_counter()
        dt, self._last = now - self._last, now
        self.elapsed += dt
        return dt

    def run(self) -> None:
        bar = self._bar() if self.comm.is_main else None
        self._last = time.perf_counter()
        if self.epoch == 0 and self.best_state is None and self.sur.model.cell_linear is not None:
            # the fitted linear base is the first candidate, kept unless training beats it on validation
            self.best_val = self.comm.from_main([self.validate()])[0]
            self.best_state = {k: v.detach().clone() for k, v in self.sur.model.state_dict().items()}
        while not self.done():
            loss = self._epoch(bar)
            val = self.validate()
            dt = self._tick()
            val, self.elapsed = self.comm.from_main([val, self.elapsed])  # the same decisions on every rank
            if bar is not None and self.epochs is None:
                _advance(bar, dt)
            self.epoch += 1
            if val < self.best_val - 1e-12:
                self.best_val, self.bad_epochs = val, 0
                self.best_state = {k: v.detach().clone() for k, v in self.sur.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            has_val = len(self.prep.windows("val")) > 0  # without a split, val is the training loss (or inf)
            self.log.append({"epoch": self.epoch, "loss": loss, "val_loss": val if has_val else None, "lr": self.lr(),
                             "elapsed": self.elapsed, "samples": self.samples})
            if bar is not None:
                bar.set_postfix(epoch=self.epoch, loss=f"{loss:.4f}", val=f"{val:.4f}")
            if self.path is not None:
                if self.comm.is_main:
                    save_checkpoint(self.path, self._state())
                self.comm.barrier()
        if bar is not None:
            bar.close()
        if self.best_state is not None:
            self.sur.model.load_state_dict(self.best_state)
        model = self.sur.model
        if (model.cell_linear is not None and len(self.prep.windows("val"))
                and not any(p.any() for p in model.output_layer.parameters())):
            # validation kept the linear base alone: refit it on every window given (a kept network stays
            # with the training-split base it learned the residual of)
            fit_cell_linear(self.sur, self._linear_batches("train", "val"), self.device)
        self.sur.model.eval()
        self.sur.history = history_dataset(self.log)

    def _epoch(self, bar) -> float:
        cfg = self.cfg
        self.net.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)  # reproducible, resumable shuffle
        order = torch.randperm(len(self.prep.windows("train")), generator=gen)  # the same on every rank
        shards = shard_batches(order.tolist(), cfg.batch_size, self.comm.rank, self.comm.world)
        loader = self._loader(self.prep.dataset("train"), batch_sampler=[s.indices for s in shards])
        total, count = 0.0, 0
        for shard, batch in zip(shards, loader):
            if not shard.real:
                batch["valid"].zero_()  # a placeholder keeps this rank in step and adds nothing
            for group in self.opt.param_groups:
                group["lr"] = self.lr()
            k_now = self.unrolled_steps()
            mine = self._weight_totals(batch, steps=k_now)  # (K,)
            share = mine / self.comm.sum_(mine.clone()).clamp_min(1e-12)  # this rank's part of the batch
            loss = self._loss(batch, share, steps=k_now)
            global_loss = float(self.comm.sum_(loss.detach().clone()))
            if not math.isfinite(global_loss):
                where = f"; the last good checkpoint is {str(self.path)!r}" if self.path else ""
                hint = "" if self.sur.solver is None else (
                    f"; with a solver, check that {self.sur.solver.scheme.label} is stable at dt="
                    f"{self.sur.solver.scheme.dt:g} on predicted states (scheme.max_dt(u)), or use pushforward=True")
                raise FloatingPointError(f"training loss became non-finite at epoch {self.epoch + 1}, step "
                                         f"{self.step + 1}{where}; lower lr or check the data{hint}")
            self.opt.zero_grad(set_to_none=True)
            (loss * self.comm.world).backward()  # DDP averages over ranks; the sum is the global gradient
            torch.nn.utils.clip_grad_norm_(self.sur.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.step += 1
            total, count = total + global_loss * shard.global_size, count + shard.global_size
            self.samples += shard.global_size
            dt = self._tick()
            if cfg.time_budget is not None and self.comm.active:
                self.elapsed = self.comm.from_main([self.elapsed])[0]  # one clock for lr and the budget
            if bar is not None:
                _advance(bar, dt if self.epochs is None else 1)
                bar.set_postfix(epoch=self.epoch + 1, loss=f"{global_loss:.4f}", val=f"{self.best_val:.4f}")
            if cfg.time_budget is not None and self.elapsed >= cfg.time_budget:
                break
        return total / max(count, 1)

    @torch.no_grad()
    def _lead_weights(self) -> torch.Tensor | None:
        """Loss weight per lead of a lead-conditioned model (``balance_leads``): mean(e) / e_ℓ, with e_ℓ the
        area-weighted MSE at lead ℓ of what the network's delta is added to (the linear base, or persistence)
        on the training windows, so each lead's residual counts alike however large it is; (L,), or None."""
        model = self.sur.model
        if model.cfg.leads is None or not self.cfg.balance_leads:
            return None
        sums = torch.zeros(2, len(model.cfg.leads), dtype=torch.float64, device=self.device)  # Σ w·err², Σ w
        for x, y, valid, idx in self._linear_batches():
            w = self.weights * valid  # (B, C, H, W)
            err = (w * (model.base(zero_nonfinite(x), idx) - y) ** 2).sum(dim=(1, 2, 3))  # (B,)
            sums[0].index_add_(0, idx, err.double())
            sums[1].index_add_(0, idx, w.sum(dim=(1, 2, 3)).double())
        e = sums[0] / sums[1].clamp_min(1e-12)  # (L,)
        if not e.max() > 0:  # the base is exact at every lead (a field constant in time): nothing to balance
            return None
        e = e.clamp_min(1e-3 * e.mean())  # a lead the base gets (almost) exactly right: at most ~1000× the weight
        return (e.mean() / e).float()

    def _linear_batches(self, *splits: str):
        """(inputs (B, F, H, W), first target (B, C, H, W), its valid mask, lead index (B,)) over the windows of
        ``splits`` (default: the training split), for :func:`gridvit.model.cell_linear.fit_cell_linear`."""
        data = torch.utils.data.ConcatDataset([self.prep.dataset(s) for s in splits or ("train",)])
        for batch in self._loader(data, batch_size=64):
            x = self.sur.inputs(batch["x"].to(self.device), self._times(batch, 0))
            idx = self.sur.model.lead_index(batch.get("lead"), len(x), self.device)  # (B,)
            yield x, batch["y"][:, 0].to(self.device), batch["valid"][:, 0].to(self.device), idx

    def _loader(self, dataset: torch.utils.data.Dataset, **kwargs: Any) -> torch.utils.data.DataLoader:
        """Batches read by ``cfg.num_workers`` worker processes (each keeps 2 batches in flight; 0: read
        in this process), pinned for the copy when training on CUDA."""
        return torch.utils.data.DataLoader(dataset, num_workers=self.cfg.num_workers,
                                           pin_memory=self.device.type == "cuda", **kwargs)

    def _times(self, batch: dict[str, Any], k: int) -> np.ndarray:
        """Times of the last input state before unrolled step k, for calendar channels: (B,)."""
        cfg = self.cfg
        idx = batch["start"].numpy() + cfg.lead * (cfg.history - 1 + k)
        return self.prep.times[idx]

    def _weight_totals(self, batch: dict[str, Any], steps: int | None = None) -> torch.Tensor:
        """Σ area weight over the valid target cells of the batch, per unrolled step: (K,)."""
        valid = batch["valid"][:, :steps].to(self.device)  # (B, K, C, H, W)
        return (valid * self._weights(batch)[:, None]).sum(dim=(0, 2, 3, 4))

    def _weights(self, batch: dict[str, Any]) -> torch.Tensor:
        """Loss weight per window and cell: area weight × the window's lead weight, (B, 1, H, W)."""
        if self.lead_weights is None:
            return self.weights.expand(len(batch["x"]), 1, *self.weights.shape)
        idx = self.sur.model.lead_index(batch["lead"].to(self.device), len(batch["x"]), self.device)  # (B,)
        return self.weights * self.lead_weights[idx][:, None, None, None]

    def _loss(self, batch: dict[str, Any], share: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
        """Mean over unrolled steps of the area-weighted masked MSE (pushforward: inputs detached, see
        ``TrainConfig.pushforward``).

        ``share`` (K,): this rank's fraction of each step's weight total in a batch split over ranks; the
        shares' weighted MSEs sum over ranks to the whole batch's (default: the whole batch is here).
        """
        c = len(self.prep.spec.channels)
        states = batch["x"].to(self.device)  # (B, T*C, H, W)
        if self.cfg.input_noise and self.sur.model.training:
            valid = self.valid.repeat(self.cfg.history, 1, 1)  # (T*C, H, W)
            states = states + self.cfg.input_noise * torch.randn_like(states) * valid
        y, valid = batch["y"].to(self.device), batch["valid"].to(self.device)  # (B, K, C, H, W)
        if self.cfg.random_shift and self.sur.model.training:
            states, y, valid = random_shifts([states, y, valid], self.prep.spec.grid.periodic)
        k_steps = steps or y.shape[1]
        detach = self.cfg.pushforward if self.cfg.pushforward is not None else self.sur.solver is None
        lead = {"lead": batch["lead"].to(self.device)} if "lead" in batch else {}  # lead-conditioned windows
        loss, weights = torch.zeros((), device=self.device), self._weights(batch)  # (B, 1, H, W)
        for k in range(k_steps):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = self.net(self.sur.inputs(states, self._times(batch, k)), self.sur.spec.grid, **lead)
            pred = out.float() * self.valid  # (B, C, H, W), masked cells 0 as in Surrogate.forward
            mse = weighted_mse_loss(pred, y[:, k], valid[:, k], weights)
            loss = loss + (mse if share is None else mse * share[k]) / k_steps
            states = torch.cat([states[:, c:], pred.detach() if detach else pred], dim=1)
        return loss

    @torch.no_grad()
    def validate(self) -> float:
        """One-step area-weighted MSE over all validation windows, leads weighted as in training (the training
        loss if there are none); each rank takes every ``world``-th window and the sums are all-reduced."""
        ds = self.prep.dataset("val")
        if len(ds) == 0:
            return self.log[-1]["loss"] if self.log else math.inf
        self.net.eval()
        mine = torch.utils.data.Subset(ds, range(self.comm.rank, len(ds), self.comm.world))
        sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # Σ w·err², Σ w
        for batch in self._loader(mine, batch_size=self.local_batch):
            w = self._weight_totals(batch, steps=1)[0]
            sums += torch.stack([self._loss(batch, steps=1).double() * w, w.double()])
        self.comm.sum_(sums)
        return float(sums[0] / sums[1].clamp_min(1e-12))

    def _bar(self):
        if not self.cfg.progress:
            return None
        from tqdm.auto import tqdm

        if self.epochs is None:
            return tqdm(total=float(self.cfg.time_budget), initial=self.elapsed, unit="s", desc="gridvit train",
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}<{remaining}{postfix}]")
        return tqdm(total=self.epochs * self.n_batches, initial=self.step, unit="step", desc="gridvit train")

    # -------------------------------------------------------------- checkpoints

    def _state(self) -> dict[str, Any]:
        return {"meta": json.dumps(self.sur.meta()), "model": self.sur.model.state_dict(),
                "optimizer": self.opt.state_dict(), "epoch": self.epoch, "step": self.step,
                "elapsed": self.elapsed, "best_val": self.best_val, "bad_epochs": self.bad_epochs,
                "best_state": self.best_state if self.best_state is not None else {}, "log": self.log,
                "torch_rng": torch.get_rng_state()}

    def _restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint, strictly: the same model config and spec, weights (and best weights)
        of exactly the model's names, shapes and dtypes, an optimizer state of the same groups and shapes,
        counters of the right types; CheckpointError naming what is wrong (nothing is changed then)."""
        where = f"the checkpoint {str(self.path)!r}"
        keys = ("meta", "model", "optimizer", "epoch", "step", "elapsed", "best_val", "bad_epochs", "best_state", "log",
                "torch_rng")
        missing = [k for k in keys if k not in state]
        if missing:
            raise CheckpointError(f"{where} is damaged: it lacks {missing}")
        try:
            saved = json.loads(state["meta"])
            now = self.sur.meta()
            changed = [key for key in ("model_config", "spec") if saved[key] != json.loads(json.dumps(now[key]))]
        except Exception as err:  # not a string, bad JSON, not a mapping, a missing section
            raise CheckpointError(f"{where} has a damaged header ({type(err).__name__})") from None
        if changed:
            raise CheckpointError(f"{where} was written for another {changed[0].replace('_', ' ')}; use another "
                                  "checkpoint_dir or resume=False")
        expected = self.sur.model.state_dict()
        weights = require_state(expected, state["model"], f"{where}: its model weights")
        best = state["best_state"]  # {} before the first validation
        best = None if isinstance(best, dict) and not best else require_state(expected, best, f"{where}: its best weights")
        optimizer = require_optimizer_state(self.opt, state["optimizer"], f"{where}: its optimizer state")
        counts = {k: state[k] for k in ("epoch", "step", "bad_epochs")}
        numbers = {k: state[k] for k in ("elapsed", "best_val")}
        rng = state["torch_rng"]
        state["log"] = _upgrade_log(state["log"], len(self.prep.windows("train")))
        if (not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values())
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in numbers.values())
                or not _valid_log(state["log"])
                or not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8
                        and rng.shape == torch.get_rng_state().shape)):
            raise CheckpointError(f"{where} is damaged: its counters, log or random state are of the wrong type")
        self.sur.model.load_state_dict(weights, strict=True)
        self.opt.load_state_dict(optimizer)
        self.epoch, self.step, self.elapsed = counts["epoch"], counts["step"], float(numbers["elapsed"])
        self.best_val, self.bad_epochs, self.log = float(numbers["best_val"]), counts["bad_epochs"], list(state["log"])
        self.best_state = best
        self.samples = int(self.log[-1]["samples"]) if self.log else 0
        torch.set_rng_state(rng)


def _upgrade_log(log: Any, per_epoch: int) -> Any:
    """A log from a checkpoint written before ``samples`` was logged, with it filled in as epoch × the
    training windows per epoch (what a run without a time cut sees); anything else unchanged."""
    if isinstance(log, list) and all(isinstance(e, dict) and "samples" not in e and isinstance(e.get("epoch"), int)
                                     for e in log):
        return [{**e, "samples": e["epoch"] * per_epoch} for e in log]
    return log


def _valid_log(log: Any) -> bool:
    """Whether a checkpoint's log is a per-epoch history :func:`gridvit.history.history_dataset` accepts."""
    try:
        history_dataset(log)
    except ValueError:
        return False
    return isinstance(log, list)


def _advance(bar, n: float) -> None:
    """Advance a progress bar by ``n``, never past its total (tqdm drops a total that is passed, and the
    time bar's format then fails); the last step of a time budget overshoots it."""
    bar.update(max(0.0, min(n, bar.total - bar.n)))
