"""vectorize="auto" and the row budget: fast when rows are independent, never silently wrong."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn
from torch.func import vmap

import tfx_explain as tx
from tfx_explain._engine import routing as _routing
from tfx_explain._engine import rows as _rows
from tfx_explain._engine.fingerprints import module_flags, reach
from tfx_explain._engine.rows import route

F64 = torch.float64
G = torch.Generator().manual_seed(0)
W1 = torch.randn(4, 6, generator=G, dtype=F64)
W2 = torch.randn(6, 3, generator=G, dtype=F64)


def _mlp(x):  # (B, 4) -> (B, 3), rows independent
    return torch.tanh(x @ W1) @ W2


def _elementwise(x):  # (B, 4) -> (B,), no matrix product: exact whatever the batch
    return (torch.sin(x) * x).sum(-1)


def _batch_centred(x):  # a row's output depends on the batch mean (batch statistics)
    return torch.tanh(x - x.mean(0)) @ W1[:, 0]


class _BatchIndexedPosition(nn.Module):
    """The people demo's original bug: a positional term indexed by batch row."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pe", torch.linspace(0.0, 1.0, 500, dtype=F64))

    def forward(self, x):
        return torch.tanh(x + self.pe[: x.size(0), None]) @ W1[:, 0]


def _x(batch=5, seed=1):
    return torch.randn(batch, 4, generator=torch.Generator().manual_seed(seed), dtype=F64)


GROUPS = {"a": [0], "bc": [1, 2], "d": [3]}
METHODS = {
    "input_gradients": lambda fn, x, **o: tx.input_gradients(fn, x, **o),
    "integrated_gradients": lambda fn, x, **o: tx.integrated_gradients(fn, x, steps=7, **o),
    "occlusion": lambda fn, x, **o: tx.occlusion(fn, x, window=2, **o),
    "feature_ablation": lambda fn, x, **o: tx.feature_ablation(fn, x, groups=GROUPS, **o),
    "shapley_values": lambda fn, x, **o: tx.shapley_values(fn, x, **o),
    "expected_gradients": lambda fn, x, **o: tx.expected_gradients(
        fn, x, baselines=_x(6, seed=3), n_samples=5, generator=torch.Generator(), **o
    ),
}


def _target(fn):
    return torch.tensor([0, 2, 1, 0, 2]) if fn is _mlp else None


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("fn", [_mlp, _elementwise], ids=["mlp", "elementwise"])
def test_auto_takes_the_batch_route_and_agrees_with_vmap(name, fn, monkeypatch):
    x, method = _x(), METHODS[name]
    seen = []
    monkeypatch.setattr(_rows, "route", lambda fn, rows: seen.append(r := route(fn, rows)) or r)
    auto = method(fn, x, target=_target(fn))
    assert seen and set(seen) == {"batch"}
    isolated = method(fn, x, target=_target(fn), vectorize="vmap")
    batched = method(fn, x, target=_target(fn), vectorize="batch")
    torch.testing.assert_close(auto, batched, rtol=0, atol=0)  # auto is the batch route
    torch.testing.assert_close(auto, isolated, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    "fn", [_batch_centred, _BatchIndexedPosition().eval()], ids=["batch-mean", "batch-index"]
)
def test_auto_isolates_rows_of_a_batch_dependent_fn(name, fn):
    x, method = _x(), METHODS[name]
    auto = method(fn, x)
    isolated = method(fn, x, vectorize="vmap")
    batched = method(fn, x, vectorize="batch")
    torch.testing.assert_close(auto, isolated, rtol=0, atol=0)
    assert (batched - isolated).abs().max() > 1e-3  # the batch route would be wrong


def test_the_probe_sees_a_batch_index_and_batch_statistics_but_not_rounding():
    x = _x(9)
    assert route(_BatchIndexedPosition().eval(), x) == "vmap"
    assert route(_batch_centred, x) == "vmap"
    assert route(_mlp, x) == "batch"
    assert route(_mlp, x[:1]) == "batch"  # one row: batch and vmap evaluate the same
    assert route(lambda x: _mlp(x) * x.shape[0], x) == "vmap"  # depends on the batch size
    assert route(lambda x: _mlp(x) + torch.rand(x.shape[0], 1, dtype=F64), x) == "vmap"
    net = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.Linear(16, 2)).eval()
    assert route(net, torch.randn(64, 4)) == "batch"  # float32 rounding is not dependence


