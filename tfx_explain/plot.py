"""Pictures of attributions on matplotlib figures (optional; needs matplotlib).

Every function takes tensors or arrays plus labels and returns the matplotlib
``Figure`` it drew on. Without ``ax`` it draws a new figure on matplotlib's Agg
canvas (no window, no pyplot state); with ``ax=`` it draws into that Axes (a
function with several panels splits the Axes' place in its figure). It writes a
PNG only when given a ``path`` ending in ``.png`` (the whole figure, parent
folders created). In a notebook the returned figure shows itself. matplotlib is
imported inside the functions only, so ``import tfx_explain`` never imports it;
install it with ``pip install "tfx_explain[plot]"``.

Example:
  >>> import tempfile, pathlib, torch
  >>> from tfx_explain import plot
  >>> with tempfile.TemporaryDirectory() as folder:
  ...     path = pathlib.Path(folder) / "fields.png"
  ...     fig = plot.field_bars(torch.tensor([0.7, 0.2, 0.1]), ["age", "sex", "state"], path)
  ...     type(fig).__name__, path.exists()
  ('Figure', True)
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
_RAISES, _LOWERS = "#ff0051", "#008bfb"  # SHAP's red (raises the output) and blue (lowers it)


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


def _check_ax(ax: Any) -> Any:
    if ax is None:
        return None
    try:
        from matplotlib.axes import Axes
    except ImportError as err:
        raise ImportError(_INSTALL) from err
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}: {ax!r}")
    return ax


def _axes(ax: Any, width: float, height: float) -> tuple[Any, Any]:
    """``(figure, axes)``: a new Agg figure of ``width x height`` inches, or ``ax`` itself."""
    if ax is None:
        fig = _figure(width, height)
        return fig, fig.add_subplot()
    return ax.figure, ax


def _grid(ax: Any, width: float, height: float, rows: int, cols: int, **ratios) -> tuple:
    """``(figure, (rows, cols) axes)``: new subplots, or ``ax``'s place split into a grid."""
    if ax is None:
        fig = _figure(width, height)
        return fig, fig.subplots(rows, cols, squeeze=False, **ratios)
    spec = ax.get_subplotspec()
    if spec is None:
        raise ValueError(
            f"ax must be a subplot (from Figure.add_subplot or subplots) so that its place "
            f"can hold {rows}x{cols} panels, got {ax!r}"
        )
    fig, grid = ax.figure, spec.subgridspec(rows, cols, **ratios)
    ax.remove()
    axes = np.empty((rows, cols), dtype=object)
    for r in range(rows):
        for c in range(cols):
            axes[r, c] = fig.add_subplot(grid[r, c])
    return fig, axes


