"""A functional TransformerNet: a params dict plus one pure forward function.

The architecture is the one of the people-income regression demo: every scalar feature is
embedded into a ``D``-vector, a sinusoidal encoding marks the feature's position, a stack of
post-norm Transformer encoder layers mixes the features, and a ``tanh`` hidden layer maps the
flattened result to one number per row::

    (B, F) -> embed -> (B, F, D) -> + pe -> encoder x L -> (B, F*D) -> tanh hidden -> (B,)

The params dict alone fixes the architecture (through its tensor shapes), so
``functools.partial(transformer_net, params)`` *is* the model and can be handed to
``torch.func`` transforms or to any attribution method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["init_transformer_net", "transformer_net", "TransformerNet"]

_LAYER_KEYS = (
    "qkv_weight",
    "qkv_bias",
    "out_weight",
    "out_bias",
    "norm1_weight",
    "norm1_bias",
    "ff1_weight",
    "ff1_bias",
    "ff2_weight",
    "ff2_bias",
    "norm2_weight",
    "norm2_bias",
)
_OUTER_KEYS = (
    "embed_weight",
    "embed_bias",
    "hidden_weight",
    "hidden_bias",
    "output_weight",
    "output_bias",
)
_P_ENCODER = 0.1  # dropout inside each encoder layer, as nn.TransformerEncoderLayer
_P_POSITION = 0.2  # dropout after the positional encoding, as the demo
_LN_EPS = 1e-5  # nn.LayerNorm's default


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _uniform(shape: tuple[int, ...], bound: float, generator, dtype) -> Tensor:
    return torch.empty(shape, dtype=dtype).uniform_(-bound, bound, generator=generator)


def _linear_weight(n_out: int, n_in: int, generator, dtype) -> Tensor:
    # nn.Linear's default kaiming_uniform(a=sqrt(5)): bound = sqrt(3) * gain / sqrt(fan_in)
    gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
    return _uniform((n_out, n_in), math.sqrt(3.0) * gain / math.sqrt(n_in), generator, dtype)


def _linear_init(n_out: int, n_in: int, generator, dtype) -> tuple[Tensor, Tensor]:
    weight = _linear_weight(n_out, n_in, generator, dtype)
    return weight, _uniform((n_out,), 1 / math.sqrt(n_in), generator, dtype)


def init_transformer_net(
    *,
    n_features: int = 8,
    d_embed: int = 4,
    n_heads: int = 2,
    d_ff: int = 10,
    n_layers: int = 2,
    d_hidden: int = 10,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Tensor]:
    """Draw TransformerNet parameters the way the PyTorch modules of the demo initialize.

    Per-feature embedding weights are ``U(-0.01, 0.01)`` with zero biases; the packed
    query/key/value projection is Xavier-uniform with zero biases and the attention
    out-projection bias is zero (``nn.MultiheadAttention``); every other linear map uses
    ``nn.Linear``'s default ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; layer norms start at
    ones and zeros. Unlike ``nn.TransformerEncoder``, which deep-copies one layer, each
    layer gets its own draw.

    Args:
      n_features: number of input features ``F``.
      d_embed: embedding size ``D`` per feature; even (sinusoidal encoding) and divisible
        by ``n_heads``.
      n_heads: attention heads ``H``.
      d_ff: width of each encoder layer's feed-forward block.
      n_layers: number of encoder layers ``L``.
      d_hidden: width of the ``tanh`` layer after flattening.
      generator: source of all random draws; ``None`` means ``torch.Generator()`` seeded
        with 0, so the call is pure: equal arguments give equal params.
      dtype: floating dtype of every parameter.

    Returns:
      A flat ``dict[str, Tensor]``; keys are listed in :func:`transformer_net`.

    Example:
      >>> params = init_transformer_net(generator=torch.Generator().manual_seed(1))
      >>> transformer_net(params, torch.zeros(3, 8)).shape
      torch.Size([3])
    """
    n_features = _check_size("n_features", n_features)
    d_embed = _check_size("d_embed", d_embed)
    n_heads = _check_size("n_heads", n_heads)
    d_ff = _check_size("d_ff", d_ff)
    n_layers = _check_size("n_layers", n_layers)
    d_hidden = _check_size("d_hidden", d_hidden)
    if d_embed % n_heads:
        raise ValueError(f"d_embed must be divisible by n_heads={n_heads}, got {d_embed}")
    if d_embed % 2:
        raise ValueError(f"d_embed must be even for the sinusoidal encoding, got {d_embed}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")

    F_, D, H = n_features, d_embed, n_heads
    params = {
        "embed_weight": _uniform((F_, D), 0.01, generator, dtype),
        "embed_bias": torch.zeros(F_, D, dtype=dtype),
    }
    for layer in range(n_layers):
        # Xavier-uniform over the packed (3D, D) matrix, as nn.MultiheadAttention
        qkv_bound = math.sqrt(3.0) * math.sqrt(2.0 / (D + 3 * D))
        qkv_weight = _uniform((3 * D, D), qkv_bound, generator, dtype).view(3, H, D // H, D)
        out_weight = _linear_weight(D, D, generator, dtype)
        ff1_weight, ff1_bias = _linear_init(d_ff, D, generator, dtype)
        ff2_weight, ff2_bias = _linear_init(D, d_ff, generator, dtype)
        entries = {
            "qkv_weight": qkv_weight,
            "qkv_bias": torch.zeros(3, H, D // H, dtype=dtype),
            "out_weight": out_weight,
            "out_bias": torch.zeros(D, dtype=dtype),
            "norm1_weight": torch.ones(D, dtype=dtype),
            "norm1_bias": torch.zeros(D, dtype=dtype),
            "ff1_weight": ff1_weight,
            "ff1_bias": ff1_bias,
            "ff2_weight": ff2_weight,
            "ff2_bias": ff2_bias,
            "norm2_weight": torch.ones(D, dtype=dtype),
            "norm2_bias": torch.zeros(D, dtype=dtype),
        }
        params.update({f"layer{layer}_{key}": value for key, value in entries.items()})
    params["hidden_weight"], params["hidden_bias"] = _linear_init(
        d_hidden, F_ * D, generator, dtype
    )
    params["output_weight"], params["output_bias"] = _linear_init(1, d_hidden, generator, dtype)
    return params


def _count_layers(params: Mapping[str, Tensor]) -> int:
    """Check the keys of a params dict and return the number of encoder layers."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of tensors, got {type(params).__name__}")
    n_layers = 0
    while f"layer{n_layers}_qkv_weight" in params:
        n_layers += 1
    expected = set(_OUTER_KEYS)
    expected.update(f"layer{layer}_{key}" for layer in range(n_layers) for key in _LAYER_KEYS)
    if missing := sorted(expected - params.keys()):
        raise ValueError(f"params is missing keys {missing}")
    if unexpected := sorted(params.keys() - expected):
        raise ValueError(f"params has unexpected keys {unexpected}")
    return n_layers


