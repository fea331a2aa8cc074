"""GridViT: a pre-LN Vision Transformer over patch tokens with distance-biased attention.

Data flow (shape glossary of DESIGN.md: B batch, T history, C channels, E extras, H×W grid, P patch,
N patches, D width, h heads)::

    x (B, T*C + E, H, W) -> finite -> pad + patchify (B, N, P*P*(T*C+E)) -> embed (B, N, D)
      -> depth × [x + attn(LN(x), bias (1, h, N, N)); x + mlp(LN(x))] -> LN -> head (B, N, P*P*C)
      -> unpatchify + crop (B, C, H, W) = delta;  output = last state + delta
    decoder="conv": head (B, N, P*P*F) -> unpatchify (B, F, H, W) -> 2 × conv 3×3 (B, C, H, W) = delta
    decoder="conv_skip": the same, x concatenated to the features before the first conv (B, F+T*C+E, H, W)
    stem_width=S: x -> 2 × conv 3×3 (B, S, H, W), concatenated to x before patchify (B, N, P*P*(T*C+E+S))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from gridvit.geometry import Grid
from gridvit.model import attention as _attention
from gridvit.model.attention import Attention
from gridvit.model.bias import DistanceBias
from gridvit.model.config import ModelConfig
from gridvit.model.cell_linear import CellLinear
from gridvit.model.decoder import ConvRefine, ConvStem
from gridvit.patches import check_patch, patch_grid_shape, patchify, unpatchify


class MLP(nn.Module):
    """Linear -> GELU -> Linear, (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(LN(x), bias)`` then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, *, impl: str = "auto") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, impl=impl)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(round(dim * mlp_ratio)))

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None, *, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, N, D) -> (B, N, D), and the (B, h, N, N) weights when ``need_weights``."""
        a, weights = self.attn(self.norm1(x), bias, need_weights=need_weights)
        x = x + a
        return x + self.mlp(self.norm2(x)), weights


def zero_nonfinite(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its non-finite values (masked cells) replaced by 0, as the network sees its inputs."""
    return torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype, device=x.device))