def _wrap(text: str, fig: Any, share: float = 1.0) -> str:
    """``text`` wrapped to the width of ``share`` of ``fig`` (about 10 title characters an inch)."""
    import textwrap

    width = max(24, int(9.5 * share * fig.get_figwidth()))
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def _finish(fig: Any, path: Path | None) -> Any:
    if path is not None:
        _save(fig, path)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _check_path(path: Any) -> Path | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a str or os.PathLike (or None), got {type(path).__name__}: {path!r}"
        )
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
    path: str | os.PathLike | None = None,
    *,
    ax: Any = None,
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
      path: PNG file to write, ending in ``.png`` (parent folders are created), or None.
      ax: matplotlib Axes to draw into (default: a new figure).
      series: ``M`` series names for a 2-d ``values`` (legend).
      highlight: field names to emphasize (bold, marked ``*``), e.g. the known truth.
      title: figure title.
      xlabel: value axis label.

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> fig = field_bars([[0.6, 0.4], [0.5, 0.5]], ["a", "b"], series=["x", "y"])
      >>> [text.get_text() for text in fig.axes[0].get_yticklabels()]
      ['a', 'b']

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
    ax = _check_ax(ax)

    fig, ax = _axes(ax, 6.5, 0.9 + 0.32 * n_fields * max(1.0, 0.6 * n_series))
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
        ax.set_title(_wrap(title, fig, ax.get_position().width))
    if series is not None:
        ax.legend(loc="best", fontsize="small")
    return _finish(fig, path)


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
    path: str | os.PathLike | None = None,
    *,
    ax: Any = None,
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
      path: PNG file to write, ending in ``.png``, or None.
      ax: matplotlib Axes to draw into (default: a new figure).
      fields: optional mapping field name -> consecutive column indices.
      title: figure title.
      xlabel: column axis label.
      ylabel: row axis label.
      colorbar_label: what the color means.

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> import torch
      >>> fig = heatmap(torch.rand(5, 6), fields={"a": [0, 1], "b": [2, 3, 4, 5]})
      >>> fig.axes[0].get_images()[0].get_array().shape
      (5, 6)
    """
    path = _check_path(path)
    array = _array(values, "values", 2)
    spans = [] if fields is None else _field_spans(fields, array.shape[1])
    title, xlabel, ylabel = _text(title, "title"), _text(xlabel, "xlabel"), _text(ylabel, "ylabel")
    colorbar_label = _text(colorbar_label, "colorbar_label")
    ax = _check_ax(ax)

    width, height = min(14.0, 3.0 + 0.2 * array.shape[1]), min(9.0, 2.2 + 0.1 * array.shape[0])
    fig, ax = _axes(ax, width, height)
    image = _draw_heatmap(ax, array, spans, _color_scale([array]), xlabel, ylabel, names=True)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    if title:
        ax.set_title(_wrap(title, fig, ax.get_position().width))
    return _finish(fig, path)


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
    path: str | os.PathLike | None = None,
    *,
    ax: Any = None,
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
      path: PNG file to write, ending in ``.png``, or None.
      ax: matplotlib Axes whose place holds the stacked panels (default: a new figure).
      fields: optional mapping field name -> consecutive column indices (named above
        the first panel, boundaries drawn on every panel).
      title: figure title.
      xlabel: column axis label.
      ylabel: row axis label.
      colorbar_label: what the color means.

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> import torch
      >>> fig = heatmaps({"before": torch.rand(4, 6), "after": torch.rand(4, 6)})
      >>> len(fig.axes)  # two panels and their shared colorbar
      3
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
    ax = _check_ax(ax)

    rows = [min(40, a.shape[0]) for a in arrays.values()]  # panel heights follow their rows
    size = min(14.0, 3.0 + 0.2 * width), min(14.0, 1.8 + 1.0 * len(arrays) + 0.08 * sum(rows))
    fig, axes = _grid(ax, *size, len(arrays), 1, height_ratios=rows)
    axes = axes[:, 0]
    scale = _color_scale(list(arrays.values()))
    for p, (ax, (name, array)) in enumerate(zip(axes, arrays.items(), strict=True)):
        last = p == len(arrays) - 1
        image = _draw_heatmap(
            ax, array, spans, scale, xlabel if last else "", f"{name}\n{ylabel}", names=p == 0
        )
    fig.colorbar(image, ax=list(axes), label=colorbar_label, shrink=0.9)
    if title:
        axes[0].set_title(_wrap(title, fig, axes[0].get_position().width))
    return _finish(fig, path)


def image_overlays(
    images: Any,
    maps: Mapping[str, Any],
    path: str | os.PathLike | None = None,
    *,
    ax: Any = None,
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
      path: PNG file to write, ending in ``.png``, or None.
      ax: matplotlib Axes whose place holds the grid (default: a new figure).
      row_labels: ``N`` row names (e.g. ``"label 3"``).
      title: figure title.

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> import torch
      >>> x = torch.rand(2, 8, 8)
      >>> len(image_overlays(x, {"x itself": x}).axes)  # 2 x 2 panels and a colorbar
      5
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
    ax = _check_ax(ax)

    n_cols = 1 + len(arrays)
    fig, axes = _grid(ax, 1.0 + 1.9 * n_cols, 0.8 + 1.8 * n_images, n_images, n_cols)
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
    fig.colorbar(
        scale, ax=list(axes[:, 1:].flat), label="attribution / max |attribution|", shrink=0.8
    )
    if title:
        if ax is None:
            fig.suptitle(_wrap(title, fig))
        else:
            axes[0, 0].set_title(_wrap(title, fig), loc="left", fontsize="medium")
    return _finish(fig, path)


def expected_vs_estimated(
    expected: Any,
    estimated: Any,
    path: str | os.PathLike | None = None,
    *,
    ax: Any = None,
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
      path: PNG file to write, ending in ``.png``, or None.
      ax: matplotlib Axes to draw into (default: a new figure).
      categories: ``D`` category names (one color and legend entry each).
      title: figure title.
      xlabel: horizontal axis label.
      ylabel: vertical axis label.

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> fig = expected_vs_estimated([0.0, 1.0, 2.0], [0.1, 0.9, 2.1])
      >>> fig.axes[0].texts[0].get_text()
      'r = 0.9934'
    """
    path = _check_path(path)
    e = _array(expected, "expected", 1)
    s = _array(estimated, "estimated", 1)
    if e.shape != s.shape:
        raise ValueError(f"estimated must have expected's shape {e.shape}, got {s.shape}")
    cats = None if categories is None else _labels(categories, e.shape[0], "categories")
    title, xlabel, ylabel = _text(title, "title"), _text(xlabel, "xlabel"), _text(ylabel, "ylabel")
    ax = _check_ax(ax)

    fig, ax = _axes(ax, 5.5, 5.0)
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
        ax.set_title(_wrap(title, fig, ax.get_position().width))
    return _finish(fig, path)


