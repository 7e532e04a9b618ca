"""Pictures of attributions, written straight to PNG files (optional; needs matplotlib).

Every function takes tensors or arrays plus labels and a ``path`` ending in
``.png``, draws one figure on matplotlib's Agg canvas (no window, no pyplot
state), writes it and returns the path. matplotlib is imported inside the
functions only, so ``import tfx_explain`` never imports it; install it with
``pip install "tfx_explain[plot]"``.

Example:
  >>> import tempfile, pathlib, torch
  >>> from tfx_explain import plot
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "fields.png"
  >>> plot.field_bars(torch.tensor([0.7, 0.2, 0.1]), ["age", "sex", "state"], path).name
  'fields.png'
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "field_bars",
    "heatmap",
    "heatmaps",
    "image_overlays",
    "expected_vs_estimated",
    "waterfall",
    "token_strip",
]

_INSTALL = 'tfx_explain.plot needs matplotlib; install it with: pip install "tfx_explain[plot]"'


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on an Agg canvas (never shown, no global pyplot state)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    return path


def _array(values: Any, name: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    """``values`` (tensor or array-like) as a finite float64 numpy array of ``ndim`` dims."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or array of numbers, got {values!r}") from err
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{name} must have {wanted} dims, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)][0]}")
    return array


def _labels(labels: Any, n: int, name: str) -> list[str]:
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise TypeError(f"{name} must be a sequence of {n} strings, got {labels!r}")
    if len(labels) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(labels)}: {list(labels)!r}")
    return [str(label) for label in labels]


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {value!r}")
    return value


def field_bars(
    values: Any,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    series: Sequence[str] | None = None,
    highlight: Sequence[str] = (),
    title: str | None = None,
    xlabel: str = "importance",
) -> Path:
    """Horizontal bar chart of one value per field (several series side by side).

    .. math::

        \\text{bar}_{m,g} = v_{m,g}

    for field ``g`` (top to bottom in the order of ``labels``) and series ``m``.

    Args:
      values: ``(G,)`` one value per field, or ``(M, G)`` for ``M`` series.
      labels: ``G`` field names.
      path: output file, ending in ``.png`` (parent folders are created).
      series: ``M`` series names for a 2-d ``values`` (legend).
      highlight: field names to emphasize (bold, marked ``*``), e.g. the known truth.
      title: figure title.
      xlabel: value axis label.

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "bars.png"
      >>> field_bars([[0.6, 0.4], [0.5, 0.5]], ["a", "b"], path, series=["x", "y"]).exists()
      True

    References:
      Seed on occlusion and gradient x input (per-field readable summary).
    """
    path = _check_path(path)
    array = _array(values, "values", (1, 2))
    array = array[None] if array.ndim == 1 else array
    n_series, n_fields = array.shape
    names = _labels(labels, n_fields, "labels")
    if series is None:
        if n_series != 1:
            raise ValueError(f"series must name the {n_series} rows of values, got None")
        series_names = [None]
    else:
        series_names = _labels(series, n_series, "series")
    if isinstance(highlight, str) or not isinstance(highlight, Sequence):
        raise TypeError(f"highlight must be a sequence of field names, got {highlight!r}")
    unknown = [h for h in highlight if h not in names]
    if unknown:
        raise ValueError(f"highlight names fields that are not in labels: {unknown!r}")
    title, xlabel = _text(title, "title"), _text(xlabel, "xlabel")

    fig = _figure(6.5, 0.9 + 0.32 * n_fields * max(1.0, 0.6 * n_series))
    ax = fig.add_subplot()
    height = 0.8 / n_series
    rows = np.arange(n_fields)
    for m, (row, name) in enumerate(zip(array, series_names, strict=True)):
        offset = (m - (n_series - 1) / 2) * height
        ax.barh(rows + offset, row, height=height, label=name, edgecolor="black", linewidth=0.5)
    ax.set_yticks(rows, [f"* {n}" if n in highlight else n for n in names])
    for tick, name in zip(ax.get_yticklabels(), names, strict=True):
        if name in highlight:
            tick.set_fontweight("bold")
    ax.invert_yaxis()  # first field on top
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("field" + (" (* = known truth)" if highlight else ""))
    if title:
        ax.set_title(title)
    if series is not None:
        ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def _field_spans(fields: Any, width: int) -> list[tuple[str, int, int]]:
    if not isinstance(fields, Mapping):
        raise TypeError(f"fields must be a mapping name -> column indices, got {fields!r}")
    spans = []
    for name, members in fields.items():
        cols = sorted(int(c) for c in members)
        if not cols or cols != list(range(cols[0], cols[-1] + 1)):
            raise ValueError(f"fields[{name!r}] must be a run of consecutive columns, got {cols}")
        if cols[0] < 0 or cols[-1] >= width:
            raise ValueError(f"fields[{name!r}] must lie in [0, {width}), got {cols}")
        spans.append((str(name), cols[0], cols[-1] + 1))
    return spans


