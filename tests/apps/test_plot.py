"""Every public plot function draws a Figure (into ``ax=`` if given), writes a PNG only when
given a path, refuses bad arguments by name and mutates nothing."""

import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

from tfx_explain import plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    assert len(data) > 1000  # an actual picture, not just a header


# one valid call per public function: (function, positional args, keyword args)
def _calls():
    g = torch.Generator().manual_seed(0)
    return {
        "field_bars": (
            plot.field_bars,
            (torch.rand(2, 3, generator=g), ["a", "b", "c"]),
            {"series": ["m1", "m2"], "highlight": ["b"], "title": "t"},
        ),
        "heatmap": (
            plot.heatmap,
            (torch.randn(4, 6, generator=g),),
            {"fields": {"a": [0, 1], "b": [2, 3, 4, 5]}, "title": "t"},
        ),
        "heatmaps": (
            plot.heatmaps,
            ({"before": torch.rand(3, 6, generator=g), "after": torch.randn(5, 6, generator=g)},),
            {"fields": {"a": [0, 1, 2], "b": [3, 4, 5]}, "title": "t"},
        ),
        "image_overlays": (
            plot.image_overlays,
            (torch.rand(2, 8, 8, generator=g), {"m": torch.randn(2, 8, 8, generator=g)}),
            {"row_labels": ["x", "y"], "title": "t"},
        ),
        "expected_vs_estimated": (
            plot.expected_vs_estimated,
            (np.array([0.0, 1.0, 2.0]), torch.tensor([0.1, 0.9, 2.2])),
            {"categories": ["p", "p", "q"], "title": "t"},
        ),
        "token_strip": (
            plot.token_strip,
            (
                ["[CLS]", "a", "wonderful", "film", "[SEP]"],
                torch.tensor([0.0, 0.1, 0.7, -0.2, 0.0]),
            ),
            {"title": "t"},
        ),
        "waterfall": (
            plot.waterfall,
            (torch.tensor([0.3, -0.1, 0.05]), ["a", "b", "c"]),
            {"base": 0.5, "title": "t"},
        ),
    }


def _call(name, path, **changes):
    fn, args, kwargs = _calls()[name]
    n_data = len(args)
    args = list(args)
    for key in list(changes):
        if isinstance(key, str) and key.startswith("arg"):
            args[int(key[3:])] = changes.pop(key)
    return fn(*args[:n_data], path, **{**kwargs, **changes})


def test_every_public_function_is_covered():
    assert set(plot.__all__) == set(_calls())


@pytest.mark.parametrize("name", sorted(_calls()))
def test_writes_a_png_and_returns_the_figure(name, tmp_path):
    from matplotlib.figure import Figure

    path = tmp_path / "sub" / f"{name}.png"  # parent folders are created
    result = _call(name, path)
    assert isinstance(result, Figure)
    _is_png(path)


@pytest.mark.parametrize("name", sorted(_calls()))
def test_accepts_a_str_path(name, tmp_path):
    _call(name, str(tmp_path / f"{name}.png"))
    _is_png(tmp_path / f"{name}.png")


@pytest.mark.parametrize("name", sorted(_calls()))
def test_inputs_are_not_mutated(name, tmp_path):
    fn, args, kwargs = _calls()[name]

    def snapshot(value):
        if isinstance(value, torch.Tensor):
            return ("tensor", value.clone(), value.requires_grad)
        if isinstance(value, np.ndarray):
            return ("array", value.copy())
        if isinstance(value, dict):
            return ("dict", {k: snapshot(v) for k, v in value.items()})
        if isinstance(value, list):
            return ("list", list(value))
        return ("other", value)

    def same(a, b):
        assert a[0] == b[0]
        if a[0] == "tensor":
            assert torch.equal(a[1], b[1]) and a[2] == b[2]
        elif a[0] == "array":
            np.testing.assert_array_equal(a[1], b[1])
        elif a[0] == "dict":
            assert a[1].keys() == b[1].keys()
            for k in a[1]:
                same(a[1][k], b[1][k])
        else:
            assert a[1] == b[1]

    before = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
    fn(*args, tmp_path / "x.png", **kwargs)
    after = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
    for a, b in zip(before, after, strict=True):
        same(a, b)


def test_a_tensor_that_requires_grad_is_plotted_and_left_alone(tmp_path):
    values = torch.rand(3, requires_grad=True)
    plot.field_bars(values, ["a", "b", "c"], tmp_path / "g.png")
    assert values.requires_grad and values.grad is None


