"""Where a decoder's prunable units live: attention heads, MLP channels and whole layers of a Llama-family model.

Structured pruning must know the model's anatomy (which rows of ``q_proj`` are head 3, which columns of
``down_proj`` are channel 17), unlike the per-matrix methods that see any linear layer alike. Only the
Llama-family layout is supported -- ``q/k/v/o_proj`` attention with grouped key/value heads and a
``gate/up/down_proj`` MLP in ``model.model.layers`` (llama, mistral, qwen2) -- because that is what the default
model is and what transformers' config classes can describe after pruning (one head count and one
intermediate size for every layer). Anything else (GPT-2's fused ``c_attn``, ...) is a one-line ``RecipeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from compsafe.errors import RecipeError

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass
class DecoderLayout:
    """A supported decoder's layers and unit counts (read from the modules, so a pruned model reads right)."""

    model: nn.Module
    layers: nn.ModuleList
    config: Any
    head_dim: int

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_heads(self) -> int:
        return self.layers[0].self_attn.q_proj.out_features // self.head_dim

    @property
    def n_kv_heads(self) -> int:
        return self.layers[0].self_attn.k_proj.out_features // self.head_dim

    @property
    def group_size(self) -> int:
        """Query heads sharing one key/value head (1: plain multi-head attention)."""
        return self.n_heads // self.n_kv_heads

    @property
    def intermediate(self) -> int:
        return self.layers[0].mlp.down_proj.in_features

    def attention(self, index: int) -> nn.Module:
        return self.layers[index].self_attn

    def mlp(self, index: int) -> nn.Module:
        return self.layers[index].mlp


def decoder_layout(model: nn.Module) -> DecoderLayout:
    """The layout of ``model``, or a one-line ``RecipeError`` naming the supported families."""
    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    layers = getattr(getattr(model, "model", None), "layers", None)
    supported = (
        family in SUPPORTED_FAMILIES
        and isinstance(layers, nn.ModuleList)
        and len(layers) > 0
        and all(
            all(isinstance(getattr(layer.self_attn, n, None), nn.Linear) for n in ATTENTION)
            and all(isinstance(getattr(layer.mlp, n, None), nn.Linear) for n in MLP)
            for layer in layers
        )
    )
    if not supported:
        raise RecipeError(
            f"structured pruning supports Llama-family decoders ({', '.join(SUPPORTED_FAMILIES)}: q/k/v/o_proj "
            f"attention and a gate/up/down_proj MLP); this model is {family or type(model).__name__}"
        )
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return DecoderLayout(model, layers, config, int(head_dim))