def heatmap(
    values: Any,
    path: str | os.PathLike,
    *,
    fields: Mapping[str, Sequence[int]] | None = None,
    title: str | None = None,
    xlabel: str = "position",
    ylabel: str = "example",
    colorbar_label: str = "attribution",
) -> Path:
    """Sample-by-feature heatmap, with field boundaries and names along the top.

    .. math::

        \\text{cell}_{b,i} = v_{b,i}

    Non-negative values use a sequential colormap from 0; signed values a diverging
    one centered at 0.

    Args:
      values: ``(B, D)`` one row per example, one column per feature or position.
      path: output file, ending in ``.png``.
      fields: optional mapping field name -> consecutive column indices.
      title: figure title.
      xlabel: column axis label.
      ylabel: row axis label.
      colorbar_label: what the color means.

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib, torch
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "map.png"
      >>> heatmap(torch.rand(5, 6), path, fields={"a": [0, 1], "b": [2, 3, 4, 5]}).exists()
      True
    """
    path = _check_path(path)
    array = _array(values, "values", 2)
    spans = [] if fields is None else _field_spans(fields, array.shape[1])
    title, xlabel, ylabel = _text(title, "title"), _text(xlabel, "xlabel"), _text(ylabel, "ylabel")
    colorbar_label = _text(colorbar_label, "colorbar_label")

    fig = _figure(min(14.0, 3.0 + 0.2 * array.shape[1]), min(9.0, 2.2 + 0.1 * array.shape[0]))
    ax = fig.add_subplot()
    image = _draw_heatmap(ax, array, spans, _color_scale([array]), xlabel, ylabel, names=True)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _color_scale(arrays: list[np.ndarray]) -> dict[str, Any]:
    """One color scale for all ``arrays``: sequential from 0, or diverging around 0 if signed."""
    if min(float(a.min()) for a in arrays) >= 0:
        return {"cmap": "viridis", "vmin": 0.0, "vmax": max(float(a.max()) for a in arrays)}
    peak = max(float(np.abs(a).max()) for a in arrays)
    return {"cmap": "RdBu_r", "vmin": -peak, "vmax": peak}


def _draw_heatmap(ax, array, spans, scale, xlabel, ylabel, *, names: bool) -> Any:
    image = ax.imshow(array, aspect="auto", interpolation="nearest", **scale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.get_major_locator().set_params(integer=True)
    line = "black" if scale["cmap"] == "RdBu_r" else "white"
    for _, start, _ in spans[1:]:
        ax.axvline(start - 0.5, color=line, linewidth=1.2)
    if spans and names:
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [(start + stop - 1) / 2 for _, start, stop in spans],
            [name for name, _, _ in spans],
            rotation=30,
            ha="left",
            rotation_mode="anchor",
            fontsize="small",
        )
    return image