def _number_format(fmt: Any, values: np.ndarray) -> Any:
    """``v -> str`` for magnitudes: the template ``fmt`` (e.g. ``"${:,.0f}"``) or, for None,
    one fixed number of decimals for every value (3 significant digits of the largest)."""
    if fmt is None:
        peak = float(np.abs(values).max())
        decimals = 0 if peak == 0 else min(6, max(0, 2 - math.floor(math.log10(peak))))
        fmt = f"{{:,.{decimals}f}}"
    elif not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format template such as '${{:,.0f}}' or None, got {fmt!r}")
    try:
        fmt.format(1.0)
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(f"fmt must format one number, such as '${{:,.0f}}', got {fmt!r}") from err

    def show(v: float, sign: bool = False) -> str:
        text = fmt.format(abs(v))
        if text == fmt.format(0.0):  # no sign on a value that rounds to zero
            return text
        return ("-" if v < 0 else "+" if sign else "") + text

    return show


def waterfall(
    values: Any,
    labels: Sequence[str],
    path: str | os.PathLike | None = None,
    *,
    base: float,
    ax: Any = None,
    title: str | None = None,
    xlabel: str = "model output",
    fmt: str | None = None,
    sort: bool = True,
) -> Any:
    """Waterfall from the baseline output to the explained output, one step per field.

    .. math::

        f(x) = f(x') + \\sum_g \\phi_g

    Each bar starts where the previous one ended; the last ends at
    ``base + sum(values)``, which equals the prediction when the values are
    efficient (exact Shapley values). Colors follow SHAP's waterfall: red for a
    field that raises the output, blue for one that lowers it. Every number
    (labels and axis) is written with one format.

    Args:
      values: ``(G,)`` contribution of each field (e.g. Shapley values per group).
      labels: ``G`` field names.
      path: PNG file to write, ending in ``.png``, or None.
      base: the baseline output :math:`f(x')`.
      ax: matplotlib Axes to draw into (default: a new figure).
      title: figure title (wrapped to the figure's width).
      xlabel: output axis label.
      fmt: template for one number's magnitude, e.g. ``"${:,.0f}"`` for dollars
        (signs are added); default: one fixed number of decimals for all.
      sort: order the steps by decreasing magnitude (else keep ``labels``' order).

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> fig = waterfall([12_000.0, -3_500.0], ["age", "sex"], base=40_000.0, fmt="${:,.0f}")
      >>> [text.get_text() for text in fig.axes[0].texts]
      ['+$12,000', '-$3,500']
    """
    path = _check_path(path)
    steps = _array(values, "values", 1)
    names = _labels(labels, steps.shape[0], "labels")
    if isinstance(base, bool) or not isinstance(base, numbers.Real) or not math.isfinite(base):
        raise ValueError(f"base must be a finite number, got {base!r}")
    if not isinstance(sort, bool):
        raise TypeError(f"sort must be a bool, got {sort!r}")
    title, xlabel = _text(title, "title"), _text(xlabel, "xlabel")
    base = float(base)
    end = base + float(steps.sum())
    show = _number_format(fmt, np.array([base, end, *steps]))
    ax = _check_ax(ax)

    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    order = np.argsort(-np.abs(steps), kind="stable") if sort else np.arange(steps.shape[0])
    steps, names = steps[order], [names[i] for i in order]
    starts = base + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    fig, ax = _axes(ax, 7.5, 1.8 + 0.45 * (steps.shape[0] + 2))
    rows = np.arange(1, steps.shape[0] + 1)
    colors = [_RAISES if v > 0 else _LOWERS for v in steps]
    ax.barh(rows, steps, left=starts, color=colors, edgecolor="black", linewidth=0.5)
    span = max(float(np.abs(steps).sum()), 1e-12)
    for row, start, v in zip(rows, starts, steps, strict=True):
        ax.text(
            start + v + (0.01 if v >= 0 else -0.01) * span,
            row,
            show(float(v), sign=True),
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize="small",
        )
    ax.plot([base, end], [0, rows[-1] + 1], "D", color="black", markersize=6)
    ax.axvline(base, color="gray", linestyle="--", linewidth=1)
    ax.axvline(end, color="black", linestyle=":", linewidth=1)
    ax.set_yticks(
        [0, *rows, rows[-1] + 1],
        [f"baseline f(x') = {show(base)}", *names, f"f(x') + sum = {show(end)}"],
    )
    ax.invert_yaxis()
    ends = np.concatenate([[base], starts + steps])
    pad = 0.2 * max(float(ends.max() - ends.min()), 1e-9)
    ax.set_xlim(float(ends.min()) - pad, float(ends.max()) + pad)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # room for long labels like $52,500
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: show(float(v))))
    ax.set_xlabel(xlabel)
    ax.legend(
        handles=[
            Patch(color=_RAISES, label="raises the output"),
            Patch(color=_LOWERS, label="lowers it"),
        ],
        loc="lower right",
        fontsize="small",
    )
    if title:
        if ax is fig.axes[0] and len(fig.axes) == 1:
            fig.suptitle(_wrap(title, fig))  # over the whole figure: long tick labels take the left
        else:
            ax.set_title(_wrap(title, fig, ax.get_position().width))
    return _finish(fig, path)


