"""Chunked evaluation: outputs are checked chunk by chunk and assembled once."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils import _pytree as pytree

import tfx_explain as tx
from tfx_explain._engine.rows import chunked
from tfx_explain._engine.targets import select_batch

W = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)


def _blows_up_on_the_last_sample(x):
    # finite everywhere except where x[..., 0] > 0.9, which only the last sample reaches
    return torch.where(x[..., 0] > 0.9, torch.full_like(x[..., 0], float("nan")), x @ W)


@pytest.mark.parametrize(
    ("method", "what"),
    [
        (tx.integrated_gradients, "on the path from baseline to x"),
        (tx.input_gradients, "at x"),
        (functools.partial(tx.occlusion, window=1), "for a perturbed input"),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 2])
def test_a_non_finite_output_in_any_chunk_is_refused(method, what, chunk_size):
    x = torch.tensor([[0.1, 0.2, 0.3], [0.2, 0.1, 0.0], [0.95, 0.5, 0.5]], dtype=torch.float64)
    with pytest.raises(ValueError, match=f"non-finite value \\(nan\\) {what}"):
        method(_blows_up_on_the_last_sample, x, chunk_size=chunk_size)


def test_chunks_are_written_into_one_result():
    calls = []

    def fun(a, b):
        calls.append(a.shape[0])
        return {"sum": a + b, "a": a * 2}, (a * b).sum(-1)

    a = torch.arange(14.0).reshape(7, 2)
    b = torch.ones(7, 2)
    out = chunked(fun, 3, a, b, what="here")
    assert calls == [3, 3, 1]
    torch.testing.assert_close(out["sum"], a + b, rtol=0, atol=0)
    torch.testing.assert_close(out["a"], a * 2, rtol=0, atol=0)
    assert a.equal(torch.arange(14.0).reshape(7, 2))  # inputs untouched


def test_chunked_keeps_autograd_when_the_result_needs_it():
    a = torch.rand(5, 2, requires_grad=True)
    out = chunked(lambda a: (a.sin(), a.sum(-1)), 2, a, what="here")
    out.sum().backward()
    torch.testing.assert_close(a.grad, a.detach().cos())


# ---- the engine is the only caller of fn, once per chunk, on exactly the rows needed ---------

B, N, S = 3, 4, 5


def _counting(fn):
    """``fn`` that records the number of rows of every call."""
    calls = []

    def counted(x):
        calls.append(x.shape[0])
        return fn(x)

    return counted, calls


def _two_outputs(x):
    return torch.stack([x @ W, -(x @ W)], dim=1)  # (B, 2)


_X = torch.tensor([[0.1, 0.2, 0.3], [0.2, 0.1, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64)
_REFS = torch.zeros(2, 3, dtype=torch.float64)
_G = torch.Generator


@pytest.mark.parametrize(
    ("method", "rows"),
    [
        (lambda fn, **kw: tx.input_gradients(fn, _X, **kw), B),
        (lambda fn, **kw: tx.integrated_gradients(fn, _X, steps=S, **kw), B * S),
        (lambda fn, **kw: tx.integrated_hessians(fn, _X, steps=S, **kw), B * S * S),
        (lambda fn, **kw: tx.occlusion(fn, _X, window=1, **kw), B * 4),
        (lambda fn, **kw: tx.completeness_gap(fn, _X, torch.zeros_like(_X), **kw), 2 * B),
        (
            lambda fn, **kw: tx.expected_gradients(
                fn, _X, baselines=_REFS, n_samples=N, generator=_G().manual_seed(0), **kw
            ),
            B * N,
        ),
        (
            lambda fn, **kw: tx.smoothgrad(tx.input_gradients, n_samples=N, generator=_G())(
                fn, _X, **kw
            ),
            B * N,
        ),
        (
            lambda fn, **kw: tx.smoothgrad(tx.integrated_gradients, n_samples=N, generator=_G())(
                fn, _X, steps=S, **kw
            ),
            B * N * S,
        ),
    ],
    ids=["input_gradients", "ig", "ih", "occlusion", "gap", "eg", "smoothgrad", "smoothgrad_ig"],
)
@pytest.mark.parametrize("chunk_size", [None, 1])
def test_fn_is_called_once_per_chunk_on_exactly_the_rows_needed(method, rows, chunk_size):
    # vectorize="batch" hands fn the rows themselves: no first-row probe of the target,
    # no extra forward pass to check values, and chunks of chunk_size samples' rows
    fn, calls = _counting(_two_outputs)
    method(fn, target=1, vectorize="batch", chunk_size=chunk_size)
    assert calls == ([rows] if chunk_size is None else [rows // B] * B)


def test_adaptive_integrated_gradients_calls_fn_only_through_the_engine():
    # one call for f(x) - f(baseline) (2B rows), then one per round of doubling steps
    fn, calls = _counting(lambda x: torch.sin(3.0 * x) @ W)
    x = torch.tensor([[0.01, 0.02, 0.0], [2.0, 3.0, 1.0]], dtype=torch.float64)
    result = tx.adaptive_integrated_gradients(fn, x, tol=1e-9, start_steps=4, vectorize="batch")
    assert result.steps[0] == 4 and result.steps[1] > 4
    rounds = [4]
    while rounds[-1] < int(result.steps.max()):
        rounds.append(2 * rounds[-1])
    # the first round runs both samples, later ones only the second
    assert calls == [2 * 2, 2 * rounds[0], *rounds[1:]]


@pytest.mark.parametrize("vectorize", ["vmap", "batch"])
def test_target_range_is_checked_on_the_rows_fn_returns(vectorize):
    fn, calls = _counting(lambda x: torch.stack([x @ W, -(x @ W)], dim=1))  # (B, 2)
    with pytest.raises(ValueError, match=r"target must be in \[0, 2\), got a value 2"):
        tx.integrated_gradients(fn, _X, target=torch.tensor([0, 2, 1]), vectorize=vectorize)
    with pytest.raises(ValueError, match="target is required: fn returns 2 outputs"):
        tx.occlusion(fn, _X, window=1, vectorize=vectorize)
    with pytest.raises(ValueError, match="target must be None"):
        tx.input_gradients(lambda x: x @ W, _X, target=0, vectorize=vectorize)
    assert len(calls) == 2  # once per method call: no separate probe


def test_value_checks_skip_what_has_no_values():
    from tfx_explain._engine.checks import check_values, has_values

    nan = torch.tensor([float("nan")])
    with pytest.raises(ValueError, match="non-finite"):
        check_values(nan, "here")
    assert not has_values(torch.empty(2, device="meta"))
    check_values(torch.empty(2, device="meta"), "here")  # skipped, not raised
    with torch._subclasses.FakeTensorMode() as mode:
        fake = mode.from_tensor(nan)
    assert not has_values(fake)
    # under vmap the values are batched: skipped; under grad they are readable: checked
    torch.func.vmap(lambda v: check_values(v, "here") or v)(nan[:, None])
    with pytest.raises(ValueError, match="non-finite"):
        torch.func.grad(lambda v: check_values(v, "here") or v.sum())(nan)


def test_a_method_runs_on_meta_tensors_with_its_static_checks_only():
    out = tx.input_gradients(lambda z: z.sum(-1), torch.empty(2, 3, device="meta"))
    assert out.is_meta and out.shape == (2, 3)
    with pytest.raises(ValueError, match="fn must return shape"):
        tx.input_gradients(lambda z: z.sum(), torch.empty(2, 3, device="meta"))


class _LargestTensor(torch.overrides.TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in torch.utils._pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.numel = max(self.numel, leaf.numel())
        return out


def test_expected_gradients_gathers_references_one_chunk_at_a_time():
    # B samples x N draws x F features would be 32 x 16 x 4 = 2048 elements at once;
    # with chunk_size=1 only the (B, N) draws and one sample's (N, F) rows exist
    batch, n_draws, features = 32, 16, 4
    x = torch.rand(batch, features, generator=_G().manual_seed(0), dtype=torch.float64)
    refs = torch.rand(10, features, generator=_G().manual_seed(1), dtype=torch.float64)
    watch = _LargestTensor()
    with watch:
        tx.expected_gradients(
            lambda z: z.square().sum(-1),
            x,
            baselines=refs,
            n_samples=n_draws,
            generator=_G().manual_seed(2),
            chunk_size=1,
        )
    assert watch.numel <= batch * n_draws < batch * n_draws * features


# ---- value-only rows record a graph only where a gradient can flow back through them -----

VALUE_METHODS = {
    "occlusion": functools.partial(tx.occlusion, window=1),
    "feature_ablation": functools.partial(tx.feature_ablation, groups={"a": [0], "bc": [1, 2]}),
    "shapley_values": tx.shapley_values,
}


@pytest.mark.parametrize("name", VALUE_METHODS)
def test_value_rows_run_without_a_graph_unless_one_can_be_used(name):
    method, grad_modes = VALUE_METHODS[name], []
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1).double().eval()  # parameters require grad

    def fn(x):
        grad_modes.append(torch.is_grad_enabled())
        return net(x)[:, 0]

    x = torch.rand(4, 3, dtype=torch.float64)
    plain = method(fn, x)
    assert grad_modes and not any(grad_modes) and not plain.requires_grad
    grad_modes.clear()
    leaf = x.clone().requires_grad_()
    tracked = method(fn, leaf)  # x requires grad: the graph reaches x and the parameters
    assert all(grad_modes) and tracked.requires_grad
    torch.testing.assert_close(tracked.detach(), plain, rtol=0, atol=0)
    (dx,) = torch.autograd.grad(tracked.sum(), leaf)
    w = net.weight.detach()  # a linear fn: occlusion (window 1) and Shapley give w * x
    exact = name != "feature_ablation"  # whose group "bc" shares its drop between 2 features
    if exact:
        torch.testing.assert_close(dx, w.expand_as(x), rtol=0, atol=1e-12)
    assert dx.abs().sum() > 0
    # torch.func.grad over the parameters sees through the methods (what priors use)
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p):
        f = functools.partial(lambda p, x: torch.func.functional_call(net, p, (x,))[:, 0], p)
        return method(f, x).square().sum()

    dw = torch.func.grad(loss)(params)["weight"]
    if exact:  # d/dw sum (w x)^2 = 2 w sum x^2
        torch.testing.assert_close(dw, 2 * w * x.square().sum(0, True))
    assert dw.abs().sum() > 0


def test_the_finite_check_is_exact_where_a_sum_overflows_or_cancels():
    from tfx_explain._engine.checks import all_finite

    big = torch.full((4,), 3e38)  # finite values whose float32 sum overflows to inf
    assert not torch.isfinite(big.sum()) and all_finite(big)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.rand(50, 3, dtype=torch.float64)
        x[17, 1] = bad
        assert not all_finite(x) and not all_finite(x.float()) and not all_finite(x.half())
    pair = torch.tensor([float("inf"), -float("inf")])  # sums to nan: still refused
    assert not all_finite(pair)
    assert all_finite(torch.arange(5)) and all_finite(torch.empty(0))
    assert not all_finite(torch.tensor([1 + 2j, complex(float("nan"), 0)]))
    with pytest.raises(ValueError, match=r"x must be finite, but it holds inf"):
        tx.input_gradients(lambda x: x.sum(-1), torch.tensor([[1.0, float("inf")]]))


# ---- gradient x input multiplies in place only what autograd gave it fresh -----------


def _gxi_cases():
    w = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    x = torch.tensor([[2.0, 1.0, 0.5], [-1.0, 4.0, 2.0]], dtype=torch.float64)
    shared = {"a": x.clone(), "b": 2 * x}  # a + b: autograd gives both leaves one tensor
    return [
        ("fresh", lambda x: (x * x) @ w, x, 2 * x * x * w),
        ("expanded", lambda x: x.sum(-1), x, x),  # the gradient of sum is an expanded 1
        (
            "shared",
            lambda d: ((d["a"] + d["b"]) * w).sum(-1),
            shared,
            {"a": shared["a"] * w, "b": shared["b"] * w},
        ),
    ]


@pytest.mark.parametrize("case", _gxi_cases(), ids=lambda c: c[0])
def test_gradient_x_input_never_writes_to_x_or_shared_gradients(case):
    _, fn, x, expected = case
    before = pytree.tree_map(torch.clone, x)
    got = tx.gradient_x_input(fn, x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(x, before, rtol=0, atol=0)
    again = tx.gradient_x_input(fn, x)  # nothing kept or aliased between calls
    torch.testing.assert_close(again, expected, rtol=0, atol=0)


def test_gradient_x_input_multiplies_fresh_gradients_in_place(monkeypatch):
    from tfx_explain import _gradients

    seen = []
    original = _gradients._owned
    monkeypatch.setattr(_gradients, "_owned", lambda g, x: seen.append(original(g, x)) or seen[-1])
    case = {c[0]: c for c in _gxi_cases()}
    for name in ("fresh", "expanded", "shared"):
        tx.gradient_x_input(case[name][1], case[name][2])
    assert seen == [True, False, False]
    leaf = case["fresh"][2].clone().requires_grad_()
    tx.gradient_x_input(case["fresh"][1], leaf)  # tracked: a graph runs through the result
    assert seen[-1] is False


def _spy(fn, seen):
    def spied(z):
        seen.append((z.is_leaf, z.requires_grad))
        return fn(z)

    return spied


@pytest.mark.parametrize(
    "method",
    [
        functools.partial(tx.integrated_gradients, steps=4),
        functools.partial(
            tx.expected_gradients, baselines=torch.zeros(2, 3, dtype=torch.float64), n_samples=3
        ),
    ],
    ids=["ig", "eg"],
)
def test_fresh_path_rows_reach_fn_without_a_copy(method):
    # the path points are the method's own tensors: fn gets the leaves autograd
    # differentiates, not a clone of them (the copy was 3% of an MLP IG)
    x, seen = torch.rand(3, 3, dtype=torch.float64), []
    attr = method(_spy(lambda z: z @ W, seen), x, vectorize="batch")
    assert seen and all(leaf and grad for leaf, grad in seen)
    torch.testing.assert_close(attr, method(lambda z: z @ W, x, vectorize="batch"))


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_fn_writing_to_fresh_path_rows_gets_copies_from_then_on(chunk_size):
    # autograd refuses the write to its leaf: that chunk runs again on a copy, and
    # the later chunks of the call get copies at once (fn is called once each)
    x, calls = torch.rand(3, 3, dtype=torch.float64), []

    def careless(z):
        calls.append(z.is_leaf)
        return z.mul_(2.0) @ W

    attr = tx.integrated_gradients(careless, x, steps=4, chunk_size=chunk_size, vectorize="batch")
    expected = tx.integrated_gradients(lambda z: (2.0 * z) @ W, x, steps=4)
    torch.testing.assert_close(attr, expected)
    chunks = 1 if chunk_size is None else 3
    assert calls == [True] + [False] * chunks  # one refused write, then copies only
    again = []
    tx.integrated_gradients(_spy(lambda z: z @ W, again), x, steps=4, vectorize="batch")
    assert all(leaf for leaf, _ in again)  # the next call starts without copies


def test_rows_autograd_tracks_are_still_copied_for_fn():
    # x requires grad: the path rows are part of the caller's graph, so fn writes to
    # a copy and the derivative through the result stays exact
    x, seen = torch.rand(2, 3, dtype=torch.float64, requires_grad=True), []
    attr = tx.integrated_gradients(_spy(lambda z: z @ W, seen), x, steps=4, vectorize="batch")
    assert seen and not any(leaf for leaf, _ in seen)
    (g,) = torch.autograd.grad(attr.sum(), x)
    torch.testing.assert_close(g, W.expand(2, 3))


@pytest.mark.parametrize("width", [None, 1, 3])
@pytest.mark.parametrize("contiguous", [True, False])
def test_a_target_shared_by_consecutive_rows_picks_what_repeated_targets_pick(width, contiguous):
    m, repeat, n_out = 5, 4, 6
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(m * repeat, n_out + 2, generator=gen)[:, 1:-1]  # a strided view
    shape = (m,) if width is None else (m, width)
    target = torch.randint(0, n_out, shape, generator=gen)
    if contiguous:
        out = out.contiguous()
    else:
        target = torch.randint(0, n_out, shape[::-1], generator=gen).T if width else target
    per_row = target.repeat_interleave(repeat, dim=0)
    picked = select_batch(out, target, repeat)
    assert picked.shape == per_row.shape
    assert torch.equal(picked, select_batch(out, per_row))
    bad = target.clone()
    bad[(-1,) * bad.ndim] = n_out
    with pytest.raises(ValueError, match=rf"must be in \[0, {n_out}\), got a value {n_out}"):
        select_batch(out, bad, repeat)
