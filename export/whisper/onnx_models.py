"""Export-friendly PyTorch modules around transformers' Whisper weights.

The forward passes are written out here (attention as plain MatMul/Softmax) instead of
calling transformers' modules, so the exported graphs take and return plain tensors
(no cache objects) and their layout suits the step-by-step decoder:
- `EncoderWithCrossKV`: log-mel [B, 80, 3000] -> encoder output and, for every decoder
  layer, cross-attention keys [B, H, Dh, 1500] (pre-transposed) and values [B, H, 1500, Dh];
- `DecoderStep`: new tokens [B, S] + cross K/V + past self-attention K/V [B, H, T, Dh]
  -> logits of the last position [B, V] + present K/V [B, H, T + S, Dh]. T may be 0.
Both are checked against transformers' own forward in export/whisper/pipeline.py.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, D] -> [B, H, T, Dh]."""
    batch, length, width = x.shape
    return x.view(batch, length, n_heads, width // n_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, Dh] -> [B, T, D]."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class EncoderWithCrossKV(nn.Module):
    def __init__(self, whisper):
        super().__init__()
        config = whisper.config
        self.encoder = whisper.model.encoder
        self.cross = nn.ModuleList(layer.encoder_attn for layer in whisper.model.decoder.layers)
        self.n_heads = config.encoder_attention_heads
        self.n_cross_heads = config.decoder_attention_heads
        self.scale = (config.d_model // self.n_heads) ** -0.5

    def _self_attention(self, attn, x: torch.Tensor) -> torch.Tensor:
        q = _heads(attn.q_proj(x) * self.scale, self.n_heads)
        k = _heads(attn.k_proj(x), self.n_heads)
        v = _heads(attn.v_proj(x), self.n_heads)
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return attn.out_proj(_merge(weights @ v))

    def forward(self, input_features: torch.Tensor):
        encoder = self.encoder
        x = F.gelu(encoder.conv1(input_features))
        x = F.gelu(encoder.conv2(x)).permute(0, 2, 1)
        x = x + encoder.embed_positions.weight
        for layer in encoder.layers:
            x = x + self._self_attention(layer.self_attn, layer.self_attn_layer_norm(x))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(F.gelu(layer.fc1(h)))
        hidden = encoder.layer_norm(x)
        cross = []
        for attn in self.cross:
            keys = _heads(attn.k_proj(hidden), self.n_cross_heads).transpose(-1, -2)
            values = _heads(attn.v_proj(hidden), self.n_cross_heads)
            cross += [keys.contiguous(), values.contiguous()]
        return (hidden, *cross)


class DecoderStep(nn.Module):
    def __init__(self, whisper):
        super().__init__()
        config = whisper.config
        self.decoder = whisper.model.decoder
        self.n_heads = config.decoder_attention_heads
        self.n_layers = config.decoder_layers
        self.scale = (config.d_model // self.n_heads) ** -0.5
        # The tied token matrix stored once, transposed [D, V]: the output projection is then
        # a MatMul on an initializer (which dynamic INT8 can quantize) and the embedding
        # lookup a Gather along axis 1 of the same initializer.
        self.register_buffer("token_matrix", self.decoder.embed_tokens.weight.detach().t().contiguous())

    def forward(self, input_ids: torch.Tensor, *caches: torch.Tensor):
        layers = self.n_layers
        cross, past = caches[: 2 * layers], caches[2 * layers :]
        decoder = self.decoder
        past_length = past[0].shape[2]
        new = input_ids.shape[1]
        positions = decoder.embed_positions.weight[past_length : past_length + new]
        batch = input_ids.shape[0]
        embedded = torch.index_select(self.token_matrix, 1, input_ids.reshape(-1)).t()
        x = embedded.reshape(batch, new, -1) + positions
        # Causal mask over [past + new]: new token i sees past and new tokens <= i.
        query_pos = torch.arange(new, device=x.device)[:, None] + past_length
        key_pos = torch.arange(past_length + new, device=x.device)[None, :]
        mask = torch.where(key_pos > query_pos, float("-inf"), 0.0).to(x.dtype)
        present = []
        for i, layer in enumerate(decoder.layers):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            q = _heads(attn.q_proj(h) * self.scale, self.n_heads)
            k = torch.cat([past[2 * i], _heads(attn.k_proj(h), self.n_heads)], dim=2)
            v = torch.cat([past[2 * i + 1], _heads(attn.v_proj(h), self.n_heads)], dim=2)
            present += [k, v]
            weights = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
            x = x + attn.out_proj(_merge(weights @ v))
            cross_attn = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = _heads(cross_attn.q_proj(h) * self.scale, self.n_heads)
            weights = torch.softmax(q @ cross[2 * i], dim=-1)
            x = x + cross_attn.out_proj(_merge(weights @ cross[2 * i + 1]))
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(F.gelu(layer.fc1(h)))
        last = decoder.layer_norm(x[:, -1])
        logits = last @ self.token_matrix
        return (logits, *present)