def test_batch_norm_in_training_mode_is_refused_with_a_clear_error():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).train()
    with pytest.raises(ValueError, match=r"training mode .*batch statistics.*eval\(\)"):
        tx.integrated_gradients(net, torch.randn(5, 4), target=0)


def test_batch_norm_without_running_stats_is_never_batched_in_eval_mode():
    # eval mode passes check_fn, yet BatchNorm without running stats uses the batch's
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False)).eval()
    x = torch.randn(6, 4)
    assert route(net, x) == "vmap"
    # isolated, one row has no batch statistics: torch's error, not batch-dependent numbers
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        tx.input_gradients(net, x, target=0)


def test_under_a_transform_auto_isolates_rows():
    seen = []

    def fn(x):
        seen.append(route(_mlp, x))
        return x

    vmap(fn)(_x())
    assert seen == ["vmap"]
    assert route(_mlp, _x().to("meta")) == "vmap"
    # vmap of a method (the contract's vmap-vs-loop) still agrees with the plain call
    x = _x()
    lifted = vmap(lambda x1: tx.integrated_gradients(_mlp, x1[None], target=0, steps=5)[0])(x)
    torch.testing.assert_close(
        lifted, tx.integrated_gradients(_mlp, x, target=0, steps=5), rtol=0, atol=1e-12
    )


def test_the_seed_transformer_encoder_module_takes_the_batch_route():
    from benchmarks._seed_model import SeedTransformerNet

    torch.manual_seed(0)
    net = SeedTransformerNet(
        n_features=3, d_embed=4, n_heads=2, d_ff=8, n_layers=1, d_hidden=5
    ).eval()
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(0))
    assert route(net, x) == "batch"
    # warnings are errors: no SlowVmapWarning on the default route
    auto = tx.integrated_gradients(net, x, steps=4)
    torch.testing.assert_close(auto, tx.integrated_gradients(net, x, steps=4, vectorize="batch"))


def test_the_probe_runs_once_per_call_and_once_per_module():
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return _mlp(x)

    tx.integrated_gradients(fn, _x(), target=0, steps=8, chunk_size=1)
    # one probe (4 rows together, then alone), five chunks; the target is checked on
    # the chunks' own outputs, so no extra call
    assert calls == [4, 1, 1, 1, 1] + [8] * 5

    class Net(nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return _mlp(x)

    net = Net().eval()
    calls.clear()
    tx.input_gradients(net, _x(), target=0)
    first = len(calls)
    calls.clear()
    tx.input_gradients(net, _x(), target=0)
    assert len(calls) == first - 1 - _rows.PROBE_ROWS  # the module's answer was kept


def _counting(inner):
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return inner(x)

    return fn, calls


def test_the_answer_is_kept_for_a_partial_and_a_closure_in_the_same_state():
    counted, calls = _counting(_elementwise)
    x = _x()
    for fn in (functools.partial(lambda w, x: counted(x) * w, 2.0), lambda x: counted(x)):
        calls.clear()
        tx.input_gradients(fn, x)
        assert calls == [4, 1, 1, 1, 1, 5]  # probed, then the real call
        calls.clear()
        tx.gradient_x_input(fn, 2 * x)
        assert calls == [5]  # same fn, same state: no probe
        tx.input_gradients(fn, x.float())
        assert calls[1:] == [4, 1, 1, 1, 1, 5]  # another dtype: probed again


def test_a_closure_over_a_module_is_probed_again_when_its_flags_change():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)).eval()
    counted, calls = _counting(net)
    fn = lambda x: counted(x)  # noqa: E731 - the closure is the point
    x = torch.randn(6, 4)
    assert route(fn, x) == "batch"
    calls.clear()
    assert route(fn, x) == "batch" and calls == []  # kept
    net.train()  # dropout draws per batch: rows now depend on the batch's draw
    assert route(fn, x) == "vmap" and calls
    net.eval()
    calls.clear()
    assert route(fn, x) == "batch" and calls == []  # the eval answer is still kept