def _token_colors(values: np.ndarray) -> tuple[list, list]:
    """Face and edge colors: RdYlGn away from its pale middle, so every signed score shows."""
    from matplotlib import colormaps

    cmap = colormaps["RdYlGn"]
    peak = float(np.abs(values).max()) or 1.0
    faces, edges = [], []
    for v in values:
        if v == 0:
            faces.append(cmap(0.5))
            edges.append("lightgray")
        else:
            faces.append(cmap(0.5 + math.copysign(0.1 + 0.4 * abs(v) / peak, v)))
            edges.append(cmap(0.95 if v > 0 else 0.05))
    return faces, edges


def token_strip(
    tokens: Sequence[str],
    scores: Any,
    path: str | os.PathLike | None = None,
    *,
    ax: Any = None,
    title: str | None = None,
    caption: str | None = None,
    bars: bool = True,
) -> Any:
    """Tokens written as text on backgrounds colored by their score, each score printed below.

    .. math::

        \\text{color}_l = \\mathrm{RdYlGn}\\Big(\\frac{1}{2} + \\mathrm{sign}(s_l)
            \\Big(0.1 + 0.4 \\frac{|s_l|}{\\max_k |s_k|}\\Big)\\Big)

    green for positive, red for negative; the offset 0.1 keeps a small score off
    the colormap's pale middle, and its edge has the sign's full color, so even a
    small negative score shows. Tokens stay horizontal: each one gets a width in
    proportion to its length. With ``bars``, a bar per token sits below, on the
    same horizontal positions.

    Args:
      tokens: ``L`` token strings.
      scores: ``(L,)`` per-token scores (e.g. :func:`tfx_explain.text.token_scores`).
      path: PNG file to write, ending in ``.png``, or None.
      ax: matplotlib Axes whose place holds the strip (and the bars); default: a new figure.
      title: title over the tokens (wrapped to the width).
      caption: a second line under the title, e.g. the sentence compared with.
      bars: draw the bar chart of the scores under the tokens.

    Returns:
      The matplotlib ``Figure`` drawn on.

    Example:
      >>> fig = token_strip(["good", "film"], [0.8, -0.1], caption="compared with: great movie")
      >>> sorted(text.get_text() for text in fig.axes[0].texts)
      ['+0.800', '-0.100', 'film', 'good']
    """
    path = _check_path(path)
    values = _array(scores, "scores", 1)
    names = _labels(tokens, values.shape[0], "tokens")
    title, caption = _text(title, "title"), _text(caption, "caption")
    if not isinstance(bars, bool):
        raise TypeError(f"bars must be a bool, got {bars!r}")
    ax = _check_ax(ax)

    widths = np.array([max(len(name), 5) + 2.0 for name in names])  # in characters (score: 6)
    lefts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
    centers, total = lefts + widths / 2, float(widths.sum())
    width = min(18.0, max(4.0, 0.095 * total + 1.2))
    ratios = {"height_ratios": [1.0, 1.6]} if bars else {}
    fig, axes = _grid(ax, width, 3.2 if bars else 1.5, 2 if bars else 1, 1, **ratios)
    text_ax = axes[0, 0]
    faces, edges = _token_colors(values)
    text_ax.set_axis_off()
    text_ax.set_xlim(0.0, total)
    text_ax.set_ylim(0.0, 1.0)
    peak = float(np.abs(values).max()) or 1.0
    for name, x, face, edge, v in zip(names, centers, faces, edges, values, strict=True):
        text_ax.text(
            x,
            0.66,
            name,
            ha="center",
            va="center",
            color="white" if abs(v) > 0.6 * peak else "black",  # readable on dark cells
            bbox={"facecolor": face, "edgecolor": edge, "boxstyle": "round,pad=0.3"},
        )
        text_ax.text(x, 0.18, f"{v:+.3f}", ha="center", va="center", fontsize="x-small")
    heading = [line for line in (title, caption) if line]
    if heading:
        text_ax.set_title(_wrap("\n".join(heading), fig), loc="left", fontsize="medium")
    if bars:
        bar_ax = axes[1, 0]
        bar_ax.bar(centers, values, width=0.8 * widths, color=faces, edgecolor=edges)
        bar_ax.axhline(0.0, color="black", linewidth=0.8)
        bar_ax.set_xlim(0.0, total)
        bar_ax.set_xticks(centers, names, fontsize="small")
        bar_ax.set_ylabel("score")
    return _finish(fig, path)
