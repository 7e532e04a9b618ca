r"""Attribution priors: differentiable penalties on a model's explanations, for training.

Each penalty takes the model ``fn``, a batch ``x`` and an attribution ``method`` and returns a
scalar loss term :math:`\Omega(\theta)`. Add it to the task loss and differentiate both with
``torch.func.grad`` over the parameters:

.. math::

    \theta^\star = \arg\min_\theta\; L(\theta) + \lambda\, \Omega\big(a_\theta(x)\big),
    \qquad a_\theta = \mathrm{method}(f_\theta, x)

Because every core method is an ordinary differentiable function of ``fn``'s parameters,
:math:`\nabla_\theta \Omega` is exact: the path gradients inside integrated or expected
gradients are differentiated, not treated as constants (Captum computes them with
``create_graph=False``, so its attributions carry no gradient to the parameters at all).
The cost is one more backward pass over the attribution's rows (``S`` rows per sample for
``S`` path steps or draws).

``method`` is any attribution function ``method(fn, x, *, target, chunk_size) -> (B, *F)``:
``tfx_explain.input_gradients``, ``functools.partial(tfx_explain.integrated_gradients,
steps=4)``, ``functools.partial(tfx_explain.expected_gradients, baselines=refs,
n_samples=4, generator=g)``. ``x`` is one tensor ``(B, *F)``; ``target`` and ``chunk_size``
go to ``method`` unchanged.

This module is a battery: it uses only the public face ``tfx_explain.<name>``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "attributions",
    "right_reasons",
    "total_variation",
    "graph_smoothness",
    "sparsity",
    "share",
    "share_cap",
]


def _check_method(method: Any) -> Callable:
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    return method


def _check_x(x: Any, min_ndim: int = 2) -> Tensor:
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point or x.ndim < min_ndim:
        raise TypeError(
            f"x must be a floating tensor with at least {min_ndim} dims (B, *F), got "
            + (f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else repr(x))
        )
    return x


def _check_mask(mask: Any, x: Tensor, name: str) -> Tensor:
    """A 0/1 (or weight) mask shaped ``(*F)`` or ``(B, *F)``; returned in ``x``'s dtype."""
    if not isinstance(mask, Tensor) or mask.shape not in (x.shape[1:], x.shape):
        raise ValueError(
            f"{name} must be a tensor of shape {tuple(x.shape[1:])} or {tuple(x.shape)}, got "
            + (f"shape {tuple(mask.shape)}" if isinstance(mask, Tensor) else repr(mask))
        )
    if mask.is_floating_point() or mask.dtype == torch.bool:
        return mask.to(x.dtype)
    raise TypeError(f"{name} must be a bool or floating tensor, got dtype {mask.dtype}")


def _group_mask(group: Any, x: Tensor) -> Tensor:
    """``group`` as a ``(F,)`` 0/1 mask over the flattened features ``F = prod(*F)``."""
    n_features = x[0].numel()
    if isinstance(group, Tensor) and group.shape == x.shape[1:]:
        return _check_mask(group, x, "group").flatten()
    if (
        not isinstance(group, Sequence)
        or isinstance(group, str)
        or not group
        or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in group)
        or not all(0 <= i < n_features for i in group)
        or len(set(group)) != len(group)
    ):
        raise ValueError(
            f"group must be a non-empty sequence of distinct feature indices in [0, {n_features})"
            f" or a mask of shape {tuple(x.shape[1:])}, got {group!r}"
        )
    index = torch.tensor(list(group), device=x.device)
    return x.new_zeros(n_features).index_fill(0, index, 1.0)  # (F,), not filled in place


