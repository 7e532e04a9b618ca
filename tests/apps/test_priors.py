"""Attribution priors: exact parameter gradients (finite differences in float64), closed forms,
chunking, the penalty hook of train_transformer_net, and the cost of Captum's constants."""

import functools

import pytest
import torch
from torch.func import grad

import tfx_explain
from tfx_explain import priors
from tfx_explain.people import (
    PEOPLE_FIELDS,
    init_transformer_net,
    train_transformer_net,
    transformer_net,
)

F64 = torch.float64
SHAPE = (3, 4)  # image-like features (H, W), flattened by the tabular priors


def _mlp_params(seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return {
        "w1": torch.randn(6, 12, generator=g, dtype=dtype),
        "b1": torch.randn(6, generator=g, dtype=dtype) * 0.1,
        "w2": torch.randn(6, generator=g, dtype=dtype),
    }


def _mlp(params, x):
    """A smooth model ``(B, 3, 4) -> (B,)``: its input gradient depends on every parameter."""
    return torch.tanh(x.flatten(1) @ params["w1"].T + params["b1"]) @ params["w2"]


def _x(batch=5, seed=1):
    return torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _methods(refs):
    """The core methods a prior should accept; EG redraws the same samples at every call."""

    def eg(fn, x, **options):
        g = torch.Generator().manual_seed(7)
        return tfx_explain.expected_gradients(
            fn, x, baselines=refs, n_samples=3, generator=g, **options
        )

    return {
        "input_gradients": tfx_explain.input_gradients,
        "integrated_gradients": functools.partial(tfx_explain.integrated_gradients, steps=3),
        "expected_gradients": eg,
    }


METHODS = ["input_gradients", "integrated_gradients", "expected_gradients"]
MASK = torch.zeros(SHAPE, dtype=torch.bool)
MASK[:, :2] = True
_path = torch.diag(torch.ones(11, dtype=F64), 1)[:12, :12]  # a chain 0 - 1 - ... - 11
LAPLACIAN = torch.diag((_path + _path.T).sum(1)) - (_path + _path.T)
PENALTIES = {
    "right_reasons": functools.partial(priors.right_reasons, irrelevant=MASK),
    "total_variation": priors.total_variation,
    "graph_smoothness": functools.partial(priors.graph_smoothness, laplacian=LAPLACIAN),
    "sparsity": priors.sparsity,
    "share": functools.partial(priors.share, group=[0, 5, 6]),
    "share_cap": functools.partial(priors.share_cap, group=[0, 5, 6], cap=0.05),
}


def _directional_fd(loss, params, direction, eps=1e-6):
    plus = {k: v + eps * direction[k] for k, v in params.items()}
    minus = {k: v - eps * direction[k] for k, v in params.items()}
    return (loss(plus) - loss(minus)) / (2 * eps)


def _dot(a, b):
    return sum((a[k] * b[k]).sum() for k in a)


def _direction(params, seed=3):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("penalty", list(PENALTIES))
def test_parameter_gradient_matches_finite_differences(penalty, method):
    params, x = _mlp_params(), _x()
    chosen = _methods(_x(4, seed=2))[method]

    def loss(p):
        return PENALTIES[penalty](functools.partial(_mlp, p), x, method=chosen)

    assert float(loss(params)) > 0  # share_cap is above its cap here: the hinge is active
    exact = grad(loss)(params)
    for seed in (3, 4):
        direction = _direction(params, seed)
        fd = _directional_fd(loss, params, direction)
        assert float(fd.abs()) > 1e-3  # a real slope, not 0 == 0
        torch.testing.assert_close(_dot(exact, direction), fd, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("method", METHODS)
def test_share_cap_on_the_people_transformer_matches_finite_differences(method):
    params = init_transformer_net(generator=torch.Generator().manual_seed(0), dtype=F64)
    x = _rows(6)
    chosen = _methods(_rows(5, seed=2))[method]
    sex = PEOPLE_FIELDS["sex"]
    now = float(
        priors.share(functools.partial(transformer_net, params), x, method=chosen, group=sex)
    )
    cap = 0.5 * now  # the hinge is active

    def loss(p):
        fn = functools.partial(transformer_net, p)
        return priors.share_cap(fn, x, method=chosen, group=sex, cap=cap, chunk_size=4)

    exact = grad(loss)(params)
    direction = _direction(params)
    fd = _directional_fd(loss, params, direction)
    assert float(fd.abs()) > 1e-6
    torch.testing.assert_close(_dot(exact, direction), fd, rtol=1e-5, atol=0.0)


def _rows(n, seed=1):
    """People-like rows: sex +-1, age in [0.2, 0.7], one-hot state and politics."""
    g = torch.Generator().manual_seed(seed)
    sex = torch.randint(0, 2, (n, 1), generator=g).to(F64) * 2 - 1
    age = 0.2 + 0.5 * torch.rand(n, 1, generator=g, dtype=F64)
    state = torch.eye(3, dtype=F64)[torch.randint(0, 3, (n,), generator=g)]
    politics = torch.eye(3, dtype=F64)[torch.randint(0, 3, (n,), generator=g)]
    return torch.cat([sex, age, state, politics], 1)


@pytest.mark.parametrize("method", METHODS)
def test_chunk_size_changes_neither_value_nor_gradient(method):
    params, x = _mlp_params(), _x(7)
    chosen = _methods(_x(4, seed=2))[method]

    def loss(p, chunk_size):
        fn = functools.partial(_mlp, p)
        return priors.right_reasons(fn, x, method=chosen, irrelevant=MASK, chunk_size=chunk_size)

    torch.testing.assert_close(loss(params, 3), loss(params, None))
    seen = []

    def spy(fn, x, **options):
        seen.append(options)
        return chosen(fn, x, **options)

    priors.sparsity(functools.partial(_mlp, params), x, method=spy, target=None, chunk_size=3)
    assert seen == [{"target": None, "chunk_size": 3}]  # both reach the method unchanged
    full, chunked = grad(loss)(params, None), grad(loss)(params, 3)
    torch.testing.assert_close(chunked, full)


@pytest.mark.parametrize("method", ["integrated_gradients", "expected_gradients"])
def test_path_gradients_as_constants_give_a_measurably_wrong_gradient(method):
    """Captum computes the path gradients with create_graph=False: to the parameters they are
    constants. The objective task + prior then gets the task's gradient alone."""
    params, x = _mlp_params(), _x()
    chosen = _methods(_x(4, seed=2))[method]

    def constants(fn, x, **options):
        return chosen(fn, x, **options).detach()

    def objective(p, method):
        fn = functools.partial(_mlp, p)
        task = (fn(x) ** 2).mean()
        return task + priors.right_reasons(fn, x, method=method, irrelevant=MASK)

    exact = grad(objective)(params, chosen)
    captum_like = grad(objective)(params, constants)
    direction = _direction(params)
    fd = _directional_fd(lambda p: objective(p, chosen), params, direction)
    torch.testing.assert_close(_dot(exact, direction), fd, rtol=1e-6, atol=0.0)
    wrong = _dot(captum_like, direction)
    assert float((wrong - fd).abs() / fd.abs()) > 0.1, (float(wrong), float(fd))
    # the prior's own share of the gradient is lost entirely
    prior_only = grad(
        lambda p: priors.right_reasons(
            functools.partial(_mlp, p), x, method=constants, irrelevant=MASK
        )
    )(params)
    assert all(float(g.abs().max()) == 0.0 for g in prior_only.values())


def test_captum_attributions_carry_no_gradient_to_the_parameters():
    captum_attr = pytest.importorskip("captum.attr")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for k, v in _mlp_params().items():
                self.register_parameter(k, torch.nn.Parameter(v.clone()))

        def forward(self, x):
            return _mlp(dict(self.named_parameters()), x)

    net = Net()
    attr = captum_attr.IntegratedGradients(net).attribute(_x(), n_steps=3)
    penalty = (attr**2).sum()
    assert not penalty.requires_grad  # nothing to backpropagate into the parameters


# ---- closed forms on a linear model: a = w (input gradients), a = x w (IG from 0) ----


W = torch.tensor([1.0, -2.0, 0.5, 4.0], dtype=F64)


def _linear(x):
    return x @ W


def test_closed_forms_on_a_linear_model():
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5], [2.0, 1.0, 1.0, -1.0]], dtype=F64)
    ig = functools.partial(tfx_explain.integrated_gradients, steps=2)
    a = x * W  # IG of a linear model from the zero baseline, exact for any rule
    mask = torch.tensor([True, False, True, False])
    rrr = priors.right_reasons(_linear, x, method=ig, irrelevant=mask)
    torch.testing.assert_close(rrr, (a[:, mask] ** 2).sum(1).mean())
    phi = a.abs().mean(0)
    s = priors.share(_linear, x, method=ig, group=[1, 3])
    torch.testing.assert_close(s, (phi[1] + phi[3]) / phi.sum())
    cap = priors.share_cap(_linear, x, method=ig, group=[1, 3], cap=0.25)
    torch.testing.assert_close(cap, (s - 0.25) ** 2)
    assert float(priors.share_cap(_linear, x, method=ig, group=[1, 3], cap=0.99)) == 0.0
    gini = (phi[:, None] - phi[None, :]).abs().sum() / (2 * 4 * phi.sum())
    torch.testing.assert_close(priors.sparsity(_linear, x, method=ig), 1 - gini)
    lap = torch.tensor([[1.0, -1, 0, 0], [-1, 2, -1, 0], [0, -1, 1, 0], [0, 0, 0, 0]], dtype=F64)
    expected = (phi[0] - phi[1]) ** 2 + (phi[1] - phi[2]) ** 2
    torch.testing.assert_close(
        priors.graph_smoothness(_linear, x, method=ig, laplacian=lap), expected
    )
    # a per-sample mask (B, *F) and a group given as a mask
    per_sample = torch.tensor([[True, False, False, False], [False, True, False, False]])
    torch.testing.assert_close(
        priors.right_reasons(_linear, x, method=ig, irrelevant=per_sample),
        (a[0, 0] ** 2 + a[1, 1] ** 2) / 2,
    )
    torch.testing.assert_close(
        priors.share(_linear, x, method=ig, group=torch.tensor([0.0, 1, 0, 1], dtype=F64)), s
    )


