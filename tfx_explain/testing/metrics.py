"""Metric checks for attribution methods: each returns the measured violation, to assert on.

The same convention as :mod:`tfx_explain.testing.axioms`: a check runs an attribution
``method(fn, x, **options)`` (``None`` keywords are not passed), scores it with
:mod:`tfx_explain.metrics`, and returns a ``(B,)`` tensor of non-negative violations,
0 where the property holds; nothing is asserted inside. The random attributions a
check compares against come from an explicit ``generator``, so a Hypothesis test that
fixes the seed is reproducible.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from tfx_explain import metrics

__all__ = ["deletion_violation", "insertion_violation", "randomization_violation"]


def _attribute(method: Callable, fn: Callable, x: torch.Tensor, **options: Any) -> torch.Tensor:
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (B, *F), got {type(x).__name__}")
    attr = method(fn, x, **{k: v for k, v in options.items() if v is not None})
    if not isinstance(attr, torch.Tensor) or attr.shape != x.shape:
        raise ValueError(
            f"method must return attributions shaped like x {tuple(x.shape)}, "
            f"got {getattr(attr, 'shape', type(attr).__name__)}"
        )
    return attr.detach()


def _random_areas(curve, fn, x, attr, n_random, generator, target, **kw) -> torch.Tensor:
    """Mean area of ``n_random`` uniformly random attributions per row: ``(B,)``."""
    if isinstance(n_random, bool) or not isinstance(n_random, numbers.Integral) or n_random < 1:
        raise ValueError(f"n_random must be an int >= 1, got {n_random!r}")
    rows = x.repeat_interleave(n_random, dim=0)  # (B R, *F)
    random = torch.rand(rows.shape, generator=generator, device=x.device, dtype=x.dtype)
    if isinstance(target, torch.Tensor):
        target = target.repeat_interleave(n_random)
    base = kw.get("baseline")
    if isinstance(base, torch.Tensor) and base.shape == x.shape:
        kw["baseline"] = base.repeat_interleave(n_random, dim=0)
    area = curve(fn, rows, random, target=target, **kw).area
    return area.reshape(x.shape[0], n_random).mean(1)


def _curve_violation(curve, sign, method, fn, x, margin, n_random, generator, baseline, target,
                     fractions, groups, options):  # fmt: skip
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"margin must be a number, got {margin!r}")
    attr = _attribute(method, fn, x, baseline=baseline, target=target, **options)
    kw = {
        "fractions": fractions,
        "groups": groups,
        "baseline": 0.0 if baseline is None else baseline,
    }
    own = curve(fn, x, attr, target=target, **kw).area.detach()
    random = _random_areas(curve, fn, x, attr, n_random, generator, target, **kw).detach()
    return (sign * (own - random) + margin).clamp_min(0)


def deletion_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    margin: float = 0.0,
    n_random: int = 8,
    generator: torch.Generator | None = None,
    baseline: Any = None,
    target: Any = None,
    fractions: Any = None,
    groups: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    r"""How far the method's deletion area is from beating random attributions by ``margin``.

    .. math::

        v_b = \max\big(0,\ A(a) - \overline{A}(\text{random}) + m\big)

    with :math:`A` the MoRF :func:`tfx_explain.metrics.deletion_curve` area (lower is
    more faithful) of :math:`a` = ``method(fn, x, baseline=..., target=..., **options)``,
    :math:`\overline{A}` the mean area of ``n_random`` uniformly random attributions
    per row, and :math:`m` = ``margin`` in ``fn``'s units.

    Args:
      method: attribution function ``method(fn, x, **options)``.
      fn: batched callable ``(B, *F) -> (B,)`` or ``(B, C)``.
      x: inputs ``(B, *F)``.
      margin: by how much the method must beat random.
      n_random: random attributions per row.
      generator: ``torch.Generator`` for the random attributions.
      baseline: ``None`` (zeros; not passed to ``method``), a number or a tensor; the
        deletion curve uses it too.
      target: ``None`` (not passed), an int or a LongTensor ``(B,)``.
      fractions: passed to the curve.
      groups: passed to the curve.
      **options: passed to ``method``.

    Returns:
      ``(B,)`` violations (0 where the method beats random by ``margin``).

    Example:
      >>> import torch
      >>> from tfx_explain import gradient_x_input
      >>> w = torch.tensor([1.0, 2.0, 4.0, 8.0])
      >>> v = deletion_violation(gradient_x_input, lambda x: x @ w, torch.ones(3, 4), margin=1.0)
      >>> bool((v == 0).all())
      True
    """
    return _curve_violation(metrics.deletion_curve, 1, method, fn, x, margin, n_random,
                            generator, baseline, target, fractions, groups, options)  # fmt: skip


def insertion_violation(
    method: Callable,
    fn: Callable,
    x: torch.Tensor,
    *,
    margin: float = 0.0,
    n_random: int = 8,
    generator: torch.Generator | None = None,
    baseline: Any = None,
    target: Any = None,
    fractions: Any = None,
    groups: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    r"""How far the method's insertion area is from beating random attributions by ``margin``.

    .. math::

        v_b = \max\big(0,\ \overline{A}(\text{random}) - A(a) + m\big)

    with :math:`A` the MoRF :func:`tfx_explain.metrics.insertion_curve` area (higher is
    more faithful); the arguments are those of :func:`deletion_violation`.

    Returns:
      ``(B,)`` violations (0 where the method beats random by ``margin``).
    """
    return _curve_violation(metrics.insertion_curve, -1, method, fn, x, margin, n_random,
                            generator, baseline, target, fractions, groups, options)  # fmt: skip


def randomization_violation(
    method: Callable,
    params: Any,
    fn_of_params: Callable,
    x: torch.Tensor,
    *,
    max_similarity: float = 0.5,
    layers: Sequence[str] | None = None,
    cascading: bool = True,
    similarity: str | Callable = "spearman",
    target: Any = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""How far the attributions stay similar once the parameters are randomized.

    .. math::

        v_b = \max\big(0,\ \max_l |s_{l,b}| - s_{\max}\big)

    with :math:`s_{l,b}` the similarity of :func:`tfx_explain.metrics.parameter_randomization`
    after randomizing layer ``l`` (cascading: the last entry has all ``layers``
    randomized) and :math:`s_{\max}` = ``max_similarity``. Pass ``layers`` to check only
    the layers a method must be sensitive to.

    Returns:
      ``(B,)`` violations (0 where every randomization changed the attributions enough).
    """
    if isinstance(max_similarity, bool) or not isinstance(max_similarity, numbers.Real):
        raise TypeError(f"max_similarity must be a number, got {max_similarity!r}")
    scores = metrics.parameter_randomization(
        method, params, fn_of_params, x, layers=layers, cascading=cascading,
        similarity=similarity, target=target, generator=generator,
    )  # fmt: skip
    worst = torch.stack([s.detach().abs() for s in scores.values()]).amax(0)
    return (worst - max_similarity).clamp_min(0)