def attributions(
    fn: Callable, x: Tensor, *, method: Callable, target: Any = None, chunk_size: int | None = None
) -> Tensor:
    r"""The attributions every penalty starts from: :math:`a = \mathrm{method}(f, x)`.

    .. math::

        a_{bi} = \mathrm{method}(f, x;\ t, \text{chunk\_size})_{bi}

    Args:
      fn: batched model ``(B, *F) -> (B,)`` or ``(B, C)``, e.g. built from the
        parameters being trained (``functools.partial(transformer_net, params)``).
      x: inputs ``(B, *F)``, one tensor.
      method: attribution function ``method(fn, x, *, target, chunk_size)``.
      target: passed to ``method``.
      chunk_size: passed to ``method`` (samples per vmapped call; bounds memory).

    Returns:
      ``(B, *F)`` attributions in ``x``'s dtype, differentiable in ``fn``'s parameters.

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([1.0, -2.0])
      >>> attributions(lambda x: x @ w, torch.ones(3, 2), method=tfx_explain.input_gradients)
      tensor([[ 1., -2.],
              [ 1., -2.],
              [ 1., -2.]])
    """
    _check_method(method)
    x = _check_x(x)
    attr = method(fn, x, target=target, chunk_size=chunk_size)
    if not isinstance(attr, Tensor) or attr.shape != x.shape:
        raise ValueError(
            f"method must return attributions shaped like x {tuple(x.shape)}, got "
            + (f"shape {tuple(attr.shape)}" if isinstance(attr, Tensor) else repr(attr))
        )
    return attr


