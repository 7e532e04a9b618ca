"""The model-parameter randomization sanity check (Adebayo et al. 2018), functionally.

A model here is ``fn_of_params(params, x)`` over a params pytree, so randomizing a
layer is building a new dict: no module is mutated, no copy of a model is made, and the
original attributions are computed once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils import _pytree as pytree

from ._engine.checks import check_choice
from ._engine.devices import draw

__all__ = ["parameter_randomization", "spearman", "ssim"]


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks along the last dim (ties share their mean rank): ``(B, D) -> (B, D)``."""
    ordered = v.sort(-1).values.contiguous()
    low = torch.searchsorted(ordered, v.contiguous(), right=False)
    high = torch.searchsorted(ordered, v.contiguous(), right=True)
    return (low + high - 1).to(v.dtype) / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Spearman rank correlation per sample: :math:`\rho(\mathrm{rank}(a), \mathrm{rank}(b))`.

    ``(B, *F), (B, *F) -> (B,)``; ties get average ranks; 0 where either is constant.
    """
    ra, rb = (_ranks(t.flatten(1)) for t in (a, b))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = ra.norm(dim=1) * rb.norm(dim=1)
    return torch.where(den > 0, (ra * rb).sum(1) / torch.where(den > 0, den, 1), 0)


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 7) -> torch.Tensor:
    r"""Structural similarity per sample of maps ``(B, H, W)`` or ``(B, C, H, W)``.

    .. math::

        \mathrm{SSIM} = \mathrm{mean}\ \frac{(2\mu_a\mu_b + c_1)(2\sigma_{ab} + c_2)}
            {(\mu_a^2 + \mu_b^2 + c_1)(\sigma_a^2 + \sigma_b^2 + c_2)}

    over ``window x window`` uniform windows (sample covariances), with
    :math:`c_1 = (0.01 L)^2`, :math:`c_2 = (0.03 L)^2` and :math:`L` the range of ``a``
    (scikit-image's ``structural_similarity`` defaults, averaged over channels). The
    window shrinks to the largest odd size that fits small maps.
    """
    if a.shape != b.shape or a.ndim not in (3, 4):
        raise ValueError(f"ssim compares maps (B, H, W) or (B, C, H, W), got {tuple(a.shape)}")
    a4, b4 = (t if t.ndim == 4 else t.unsqueeze(1) for t in (a, b))
    size = min(window, a4.shape[-1], a4.shape[-2])
    size -= 1 - size % 2
    span = (a4.flatten(1).amax(1) - a4.flatten(1).amin(1)).clamp_min(1e-12)  # (B,)
    c1, c2 = ((0.01 * span) ** 2)[:, None, None, None], ((0.03 * span) ** 2)[:, None, None, None]

    def mean(t):
        return F.avg_pool2d(t, size, stride=1)

    correction = size * size / (size * size - 1) if size > 1 else 1.0
    mu_a, mu_b = mean(a4), mean(b4)
    var_a = (mean(a4 * a4) - mu_a**2) * correction
    var_b = (mean(b4 * b4) - mu_b**2) * correction
    cov = (mean(a4 * b4) - mu_a * mu_b) * correction
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)


SIMILARITIES = {"spearman": spearman, "ssim": ssim}


def _names(params: Any) -> list[str]:
    """Dotted names of the leaves: ``{"a": {"w": t}}`` -> ``["a.w"]``."""
    paths, _ = pytree.tree_flatten_with_path(params)
    names = []
    for path, _leaf in paths:
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append(".".join(parts))
    return names


def parameter_randomization(
    method: Callable,
    params: Any,
    fn_of_params: Callable,
    x: torch.Tensor,
    *,
    layers: Sequence[str] | None = None,
    cascading: bool = True,
    similarity: str | Callable = "spearman",
    target: Any = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    r"""Model-parameter randomization test: do the attributions depend on the weights?

    .. math::

        s_l = \mathrm{sim}\big(\Phi(f_\theta, x),\ \Phi(f_{\theta^{(l)}}, x)\big)

    where :math:`\Phi` is ``method``, :math:`f_\theta` is ``fn_of_params(params, .)`` and
    :math:`\theta^{(l)}` has the parameters of ``layers[0..l]`` (``cascading=True``,
    top layer first) or of ``layers[l]`` alone (``cascading=False``) redrawn as
    :math:`\mathcal{N}(0, \mathrm{rms}(\theta_p)^2)` per tensor (scale kept, values
    random; an all-zero tensor stays zero). A method that explains the model should
    give low similarity after randomization; an edge detector would not. Because the
    model is a pure function of its params pytree, randomization is building a new
    dict: no module is mutated or copied.

    Args:
      method: attribution function ``method(fn, x, *, target=...)``.
      params: a pytree of parameter tensors (e.g. a dict from
        :func:`tfx_explain.people.init_transformer_net` or ``dict(module.named_parameters())``).
      fn_of_params: ``fn_of_params(params, x) -> (B,)`` or ``(B, C)``; for an
        ``nn.Module`` use ``lambda p, x: torch.func.functional_call(module, p, (x,))``.
      x: inputs ``(B, *F)``.
      layers: names in randomization order; a layer is every leaf whose dotted name
        (dict keys joined by ``.``) starts with the name. Default: each leaf on its
        own, last leaf first (the output layer of a sequential model).
      cascading: randomize cumulatively (default) or one layer at a time.
      similarity: ``"spearman"`` (rank correlation, :func:`spearman`), ``"ssim"``
        (images or grids, :func:`ssim`) or a callable ``(a, b) -> (B,)``.
      target: ``None``, int or LongTensor ``(B,)``; passed to ``method`` when not ``None``.
      generator: ``torch.Generator`` for the random parameters.

    Returns:
      ``{layer: (B,) similarity}`` in randomization order.

    Example:
      >>> import torch
      >>> from tfx_explain import input_gradients
      >>> from tfx_explain.metrics import parameter_randomization
      >>> params = {"w": torch.randn(5), "v": torch.randn(5)}
      >>> scores = parameter_randomization(
      ...     input_gradients, params, lambda p, x: torch.tanh(x @ p["w"]) * p["v"].sum(),
      ...     torch.randn(3, 5), generator=torch.Generator().manual_seed(0))
      >>> list(scores), scores["v"].shape
      (['v', 'w'], torch.Size([3]))

    References:
      Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018.
    """
    if not callable(method):
        raise TypeError(f"method must be an attribution function, got {method!r}")
    if not callable(fn_of_params):
        raise TypeError(f"fn_of_params must be callable, got {fn_of_params!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor (B, *F), got {type(x).__name__}")
    if not isinstance(cascading, bool):
        raise TypeError(f"cascading must be True or False, got {cascading!r}")
    if not callable(similarity):
        similarity = SIMILARITIES[check_choice(similarity, "similarity", SIMILARITIES)]
    leaves, spec = pytree.tree_flatten(params)
    if not leaves or not all(isinstance(p, torch.Tensor) for p in leaves):
        raise TypeError("params must be a pytree of tensors")
    names = _names(params)
    if layers is None:
        layers = names[::-1]
    if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a sequence of names, got {layers!r}")
    members = [[i for i, n in enumerate(names) if n.startswith(layer)] for layer in layers]
    for layer, m in zip(layers, members, strict=True):
        if not m:
            raise ValueError(f"layers names {layer!r}, which starts no parameter name of {names}")

    def attribute(leaves_now):
        fn = functools.partial(fn_of_params, pytree.tree_unflatten(leaves_now, spec))
        attr = method(fn, x, **({} if target is None else {"target": target}))
        return attr.detach()

    def redrawn(p):
        rms = p.detach().pow(2).mean().sqrt()
        noise = draw(torch.randn, p.shape, generator=generator, device=p.device, dtype=p.dtype)
        return noise * rms

    original = attribute(leaves)
    current, scores = list(leaves), {}
    for layer, m in zip(layers, members, strict=True):
        trial = current if cascading else list(leaves)
        for i in m:
            trial[i] = redrawn(leaves[i])
        scores[layer] = similarity(original, attribute(trial))
        if cascading:
            current = trial
    return scores
