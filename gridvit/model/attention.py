"""Multi-head self-attention with an additive float bias: fused (SDPA), manual and FlexAttention paths.

All paths compute ``softmax(q kᵀ · scale + bias) v``:

- fused: ``F.scaled_dot_product_attention(q, k, v, attn_mask=bias)`` — the default. On CPU a 4-D bias
  (1, h, N, N) keeps SDPA on its fused flash kernel (a 3-D one does not).
- manual: explicit scores and softmax, used when the attention weights are requested.
- flex: FlexAttention with a ``score_mod`` that adds ``bias[h, i, j]``; used on CUDA only when
  ``impl="flex"`` (FlexAttention has no backward on CPU). Its ``score_mod`` is checked against the other
  paths on CPU in eager mode (forward only); the compiled CUDA kernel is not exercised by the CPU tests.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_compiled_flex = None


def _flex_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, *, compile: bool) -> torch.Tensor:
    """FlexAttention with ``score + bias[0, h, i, j]`` as ``score_mod``; q, k, v (B, h, N, d) -> (B, h, N, d)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    fn = flex_attention
    if compile:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        fn = _compiled_flex
    if bias is None:
        return fn(q, k, v)
    table = bias[0]  # (h, N, N)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + table[h, q_idx, kv_idx]

    return fn(q, k, v, score_mod=score_mod)


def flex_available(device: torch.device) -> bool:
    """True where the FlexAttention path can train: a CUDA device and a torch that ships FlexAttention."""
    if device.type != "cuda":
        return False
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


class Attention(nn.Module):
    """Multi-head self-attention over tokens with an optional additive bias.

    Args:
        dim: D, token width.
        heads: h (must divide D).
        impl: ``"sdpa"`` or ``"flex"`` (FlexAttention on CUDA, SDPA elsewhere).
    """

    def __init__(self, dim: int, heads: int, *, impl: str = "sdpa") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads, self.head_dim, self.impl = heads, dim // heads, impl
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None = None, *, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend over tokens.

        Args:
            x: (B, N, D) tokens.
            bias: additive logits (1, h, N, N) (or anything broadcasting to (B, h, N, N)), or None.
            need_weights: take the manual path and return the attention weights.

        Returns:
            (B, N, D) output and, with ``need_weights``, the (B, h, N, N) weights (else None).
        """
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N, d)
        weights = None
        if need_weights:
            out, weights = self.manual(q, k, v, bias)  # (B, h, N, d), (B, h, N, N)
        elif self.impl == "flex" and flex_available(q.device):
            out = _flex_attention(q, k, v, bias, compile=True)  # (B, h, N, d)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj(out), weights

    def manual(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Explicit ``softmax(q kᵀ · scale + bias) v``; q, k, v (B, h, N, d) -> ((B, h, N, d), (B, h, N, N))."""
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, h, N, N)
        if bias is not None:
            scores = scores + bias
        weights = scores.softmax(dim=-1)  # (B, h, N, N)
        return weights @ v, weights