def test_total_variation_closed_form():
    w = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, -1.0]], dtype=F64)
    x = torch.ones(2, 2, 3, dtype=F64)
    tv = priors.total_variation(
        lambda x: (x * w).sum((-2, -1)), x, method=tfx_explain.input_gradients
    )
    down = (w[1] - w[0]).abs().sum()  # 2 + 1 + 4
    right = (w[:, 1:] - w[:, :-1]).abs().sum()  # 1 + 2 + 0 + 3
    assert float(tv) == float(down + right) == 13.0


def test_sparsity_bounds():
    ones = torch.ones(3, 4, dtype=F64)
    uniform = priors.sparsity(lambda x: x.sum(1), ones, method=tfx_explain.input_gradients)
    torch.testing.assert_close(uniform, torch.tensor(1.0, dtype=F64))
    one_hot = priors.sparsity(lambda x: 3 * x[:, 2], ones, method=tfx_explain.input_gradients)
    torch.testing.assert_close(one_hot, torch.tensor(0.25, dtype=F64))


# ---- validation: errors name the argument and the bad value ----


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: priors.right_reasons(
                _linear, torch.ones(2, 4), method=None, irrelevant=torch.ones(4)
            ),
            TypeError,
            "method",
        ),
        (
            lambda: priors.right_reasons(
                _linear,
                torch.ones(2, 4),
                method=tfx_explain.input_gradients,
                irrelevant=torch.ones(3),
            ),
            ValueError,
            r"irrelevant.*\(3,\)",
        ),
        (
            lambda: priors.right_reasons(
                _linear,
                torch.ones(2, 4),
                method=tfx_explain.input_gradients,
                irrelevant=torch.ones(4, dtype=torch.long),
            ),
            TypeError,
            "irrelevant.*int64",
        ),
        (
            lambda: priors.share_cap(
                _linear, torch.ones(2, 4), method=tfx_explain.input_gradients, group=[0], cap=1.0
            ),
            ValueError,
            "cap.*1.0",
        ),
        (
            lambda: priors.share_cap(
                _linear,
                torch.ones(2, 4),
                method=tfx_explain.input_gradients,
                group=[0],
                cap=float("nan"),
            ),
            ValueError,
            "cap.*nan",
        ),
        (
            lambda: priors.share(
                _linear, torch.ones(2, 4), method=tfx_explain.input_gradients, group=[4]
            ),
            ValueError,
            r"group.*\[4\]",
        ),
        (
            lambda: priors.share(
                _linear, torch.ones(2, 4), method=tfx_explain.input_gradients, group=[]
            ),
            ValueError,
            "group",
        ),
        (
            lambda: priors.share(
                _linear, torch.ones(2, 4), method=tfx_explain.input_gradients, group=[True]
            ),
            ValueError,
            "group",
        ),
        (
            lambda: priors.share(
                _linear, torch.ones(2, 4), method=tfx_explain.input_gradients, group=torch.ones(3)
            ),
            ValueError,
            r"group.*\(4,\)",
        ),
        (
            lambda: priors.graph_smoothness(
                _linear,
                torch.ones(2, 4),
                method=tfx_explain.input_gradients,
                laplacian=torch.eye(3),
            ),
            ValueError,
            r"laplacian.*\(3, 3\)",
        ),
        (
            lambda: priors.total_variation(
                _linear, torch.ones(2, 4), method=tfx_explain.input_gradients
            ),
            TypeError,
            "x",
        ),
        (
            lambda: priors.sparsity(_linear, torch.ones(2, 4), method=lambda f, x, **k: x[:, 0]),
            ValueError,
            "method must return",
        ),
    ],
)
def test_bad_options_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        priors.sparsity(_linear, torch.ones(2, 4), tfx_explain.input_gradients)