def test_a_rebound_global_or_a_new_tensor_is_probed_again():
    global _SWAPPED
    _SWAPPED = _mlp
    fn = lambda x: _SWAPPED(x)  # noqa: E731
    x = _x()
    assert route(fn, x) == "batch"
    _SWAPPED = _batch_centred  # same fn object, another function behind a global
    assert route(fn, x) == "vmap"
    shift = torch.zeros(1, 4, dtype=F64)
    fn = functools.partial(lambda s, x: _mlp(x + s), shift)
    assert route(fn, x) == "batch"
    fn.args[0].resize_(5, 4).zero_()  # now broadcast against the batch: rows mixed in
    assert route(fn, x) == "vmap"


class _Opaque:
    """An object whose state the key cannot see."""

    def __init__(self):
        self.centre = False

    def __call__(self, x):
        return _batch_centred(x) if self.centre else _mlp(x)[:, 0]


def test_an_fn_reaching_an_opaque_object_is_probed_on_every_call():
    opaque = _Opaque()
    fn = lambda x: opaque(x)  # noqa: E731
    x = _x()
    assert reach(fn) is None and reach(opaque) is None
    assert route(fn, x) == "batch"
    opaque.centre = True  # invisible to a key: so nothing is kept
    assert route(fn, x) == "vmap"
    opaque.centre = False
    assert route(opaque, x) == "batch"


def _key(fn):
    found = reach(fn)
    return None if found is None else found[0]


def test_the_key_sees_settings_by_value_and_tensors_by_identity():
    w = torch.ones(4, dtype=F64)
    fn = functools.partial(lambda w, x, *, p: (x * w).sum(-1) * p, w, p=1)
    before = _key(fn)
    assert before == _key(fn)
    w.add_(1.0)  # values do not decide the route (as for module parameters)
    assert _key(fn) == before
    fn.keywords["p"] = 2
    assert _key(fn) != before
    deep = fn
    for _ in range(600):  # more state than the key walks: no key, probe every call
        deep = functools.partial(lambda f, x: f(x), deep)
    assert reach(deep) is None


def test_module_flags_are_the_flags_of_modules_in_their_order():
    shared = nn.Linear(2, 2)
    inner = nn.Sequential(nn.Linear(2, 2), nn.Dropout(), shared)
    net = nn.Sequential(inner, nn.ReLU(), shared, nn.Sequential(nn.LayerNorm(2), inner))
    net.add_module("empty", None)  # a registered None: no module, no flag
    for flip in [(), (1,), (0, 2), (1, 3, 4)]:
        net.train()
        for i, m in enumerate(net.modules()):
            if i in flip:
                m.eval()  # eval() of a parent flips its children too: mixed flags
        assert module_flags(net) == tuple(m.training for m in net.modules())
    net.train()
    assert module_flags(net)[0] and not any(module_flags(net.eval()))


def test_a_dict_of_tensors_is_keyed_entry_by_entry():
    params = {"w": torch.ones(3, dtype=F64), 1: torch.zeros(2), "n": 3}
    fn = functools.partial(lambda p, x: x.sum(-1), params)
    before = _key(fn)
    assert before == _key(fn)
    params[1] = torch.zeros(2)  # a new tensor under a non-string key
    assert _key(fn) != before
    before = _key(fn)
    params["n"] = 4
    assert _key(fn) != before
    big = {str(i): torch.zeros(1) for i in range(3000)}
    # more entries than the key holds: no key, also with nothing walked after the dict
    assert reach(functools.partial(lambda p, x: x, big)) is None and reach(big) is None


def test_a_kept_route_dies_with_the_objects_its_key_names(monkeypatch):
    """A tensor freed and another made at its address: the kept answer is not reused."""
    x = _x()
    cell = {"t": torch.zeros(4, dtype=F64)}
    # rows mixed in by the batch mean unless t is all zeros (values are not in the key)
    fn = lambda x: _mlp(x)[:, 0] + (cell["t"] * x.mean(0)).sum()  # noqa: E731
    assert route(fn, x) == "batch"
    old_key, old_id = _key(fn), id(cell["t"])
    cell["t"] = None
    fresh = [torch.ones(4, dtype=F64) for _ in range(200)]
    cell["t"] = next((t for t in fresh if id(t) == old_id), fresh[0])
    reused = id(cell["t"]) == old_id
    assert (_key(fn) == old_key) == reused  # the key alone cannot tell a recycled address
    assert route(fn, x) == "vmap"  # but the dead tensor's weak reference can
    # and a kept answer whose objects all live is reused without a probe
    probes = []
    probe = _routing._rows_independent
    monkeypatch.setattr(_routing, "_rows_independent", lambda f, r: probes.append(1) or probe(f, r))
    assert route(fn, x) == route(fn, x) == "vmap"
    assert probes == []