def _positional_encoding(n_positions: int, d: int, *, dtype, device) -> Tensor:
    """``pe[p, 2i] = sin(p / 10000^(2i/d))``, ``pe[p, 2i+1] = cos(p / 10000^(2i/d))``."""
    position = torch.arange(n_positions, dtype=dtype, device=device)[:, None]  # (F, 1)
    inv_freq = torch.exp(
        torch.arange(0, d, 2, dtype=dtype, device=device) * (-math.log(10000.0) / d)
    )  # (D/2,)
    angles = position * inv_freq  # (F, D/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (F, D/2, 2) -> (F, D)


def _dropout(z: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return z
    keep = torch.rand(z.shape, generator=generator, dtype=z.dtype, device=z.device) >= p
    return z * keep / (1 - p)


def _self_attention(params, prefix: str, z: Tensor, generator) -> Tensor:
    qkv_weight = params[prefix + "qkv_weight"]  # (3, H, Dh, D)
    _, n_heads, d_head, _ = qkv_weight.shape
    qkv = F.linear(z, qkv_weight.flatten(0, 2), params[prefix + "qkv_bias"].flatten())  # (B, F, 3D)
    q, k, v = qkv.unflatten(-1, (3, n_heads, d_head)).transpose(-4, -2).unbind(-3)  # (B, H, F, Dh)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d_head)  # (B, H, F, F)
    weights = _dropout(torch.softmax(scores, dim=-1), _P_ENCODER, generator)
    context = (weights @ v).transpose(-3, -2).flatten(-2)  # (B, H, F, Dh) -> (B, F, D)
    return F.linear(context, params[prefix + "out_weight"], params[prefix + "out_bias"])


def _encoder_layer(params, prefix: str, z: Tensor, generator) -> Tensor:
    """One post-norm layer: ``z = LN1(z + SelfAttn(z))``, ``z = LN2(z + FF(z))``."""
    d = z.shape[-1]
    attended = _dropout(_self_attention(params, prefix, z, generator), _P_ENCODER, generator)
    z = F.layer_norm(
        z + attended, (d,), params[prefix + "norm1_weight"], params[prefix + "norm1_bias"], _LN_EPS
    )
    hidden = F.relu(F.linear(z, params[prefix + "ff1_weight"], params[prefix + "ff1_bias"]))
    hidden = _dropout(hidden, _P_ENCODER, generator)
    fed = F.linear(hidden, params[prefix + "ff2_weight"], params[prefix + "ff2_bias"])
    fed = _dropout(fed, _P_ENCODER, generator)
    return F.layer_norm(
        z + fed, (d,), params[prefix + "norm2_weight"], params[prefix + "norm2_bias"], _LN_EPS
    )


def _encoder(params, z: Tensor, n_layers: int, generator=None) -> Tensor:
    """The encoder stack alone: ``(B, F, D) -> (B, F, D)``."""
    for layer in range(n_layers):
        z = _encoder_layer(params, f"layer{layer}_", z, generator)
    return z


def transformer_net(
    params: Mapping[str, Tensor],
    x: Tensor,
    *,
    dropout_generator: torch.Generator | None = None,
) -> Tensor:
    r"""Evaluate the TransformerNet defined by ``params`` on a batch of rows.

    .. math::

        z^{(0)}_{bf} = x_{bf}\,E_f + c_f + \mathrm{pe}_f, \qquad
        z^{(l)} = \mathrm{LN}_2\big(u + \mathrm{FF}(u)\big),\;
        u = \mathrm{LN}_1\big(z^{(l-1)} + \mathrm{Attn}(z^{(l-1)})\big), \qquad
        y_b = w^\top \tanh\big(W_h \operatorname{vec}(z^{(L)}_b) + b_h\big) + b_o

    with :math:`E_f, c_f` = ``embed_weight[f], embed_bias[f]``, :math:`\mathrm{pe}_f` the
    sinusoidal encoding of feature position :math:`f` (computed in ``x``'s dtype),
    :math:`\mathrm{Attn}` multi-head softmax attention scaled by :math:`1/\sqrt{D/H}`,
    :math:`\mathrm{FF} = \mathrm{ff2} \circ \mathrm{relu} \circ \mathrm{ff1}`, and
    :math:`W_h, b_h, w, b_o` = ``hidden_*``, ``output_*``. Rows never interact: a row's
    output does not depend on the rest of the batch.

    Keys (``F`` features, ``D`` embedding, ``H`` heads, ``l`` = 0..L-1): ``embed_weight``
    and ``embed_bias`` (F, D); ``layer{l}_qkv_weight`` (3, H, D/H, D); ``layer{l}_qkv_bias``
    (3, H, D/H); ``layer{l}_out_weight`` (D, D); ``layer{l}_out_bias``, ``layer{l}_norm1_*``,
    ``layer{l}_norm2_*``, ``layer{l}_ff2_bias`` (D,); ``layer{l}_ff1_weight`` (d_ff, D);
    ``layer{l}_ff1_bias`` (d_ff,); ``layer{l}_ff2_weight`` (D, d_ff); ``hidden_weight``
    (d_hidden, F*D); ``hidden_bias`` (d_hidden,); ``output_weight`` (1, d_hidden);
    ``output_bias`` (1,).

    Args:
      params: parameters from :func:`init_transformer_net` (or trained ones).
      x: inputs ``(B, F)`` in the params' dtype.
      dropout_generator: when given, dropout is applied (0.2 after the positional
        encoding; 0.1 on attention weights, after attention, after the feed-forward
        activation and after the feed-forward block) with masks drawn from it. ``None``
        (the default) evaluates deterministically.

    Returns:
      Predictions of shape ``(B,)``.

    Example:
      >>> import functools
      >>> params = init_transformer_net(generator=torch.Generator().manual_seed(0))
      >>> model = functools.partial(transformer_net, params)
      >>> x = torch.rand(5, 8)
      >>> torch.func.vmap(torch.func.grad(lambda row: model(row[None])[0]))(x).shape
      torch.Size([5, 8])
    """
    n_layers = _count_layers(params)
    embed_weight = params["embed_weight"]  # (F, D)
    n_features, d = embed_weight.shape
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[-1] != n_features:
        raise ValueError(f"x must have shape (B, {n_features}), got {tuple(x.shape)}")
    if x.dtype != embed_weight.dtype:
        raise TypeError(f"x has dtype {x.dtype} but params have dtype {embed_weight.dtype}")
    if dropout_generator is not None and not isinstance(dropout_generator, torch.Generator):
        raise TypeError(
            f"dropout_generator must be a torch.Generator or None, got {dropout_generator!r}"
        )

    z = x[..., None] * embed_weight + params["embed_bias"]  # (B, F, 1) * (F, D) -> (B, F, D)
    z = z + _positional_encoding(n_features, d, dtype=x.dtype, device=x.device)  # (F, D)
    z = _dropout(z, _P_POSITION, dropout_generator)
    z = _encoder(params, z, n_layers, dropout_generator)  # (B, F, D)
    hidden = torch.tanh(F.linear(z.flatten(-2), params["hidden_weight"], params["hidden_bias"]))
    return F.linear(hidden, params["output_weight"], params["output_bias"])[..., 0]  # (B,)


class TransformerNet(nn.Module):
    """``nn.Module`` face of :func:`transformer_net`, for optimizers and attribution tools.

    Each params entry becomes an ``nn.Parameter`` under the same name (a copy: training
    the module never changes the dict it was built from). Dropout is applied only in
    training mode and only when a ``dropout_generator`` was given.

    Args:
      params: parameters to copy; ``None`` draws fresh ones with
        :func:`init_transformer_net` from ``generator`` and ``init_options``.
      generator: passed to :func:`init_transformer_net` when ``params`` is ``None``.
      dropout_generator: source of dropout masks in training mode.
      **init_options: sizes passed to :func:`init_transformer_net`.

    Example:
      >>> net = TransformerNet(generator=torch.Generator().manual_seed(0)).eval()
      >>> net(torch.zeros(2, 8)).shape
      torch.Size([2])
    """

    def __init__(
        self,
        params: Mapping[str, Tensor] | None = None,
        *,
        generator: torch.Generator | None = None,
        dropout_generator: torch.Generator | None = None,
        **init_options,
    ) -> None:
        super().__init__()
        if params is None:
            params = init_transformer_net(generator=generator, **init_options)
        elif generator is not None or init_options:
            raise TypeError(
                "give either params or generator/init options, not both; got init options "
                f"{sorted(init_options) + (['generator'] if generator is not None else [])}"
            )
        _count_layers(params)
        if dropout_generator is not None and not isinstance(dropout_generator, torch.Generator):
            raise TypeError(
                f"dropout_generator must be a torch.Generator or None, got {dropout_generator!r}"
            )
        for name, value in params.items():
            self.register_parameter(name, nn.Parameter(value.detach().clone()))
        self.dropout_generator = dropout_generator

    def forward(self, x: Tensor) -> Tensor:
        generator = self.dropout_generator if self.training else None
        return transformer_net(dict(self.named_parameters()), x, dropout_generator=generator)

    def params(self) -> dict[str, Tensor]:
        """A detached copy of the parameters, usable with :func:`transformer_net`."""
        return {name: value.detach().clone() for name, value in self.named_parameters()}