def heatmaps(
    panels: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    fields: Mapping[str, Sequence[int]] | None = None,
    title: str | None = None,
    xlabel: str = "position",
    ylabel: str = "example",
    colorbar_label: str = "attribution",
) -> Path:
    """Several sample-by-feature heatmaps stacked on one color scale (e.g. before/after training).

    .. math::

        \\text{cell}_{p,b,i} = v^{(p)}_{b,i}

    for panel ``p``. All panels share one color scale (sequential from 0 if every
    value is non-negative, else diverging around 0), so they compare directly.

    Args:
      panels: mapping panel name -> ``(B_p, D)`` values; every panel has the same ``D``.
      path: output file, ending in ``.png``.
      fields: optional mapping field name -> consecutive column indices (named above
        the first panel, boundaries drawn on every panel).
      title: figure title.
      xlabel: column axis label.
      ylabel: row axis label.
      colorbar_label: what the color means.

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib, torch
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "pair.png"
      >>> heatmaps({"before": torch.rand(4, 6), "after": torch.rand(4, 6)}, path).exists()
      True
    """
    path = _check_path(path)
    if not isinstance(panels, Mapping) or not panels:
        raise TypeError(f"panels must be a non-empty mapping name -> (B, D), got {panels!r}")
    arrays = {str(name): _array(v, f"panels[{name!r}]", 2) for name, v in panels.items()}
    width = next(iter(arrays.values())).shape[1]
    for name, array in arrays.items():
        if array.shape[1] != width:
            raise ValueError(
                f"panels[{name!r}] must have {width} columns like the first panel, "
                f"got shape {array.shape}"
            )
    spans = [] if fields is None else _field_spans(fields, width)
    title, xlabel, ylabel = _text(title, "title"), _text(xlabel, "xlabel"), _text(ylabel, "ylabel")
    colorbar_label = _text(colorbar_label, "colorbar_label")

    rows = [min(40, a.shape[0]) for a in arrays.values()]  # panel heights follow their rows
    fig = _figure(
        min(14.0, 3.0 + 0.2 * width), min(14.0, 1.8 + 1.0 * len(arrays) + 0.08 * sum(rows))
    )
    axes = fig.subplots(len(arrays), 1, squeeze=False, height_ratios=rows)[:, 0]
    scale = _color_scale(list(arrays.values()))
    for p, (ax, (name, array)) in enumerate(zip(axes, arrays.items(), strict=True)):
        last = p == len(arrays) - 1
        image = _draw_heatmap(
            ax, array, spans, scale, xlabel if last else "", f"{name}\n{ylabel}", names=p == 0
        )
    fig.colorbar(image, ax=list(axes), label=colorbar_label, shrink=0.9)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def image_overlays(
    images: Any,
    maps: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Grid of images and their attribution maps, the image's outline drawn over each map.

    .. math::

        \\text{color}_{n,i} = \\frac{a_{n,i}}{\\max_j |a_{n,j}|} \\in [-1, 1]

    Row ``n`` shows image ``n`` (gray), then one column per method: its map scaled
    to a maximum magnitude of 1 (red = evidence for the class, blue = against),
    with the image's bright half outlined in black.

    Args:
      images: ``(N, H, W)`` grayscale images.
      maps: mapping method name -> ``(N, H, W)`` attributions for those images.
      path: output file, ending in ``.png``.
      row_labels: ``N`` row names (e.g. ``"label 3"``).
      title: figure title.

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib, torch
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "maps.png"
      >>> x = torch.rand(2, 8, 8)
      >>> image_overlays(x, {"x itself": x}, path).exists()
      True
    """
    path = _check_path(path)
    pictures = _array(images, "images", 3)
    n_images = pictures.shape[0]
    if not isinstance(maps, Mapping) or not maps:
        raise TypeError(f"maps must be a non-empty mapping name -> (N, H, W), got {maps!r}")
    arrays = {}
    for name, m in maps.items():
        arrays[str(name)] = _array(m, f"maps[{name!r}]", 3)
        if arrays[str(name)].shape != pictures.shape:
            raise ValueError(
                f"maps[{name!r}] must have the images' shape {pictures.shape}, "
                f"got {arrays[str(name)].shape}"
            )
    rows = None if row_labels is None else _labels(row_labels, n_images, "row_labels")
    title = _text(title, "title")

    n_cols = 1 + len(arrays)
    fig = _figure(1.0 + 1.9 * n_cols, 0.8 + 1.8 * n_images)
    axes = fig.subplots(n_images, n_cols, squeeze=False)
    scale = None
    for n in range(n_images):
        picture = pictures[n]
        axes[n, 0].imshow(picture, cmap="gray", interpolation="nearest")
        axes[n, 0].set_ylabel(rows[n] if rows else f"image {n}")
        level = 0.5 * (picture.max() + picture.min())
        for c, (name, array) in enumerate(arrays.items(), start=1):
            peak = float(np.abs(array[n]).max())
            scaled = array[n] / peak if peak > 0 else array[n]
            ax = axes[n, c]
            scale = ax.imshow(scaled, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            if picture.max() > picture.min():
                ax.contour(picture, levels=[level], colors="black", linewidths=0.8)
            if n == 0:
                ax.set_title(name, fontsize="medium")
        if n == 0:
            axes[n, 0].set_title("input", fontsize="medium")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(scale, ax=axes[:, 1:], label="attribution / max |attribution|", shrink=0.8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def expected_vs_estimated(
    expected: Any,
    estimated: Any,
    path: str | os.PathLike,
    *,
    categories: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str = "expected (known truth)",
    ylabel: str = "estimated",
) -> Path:
    """Scatter of estimated against expected values, with the identity line and r.

    .. math::

        r = \\frac{\\sum_i (e_i - \\bar e)(s_i - \\bar s)}
            {\\sqrt{\\sum_i (e_i - \\bar e)^2 \\sum_i (s_i - \\bar s)^2}}

    for expected :math:`e` and estimated :math:`s`; perfect estimates lie on ``y = x``.

    Args:
      expected: ``(D,)`` known true values.
      estimated: ``(D,)`` estimates of the same quantities.
      path: output file, ending in ``.png``.
      categories: ``D`` category names (one color and legend entry each).
      title: figure title.
      xlabel: horizontal axis label.
      ylabel: vertical axis label.

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "scatter.png"
      >>> expected_vs_estimated([0.0, 1.0, 2.0], [0.1, 0.9, 2.1], path).exists()
      True
    """
    path = _check_path(path)
    e = _array(expected, "expected", 1)
    s = _array(estimated, "estimated", 1)
    if e.shape != s.shape:
        raise ValueError(f"estimated must have expected's shape {e.shape}, got {s.shape}")
    cats = None if categories is None else _labels(categories, e.shape[0], "categories")
    title, xlabel, ylabel = _text(title, "title"), _text(xlabel, "xlabel"), _text(ylabel, "ylabel")

    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    low, high = float(min(e.min(), s.min())), float(max(e.max(), s.max()))
    pad = 0.05 * (high - low) if high > low else 1.0
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="gray", linestyle="--", lw=1)
    if cats is None:
        ax.scatter(e, s, s=18)
    else:
        for cat in dict.fromkeys(cats):
            where = np.array([c == cat for c in cats])
            ax.scatter(e[where], s[where], s=18, label=cat)
        ax.legend(loc="upper left", fontsize="small")
    spread = e.std() * s.std()
    if spread > 0:
        r = float(np.mean((e - e.mean()) * (s - s.mean())) / spread)
        ax.text(0.97, 0.03, f"r = {r:.4f}", transform=ax.transAxes, ha="right", va="bottom")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def waterfall(
    values: Any,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    base: float,
    title: str | None = None,
    xlabel: str = "model output",
    sort: bool = True,
) -> Path:
    """Waterfall from the baseline output to the explained output, one step per field.

    .. math::

        f(x) = f(x') + \\sum_g \\phi_g

    Each bar starts where the previous one ended; the last ends at
    ``base + sum(values)``, which equals the prediction when the values are
    efficient (exact Shapley values).

    Args:
      values: ``(G,)`` contribution of each field (e.g. Shapley values per group).
      labels: ``G`` field names.
      path: output file, ending in ``.png``.
      base: the baseline output :math:`f(x')`.
      title: figure title.
      xlabel: output axis label.
      sort: order the steps by decreasing magnitude (else keep ``labels``' order).

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "waterfall.png"
      >>> waterfall([0.1, -0.05], ["age", "sex"], path, base=0.4).exists()
      True
    """
    path = _check_path(path)
    steps = _array(values, "values", 1)
    names = _labels(labels, steps.shape[0], "labels")
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not math.isfinite(base):
        raise ValueError(f"base must be a finite number, got {base!r}")
    if not isinstance(sort, bool):
        raise TypeError(f"sort must be a bool, got {sort!r}")
    title, xlabel = _text(title, "title"), _text(xlabel, "xlabel")

    order = np.argsort(-np.abs(steps), kind="stable") if sort else np.arange(steps.shape[0])
    steps, names = steps[order], [names[i] for i in order]
    starts = float(base) + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    end = float(base) + float(steps.sum())
    fig = _figure(7.0, 1.6 + 0.45 * (steps.shape[0] + 2))
    ax = fig.add_subplot()
    rows = np.arange(1, steps.shape[0] + 1)
    colors = ["tab:red" if v > 0 else "tab:blue" for v in steps]
    ax.barh(rows, steps, left=starts, color=colors, edgecolor="black", linewidth=0.5)
    span = max(float(np.abs(steps).sum()), 1e-12)
    for row, start, v in zip(rows, starts, steps, strict=True):
        ax.text(
            start + v + (0.01 if v >= 0 else -0.01) * span,
            row,
            f"{v:+.4g}",
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize="small",
        )
    ax.plot([float(base), end], [0, rows[-1] + 1], "D", color="black", markersize=6)
    ax.axvline(float(base), color="gray", linestyle="--", linewidth=1)
    ax.axvline(end, color="black", linestyle=":", linewidth=1)
    ax.set_yticks(
        [0, *rows, rows[-1] + 1],
        [f"baseline f(x') = {base:.4g}", *names, f"f(x') + sum = {end:.4g}"],
    )
    ax.invert_yaxis()
    ends = np.concatenate([[float(base)], starts + steps])
    pad = 0.15 * max(float(ends.max() - ends.min()), 1e-9)
    ax.set_xlim(float(ends.min()) - pad, float(ends.max()) + pad)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def token_strip(
    tokens: Sequence[str],
    scores: Any,
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Tokens written as text, each on a background colored by its score (red < 0 < green).

    .. math::

        \\text{color}_l = \\mathrm{RdYlGn}\\Big(\\frac{1}{2} + \\frac{s_l}{2 \\max_k |s_k|}\\Big)

    above a bar per token, so the sentence reads as a heat map of its scores.

    Args:
      tokens: ``L`` token strings.
      scores: ``(L,)`` per-token scores (e.g. :func:`tfx_explain.text.token_scores`).
      path: output file, ending in ``.png``.
      title: figure title.

    Returns:
      ``Path`` of the written PNG.

    Example:
      >>> import tempfile, pathlib
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "tokens.png"
      >>> token_strip(["good", "film"], [0.8, -0.1], path).exists()
      True
    """
    path = _check_path(path)
    values = _array(scores, "scores", 1)
    names = _labels(tokens, values.shape[0], "tokens")
    title = _text(title, "title")
    peak = float(np.abs(values).max()) or 1.0
    fig = _figure(max(4.0, 0.62 * len(names) + 1.0), 2.9)
    from matplotlib import colormaps

    cmap = colormaps["RdYlGn"]
    colors = [cmap(0.5 + 0.5 * v / peak) for v in values]
    text_ax, bar_ax = fig.subplots(2, 1, height_ratios=[1, 2.2])
    text_ax.set_axis_off()
    text_ax.set_xlim(-0.5, len(names) - 0.5)
    for i, (name, color, value) in enumerate(zip(names, colors, values, strict=True)):
        text_ax.text(
            i,
            0.5,
            name,
            ha="center",
            va="center",
            color="white" if abs(value) > 0.6 * peak else "black",  # readable on dark cells
            rotation=30 if len(name) > 6 else 0,
            bbox={"facecolor": color, "edgecolor": "none", "boxstyle": "round,pad=0.3"},
        )
    positions = np.arange(len(names))
    bar_ax.bar(positions, values, color=colors, edgecolor="black", linewidth=0.5)
    bar_ax.axhline(0.0, color="black", linewidth=0.8)
    bar_ax.set_xlim(-0.5, len(names) - 0.5)
    bar_ax.set_xticks(positions, names, rotation=60, ha="right", fontsize="small")
    bar_ax.set_ylabel("score")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