# ---- the penalty hook of train_transformer_net ----


def _people_problem():
    g = torch.Generator().manual_seed(0)
    x = _rows(30).float()
    y = 0.2 + 0.6 * torch.rand(30, generator=g)
    params = init_transformer_net(generator=torch.Generator().manual_seed(1))
    return params, x, y


def test_train_penalty_constant_changes_nothing_and_losses_exclude_it():
    params, x, y = _people_problem()
    calls = []

    def constant(p, xb, yb):
        calls.append((xb.shape, yb.shape))
        return torch.tensor(5.0)

    plain = train_transformer_net(params, x, y, epochs=2, batch_size=8)
    hooked = train_transformer_net(params, x, y, epochs=2, batch_size=8, penalty=constant)
    assert all(torch.equal(plain.params[k], hooked.params[k]) for k in plain.params)
    assert torch.equal(plain.losses, hooked.losses)  # the error alone, not error + 5
    assert len(calls) == 2 * 4 and calls[0] == ((8, 8), (8,)) and calls[-1] == ((6, 8), (6,))


def test_train_penalty_moves_the_share():
    params, x, y = _people_problem()
    sex = PEOPLE_FIELDS["sex"]

    def sex_share(p):
        fn = functools.partial(transformer_net, p)
        return float(priors.share(fn, x, method=tfx_explain.input_gradients, group=sex))

    def penalty(p, xb, yb):
        fn = functools.partial(transformer_net, p)
        return 10.0 * priors.share_cap(
            fn, xb, method=tfx_explain.input_gradients, group=sex, cap=0.0
        )

    plain = train_transformer_net(params, x, y, epochs=3, batch_size=10, dropout=False)
    capped = train_transformer_net(
        params, x, y, epochs=3, batch_size=10, dropout=False, penalty=penalty
    )
    assert sex_share(capped.params) < 0.5 * sex_share(plain.params)


def test_train_penalty_must_be_callable():
    params, x, y = _people_problem()
    with pytest.raises(TypeError, match="penalty"):
        train_transformer_net(params, x, y, epochs=1, penalty=3.0)
