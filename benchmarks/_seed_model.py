"""The demo's TransformerNet built from stock PyTorch modules, loaded from our params.

The reference for benchmarks and for tests of :mod:`tfx_explain.people`: the same layout as
the people-income demo (a per-feature ``SkipLinear`` embedding, a sinusoidal positional
encoding module, ``nn.TransformerEncoder``, two ``nn.Linear`` layers), with two deliberate
fixes so that it computes exactly the function ``transformer_net(params, x)``:

* the positional encoding is indexed by feature position (``x.size(1)``), not by batch row
  (the demo's ``pe[:x.size(0)]`` made a row's output depend on its place in the batch and
  crashed on batches of more than ``max_len`` rows);
* the output is squeezed to ``(B,)``.

Its dropout (in training mode) uses the global RNG, so only eval mode matches exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["SeedTransformerNet", "seed_module_from_params"]


class _SkipLinear(nn.Module):
    """One scalar input to ``D`` outputs per feature, each with its own weights and biases."""

    def __init__(self, n_features: int, d_embed: int) -> None:
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(d_embed, 1)) for _ in range(n_features)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(d_embed)) for _ in range(n_features)
        )

    def forward(self, x: Tensor) -> Tensor:
        columns = [
            x[:, i : i + 1] @ w.t() + b
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True))
        ]
        return torch.cat(columns, dim=1)  # (B, F*D)


class _PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
        div_term = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: Tensor) -> Tensor:  # (B, F, D)
        return self.dropout(x + self.pe[: x.size(1)].to(x.dtype))


class SeedTransformerNet(nn.Module):
    """The demo's ``(8--32)-T-10-1`` network, generalised to any sizes."""

    def __init__(
        self,
        *,
        n_features: int,
        d_embed: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        d_hidden: int,
    ) -> None:
        super().__init__()
        self.n_features, self.d_embed = n_features, d_embed
        self.embed = _SkipLinear(n_features, d_embed)
        self.pos_enc = _PositionalEncoding(d_embed, dropout=0.2)
        layer = nn.TransformerEncoderLayer(
            d_model=d_embed, nhead=n_heads, dim_feedforward=d_ff, batch_first=True
        )
        self.trans_enc = nn.TransformerEncoder(
            layer, num_layers=n_layers, enable_nested_tensor=False
        )
        self.fc1 = nn.Linear(n_features * d_embed, d_hidden)
        self.fc2 = nn.Linear(d_hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        z = self.embed(x).reshape(-1, self.n_features, self.d_embed)  # (B, F, D)
        z = self.trans_enc(self.pos_enc(z))
        z = torch.tanh(self.fc1(z.reshape(-1, self.n_features * self.d_embed)))
        return self.fc2(z).squeeze(-1)  # (B,)


def seed_module_from_params(params: Mapping[str, Tensor]) -> SeedTransformerNet:
    """A :class:`SeedTransformerNet` (eval mode) computing ``transformer_net(params, .)``."""
    n_features, d_embed = params["embed_weight"].shape
    n_layers = sum(1 for key in params if key.endswith("_qkv_weight"))
    _, n_heads, _, _ = params["layer0_qkv_weight"].shape
    net = SeedTransformerNet(
        n_features=n_features,
        d_embed=d_embed,
        n_heads=n_heads,
        d_ff=params["layer0_ff1_weight"].shape[0],
        n_layers=n_layers,
        d_hidden=params["hidden_weight"].shape[0],
    ).to(params["embed_weight"].dtype)
    with torch.no_grad():
        for f in range(n_features):
            net.embed.weights[f].copy_(params["embed_weight"][f, :, None])  # (D,) -> (D, 1)
            net.embed.biases[f].copy_(params["embed_bias"][f])
        for index, layer in enumerate(net.trans_enc.layers):
            p = {key.removeprefix(f"layer{index}_"): value for key, value in params.items()}
            layer.self_attn.in_proj_weight.copy_(p["qkv_weight"].reshape(3 * d_embed, d_embed))
            layer.self_attn.in_proj_bias.copy_(p["qkv_bias"].reshape(3 * d_embed))
            layer.self_attn.out_proj.weight.copy_(p["out_weight"])
            layer.self_attn.out_proj.bias.copy_(p["out_bias"])
            for ours, theirs in (
                ("ff1", layer.linear1),
                ("ff2", layer.linear2),
                ("norm1", layer.norm1),
                ("norm2", layer.norm2),
            ):
                theirs.weight.copy_(p[f"{ours}_weight"])
                theirs.bias.copy_(p[f"{ours}_bias"])
        net.fc1.weight.copy_(params["hidden_weight"])
        net.fc1.bias.copy_(params["hidden_bias"])
        net.fc2.weight.copy_(params["output_weight"])
        net.fc2.bias.copy_(params["output_bias"])
    return net.eval()
