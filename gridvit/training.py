"""``gridvit.train(ds)``: fit a distance-biased ViT to predict the next step of an xarray dataset.

The loop: AdamW, linear warm-up then cosine decay (by step when ``epochs`` is set, by elapsed time under a
``time_budget``), gradient clipping, an area-weighted masked MSE in normalised units, unrolled multi-step
loss (pushforward: each step's input is the detached previous prediction), validation each epoch with early
stopping (the best weights are kept), and an atomic checkpoint each epoch that ``resume=True`` continues.
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

from gridvit.checkpoint import check_writable, load_checkpoint, save_checkpoint
from gridvit.config import TrainConfig
from gridvit.data import prepare
from gridvit.data.pipeline import Prepared
from gridvit.forcings import calendar_names
from gridvit.metrics import weighted_mse_loss
from gridvit.model import GridViT, ModelConfig
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
          static: xr.Dataset | xr.DataArray | None = None, checkpoint_dir: str | Path | None = None,
          resume: bool = False, **options: Any) -> Surrogate:
    """Train a surrogate on ``data`` and return it.

    Args:
        data: Dataset or named DataArray with time and two spatial dims (optionally ``sample`` and levels).
        dims, periodic: see :func:`gridvit.data.describe`. static: extra (y, x) input fields.
        checkpoint_dir: folder for an atomic checkpoint each epoch (``last.pt``) and the final ``model.gvt``.
        resume: continue from ``checkpoint_dir/last.pt`` when it exists.
        **options: :class:`gridvit.config.TrainConfig` fields (history, lead, patch, epochs, time_budget,
            batch_size, lr, val_fraction, seed, device, progress, rollout_steps, calendar, …).

    Returns:
        The trained :class:`gridvit.Surrogate` (best validation weights).
    """
    cfg = TrainConfig.from_options(options)
    if checkpoint_dir is not None:
        check_writable(checkpoint_dir)
    prep = prepare(data, variables=cfg.variables, dims=dims, periodic=periodic, static=static,
                   history=cfg.history, lead=cfg.lead, rollout=cfg.rollout_steps, val_fraction=cfg.val_fraction,
                   patch=cfg.patch, climatology=cfg.climatology)
    if len(prep.windows("train")) == 0:
        raise ValueError("the training split holds no complete window; give more time steps or lower val_fraction")
    sur = build_surrogate(prep, cfg)
    Trainer(sur, prep, cfg, checkpoint_dir=checkpoint_dir, resume=resume).run()
    if checkpoint_dir is not None:
        sur.save(Path(checkpoint_dir) / "model.gvt")
    return sur


def build_surrogate(prep: Prepared, cfg: TrainConfig) -> Surrogate:
    """An untrained (persistence-initialised) surrogate for ``prep``, seeded by ``cfg.seed``."""
    forcings = calendar_names(prep.spec.time) if cfg.calendar else ()
    n_static = 0 if prep.static is None else prep.static.shape[0]
    mcfg = ModelConfig(history=cfg.history, channels=len(prep.spec.channels), extra_channels=n_static + len(forcings),
                       patch=cfg.patch or auto_patch(prep.spec.grid.shape), dim=cfg.dim, depth=cfg.depth,
                       heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, bias=cfg.bias)
    torch.manual_seed(cfg.seed)
    return Surrogate(GridViT(mcfg), config=cfg, spec=prep.spec, normaliser=prep.normaliser, static=prep.static,
                     static_names=prep.static_names, forcing_names=forcings)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(name)


class Trainer:
    """Runs the epochs of :func:`train`; state lives on the instance so checkpoints can restore it."""

    def __init__(self, sur: Surrogate, prep: Prepared, cfg: TrainConfig, *, checkpoint_dir: str | Path | None,
                 resume: bool):
        self.sur, self.prep, self.cfg = sur, prep, cfg
        self.device = resolve_device(cfg.device)
        sur.model.to(self.device)
        self.amp = self.device.type == "cuda"
        self.opt = torch.optim.AdamW(sur.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.weights = torch.as_tensor(prep.spec.grid.area_weights(), dtype=torch.float32, device=self.device)
        self.n_batches = math.ceil(len(prep.windows("train")) / cfg.batch_size)
        self.epochs = cfg.epochs if cfg.epochs is not None else (None if cfg.time_budget else 20)
        self.path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.best_val, self.best_state, self.bad_epochs = math.inf, None, 0
        self.log: list[dict[str, float]] = []
        if resume and self.path is not None and self.path.exists():
            self._restore(load_checkpoint(self.path))

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
        bar = self._bar()
        self._last = time.perf_counter()
        while not self.done():
            loss = self._epoch(bar)
            val = self.validate()
            dt = self._tick()
            if bar is not None and self.epochs is None:
                bar.update(dt)
            self.epoch += 1
            if val < self.best_val - 1e-12:
                self.best_val, self.bad_epochs = val, 0
                self.best_state = {k: v.detach().clone() for k, v in self.sur.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            self.log.append({"epoch": self.epoch, "loss": loss, "val_loss": val, "lr": self.lr(),
                             "elapsed": self.elapsed})
            if bar is not None:
                bar.set_postfix(epoch=self.epoch, loss=f"{loss:.4f}", val=f"{val:.4f}")
            if self.path is not None:
                save_checkpoint(self.path, self._state())
        if bar is not None:
            bar.close()
        if self.best_state is not None:
            self.sur.model.load_state_dict(self.best_state)
        self.sur.model.eval()

    def _epoch(self, bar) -> float:
        model, cfg = self.sur.model, self.cfg
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + self.epoch)  # reproducible, resumable shuffle
        loader = torch.utils.data.DataLoader(self.prep.dataset("train"), batch_size=cfg.batch_size,
                                             shuffle=True, generator=gen)
        total, count = 0.0, 0
        for batch in loader:
            for group in self.opt.param_groups:
                group["lr"] = self.lr()
            loss = self._loss(batch)
            if not torch.isfinite(loss):
                where = f"; the last good checkpoint is {str(self.path)!r}" if self.path else ""
                raise FloatingPointError(f"training loss became non-finite at epoch {self.epoch + 1}, step "
                                         f"{self.step + 1}{where}; lower lr or check the data")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.step += 1
            total, count = total + loss.item() * len(batch["x"]), count + len(batch["x"])
            dt = self._tick()
            if bar is not None:
                bar.update(dt if self.epochs is None else 1)
                bar.set_postfix(epoch=self.epoch + 1, loss=f"{float(loss):.4f}", val=f"{self.best_val:.4f}")
            if self.cfg.time_budget is not None and self.elapsed >= self.cfg.time_budget:
                break
        return total / max(count, 1)

    def _times(self, batch: dict[str, Any], k: int) -> np.ndarray:
        """Times of the last input state before unrolled step k, for calendar channels: (B,)."""
        cfg = self.cfg
        idx = batch["start"].numpy() + cfg.lead * (cfg.history - 1 + k)
        return self.prep.times[idx]

    def _loss(self, batch: dict[str, Any], steps: int | None = None) -> torch.Tensor:
        """Mean over unrolled steps of the area-weighted masked MSE (pushforward: inputs detached)."""
        c = len(self.prep.spec.channels)
        states = batch["x"].to(self.device)  # (B, T*C, H, W)
        y, valid = batch["y"].to(self.device), batch["valid"].to(self.device)  # (B, K, C, H, W)
        k_steps = steps or y.shape[1]
        loss = torch.zeros((), device=self.device)
        for k in range(k_steps):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                pred = self.sur.forward(states, self._times(batch, k))  # (B, C, H, W)
            loss = loss + weighted_mse_loss(pred.float(), y[:, k], valid[:, k], self.weights) / k_steps
            states = torch.cat([states[:, c:], pred.detach().float()], dim=1)
        return loss

    @torch.no_grad()
    def validate(self) -> float:
        """One-step area-weighted MSE on the validation windows (the training loss if there are none)."""
        ds = self.prep.dataset("val")
        if len(ds) == 0:
            return self.log[-1]["loss"] if self.log else math.inf
        self.sur.model.eval()
        total, count = 0.0, 0
        for batch in torch.utils.data.DataLoader(ds, batch_size=self.cfg.batch_size):
            total += float(self._loss(batch, steps=1)) * len(batch["x"])
            count += len(batch["x"])
        return total / count

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
        saved = json.loads(state["meta"])
        now = self.sur.meta()
        for key in ("model_config", "spec"):
            if saved[key] != json.loads(json.dumps(now[key])):
                raise ValueError(f"the checkpoint {str(self.path)!r} was written for another {key.replace('_', ' ')}"
                                 "; use another checkpoint_dir or resume=False")
        self.sur.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.best_val, self.bad_epochs, self.log = state["best_val"], state["bad_epochs"], list(state["log"])
        self.best_state = state["best_state"] or None
        torch.set_rng_state(state["torch_rng"])


