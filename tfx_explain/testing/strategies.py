"""Hypothesis strategies for attribution tests: inputs, baselines and small models with known truth.

Every strategy takes keyword-only, validated arguments and draws plain torch tensors or a
:class:`Model`: a batched pure function ``(B, F) -> (B,)`` (or ``(B, C)``) together with
the facts the axiom checks need, such as which features it ignores (``dummies``), which
pairs of features it treats alike (``symmetric_pairs``) and, for linear and additive
models, the exact attributions. Model parameters come from a ``torch.Generator`` whose
seed Hypothesis draws (and shrinks), not weight by weight, so a failing example is
reported as a handful of integers.

Example:
  >>> import torch
  >>> from hypothesis import given, settings
  >>> from tfx_explain import integrated_gradients
  >>> @settings(max_examples=5, derandomize=True, database=None, deadline=None)
  ... @given(model=linear_models(n_features=3), x=batches(feature_shape=(3,)))
  ... def test_linear_ig(model, x):
  ...     attr = integrated_gradients(model, x, steps=2)
  ...     exact = model.exact_attributions(x, torch.zeros_like(x))
  ...     assert torch.allclose(attr, exact, rtol=1e-12, atol=1e-12)
  >>> test_linear_ig()
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "ACTIVATIONS",
    "Model",
    "additive_models",
    "baselines",
    "batches",
    "equivalent_mlps",
    "linear_models",
    "mlps",
    "transformer_nets",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "relu": F.relu,
}
"""Hidden-layer activations of :func:`mlps`; all but ``relu`` are smooth (analytic)."""

_NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64}


@dataclass(frozen=True, eq=False, repr=False)
class Model:
    """A small batched model drawn by a strategy, with the facts needed to check attributions.

    Call it like its ``fn``: ``model(x)`` maps ``(B, F)`` to ``(B,)`` (or ``(B, C)`` when
    ``n_outputs = C``), row by row; it is a pure function of ``params``, so it composes
    with ``torch.func`` and every attribution method. Do not mutate ``params``.

    Attributes:
      fn: the batched pure function.
      kind: ``"mlp"``, ``"linear"``, ``"additive"`` or ``"transformer"``.
      n_features: input width ``F``.
      n_outputs: ``None`` for ``(B,)`` outputs, else ``C``.
      params: the parameter tensors by name (per kind: ``weight{l}``/``bias{l}`` per
        hidden layer and ``weight_out``/``bias_out`` for MLPs; ``weight`` ``(F,)`` or
        ``(F, C)`` and ``bias`` for linear models; ``a``, ``b``, ``c`` ``(F,)`` for
        additive models; :func:`tfx_explain.people.init_transformer_net` keys).
      seed: seed of the ``torch.Generator`` the params were drawn from (``None`` when
        Hypothesis drew them directly).
      activation: hidden activation of an MLP (a key of :data:`ACTIVATIONS`), else ``None``.
      dummies: features the function provably ignores (every attribution method that
        satisfies the dummy axiom must give them exactly 0.0).
      symmetric_pairs: pairs ``(i, j)`` with ``f(x) = f(x with x_i, x_j swapped)``.
      terms: for additive models, ``terms(x) -> (B, F)`` with ``f(x) = terms(x).sum(-1)``.
    """

    fn: Callable[[torch.Tensor], torch.Tensor]
    kind: str
    n_features: int
    n_outputs: int | None
    params: Mapping[str, torch.Tensor]
    seed: int | None = None
    activation: str | None = None
    dummies: tuple[int, ...] = ()
    symmetric_pairs: tuple[tuple[int, int], ...] = ()
    terms: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def __repr__(self) -> str:
        if self.kind == "transformer":
            sizes = {"tensors": len(self.params)}
        else:
            sizes = {key: tuple(value.shape) for key, value in self.params.items()}
        extra = f", activation={self.activation!r}" if self.activation else ""
        return (
            f"Model(kind={self.kind!r}, seed={self.seed}{extra}, n_features={self.n_features}, "
            f"n_outputs={self.n_outputs}, dummies={self.dummies}, "
            f"symmetric_pairs={self.symmetric_pairs}, params={sizes})"
        )

    def exact_attributions(self, x: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """Exact Shapley values of a linear or additive model against ``baseline``.

        .. math::

            \\phi_i(x) = g_i(x_i) - g_i(x'_i)

        with :math:`g_i(t) = w_i t` (linear) or the additive term :math:`g_i`. For these
        models they are also the integrated gradients (in the limit of many steps), the
        occlusion with ``window=1`` and the single-feature ablation.

        Args:
          x: inputs ``(B, F)``.
          baseline: ``(B, F)`` or broadcastable to ``x``.

        Returns:
          ``(B, F)`` attributions.
        """
        baseline = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
        if self.kind == "linear" and self.n_outputs is None:
            return (x - baseline) * self.params["weight"]
        if self.kind == "additive":
            return self.terms(x) - self.terms(baseline)
        raise ValueError(
            f"exact attributions are known for linear models with one output and additive "
            f"models only, not for {self!r}"
        )


# --------------------------------------------------------------------------- validation


def _check_int(value, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_range(low: int, high: int, low_name: str, high_name: str) -> None:
    if low > high:
        raise ValueError(f"{low_name} must be <= {high_name}, got {low} > {high}")


def _check_bounds(min_value, max_value) -> tuple[float, float]:
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}: {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if min_value > max_value:
        raise ValueError(f"min_value must be <= max_value, got {min_value} > {max_value}")
    return float(min_value), float(max_value)


def _check_dtype(dtype) -> torch.dtype:
    if dtype not in _NUMPY_DTYPES:
        raise TypeError(f"dtype must be torch.float16, float32 or float64, got {dtype!r}")
    return dtype


def _check_feature_shape(feature_shape) -> tuple[int, ...]:
    if isinstance(feature_shape, numbers.Integral) and not isinstance(feature_shape, bool):
        feature_shape = (feature_shape,)
    if not isinstance(feature_shape, Sequence) or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
        for d in feature_shape
    ):
        raise ValueError(f"feature_shape must be a tuple of positive ints, got {feature_shape!r}")
    return tuple(int(d) for d in feature_shape)


def _check_outputs(n_outputs) -> int | None:
    return None if n_outputs is None else _check_int(n_outputs, "n_outputs", minimum=1)


# --------------------------------------------------------------------------- tensors


def _elements(min_value: float, max_value: float, dtype: torch.dtype) -> st.SearchStrategy:
    """Finite floats (normal or zero) in ``[min_value, max_value]`` representable in ``dtype``."""
    width = {torch.float16: 16, torch.float32: 32, torch.float64: 64}[dtype]
    np_dtype = _NUMPY_DTYPES[dtype]
    low, high = np_dtype(min_value), np_dtype(max_value)
    # round the bounds inward so that Hypothesis accepts them at this width
    if float(low) < min_value:
        low = np.nextafter(low, np_dtype(np.inf))
    if float(high) > max_value:
        high = np.nextafter(high, np_dtype(-np.inf))
    if low > high:
        raise ValueError(
            f"no {dtype} value lies in [min_value, max_value] = [{min_value}, {max_value}]"
        )
    # subnormals only exercise underflow, which no attribution property is about
    return st.floats(
        float(low),
        float(high),
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=False,
        width=width,
    )


def _tensors(shape, min_value: float, max_value: float, dtype: torch.dtype):
    """Tensors of ``shape`` (a tuple or a strategy of tuples) with bounded finite entries."""
    arrays = hnp.arrays(
        _NUMPY_DTYPES[dtype], shape, elements=_elements(min_value, max_value, dtype)
    )
    return arrays.map(lambda a: torch.tensor(a, dtype=dtype))


def batches(
    *,
    feature_shape: int | tuple[int, ...],
    min_batch: int = 1,
    max_batch: int = 8,
    min_value: float = -2.0,
    max_value: float = 2.0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[torch.Tensor]:
    """Batches of finite inputs ``(B, *F)`` with ``min_batch <= B <= max_batch``.

    .. math::

        x \\in [\\mathrm{min\\_value}, \\mathrm{max\\_value}]^{B \\times F_1 \\times \\dots}

    Entries are normal floats or zero (no subnormals, which only exercise underflow);
    Hypothesis favours simple values such as 0, 1 and repeated entries, which is where
    degenerate cases (``x`` equal to the baseline, tied features) come from.

    Args:
      feature_shape: the feature shape ``F`` (an int for ``(F,)``).
      min_batch, max_batch: bounds on the batch size ``B`` (``1 <= min_batch <= max_batch``).
      min_value, max_value: finite bounds on every entry.
      dtype: ``torch.float64`` (default), ``float32`` or ``float16``.

    Returns:
      A strategy of tensors ``(B, *F)`` of ``dtype``.

    Example:
      >>> from hypothesis import find, settings
      >>> strategy = batches(feature_shape=(2, 3), max_batch=4)
      >>> search = settings(deadline=None, max_examples=200)
      >>> x = find(strategy, lambda x: len(x) == 4, settings=search)
      >>> tuple(x.shape), x.dtype
      ((4, 2, 3), torch.float64)
    """
    feature_shape = _check_feature_shape(feature_shape)
    min_batch = _check_int(min_batch, "min_batch", minimum=1)
    max_batch = _check_int(max_batch, "max_batch", minimum=1)
    _check_range(min_batch, max_batch, "min_batch", "max_batch")
    min_value, max_value = _check_bounds(min_value, max_value)
    dtype = _check_dtype(dtype)
    shapes = st.integers(min_batch, max_batch).map(lambda b: (b, *feature_shape))
    return _tensors(shapes, min_value, max_value, dtype)


def baselines(
    *,
    feature_shape: int | tuple[int, ...],
    batch_size: int | None = None,
    min_value: float = -2.0,
    max_value: float = 2.0,
    allow_numbers: bool = True,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[torch.Tensor | float]:
    """Baselines that broadcast against a batch ``(B, *F)``: a number, ``(1, *F)`` or ``(B, *F)``.

    Args:
      feature_shape: the feature shape ``F`` of the batch.
      batch_size: the batch's ``B``; when given, per-row baselines ``(B, *F)`` are drawn
        too, else only shared ones.
      min_value, max_value: finite bounds on every entry.
      allow_numbers: also draw plain Python floats (filled in by the methods).
      dtype: dtype of tensor baselines.

    Returns:
      A strategy of floats and tensors ``(1, *F)`` (and ``(B, *F)``).

    Example:
      >>> from hypothesis import find, settings
      >>> strategy = baselines(feature_shape=3, batch_size=5)
      >>> search = settings(deadline=None, max_examples=200)
      >>> b = find(strategy, lambda b: not isinstance(b, float), settings=search)
      >>> tuple(b.shape)
      (1, 3)
    """
    feature_shape = _check_feature_shape(feature_shape)
    if batch_size is not None:
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
    min_value, max_value = _check_bounds(min_value, max_value)
    if not isinstance(allow_numbers, bool):
        raise TypeError(f"allow_numbers must be a bool, got {allow_numbers!r}")
    dtype = _check_dtype(dtype)
    options = [_tensors((1, *feature_shape), min_value, max_value, dtype)]
    if batch_size is not None and batch_size > 1:
        options.append(_tensors((batch_size, *feature_shape), min_value, max_value, dtype))
    if allow_numbers:
        options.insert(0, _elements(min_value, max_value, dtype))
    return st.one_of(options)


# --------------------------------------------------------------------------- models


def _roles(n_features: int, roles: tuple[int, int, int, int]):
    """Draw disjoint dummy features and symmetric pairs: ``(dummies, pairs)``."""
    min_dummies, max_dummies, min_pairs, max_pairs = roles

    @st.composite
    def draw(draw):
        order = draw(st.permutations(range(n_features)))
        n_dummies = draw(st.integers(min_dummies, max_dummies))
        n_pairs = draw(st.integers(min_pairs, max_pairs))
        dummies = tuple(sorted(order[:n_dummies]))
        rest = order[n_dummies:]
        pairs = tuple(tuple(sorted((rest[2 * p], rest[2 * p + 1]))) for p in range(n_pairs))
        return dummies, tuple(sorted(pairs))

    return draw()


def _check_roles(
    n_features: int, min_dummies, max_dummies, min_symmetric_pairs, max_symmetric_pairs
) -> tuple[int, int, int, int]:
    """Validate the role bounds; return ``(min_dummies, max_dummies, min_pairs, max_pairs)``."""
    min_dummies = _check_int(min_dummies, "min_dummies")
    max_dummies = _check_int(max_dummies, "max_dummies")
    _check_range(min_dummies, max_dummies, "min_dummies", "max_dummies")
    min_symmetric_pairs = _check_int(min_symmetric_pairs, "min_symmetric_pairs")
    max_symmetric_pairs = _check_int(max_symmetric_pairs, "max_symmetric_pairs")
    _check_range(
        min_symmetric_pairs, max_symmetric_pairs, "min_symmetric_pairs", "max_symmetric_pairs"
    )
    if max_dummies + 2 * max_symmetric_pairs > n_features:
        raise ValueError(
            f"max_dummies + 2 * max_symmetric_pairs must be <= n_features = {n_features}, "
            f"got {max_dummies} + 2 * {max_symmetric_pairs}"
        )
    return min_dummies, max_dummies, min_symmetric_pairs, max_symmetric_pairs


def _mlp_forward(params, activation: str, n_layers: int, single: bool, x: torch.Tensor):
    act = ACTIVATIONS[activation]
    h = x
    for layer in range(n_layers):
        # (B, H_in) @ (H_in, H_out) -> (B, H_out)
        h = act(h @ params[f"weight{layer}"].T + params[f"bias{layer}"])
    out = h @ params["weight_out"].T + params["bias_out"]  # (B, C)
    return out[:, 0] if single else out


def _mlp_model(params, activation, n_features, n_outputs, seed, dummies, pairs) -> Model:
    n_layers = sum(1 for key in params if key.startswith("weight") and key != "weight_out")
    fn = functools.partial(_mlp_forward, params, activation, n_layers, n_outputs is None)
    return Model(
        fn=fn,
        kind="mlp",
        n_features=n_features,
        n_outputs=n_outputs,
        params=params,
        seed=seed,
        activation=activation,
        dummies=dummies,
        symmetric_pairs=pairs,
    )


def _init_mlp(seed, widths, n_features, n_outputs, weight_scale, dummies, pairs, dtype):
    """MLP params from one seeded generator: ``W ~ N(0, scale^2 / fan_in)``, ``b ~ N(0, 1/4)``."""
    gen = torch.Generator().manual_seed(seed)
    params = {}
    fan_in = n_features
    for layer, width in enumerate(widths):
        weight = torch.randn(width, fan_in, generator=gen, dtype=torch.float64)
        params[f"weight{layer}"] = weight * (weight_scale / math.sqrt(fan_in))
        params[f"bias{layer}"] = 0.5 * torch.randn(width, generator=gen, dtype=torch.float64)
        fan_in = width
    n_out = 1 if n_outputs is None else n_outputs
    weight_out = torch.randn(n_out, fan_in, generator=gen, dtype=torch.float64)
    params["weight_out"] = weight_out / math.sqrt(fan_in)
    params["bias_out"] = 0.5 * torch.randn(n_out, generator=gen, dtype=torch.float64)
    first = params["weight0"]
    first[:, list(dummies)] = 0.0  # the function ignores these inputs exactly
    for i, j in pairs:
        first[:, j] = first[:, i]  # tied columns: f is symmetric in (x_i, x_j)
    return {key: value.to(dtype) for key, value in params.items()}


def _mlp_draws(
    n_features,
    n_outputs,
    min_depth,
    max_depth,
    min_width,
    max_width,
    activations,
    weight_scale,
    roles,
    dtype,
):
    """Validate the arguments of :func:`mlps` and return the strategy of its raw draws."""
    n_features = _check_int(n_features, "n_features", minimum=1)
    n_outputs = _check_outputs(n_outputs)
    min_depth = _check_int(min_depth, "min_depth", minimum=1)
    max_depth = _check_int(max_depth, "max_depth", minimum=1)
    _check_range(min_depth, max_depth, "min_depth", "max_depth")
    min_width = _check_int(min_width, "min_width", minimum=1)
    max_width = _check_int(max_width, "max_width", minimum=1)
    _check_range(min_width, max_width, "min_width", "max_width")
    if (
        isinstance(activations, str)
        or not isinstance(activations, Sequence)
        or not activations
        or any(a not in ACTIVATIONS for a in activations)
    ):
        raise ValueError(
            f"activations must be a non-empty sequence of {sorted(ACTIVATIONS)}, "
            f"got {activations!r}"
        )
    if isinstance(weight_scale, bool) or not isinstance(weight_scale, numbers.Real):
        raise TypeError(f"weight_scale must be a real number, got {weight_scale!r}")
    if not 0 < weight_scale < math.inf:
        raise ValueError(f"weight_scale must be positive and finite, got {weight_scale}")
    roles = _check_roles(n_features, *roles)
    dtype = _check_dtype(dtype)
    widths = st.integers(min_depth, max_depth).flatmap(
        lambda depth: st.lists(st.integers(min_width, max_width), min_size=depth, max_size=depth)
    )
    return st.tuples(
        st.integers(0, 2**32 - 1),
        widths,
        st.sampled_from(tuple(activations)),
        _roles(n_features, roles),
    ), (n_features, n_outputs, float(weight_scale), dtype)


def mlps(
    *,
    n_features: int,
    n_outputs: int | None = None,
    min_depth: int = 1,
    max_depth: int = 2,
    min_width: int = 1,
    max_width: int = 8,
    activations: Sequence[str] = ("tanh", "sigmoid", "softplus", "relu"),
    weight_scale: float = 1.0,
    min_dummies: int = 0,
    max_dummies: int = 0,
    min_symmetric_pairs: int = 0,
    max_symmetric_pairs: int = 0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Model]:
    """Small multilayer perceptrons as pure functions, with dummy features and symmetric pairs.

    .. math::

        h_0 = x, \\quad h_l = \\sigma(W_l h_{l-1} + b_l), \\quad
        f(x) = W_{\\mathrm{out}} h_L + b_{\\mathrm{out}}

    with depth ``L``, hidden widths and :math:`\\sigma` drawn by Hypothesis, and
    :math:`W_l \\sim \\mathcal{N}(0, s^2/\\mathrm{fan\\_in})` and
    :math:`b_l \\sim \\mathcal{N}(0, 1/4)` drawn from a ``torch.Generator`` with a drawn
    seed (:math:`s` = ``weight_scale``).
    The columns of :math:`W_1` for the drawn ``dummies`` are zero, so ``f`` ignores those
    inputs exactly, and the columns of each drawn symmetric pair are equal, so ``f`` is
    symmetric in that pair. ``relu`` MLPs have kinks: keep properties that only hold off
    kinks to the smooth activations.

    Args:
      n_features: input width ``F``.
      n_outputs: ``None`` for ``(B,)`` outputs, or ``C`` for ``(B, C)``.
      min_depth, max_depth: bounds on the number of hidden layers ``L >= 1``.
      min_width, max_width: bounds on each hidden width.
      activations: keys of :data:`ACTIVATIONS` to draw from.
      weight_scale: scale ``s`` of the weights; larger means sharper nonlinearity.
      max_dummies: at most this many ignored features.
      max_symmetric_pairs: at most this many symmetric feature pairs (disjoint from dummies).
      min_dummies, min_symmetric_pairs: at least this many of each, so a property
        that needs a dummy feature (or a pair) is checked on every example.
      dtype: dtype of the parameters (inputs must match).

    Returns:
      A strategy of :class:`Model` with ``kind="mlp"``.

    Example:
      >>> import torch
      >>> from hypothesis import find, settings
      >>> strategy = mlps(n_features=4, max_dummies=2)
      >>> search = settings(deadline=None, max_examples=200)
      >>> model = find(strategy, lambda m: len(m.dummies) == 2, settings=search)
      >>> model(torch.zeros(3, 4, dtype=torch.float64)).shape
      torch.Size([3])
    """
    draws, (n_features, n_outputs, weight_scale, dtype) = _mlp_draws(
        n_features,
        n_outputs,
        min_depth,
        max_depth,
        min_width,
        max_width,
        activations,
        weight_scale,
        (min_dummies, max_dummies, min_symmetric_pairs, max_symmetric_pairs),
        dtype,
    )

    def build(draw):
        seed, widths, activation, (dummies, pairs) = draw
        params = _init_mlp(seed, widths, n_features, n_outputs, weight_scale, dummies, pairs, dtype)
        return _mlp_model(params, activation, n_features, n_outputs, seed, dummies, pairs)

    return draws.map(build)


def _reparameterize(model: Model, perms, flips, twin_seed: int) -> Model:
    """The same function as ``model`` with different parameters (see :func:`equivalent_mlps`)."""
    params = {k: v.clone() for k, v in model.params.items()}
    n_layers = len(perms)
    gen = torch.Generator().manual_seed(twin_seed)
    for layer in range(n_layers):
        w, b = params[f"weight{layer}"], params[f"bias{layer}"]
        nxt = f"weight{layer + 1}" if layer + 1 < n_layers else "weight_out"
        nxt_b = f"bias{layer + 1}" if layer + 1 < n_layers else "bias_out"
        v, c = params[nxt], params[nxt_b]
        sign = torch.tensor(flips[layer], dtype=w.dtype)
        if model.activation == "tanh":  # tanh(-z) = -tanh(z)
            w, b, v = w * sign[:, None], b * sign, v * sign
        elif model.activation == "sigmoid":  # sigmoid(z) = 1 - sigmoid(-z)
            flipped = sign < 0
            c = c + v[:, flipped].sum(1)
            w, b, v = w * sign[:, None], b * sign, v * sign
        elif model.activation == "relu":  # relu(2^k z) = 2^k relu(z), exact in floating point
            scale = torch.tensor([2.0 ** (2 * f) for f in flips[layer]], dtype=w.dtype)
            w, b, v = w * scale[:, None], b * scale, v / scale
        perm = torch.as_tensor(perms[layer])
        w, b, v = w[perm], b[perm], v[:, perm]
        if layer == 0:
            # one dead unit: random input weights (respecting dummies and ties), zero output
            extra = torch.randn(1, w.shape[1], generator=gen, dtype=torch.float64).to(w.dtype)
            extra[:, list(model.dummies)] = 0.0
            for i, j in model.symmetric_pairs:
                extra[:, j] = extra[:, i]
            w = torch.cat([w, extra])
            b = torch.cat([b, b.new_ones(1)])
            v = torch.cat([v, v.new_zeros(v.shape[0], 1)], dim=1)
        params[f"weight{layer}"], params[f"bias{layer}"] = w, b
        params[nxt], params[nxt_b] = v, c
    return _mlp_model(
        params,
        model.activation,
        model.n_features,
        model.n_outputs,
        model.seed,
        model.dummies,
        model.symmetric_pairs,
    )


def equivalent_mlps(
    *,
    n_features: int,
    n_outputs: int | None = None,
    min_depth: int = 1,
    max_depth: int = 2,
    min_width: int = 1,
    max_width: int = 8,
    activations: Sequence[str] = ("tanh", "sigmoid", "softplus", "relu"),
    weight_scale: float = 1.0,
    min_dummies: int = 0,
    max_dummies: int = 0,
    min_symmetric_pairs: int = 0,
    max_symmetric_pairs: int = 0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[tuple[Model, Model]]:
    """Pairs ``(model, twin)`` of MLPs computing the same function with different parameters.

    .. math::

        f_{\\theta}(x) = f_{\\theta'}(x) \\ \\text{for all } x, \\qquad \\theta \\neq \\theta'

    ``model`` is drawn as by :func:`mlps` (same arguments). ``twin`` permutes the hidden
    units of every layer, applies the activation's own symmetry to drawn units (``tanh``:
    negate a unit's input and output weights; ``sigmoid``: the same, moving the output
    weight into the next bias; ``relu``: scale input weights by :math:`4^k` and output
    weights by :math:`4^{-k}`, exact in floating point; ``softplus``: permutation only)
    and adds a dead first-layer unit with zero output weights. The two outputs agree
    to rounding; attributions that only depend on the function (implementation
    invariance) must agree too.

    Args:
      As in :func:`mlps`.

    Returns:
      A strategy of ``(Model, Model)`` pairs.

    Example:
      >>> import torch
      >>> from hypothesis import find, settings
      >>> strategy = equivalent_mlps(n_features=3)
      >>> search = settings(deadline=None, max_examples=200)
      >>> model, twin = find(strategy, lambda pair: True, settings=search)
      >>> x = torch.randn(5, 3, dtype=torch.float64)
      >>> bool(torch.allclose(model(x), twin(x), rtol=1e-12, atol=1e-12))
      True
    """
    draws, (n_features, n_outputs, weight_scale, dtype) = _mlp_draws(
        n_features,
        n_outputs,
        min_depth,
        max_depth,
        min_width,
        max_width,
        activations,
        weight_scale,
        (min_dummies, max_dummies, min_symmetric_pairs, max_symmetric_pairs),
        dtype,
    )

    @st.composite
    def pairs(draw):
        seed, widths, activation, (dummies, sym) = draw(draws)
        params = _init_mlp(seed, widths, n_features, n_outputs, weight_scale, dummies, sym, dtype)
        model = _mlp_model(params, activation, n_features, n_outputs, seed, dummies, sym)
        perms = [draw(st.permutations(range(w))) for i, w in enumerate(widths)]
        flips = [
            draw(st.lists(st.sampled_from((-1, 1)), min_size=w, max_size=w))
            for i, w in enumerate(widths)
        ]
        twin_seed = draw(st.integers(0, 2**32 - 1))
        return model, _reparameterize(model, perms, flips, twin_seed)

    return pairs()


def linear_models(
    *,
    n_features: int,
    n_outputs: int | None = None,
    min_value: float = -2.0,
    max_value: float = 2.0,
    min_dummies: int = 0,
    max_dummies: int = 0,
    min_symmetric_pairs: int = 0,
    max_symmetric_pairs: int = 0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Model]:
    """Linear models ``f(x) = x @ w + c`` with known weights.

    .. math::

        f(x) = \\sum_i w_i x_i + c, \\qquad \\phi_i(x) = w_i (x_i - x'_i)

    Weights and bias are drawn by Hypothesis in ``[min_value, max_value]``; drawn dummy
    features get weight 0 and drawn symmetric pairs equal weights. Every complete
    attribution method must return :math:`\\phi` (see :meth:`Model.exact_attributions`):
    integrated gradients for every rule and step count, Shapley values, occlusion with
    ``window=1``, and gradient x input against a zero baseline.

    Args:
      n_features: input width ``F``.
      n_outputs: ``None`` for ``w`` of shape ``(F,)``, or ``C`` for ``(F, C)``.
      min_value, max_value: bounds on the weights and the bias.
      max_dummies: at most this many zero-weight features (zeros that Hypothesis draws
        by itself are listed in ``dummies`` too).
      max_symmetric_pairs: at most this many pairs with equal weights.
      min_dummies, min_symmetric_pairs: at least this many of each, so a property
        that needs a dummy feature (or a pair) is checked on every example.
      dtype: dtype of the parameters.

    Returns:
      A strategy of :class:`Model` with ``kind="linear"`` and params ``weight``, ``bias``.

    Example:
      >>> from hypothesis import find, settings
      >>> strategy = linear_models(n_features=3, max_dummies=3)
      >>> search = settings(deadline=None, max_examples=200)
      >>> model = find(strategy, lambda m: True, settings=search)
      >>> model.params["weight"].shape, model.dummies
      (torch.Size([3]), (0, 1, 2))
    """
    n_features = _check_int(n_features, "n_features", minimum=1)
    n_outputs = _check_outputs(n_outputs)
    min_value, max_value = _check_bounds(min_value, max_value)
    roles = _check_roles(
        n_features, min_dummies, max_dummies, min_symmetric_pairs, max_symmetric_pairs
    )
    dtype = _check_dtype(dtype)
    shape = (n_features,) if n_outputs is None else (n_features, n_outputs)
    bias_shape = () if n_outputs is None else (n_outputs,)

    def build(draw):
        weight, bias, (dummies, pairs) = draw
        weight, bias = weight.clone(), bias.clone()
        weight[list(dummies)] = 0.0
        for i, j in pairs:
            # a pair drawn with zero weights would be two dummies, not a pair
            weight[i] = torch.where(weight[i] == 0, torch.ones_like(weight[i]), weight[i])
            weight[j] = weight[i]
        zero = (weight == 0).reshape(n_features, -1).all(1)
        dummies = tuple(int(i) for i in zero.nonzero().flatten())
        pairs = tuple(p for p in pairs if p[0] not in dummies)
        params = {"weight": weight, "bias": bias}
        return Model(
            fn=functools.partial(_linear_forward, weight, bias),
            kind="linear",
            n_features=n_features,
            n_outputs=n_outputs,
            params=params,
            dummies=dummies,
            symmetric_pairs=pairs,
        )

    return st.tuples(
        _tensors(shape, min_value, max_value, dtype),
        _tensors(bias_shape, min_value, max_value, dtype),
        _roles(n_features, roles),
    ).map(build)


def _linear_forward(weight, bias, x):
    return x @ weight + bias  # (B, F) @ (F,) -> (B,) or (B, F) @ (F, C) -> (B, C)


def _additive_terms(a, b, c, x):
    return a * torch.sin(b * x) + c * x * x  # (B, F): g_i(x_i)


def _additive_forward(a, b, c, x):
    return _additive_terms(a, b, c, x).sum(-1)


def additive_models(
    *,
    n_features: int,
    max_amplitude: float = 2.0,
    max_frequency: float = 2.0,
    max_curvature: float = 1.0,
    min_dummies: int = 0,
    max_dummies: int = 0,
    min_symmetric_pairs: int = 0,
    max_symmetric_pairs: int = 0,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Model]:
    """Additive models, sums of per-feature nonlinear terms, whose exact attributions are known.

    .. math::

        f(x) = \\sum_i g_i(x_i), \\qquad g_i(t) = a_i \\sin(b_i t) + c_i t^2, \\qquad
        \\phi_i(x) = g_i(x_i) - g_i(x'_i)

    with :math:`|a_i| \\le` ``max_amplitude``, :math:`|b_i| \\le` ``max_frequency`` and
    :math:`|c_i| \\le` ``max_curvature`` drawn by Hypothesis. :math:`\\phi` is the exact
    Shapley value, the limit of integrated gradients, and the occlusion (``window=1``)
    and single-feature ablation. Drawn dummy features have :math:`g_i = 0`; drawn
    symmetric pairs share their coefficients.

    Args:
      n_features: input width ``F``.
      max_amplitude, max_frequency, max_curvature: bounds on ``|a|``, ``|b|``, ``|c|``.
      max_dummies: at most this many features with :math:`g_i = 0` (terms that vanish by
        the draw, e.g. ``a = c = 0``, are listed in ``dummies`` too).
      max_symmetric_pairs: at most this many pairs with equal terms.
      min_dummies, min_symmetric_pairs: at least this many of each, so a property
        that needs a dummy feature (or a pair) is checked on every example.
      dtype: dtype of the parameters.

    Returns:
      A strategy of :class:`Model` with ``kind="additive"``, params ``a``, ``b``, ``c``
      and ``terms(x) -> (B, F)``.

    Example:
      >>> import torch
      >>> from hypothesis import find, settings
      >>> strategy = additive_models(n_features=3)
      >>> search = settings(deadline=None, max_examples=200)
      >>> model = find(strategy, lambda m: not m.dummies, settings=search)
      >>> x = torch.ones(2, 3, dtype=torch.float64)
      >>> bool(torch.equal(model(x), model.terms(x).sum(-1)))
      True
    """
    n_features = _check_int(n_features, "n_features", minimum=1)
    bounds = {}
    for name, value in (
        ("max_amplitude", max_amplitude),
        ("max_frequency", max_frequency),
        ("max_curvature", max_curvature),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        if not 0 <= value < math.inf:
            raise ValueError(f"{name} must be finite and >= 0, got {value}")
        bounds[name] = float(value)
    roles = _check_roles(
        n_features, min_dummies, max_dummies, min_symmetric_pairs, max_symmetric_pairs
    )
    dtype = _check_dtype(dtype)

    def coefficients(bound):
        return _tensors((n_features,), -bound, bound, dtype)

    def build(draw):
        a, b, c, (dummies, pairs) = draw
        a, b, c = a.clone(), b.clone(), c.clone()
        for i, _ in pairs:  # a pair whose terms vanish would be two dummies, not a pair
            if (a[i] == 0 or b[i] == 0) and c[i] == 0:
                c[i] = 1.0
        for coef in (a, b, c):
            coef[list(dummies)] = 0.0
            for i, j in pairs:
                coef[j] = coef[i]
        zero = ((a == 0) | (b == 0)) & (c == 0)
        dummies = tuple(int(i) for i in zero.nonzero().flatten())
        pairs = tuple(p for p in pairs if p[0] not in dummies)
        return Model(
            fn=functools.partial(_additive_forward, a, b, c),
            kind="additive",
            n_features=n_features,
            n_outputs=None,
            params={"a": a, "b": b, "c": c},
            dummies=dummies,
            symmetric_pairs=pairs,
            terms=functools.partial(_additive_terms, a, b, c),
        )

    return st.tuples(
        coefficients(bounds["max_amplitude"]),
        coefficients(bounds["max_frequency"]),
        coefficients(bounds["max_curvature"]),
        _roles(n_features, roles),
    ).map(build)


def transformer_nets(
    *,
    n_features: int,
    max_layers: int = 2,
    max_embed: int = 4,
    max_ff: int = 8,
    max_hidden: int = 8,
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Model]:
    """Functional TransformerNets with drawn sizes and a drawn parameter seed.

    .. math::

        f(x) = \\mathrm{transformer\\_net}(\\theta, x), \\qquad
        \\theta = \\mathrm{init\\_transformer\\_net}(\\text{sizes}, \\text{seed})

    Sizes are drawn with ``d_embed`` even and divisible by ``n_heads``; the params come
    from :func:`tfx_explain.people.init_transformer_net` with a seeded generator. The
    feed-forward blocks use ReLU, so the net has kinks; dropout is off.

    Args:
      n_features: input width ``F`` (number of tokens).
      max_layers: at most this many encoder layers (at least 1).
      max_embed: largest embedding size ``D`` (even, >= 2).
      max_ff, max_hidden: largest feed-forward and hidden widths.
      dtype: dtype of the parameters (inputs must match).

    Returns:
      A strategy of :class:`Model` with ``kind="transformer"``.

    Example:
      >>> import torch
      >>> from hypothesis import find, settings
      >>> strategy = transformer_nets(n_features=3)
      >>> search = settings(deadline=None, max_examples=200)
      >>> net = find(strategy, lambda m: True, settings=search)
      >>> net(torch.zeros(2, 3, dtype=torch.float64)).shape
      torch.Size([2])
    """
    from tfx_explain.people import init_transformer_net, transformer_net

    n_features = _check_int(n_features, "n_features", minimum=1)
    max_layers = _check_int(max_layers, "max_layers", minimum=1)
    max_embed = _check_int(max_embed, "max_embed", minimum=2)
    max_ff = _check_int(max_ff, "max_ff", minimum=1)
    max_hidden = _check_int(max_hidden, "max_hidden", minimum=1)
    dtype = _check_dtype(dtype)

    @st.composite
    def nets(draw):
        d_embed = draw(st.sampled_from(range(2, max_embed + 1, 2)))
        n_heads = draw(st.sampled_from([h for h in range(1, d_embed + 1) if d_embed % h == 0]))
        sizes = {
            "n_features": n_features,
            "d_embed": d_embed,
            "n_heads": n_heads,
            "d_ff": draw(st.integers(1, max_ff)),
            "n_layers": draw(st.integers(1, max_layers)),
            "d_hidden": draw(st.integers(1, max_hidden)),
        }
        seed = draw(st.integers(0, 2**32 - 1))
        params = init_transformer_net(
            **sizes, generator=torch.Generator().manual_seed(seed), dtype=dtype
        )
        return Model(
            fn=functools.partial(transformer_net, params),
            kind="transformer",
            n_features=n_features,
            n_outputs=None,
            params=params,
            seed=seed,
        )

    return nets()