@pytest.mark.parametrize("name", sorted(_calls()))
@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        (3, TypeError, r"path must be a str or os.PathLike \(or None\), got int: 3"),
        ("figure.jpg", ValueError, "path must end in .png"),
    ],
)
def test_bad_path(name, path, error, words, tmp_path):
    with pytest.raises(error, match=words):
        _call(name, path if isinstance(path, int) else tmp_path / path)


@pytest.mark.parametrize("name", sorted(_calls()))
def test_bad_title(name, tmp_path):
    with pytest.raises(TypeError, match=r"title must be a str or None, got 5"):
        _call(name, tmp_path / "x.png", title=5)


BAD = [
    # field_bars
    ("field_bars", {"arg0": torch.rand(2, 2, 2)}, ValueError, r"values must have 1 or 2 dims"),
    ("field_bars", {"arg0": [1.0, float("nan"), 2.0]}, ValueError, r"values must be finite"),
    ("field_bars", {"arg0": ["a", "b", "c"]}, TypeError, r"values must be a tensor or array"),
    ("field_bars", {"arg0": torch.zeros(2, 0)}, ValueError, r"values must not be empty"),
    ("field_bars", {"arg1": "abc"}, TypeError, r"labels must be a sequence of 3 strings"),
    ("field_bars", {"arg1": ["a", "b"]}, ValueError, r"labels must have 3 entries, got 2"),
    ("field_bars", {"series": None}, ValueError, r"series must name the 2 rows"),
    ("field_bars", {"series": ["m1"]}, ValueError, r"series must have 2 entries"),
    ("field_bars", {"highlight": "b"}, TypeError, r"highlight must be a sequence"),
    ("field_bars", {"highlight": ["z"]}, ValueError, r"highlight names fields .*'z'"),
    ("field_bars", {"xlabel": 1}, TypeError, r"xlabel must be a str or None, got 1"),
    # heatmap
    ("heatmap", {"arg0": torch.rand(6)}, ValueError, r"values must have 2 dims"),
    ("heatmap", {"fields": [0, 1]}, TypeError, r"fields must be a mapping"),
    ("heatmap", {"fields": {"a": [0, 2]}}, ValueError, r"fields\['a'\] must be a run"),
    ("heatmap", {"fields": {"a": [5, 6]}}, ValueError, r"fields\['a'\] must lie in \[0, 6\)"),
    ("heatmap", {"xlabel": 1}, TypeError, r"xlabel must be a str or None, got 1"),
    ("heatmap", {"ylabel": 2}, TypeError, r"ylabel must be a str or None, got 2"),
    ("heatmap", {"colorbar_label": 3}, TypeError, r"colorbar_label must be a str or None, got 3"),
    # heatmaps
    ("heatmaps", {"arg0": {}}, TypeError, r"panels must be a non-empty mapping"),
    ("heatmaps", {"arg0": torch.rand(3, 6)}, TypeError, r"panels must be a non-empty mapping"),
    (
        "heatmaps",
        {"arg0": {"a": torch.rand(3, 6), "b": torch.rand(3, 5)}},
        ValueError,
        r"panels\['b'\] must have 6 columns",
    ),
    ("heatmaps", {"arg0": {"a": torch.rand(6)}}, ValueError, r"panels\['a'\] must have 2 dims"),
    ("heatmaps", {"fields": {"a": [6]}}, ValueError, r"fields\['a'\] must lie in \[0, 6\)"),
    ("heatmaps", {"ylabel": 2}, TypeError, r"ylabel must be a str or None, got 2"),
    ("heatmaps", {"colorbar_label": 3}, TypeError, r"colorbar_label must be a str or None"),
    # image_overlays
    ("image_overlays", {"arg0": torch.rand(8, 8)}, ValueError, r"images must have 3 dims"),
    ("image_overlays", {"arg1": {}}, TypeError, r"maps must be a non-empty mapping"),
    ("image_overlays", {"arg1": torch.rand(2, 8, 8)}, TypeError, r"maps must be a non-empty"),
    (
        "image_overlays",
        {"arg1": {"m": torch.rand(2, 4, 4)}},
        ValueError,
        r"maps\['m'\] must have the images' shape",
    ),
    (
        "image_overlays",
        {"arg1": {"m": torch.full((2, 8, 8), float("inf"))}},
        ValueError,
        r"maps\['m'\] must be finite",
    ),
    ("image_overlays", {"row_labels": ["x"]}, ValueError, r"row_labels must have 2 entries"),
    # expected_vs_estimated
    ("expected_vs_estimated", {"arg0": [[0.0]]}, ValueError, r"expected must have 1 dims"),
    ("expected_vs_estimated", {"arg1": [0.0, 1.0]}, ValueError, r"estimated must have expected"),
    ("expected_vs_estimated", {"categories": ["p"]}, ValueError, r"categories must have 3"),
    ("expected_vs_estimated", {"ylabel": 0}, TypeError, r"ylabel must be a str or None, got 0"),
    # token_strip
    ("token_strip", {"arg1": [[0.1]]}, ValueError, r"scores must have 1 dims"),
    ("token_strip", {"arg1": [0.1, float("nan"), 0, 0, 0]}, ValueError, r"scores must be finite"),
    ("token_strip", {"arg0": ["a", "b"]}, ValueError, r"tokens must have 5 entries, got 2"),
    ("token_strip", {"arg0": "abcde"}, TypeError, r"tokens must be a sequence of 5 strings"),
    # waterfall
    ("waterfall", {"arg0": [[0.1]]}, ValueError, r"values must have 1 dims"),
    ("waterfall", {"arg1": ["a"]}, ValueError, r"labels must have 3 entries, got 1"),
    ("waterfall", {"base": float("nan")}, ValueError, r"base must be a finite number, got nan"),
    ("waterfall", {"base": "0.5"}, ValueError, r"base must be a finite number, got '0.5'"),
    ("waterfall", {"base": True}, ValueError, r"base must be a finite number, got True"),
    ("waterfall", {"sort": "yes"}, TypeError, r"sort must be a bool, got 'yes'"),
    ("waterfall", {"fmt": 3}, TypeError, r"fmt must be a format template .* got 3"),
    ("waterfall", {"fmt": "{x}"}, ValueError, r"fmt must format one number, .* got '\{x\}'"),
    ("token_strip", {"caption": 1}, TypeError, r"caption must be a str or None, got 1"),
    ("token_strip", {"bars": 1}, TypeError, r"bars must be a bool, got 1"),
    *[
        (name, {"ax": "left"}, TypeError, r"ax must be a matplotlib Axes or None, got str")
        for name in sorted(_calls())
    ],
]