_SWAPPED = None


# ---- the row budget --------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("vectorize", ["auto", "vmap"])
def test_results_do_not_depend_on_the_row_budget(name, vectorize, monkeypatch):
    x, method = _x(7), METHODS[name]
    whole = method(_elementwise, x, vectorize=vectorize)
    calls = []

    def fn(x):
        if not torch._C._functorch.is_functorch_wrapped_tensor(x):
            calls.append(x.shape[0])
        return _elementwise(x)

    monkeypatch.setenv("TFX_ROW_BUDGET", "5")
    pieces = method(fn, x, vectorize=vectorize)
    # exact, except that IG's quadrature sum (a tensordot over the steps, BLAS) rounds
    # differently for a different number of samples per chunk, as with chunk_size
    exact = name != "integrated_gradients"
    torch.testing.assert_close(pieces, whole, rtol=0, atol=0 if exact else 1e-15)
    assert max(calls, default=0) <= 5
    mlp = method(_mlp, x, target=0, vectorize=vectorize)
    monkeypatch.delenv("TFX_ROW_BUDGET")
    torch.testing.assert_close(mlp, method(_mlp, x, target=0, vectorize=vectorize), atol=1e-12,
                               rtol=0)  # fmt: skip


HINTED = {  # methods that pass rows_per_sample (no dry run), with multi-target and dict cases
    **METHODS,
    "gradient_x_input": lambda fn, x, **o: tx.gradient_x_input(fn, x, **o),
    "ig_gauss_legendre": lambda fn, x, **o: tx.integrated_gradients(
        fn, x, steps=5, rule="gauss_legendre", **o
    ),
    "shapley_permutations": lambda fn, x, **o: tx.shapley_values(
        fn, x, n_permutations=4, generator=torch.Generator().manual_seed(0), **o
    ),
}


@pytest.mark.parametrize("name", HINTED)
@pytest.mark.parametrize("target", [None, "one", "two"])
def test_rows_per_sample_hints_equal_the_dry_runs_count(name, target, monkeypatch):
    """A method that says its rows per sample says what a dry run would have counted."""
    seen = []
    original = _routing.samples_per_chunk

    def both(fun, args, n, per_sample=None):
        if per_sample is not None:
            counted = _routing.SCOPE.get()
            before = counted["rows"]
            counted["dry"] = True
            try:
                fun(*_routing.slice_args(args, 0, 1))
            finally:
                counted["dry"] = False
                dry_rows, counted["rows"] = counted["rows"] - before, before
            seen.append((per_sample, dry_rows))
        return original(fun, args, n, per_sample)

    monkeypatch.setattr(_rows, "samples_per_chunk", both)
    x = _x(3)
    fn = _elementwise
    options = {}
    if target is not None:
        fn = _mlp
        options["target"] = 1 if target == "one" else torch.tensor([[0, 2]] * 3)
    HINTED[name](fn, x, **options)
    hinted = name != "expected_gradients"  # draws baselines per sample: it counts by dry run
    assert (len(seen) > 0) == hinted
    for per_sample, dry_rows in seen:
        assert per_sample == dry_rows


def test_chunk_size_none_fills_chunks_of_about_the_row_budget(monkeypatch):
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return _elementwise(x)

    monkeypatch.setenv("TFX_ROW_BUDGET", "20")
    x = _x(10)
    tx.integrated_gradients(fn, x, steps=6, vectorize="batch")
    assert calls == [18] * 3 + [6]  # 20 // 6 = 3 samples (18 rows) a chunk; no dry-run call
    calls.clear()
    monkeypatch.setenv("TFX_ROW_BUDGET", "4")
    tx.integrated_gradients(fn, x[:1], steps=6, vectorize="batch")
    assert calls == [4, 2]  # one sample's rows, in pieces
    calls.clear()
    monkeypatch.setenv("TFX_ROW_BUDGET", "100")
    tx.integrated_gradients(fn, x, steps=6, vectorize="batch")
    assert calls == [60]  # everything fits: one call, as before