class GridViT(nn.Module):
    """Distance-biased ViT predicting the next state: ``next = last + delta`` in normalised units.

    The head is zero-initialised, so an untrained model is persistence. No absolute position embedding by
    default, so the same weights run on any grid of the same geometry (the bias is recomputed, and cached,
    from the new grid's patch distances).

    Args:
        cfg: the hyper-parameters (see :class:`ModelConfig`).

    Attributes:
        activation_checkpointing: when training, recompute each block's activations in the backward pass
            instead of storing them (a run-time memory option, not saved with the weights).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"GridViT needs a ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.activation_checkpointing = False
        p, d = cfg.patch, cfg.dim
        self.stem = ConvStem(cfg.in_channels, cfg.stem_width) if cfg.stem_width else None
        self.embed = nn.Linear(p * p * (cfg.in_channels + cfg.stem_width), d)
        self.pos_embed = None
        if cfg.abs_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, d, *cfg.pos_grid))  # (1, D, nh, nw)
        self.lead_embed = None if cfg.leads is None else nn.Embedding(len(cfg.leads), d)
        self.cell_linear = None
        if cfg.cell_linear is not None:
            self.cell_linear = CellLinear(len(cfg.leads or (1,)), cfg.in_channels, cfg.channels, cfg.cell_linear,
                                          cfg.history)
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.mlp_ratio, impl=cfg.attention) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d)
        conv = cfg.decoder in ("conv", "conv_skip")
        self.head = nn.Linear(d, p * p * (cfg.decoder_width if conv else cfg.channels))
        skip = cfg.in_channels if cfg.decoder == "conv_skip" else 0
        self.refine = ConvRefine(cfg.decoder_width, cfg.channels, skip) if conv else None
        self.distance_bias = DistanceBias(
            heads=cfg.heads,
            layers=cfg.depth,
            mode=cfg.bias,
            slope_max=cfg.slope_max,
            slope_min=cfg.slope_min,
            length_scale=cfg.length_scale,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms, zero last layer (the
        head, or the conv decoder's last convolution)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.lead_embed is not None:
            nn.init.trunc_normal_(self.lead_embed.weight, std=0.02)
        nn.init.zeros_(self.output_layer.weight)  # untrained model = persistence (or the linear base)
        nn.init.zeros_(self.output_layer.bias)

    @property
    def output_layer(self) -> nn.Module:
        """The zero-initialised last layer (the head, or the conv decoder's last convolution): while it is all
        zeros the network adds nothing to persistence or the linear base."""
        return self.head if self.refine is None else self.refine.conv2

    def forward(
        self, x: torch.Tensor, grid: Grid, *, lead: int | torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Predict the next state.

        Args:
            x: (B, T*C + E, H, W) in normalised units, channels ``[t0 c0..c(C-1), ..., t(T-1) ..., extras]``.
                Non-finite values (masked cells) are replaced by 0 before anything else.
            grid: the :class:`~gridvit.geometry.Grid` of x, ``grid.shape == (H, W)``.
            lead: for a lead-conditioned model (``cfg.leads``), the lead to forecast: an int or a (B,) int
                tensor of values from ``cfg.leads`` (None: the first). Single-lead models take None.
            return_attention: also return per-layer attention weights (manual attention path).

        Returns:
            (B, C, H, W) next state = last input state (masked cells as 0) + predicted delta; with
            ``return_attention``, also a list (one per layer) of (B, h, N, N) attention weights.
        """
        self._check_inputs(x, grid)
        cfg = self.cfg
        b, _, h, w = x.shape
        x = zero_nonfinite(x)

        cells = x if self.stem is None else torch.cat([x, self.stem(x, grid.periodic)], dim=1)  # (B, T*C+E+S, H, W)
        tokens = patchify(cells, cfg.patch, grid.periodic)  # (B, N, P*P*(T*C+E+S))
        z = self.embed(tokens)  # (B, N, D)
        if self.pos_embed is not None:
            z = z + self._pos_embed(patch_grid_shape((h, w), cfg.patch))  # (B, N, D)
        index = self.lead_index(lead, b, z.device)  # (B,) into cfg.leads
        if self.lead_embed is not None:
            z = z + self.lead_embed(index)[:, None, :]  # (B, 1, D) on every token
        biases = self._biases(grid, z, dense=return_attention)  # depth × (1, h, N, N) or O(N) coordinates (Flex)
        attention = []
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for block, bias in zip(self.blocks, biases):
            if recompute and not return_attention:
                z, weights = checkpoint(block, z, bias, use_reentrant=False)  # (B, N, D)
            else:
                z, weights = block(z, bias, need_weights=return_attention)  # (B, N, D)
            if return_attention:
                attention.append(weights)  # (B, h, N, N)
        delta = unpatchify(self.head(self.norm(z)), cfg.patch, (h, w))  # (B, C or F, H, W)
        if self.refine is not None:
            skip = x if self.cfg.decoder == "conv_skip" else None  # the input, cell by cell
            delta = self.refine(delta, grid.periodic, skip)  # (B, C, H, W), mixed across patch borders
        base = self.base(x, index)  # (B, C, H, W)
        y = base + delta.to(base.dtype)  # (B, C, H, W)
        return (y, attention) if return_attention else y

    def base(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """What the network's delta is added to: the last input state, or the per-cell linear base of lead
        indices ``index`` (B,). x: (B, T*C + E, H, W) passed through :func:`zero_nonfinite` -> (B, C, H, W)."""
        if self.cell_linear is not None:
            return self.cell_linear(x, index)
        return x[:, (self.cfg.history - 1) * self.cfg.channels : self.cfg.history * self.cfg.channels]

    def _biases(self, grid: Grid, z: torch.Tensor, *, dense: bool) -> list:
        """Per-layer biases: :class:`~gridvit.model.bias.TokenDistance` (O(N) coordinates, the bias computed in
        the FlexAttention kernel) where the attention runs Flex, else the dense (1, h, N, N) form."""
        cfg, dtype = self.cfg, _compute_dtype(z)
        if not dense and _attention.uses_flex(cfg.attention, z.device, tokens=z.shape[1]):
            return self.distance_bias.token_distances(grid, cfg.patch, device=z.device, dtype=dtype,
                                                      block_sparse=cfg.block_sparse)
        return self.distance_bias(grid, cfg.patch, device=z.device, dtype=dtype)

    def lead_index(self, lead: int | torch.Tensor | None, b: int, device: torch.device) -> torch.Tensor:
        """Indices (B,) into ``cfg.leads`` of ``lead`` (an int, a (B,) tensor, or None for the first); zeros for
        a single-lead model, which takes no lead.

        Raises:
            ValueError: a lead the model was not trained for, or any lead for a single-lead model.
        """
        if self.cfg.leads is None:
            if lead is not None:
                raise ValueError("this model was trained for one lead; lead= is only for lead-conditioned models")
            return torch.zeros(b, dtype=torch.long, device=device)
        leads = torch.tensor(self.cfg.leads, device=device)
        lead = leads[:1] if lead is None else torch.as_tensor(lead, device=device).reshape(-1)
        hit = lead[:, None] == leads  # (B or 1, L)
        if not bool(hit.any(dim=1).all()):
            raise ValueError(f"lead {lead.tolist()} is not one the model was trained for: {list(self.cfg.leads)}")
        if lead.numel() not in (1, b):
            raise ValueError(f"lead has {lead.numel()} values for a batch of {b}")
        return hit.int().argmax(dim=1).expand(b)  # (B,)

    def _pos_embed(self, patch_grid: tuple[int, int]) -> torch.Tensor:
        """The absolute embedding (1, N, D) for an (nh, nw) patch grid, bicubically resized if needed."""
        pe = self.pos_embed  # (1, D, nh0, nw0)
        if tuple(pe.shape[-2:]) != tuple(patch_grid):
            pe = F.interpolate(pe, size=patch_grid, mode="bicubic", align_corners=False)  # (1, D, nh, nw)
        return pe.flatten(2).transpose(1, 2)  # (1, N, D)

    def _check_inputs(self, x: torch.Tensor, grid: Grid) -> None:
        cfg = self.cfg
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a (B, T*C+E, H, W) tensor, got {shape}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.shape[1] != cfg.in_channels:
            raise ValueError(
                f"x has {x.shape[1]} channels but the model expects history*channels+extra_channels = "
                f"{cfg.history}*{cfg.channels}+{cfg.extra_channels} = {cfg.in_channels} "
                "(layout [t0 c0..c(C-1), ..., t(T-1) ..., extras])"
            )
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a gridvit.geometry.Grid, got {type(grid).__name__}")
        if tuple(grid.shape) != tuple(x.shape[-2:]):
            raise ValueError(f"grid shape {grid.shape} does not match x's spatial shape {tuple(x.shape[-2:])}")
        if cfg.cell_linear is not None and tuple(grid.shape) != cfg.cell_linear:
            raise ValueError(f"this model has a per-cell linear base for the grid {cfg.cell_linear}; it cannot run on "
                             f"{tuple(grid.shape)}")
        try:
            check_patch(grid.shape, cfg.patch)
        except ValueError as err:
            raise ValueError(f"grid too small for the model: {err}") from None


def _compute_dtype(z: torch.Tensor) -> torch.dtype:
    """The dtype attention runs in: the autocast dtype when autocast is on for z's device, else z's."""
    if torch.is_autocast_enabled(z.device.type):
        return torch.get_autocast_dtype(z.device.type)
    return z.dtype
