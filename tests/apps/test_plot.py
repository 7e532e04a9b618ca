"""Every public plot function writes a PNG, refuses bad arguments by name, mutates nothing."""

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
def test_writes_a_png_and_returns_its_path(name, tmp_path):
    path = tmp_path / "sub" / f"{name}.png"  # parent folders are created
    result = _call(name, path)
    assert result == path
    _is_png(path)


@pytest.mark.parametrize("name", sorted(_calls()))
def test_accepts_a_str_path(name, tmp_path):
    result = _call(name, str(tmp_path / f"{name}.png"))
    _is_png(result)


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
        (3, TypeError, "path must be a str or os.PathLike"),
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