@pytest.mark.parametrize(("name", "changes", "error", "words"), BAD)
def test_bad_arguments_raise_a_named_error(name, changes, error, words, tmp_path):
    path = tmp_path / "bad.png"
    with pytest.raises(error, match=words):
        _call(name, path, **changes)
    assert not path.exists()  # validated before drawing


def test_importing_tfx_explain_and_plot_does_not_import_matplotlib():
    code = (
        "import sys, tfx_explain, tfx_explain.plot; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(_calls()))
def test_draws_on_an_agg_canvas_without_pyplot(name, tmp_path, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvases = []
    save = plot._save

    def spy(fig, path):
        canvases.append(type(fig.canvas))
        return save(fig, path)

    monkeypatch.setattr(plot, "_save", spy)
    _call(name, tmp_path / "agg.png")
    assert canvases == [FigureCanvasAgg]
    if "matplotlib.pyplot" in sys.modules:  # another test may have imported it
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


# ---- figures, ax= and the pictures' details (issue 18) ----


@pytest.mark.parametrize("name", sorted(_calls()))
def test_without_a_path_returns_a_figure_and_writes_nothing(name, tmp_path, monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    monkeypatch.chdir(tmp_path)
    fn, args, kwargs = _calls()[name]
    fig = fn(*args, **kwargs)
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    assert fig.axes and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(_calls()))
def test_draws_into_the_given_axes(name, tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6))
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1])
    fn, args, kwargs = _calls()[name]
    result = fn(*args, tmp_path / "in_ax.png", ax=right, **kwargs)
    assert result is fig  # drawn on the caller's figure, the whole figure written
    _is_png(tmp_path / "in_ax.png")
    assert left in fig.axes and len(left.lines) == 1  # the other panel is left alone
    drawn = [ax for ax in fig.axes if ax is not left]
    assert drawn and any(ax.has_data() or ax.texts for ax in drawn)
    for ax in drawn:  # everything drawn lies in the right half, where ``right`` was
        assert ax.get_position().x0 >= 0.45