def test_memory_stays_bounded_by_the_row_budget(monkeypatch):
    # the kernel's rows of a chunk (path points) never exceed the budget: here 8 rows of
    # 200 samples x 50 steps = 10000 path points
    sizes = []
    original = _rows.row_gradients

    def spy(fn, rows, t_rows, **options):
        sizes.append(_rows.rows_of(rows))
        return original(fn, rows, t_rows, **options)

    monkeypatch.setattr("tfx_explain._integrated.row_gradients", spy)
    monkeypatch.setenv("TFX_ROW_BUDGET", "400")
    x = torch.rand(200, 4, dtype=F64)
    attr = tx.integrated_gradients(_elementwise, x, steps=50)
    assert max(sizes) <= 400 and sum(sizes) == 200 * 50  # IG knows its rows: no dry run
    torch.testing.assert_close(attr.sum(-1), _elementwise(x) - _elementwise(0 * x))


def test_the_default_budget_is_0_75_mib_of_rows_within_bounds(monkeypatch):
    from tfx_explain._engine.routing import row_budget

    assert row_budget(torch.zeros(3, 4)) == 8192  # 16-byte rows: the upper bound
    assert row_budget(torch.zeros(3, 100)) == (3 << 18) // 400 == 1966
    assert row_budget(torch.zeros(3, 100, dtype=F64)) == 983
    assert row_budget(torch.zeros(3, 1, 28, 28)) == 250
    assert row_budget(torch.zeros(3, 3, 224, 224)) == 16  # the lower bound
    assert row_budget({"a": torch.zeros(3, 50), "b": torch.zeros(3, 50)}) == 1966  # all leaves
    monkeypatch.setenv("TFX_ROW_BUDGET", "7")
    assert row_budget(torch.zeros(3, 4)) == row_budget(torch.zeros(3, 3, 224, 224)) == 7
    monkeypatch.delenv("TFX_ROW_BUDGET")
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x.sum(-1)

    tx.occlusion(fn, torch.rand(100, 100), window=1)  # 101 rows a sample, 10100 in all
    assert calls[5:] == [19 * 101] * 5 + [5 * 101]  # 1966 // 101 = 19 samples a chunk


def test_a_small_remainder_joins_the_last_call_but_never_a_callers_chunk():
    from tfx_explain._engine.routing import one_piece, spans

    assert spans(10, 4) == [(0, 4), (4, 4), (8, 2)]
    assert spans(18, 8, slack=True) == [(0, 8), (8, 8), (16, 2)]  # 2 >= 8 // 4: a call
    assert spans(17, 8, slack=True) == [(0, 8), (8, 9)]  # 1 < 8 // 4: joins
    assert spans(4, 4, slack=True) == [(0, 4)] and spans(0, 4) == []
    # one_piece answers "is it one piece?" without the list, for every n and size
    assert all(
        one_piece(n, size) == (len(spans(n, size, slack=True)) == 1)
        for n in range(1, 300)
        for size in range(1, 120)
    )
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x.sum(-1)

    def evaluated():  # the calls after the probe's (4 rows together, then 1 by 1)
        seen = [n for n in calls if n > 4]
        calls.clear()
        return seen

    x = torch.rand(2048, 100)  # the budget is 1966 rows: 82 more join the one call
    tx.input_gradients(fn, x)
    assert evaluated() == [2048]
    tx.input_gradients(fn, x, chunk_size=2000)  # the caller's size is a bound
    assert evaluated() == [2000, 48]
    tx.integrated_gradients(fn, x[:81], steps=50)  # 39 samples a chunk: 3 left join
    assert evaluated() == [39 * 50, 42 * 50]


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_a_bad_row_budget_is_refused(bad, monkeypatch):
    monkeypatch.setenv("TFX_ROW_BUDGET", bad)
    with pytest.raises(ValueError, match=f"TFX_ROW_BUDGET must be a positive int.*{bad!r}"):
        tx.input_gradients(_elementwise, _x())


# ---- compile=True on the default route --------------------------------------------------


def test_compile_settles_auto_before_tracing(monkeypatch):
    seen = []

    def impl(fn, x, vectorize):
        seen.append(vectorize)
        return _rows.row_gradients(fn, x, None, vectorize=vectorize)

    monkeypatch.setattr(torch, "compile", lambda f, **options: f)
    run = _rows.compiled(impl, True)
    run(_elementwise, _x(), "auto")
    run(_batch_centred, _x(), "auto")
    assert seen == ["batch", "vmap"]
    assert math.isfinite(float(run(_elementwise, _x(), "vmap")[1].sum()))
