"""The distance-biased Vision Transformer: config, attention bias, attention and the ViT itself.

``from gridvit.model import ModelConfig, GridViT``; ``GridViT(cfg)(x, grid)`` predicts the next state.
"""

from gridvit.model.attention import Attention
from gridvit.model.bias import DistanceBias, alibi_slopes
from gridvit.model.config import ModelConfig
from gridvit.model.vit import Block, GridViT

__all__ = ["ModelConfig", "GridViT", "Block", "Attention", "DistanceBias", "alibi_slopes"]