def test_axes_without_a_subplot_place_cannot_hold_panels():
    from matplotlib.figure import Figure

    free = Figure().add_axes((0.1, 0.1, 0.8, 0.8))
    with pytest.raises(ValueError, match=r"ax must be a subplot .* 2x1 panels"):
        plot.token_strip(["a"], [0.5], ax=free)


def _drawn_texts(fig):
    fig.canvas.draw()
    texts = [t for ax in fig.axes for t in ax.texts]
    for ax in fig.axes:  # the tick labels inside the view (the others are not drawn)
        low, high = sorted(ax.get_xlim())
        texts += [t for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
        texts += ax.get_yticklabels()
    texts += [t for ax in fig.axes for t in (ax._left_title, ax.title, ax._right_title)]
    texts += [fig._suptitle] if fig._suptitle else []
    return [t for t in texts if t.get_text()]


def test_waterfall_writes_dollars_in_shap_colors_and_keeps_its_title_inside():
    from matplotlib.colors import to_hex

    values = torch.tensor([-10_743.25, 2_105.5, 815.0, -120.4])
    title = "Predicted income of a 34-year-old male moderate from Oklahoma, field by field"
    fig = plot.waterfall(
        values, ["age", "sex", "state", "politics"], base=52_230.6, fmt="${:,.0f}", title=title
    )
    texts = _drawn_texts(fig)
    words = [t.get_text() for t in texts]
    assert "-$10,743" in words and "+$2,106" in words and "+$815" in words and "-$120" in words
    assert "baseline f(x') = $52,231" in words
    assert not any("e+" in w or "e-0" in w for w in words)  # no scientific notation anywhere
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert ticks and all(t.lstrip("-").startswith("$") for t in ticks)
    bars = fig.axes[0].patches[:4]  # sorted by magnitude: age, sex, state, politics
    assert [to_hex(b.get_facecolor()) for b in bars] == ["#008bfb", "#ff0051", "#ff0051", "#008bfb"]
    box = fig.bbox
    for t in texts:  # title and labels lie inside the figure
        extent = t.get_window_extent()
        assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, t.get_text()


def test_waterfall_default_labels_share_one_precision():
    fig = plot.waterfall([0.3, -0.1, 0.05], ["a", "b", "c"], base=0.5)
    words = [t.get_text() for t in fig.axes[0].texts]
    assert words == ["+0.300", "-0.100", "+0.050"]


def test_token_strip_shows_the_caption_scores_and_long_words_level():
    tokens = ["[CLS]", "the", "extraordinarily", "warm", "mat", "[SEP]"]
    scores = [0.0, 0.066, 0.273, -0.0058, 0.13, 0.0]
    fig = plot.token_strip(tokens, scores, caption="Sentence B: A kitten is resting on a rug.")
    words = [t.get_text() for t in _drawn_texts(fig)]
    assert any("Sentence B: A kitten" in w for w in words)
    assert "-0.006" in words and "+0.273" in words  # every score is written, not only shown
    assert all(t.get_rotation() == 0 for ax in fig.axes for t in ax.texts + ax.get_xticklabels())
    boxes = {t.get_text(): t.get_bbox_patch() for t in fig.axes[0].texts if t.get_bbox_patch()}
    from matplotlib import colormaps

    middle = np.array(colormaps["RdYlGn"](0.5)[:3])
    warm = boxes["warm"]
    assert np.abs(np.array(warm.get_facecolor()[:3]) - middle).max() > 0.1  # visibly not neutral
    red, green = np.array(warm.get_edgecolor()[:3]), np.array(boxes["mat"].get_edgecolor()[:3])
    assert red[0] > red[1] and green[1] > green[0]  # the edge carries the sign
    # left to right, each token's room in proportion to its length: level words never overlap
    extents = [
        t.get_bbox_patch().get_window_extent() for t in fig.axes[0].texts if t.get_text() in tokens
    ]
    assert all(a.x1 <= b.x0 for a, b in zip(extents[:-1], extents[1:], strict=True))


def test_token_strips_stack_in_one_figure_without_bars():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    rows = fig.subplots(3, 1)
    for ax, score in zip(rows, [0.5, -0.5, 0.1], strict=True):
        assert plot.token_strip(["good", "film"], [score, 0.0], ax=ax, bars=False) is fig
    assert len(fig.axes) == 3 and not any(ax.patches for ax in fig.axes)