def right_reasons(
    fn: Callable,
    x: Tensor,
    *,
    method: Callable,
    irrelevant: Tensor,
    target: Any = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Right for the right reasons: squared attribution on features marked irrelevant.

    .. math::

        \Omega_{\mathrm{RRR}} = \frac{1}{B} \sum_{b=1}^{B} \sum_i A_{bi}\, a_{bi}^2

    with :math:`a` = ``method(fn, x)`` and :math:`A` = ``irrelevant`` (1 on features the
    model should not use, 0 elsewhere; weights are allowed). Ross et al. use input
    gradients of the summed log-probabilities: pass ``method=tfx_explain.input_gradients``
    and ``fn = lambda x: model(x).log_softmax(-1).sum(-1)``.

    Args:
      fn: batched model (see :func:`attributions`).
      x: inputs ``(B, *F)``.
      method: attribution function (see the module docstring).
      irrelevant: annotation mask ``(*F)`` (shared) or ``(B, *F)`` (per sample), bool or
        floating.
      target: passed to ``method``.
      chunk_size: passed to ``method``.

    Returns:
      Scalar penalty, differentiable in ``fn``'s parameters.

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([1.0, -2.0, 3.0])
      >>> mask = torch.tensor([False, True, True])
      >>> right_reasons(lambda x: x @ w, torch.ones(2, 3), method=tfx_explain.input_gradients,
      ...               irrelevant=mask)
      tensor(13.)

    References:
      Ross, Hughes and Doshi-Velez, "Right for the Right Reasons: Training Differentiable
      Models by Constraining their Explanations", 2017.
    """
    x = _check_x(x)
    mask = _check_mask(irrelevant, x, "irrelevant")
    attr = attributions(fn, x, method=method, target=target, chunk_size=chunk_size)
    return (mask * attr**2).flatten(1).sum(1).mean()  # (B, *F) -> (B,) -> ()


def total_variation(
    fn: Callable,
    x: Tensor,
    *,
    method: Callable,
    target: Any = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Pixel smoothness prior: total variation of each image's attribution map.

    .. math::

        \Omega_{\mathrm{pixel}} = \frac{1}{B} \sum_{b=1}^{B} \sum_{c,h,w}
            \big|a_{b,c,h+1,w} - a_{bchw}\big| + \big|a_{b,c,h,w+1} - a_{bchw}\big|

    over the last two axes of :math:`a` = ``method(fn, x)`` (height, width; any leading
    channel axes are summed).

    Args:
      fn: batched model (see :func:`attributions`).
      x: images ``(B, ..., H, W)``.
      method: attribution function; Erion et al. use expected gradients.
      target: passed to ``method``.
      chunk_size: passed to ``method``.

    Returns:
      Scalar penalty.

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
      >>> fn = lambda x: (x * w).sum((-2, -1))
      >>> total_variation(fn, torch.ones(1, 2, 2), method=tfx_explain.input_gradients)
      tensor(2.)

    References:
      Erion, Janizek, Sturmfels, Lundberg and Lee, "Improving performance of deep learning
      models with axiomatic attribution priors and expected gradients", 2021.
    """
    x = _check_x(x, min_ndim=3)
    attr = attributions(fn, x, method=method, target=target, chunk_size=chunk_size)
    down = (attr[..., 1:, :] - attr[..., :-1, :]).abs().flatten(1).sum(1)  # (B,)
    right = (attr[..., :, 1:] - attr[..., :, :-1]).abs().flatten(1).sum(1)  # (B,)
    return (down + right).mean()


def _mean_abs(fn, x, method, target, chunk_size) -> Tensor:
    """Global importance ``phi_i = mean_b |a_bi|``: ``(B, *F) -> (F,)`` flattened."""
    attr = attributions(fn, x, method=method, target=target, chunk_size=chunk_size)
    return attr.abs().mean(0).flatten()


def graph_smoothness(
    fn: Callable,
    x: Tensor,
    *,
    method: Callable,
    laplacian: Tensor,
    target: Any = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Graph prior: features joined in a graph should get similar global importance.

    .. math::

        \Omega_{\mathrm{graph}} = \bar\phi^\top L\, \bar\phi
            = \tfrac12 \sum_{i,j} W_{ij} (\bar\phi_i - \bar\phi_j)^2, \qquad
        \bar\phi_i = \frac{1}{B} \sum_{b=1}^{B} |a_{bi}|

    with :math:`L = D - W` = ``laplacian`` of a feature graph with weights :math:`W`, over
    the flattened features of :math:`a` = ``method(fn, x)``.

    Args:
      fn: batched model (see :func:`attributions`).
      x: inputs ``(B, *F)``.
      method: attribution function.
      laplacian: ``(F, F)`` graph Laplacian, ``F = prod(*F)``.
      target: passed to ``method``.
      chunk_size: passed to ``method``.

    Returns:
      Scalar penalty (>= 0 for a weighted graph's Laplacian).

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([1.0, -3.0])
      >>> laplacian = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # one edge 0 - 1
      >>> graph_smoothness(lambda x: x @ w, torch.ones(2, 2), method=tfx_explain.input_gradients,
      ...                  laplacian=laplacian)
      tensor(4.)

    References:
      Erion et al., 2021 (see :func:`total_variation`).
    """
    x = _check_x(x)
    n_features = x[0].numel()
    if not isinstance(laplacian, Tensor) or laplacian.shape != (n_features, n_features):
        raise ValueError(
            f"laplacian must be a tensor of shape ({n_features}, {n_features}), got "
            + (
                f"shape {tuple(laplacian.shape)}"
                if isinstance(laplacian, Tensor)
                else repr(laplacian)
            )
        )
    phi = _mean_abs(fn, x, method, target, chunk_size)  # (F,)
    return phi @ laplacian.to(phi.dtype) @ phi


def sparsity(
    fn: Callable,
    x: Tensor,
    *,
    method: Callable,
    target: Any = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Sparsity prior: one minus the Gini coefficient of the global importance.

    .. math::

        \Omega_{\mathrm{sparse}} = 1 - G(\bar\phi), \qquad
        G(\bar\phi) = \frac{\sum_{i,j} |\bar\phi_i - \bar\phi_j|}{2F \sum_i \bar\phi_i},
        \qquad \bar\phi_i = \frac{1}{B} \sum_{b=1}^{B} |a_{bi}|

    over the ``F`` flattened features of :math:`a` = ``method(fn, x)``. Erion et al.
    minimise :math:`-G`; the constant 1 makes the penalty lie in ``[1/F, 1]`` (1: all
    features equally important; ``1/F``: one feature holds all of it).

    Args:
      fn: batched model (see :func:`attributions`).
      x: inputs ``(B, *F)``.
      method: attribution function.
      target: passed to ``method``.
      chunk_size: passed to ``method``.

    Returns:
      Scalar penalty.

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([0.0, 0.0, 0.0, 2.0])
      >>> sparsity(lambda x: x @ w, torch.ones(2, 4), method=tfx_explain.input_gradients)
      tensor(0.2500)

    References:
      Erion et al., 2021 (see :func:`total_variation`).
    """
    x = _check_x(x)
    phi = _mean_abs(fn, x, method, target, chunk_size)  # (F,)
    pairs = (phi[:, None] - phi[None, :]).abs().sum()  # (F, F) -> ()
    gini = pairs / (2 * phi.numel() * phi.sum().clamp_min(torch.finfo(phi.dtype).tiny))
    return 1 - gini


def share(
    fn: Callable,
    x: Tensor,
    *,
    method: Callable,
    group: Sequence[int] | Tensor,
    target: Any = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""The share of global attribution mass that falls on a group of features.

    .. math::

        s_G = \frac{\sum_{i \in G} \bar\phi_i}{\sum_i \bar\phi_i}, \qquad
        \bar\phi_i = \frac{1}{B} \sum_{b=1}^{B} |a_{bi}|

    with :math:`a` = ``method(fn, x)`` and :math:`G` = ``group``.

    Args:
      fn: batched model (see :func:`attributions`).
      x: inputs ``(B, *F)``.
      method: attribution function.
      group: feature indices into the flattened features (e.g.
        ``tfx_explain.people.PEOPLE_FIELDS["sex"]``) or a 0/1 mask of shape ``(*F)``.
      target: passed to ``method``.
      chunk_size: passed to ``method``.

    Returns:
      Scalar share in ``[0, 1]``, differentiable in ``fn``'s parameters.

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([1.0, -3.0])
      >>> share(lambda x: x @ w, torch.ones(2, 2), method=tfx_explain.input_gradients, group=[0])
      tensor(0.2500)
    """
    x = _check_x(x)
    mask = _group_mask(group, x)  # (F,)
    phi = _mean_abs(fn, x, method, target, chunk_size)  # (F,)
    return (mask * phi).sum() / phi.sum().clamp_min(torch.finfo(phi.dtype).tiny)


def share_cap(
    fn: Callable,
    x: Tensor,
    *,
    method: Callable,
    group: Sequence[int] | Tensor,
    cap: float,
    target: Any = None,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Group prior for tabular data: penalise a group's attribution share above a cap.

    .. math::

        \Omega_{\mathrm{cap}} = \max(0,\ s_G - c)^2

    with :math:`s_G` the group's share of the global attribution mass (:func:`share`) and
    :math:`c` = ``cap``. The square keeps the gradient continuous at the cap; below the
    cap the penalty and its gradient are exactly 0.

    Args:
      fn: batched model (see :func:`attributions`).
      x: inputs ``(B, *F)``.
      method: attribution function.
      group: feature indices or a mask (see :func:`share`).
      cap: largest share without penalty, in ``[0, 1)``.
      target: passed to ``method``.
      chunk_size: passed to ``method``.

    Returns:
      Scalar penalty.

    Example:
      >>> import tfx_explain
      >>> w = torch.tensor([1.0, -3.0])
      >>> share_cap(lambda x: x @ w, torch.ones(2, 2), method=tfx_explain.input_gradients,
      ...           group=[1], cap=0.5)
      tensor(0.0625)
    """
    if (
        isinstance(cap, bool)
        or not isinstance(cap, numbers.Real)
        or not 0 <= cap < 1  # also rejects nan
    ):
        raise ValueError(f"cap must be a number in [0, 1), got {cap!r}")
    s = share(fn, x, method=method, group=group, target=target, chunk_size=chunk_size)
    return torch.relu(s - cap) ** 2
