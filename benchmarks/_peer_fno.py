"""The peer baseline of ``surrogate_vs_stencil.py``: neuraloperator's FNO on gridvit's data, budget and device.

``neuralop.models.FNO`` (modes 16², width 32, its defaults otherwise: 4 Fourier layers, grid positional
embedding; about 0.6 M parameters for two channels) as a residual one-step map in normalised units,
``next = u + FNO(u)``, trained the way ``gridvit.train`` trains the pure surrogate so that only the
network differs: the same trajectories, the same sample split (the last ``val_fraction`` of the samples
validate), per-channel mean/std normalisation from the training split, the pure surrogate's ``rollout_steps``
unrolled MSE, ``pushforward`` (each step's input the detached previous prediction, or backpropagation
through the unroll), ``input_noise``, ``random_shift`` (each window rolled by a random periodic offset: the
grid positional embedding makes the FNO not shift-equivariant, so it gains from the augmentation as gridvit
does) and learning rate (default 1e-3), AdamW (weight decay 1e-4, the
multi-tensor update) with 5 % linear
warm-up then cosine decay over the time budget, gradient clipping at 1, batch 8, validation every epoch
with early stopping (best weights kept), wall-clock budget including validation; float32 on every device
(gridvit trains under bf16 autocast on CUDA; neuraloperator's spectral layers are kept in full precision).

neuraloperator is an optional dependency (the ``bench`` extra); :func:`available` says whether it imports.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Callable

import numpy as np
import torch

MODES, WIDTH = 16, 32
LR, WEIGHT_DECAY, WARMUP, CLIP, BATCH = 1e-3, 1e-4, 0.05, 1.0, 8


def available() -> str | None:
    """None when ``neuralop`` imports, else the reason it does not (for the skip note)."""
    try:
        from neuralop.models import FNO  # noqa: F401
    except Exception as err:  # an ImportError, or a broken install raising anything on import
        return f"neuraloperator is not installed ({type(err).__name__}: {err}); `pip install gridvit[bench]`"
    return None


def windows(traj: np.ndarray, rollout: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, T, C, H, W) trajectories -> inputs (M, C, H, W) and targets (M, rollout, C, H, W), M = S·(T − rollout),
    windows ordered by (sample, start step)."""
    s, t, c, h, w = traj.shape
    m = t - rollout
    x = traj[:, :m].reshape(s * m, c, h, w)  # (S*m, C, H, W)
    y = np.stack([traj[:, 1 + k:1 + k + m] for k in range(rollout)], axis=2)  # (S, m, K, C, H, W)
    return x, y.reshape(s * m, rollout, c, h, w)


def train_fno(traj: np.ndarray, *, budget: float, rollout: int, device: str, pushforward: bool = True,
              input_noise: float = 0.0, random_shift: bool = False, lr: float = LR, seed: int = 0,
              val_fraction: float = 0.1, patience: int = 20) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict]:
    """Train the residual FNO on (S, T, C, H, W) trajectories for ``budget`` seconds (``rollout``,
    ``pushforward``, ``input_noise``, ``random_shift``, ``lr``, ``val_fraction``, ``patience``: as
    ``gridvit.train``'s options).

    Returns:
        ``step(u: (B, C, H, W)) -> (B, C, H, W)`` in physical units (the solvers' signature), and
        ``{"parameters", "epochs", "train_s", "best_val"}``.
    """
    from neuralop.models import FNO

    from gridvit.training import random_shifts

    n_val = int(round(traj.shape[0] * val_fraction))
    train, val = traj[:traj.shape[0] - n_val], traj[traj.shape[0] - n_val:]
    mean = train.mean(axis=(0, 1, 3, 4))  # (C,)
    std = train.std(axis=(0, 1, 3, 4))  # (C,)
    norm = lambda a: (a - mean[:, None, None]) / std[:, None, None]  # noqa: E731  (..., C, H, W)
    x, y = (torch.tensor(a, dtype=torch.float32, device=device) for a in windows(norm(train), rollout))
    xv, yv = (torch.tensor(a, dtype=torch.float32, device=device) for a in windows(norm(val), 1))
    torch.manual_seed(seed)
    c = traj.shape[2]
    net = FNO(n_modes=(MODES, MODES), hidden_channels=WIDTH, in_channels=c, out_channels=c).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=WEIGHT_DECAY, foreach=True)
    gen = torch.Generator().manual_seed(seed)
    start, epochs, best, best_state, bad = time.perf_counter(), 0, math.inf, None, 0
    elapsed = lambda: time.perf_counter() - start  # noqa: E731
    while elapsed() < budget and bad <= patience:
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            p = min(elapsed() / budget, 1.0)
            rate = lr * (p + 1e-3) / WARMUP if p < WARMUP else \
                lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (p - WARMUP) / (1 - WARMUP))))
            for group in opt.param_groups:
                group["lr"] = rate
            u, target, loss = x[idx], y[idx], 0.0  # (B, C, H, W), (B, K, C, H, W)
            if random_shift:
                u, target = random_shifts([u, target], (True, True))
            if input_noise:
                u = u + input_noise * torch.randn_like(u)
            for k in range(rollout):
                u = u + net(u)  # (B, C, H, W)
                loss = loss + torch.mean((u - target[:, k]) ** 2) / rollout
                if pushforward:
                    u = u.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            opt.step()
            if elapsed() >= budget:
                break
        epochs += 1
        val_loss = _validate(net, xv, yv) if len(xv) else float(loss.detach())
        if val_loss < best - 1e-12:
            best, bad = val_loss, 0
            best_state = copy.deepcopy(net.state_dict())  # neuralop's holds a metadata dict beside tensors
        else:
            bad += 1
    train_s = elapsed()
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    m, s = (torch.tensor(a, dtype=torch.float32, device=device)[:, None, None] for a in (mean, std))  # (C, 1, 1)

    def step(u: torch.Tensor) -> torch.Tensor:
        z = (u - m) / s  # (B, C, H, W) normalised
        return (z + net(z)) * s + m

    info = {"parameters": sum(p.numel() for p in net.parameters()), "epochs": epochs, "train_s": train_s,
            "best_val": best}
    return step, info


@torch.no_grad()
def _validate(net: torch.nn.Module, xv: torch.Tensor, yv: torch.Tensor) -> float:
    """One-step MSE over the validation windows (normalised units)."""
    net.eval()
    errs = [torch.sum((u + net(u) - t[:, 0]) ** 2) for u, t in zip(xv.split(64), yv.split(64))]
    return float(sum(errs) / yv[:, 0].numel())
