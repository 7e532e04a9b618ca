"""Tests for tfx_explain.people: functional Adam, training, importance, accuracy, params files."""

from __future__ import annotations

import functools
import pickle

import pytest
import torch

from tfx_explain.people import (
    PEOPLE_FEATURES,
    PEOPLE_FIELDS,
    AdamState,
    TransformerNet,
    accuracy,
    adam_init,
    adam_update,
    default_people_paths,
    field_importance,
    init_transformer_net,
    load_params,
    load_people,
    save_params,
    train_people,
    train_transformer_net,
    transformer_net,
)
from tfx_explain.people._train import _checkpoint_epochs, _mean_abs_input_grad

# The default run is 300 epochs (about 20-45 s on 2 busy cores); the test uses 100 epochs.
# Measured with 100 epochs, seed 0: train accuracy 0.76, test accuracy 0.85, age importance 0.95.
PEOPLE_EPOCHS = 100


@pytest.fixture(scope="module")
def people_run():
    return train_people(epochs=PEOPLE_EPOCHS, seed=0)


@pytest.fixture(scope="module")
def small_data():
    x, y = load_people(default_people_paths()[0])
    return x[:40], y[:40]


def _params(seed=0, dtype=torch.float32):
    return init_transformer_net(generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _equal_dicts(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- Adam ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "options"),
    [
        (torch.float32, {"lr": 0.01}),
        (torch.float64, {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6}),
    ],
)
def test_adam_matches_torch_optim_adam_bitwise(dtype, options):
    params = _params(1, dtype)
    module_params = {k: torch.nn.Parameter(v.clone()) for k, v in params.items()}
    optimizer = torch.optim.Adam(module_params.values(), **options)
    state = adam_init(params)
    gen = torch.Generator().manual_seed(2)
    for _ in range(6):
        grads = {k: torch.randn(v.shape, generator=gen, dtype=dtype) for k, v in params.items()}
        for key, parameter in module_params.items():
            parameter.grad = grads[key].clone()
        optimizer.step()
        params, state = adam_update(params, grads, state, **options)
    assert state.step == 6
    for key, parameter in module_params.items():
        assert torch.equal(params[key], parameter.detach()), key
        assert torch.equal(state.exp_avg_sq[key], optimizer.state[parameter]["exp_avg_sq"])


def test_adam_is_pure():
    params = {"w": torch.tensor([1.0, -2.0])}
    grads = {"w": torch.tensor([0.5, 0.5])}
    state = adam_init(params)
    new_params, new_state = adam_update(params, grads, state, lr=0.1)
    assert torch.equal(params["w"], torch.tensor([1.0, -2.0]))
    assert torch.equal(state.exp_avg["w"], torch.zeros(2)) and state.step == 0
    assert isinstance(new_state, AdamState) and new_state.step == 1
    # the first step moves every coordinate by lr * sign(grad) (up to eps)
    torch.testing.assert_close(new_params["w"], torch.tensor([0.9, -2.1]))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"lr": 0.0}, ValueError, "lr must be positive and finite, got 0.0"),
        ({"lr": "0.1"}, TypeError, "lr must be a number, got str"),
        ({"lr": 0.1, "betas": (0.9, 1.0)}, ValueError, "betas must be a pair of numbers in"),
        ({"lr": 0.1, "betas": [0.9, 0.99]}, ValueError, "betas must be a pair"),
        ({"lr": 0.1, "eps": -1e-8}, ValueError, "eps must be a finite number >= 0"),
    ],
)
def test_adam_validates_options(options, error, match):
    params = {"w": torch.zeros(2)}
    with pytest.raises(error, match=match):
        adam_update(params, params, adam_init(params), **options)


def test_adam_rejects_mismatched_grads():
    params = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"different keys: \['v', 'w'\]"):
        adam_update(params, {"v": torch.zeros(2)}, adam_init(params), lr=0.1)


# --- training --------------------------------------------------------------------------------


def test_training_is_reproducible_for_a_seed(small_data):
    x, y = small_data
    params = _params(3)
    before = {k: v.clone() for k, v in params.items()}

    def run(seed, **options):
        gen = torch.Generator().manual_seed(seed)
        return train_transformer_net(params, x, y, epochs=3, generator=gen, **options)

    a, b, c = run(5), run(5), run(6)
    assert _equal_dicts(a.params, b.params)
    assert torch.equal(a.losses, b.losses)
    assert torch.equal(a.input_importance, b.input_importance)
    assert not torch.equal(a.params["hidden_weight"], c.params["hidden_weight"])
    assert not torch.equal(run(5, dropout=False).losses, a.losses)
    assert _equal_dicts(params, before)  # the initial params are not modified
    default = train_transformer_net(params, x, y, epochs=1)
    assert _equal_dicts(default.params, train_transformer_net(params, x, y, epochs=1).params)


def test_training_equals_an_ordinary_pytorch_loop(small_data):
    """Without dropout, our functional training is the textbook nn.Module + optim.Adam loop."""
    x, y = small_data[0].double(), small_data[1].double()
    params = _params(7, torch.float64)
    ours = train_transformer_net(
        params,
        x,
        y,
        epochs=2,
        batch_size=7,
        generator=torch.Generator().manual_seed(8),
        dropout=False,
    )
    net = TransformerNet(params)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(8)
    torch.randint(0, 2**62, (), generator=gen)  # the dropout seed is drawn first
    for _ in range(2):
        for batch in torch.randperm(len(x), generator=gen).split(7):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(net(x[batch]), y[batch]).backward()
            optimizer.step()
    # atol: the key bias has a zero true gradient, so Adam amplifies rounding noise there
    for key, value in net.params().items():
        torch.testing.assert_close(ours.params[key], value, rtol=1e-10, atol=1e-10)


def test_training_reduces_the_loss_and_reports_progress(small_data):
    x, y = small_data
    seen = []
    result = train_transformer_net(
        _params(9), x, y, epochs=15, on_epoch=lambda epoch, loss: seen.append((epoch, loss))
    )
    assert result.losses.shape == (15,)
    assert result.losses[-3:].mean() < result.losses[0] / 3
    assert [epoch for epoch, _ in seen] == list(range(15))
    assert [loss for _, loss in seen] == result.losses.tolist()
    assert result.importance_epochs == (0, 2, 3, 5, 6, 8, 9, 11, 12, 14)


def test_training_restores_the_thread_count(small_data):
    x, y = small_data
    threads = torch.get_num_threads()
    train_transformer_net(_params(), x[:5], y[:5], epochs=1, num_threads=1)
    assert torch.get_num_threads() == threads


def test_checkpoint_epochs():
    assert _checkpoint_epochs(300, 10) == (0, 33, 66, 100, 133, 166, 199, 233, 266, 299)
    assert _checkpoint_epochs(3, 10) == (0, 1, 2)
    assert _checkpoint_epochs(50, 1) == (0,)


def test_importance_is_the_mean_absolute_per_row_loss_gradient(small_data):
    x, y = small_data
    params = _params(10)
    rows = []
    for row, target in zip(x[:8], y[:8], strict=True):
        row = row.clone().requires_grad_()
        ((transformer_net(params, row[None])[0] - target) ** 2).backward()
        rows.append(row.grad.abs())
    torch.testing.assert_close(
        _mean_abs_input_grad(params, x[:8], y[:8]), torch.stack(rows).mean(0)
    )


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be >= 1, got 0"),
        ({"batch_size": True}, TypeError, "batch_size must be an int, got bool"),
        ({"lr": -0.1}, ValueError, "lr must be positive and finite"),
        ({"importance_checkpoints": 0}, ValueError, "importance_checkpoints must be >= 1"),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
        ({"dropout": 1}, TypeError, "dropout must be a bool"),
        ({"on_epoch": "print"}, TypeError, "on_epoch must be callable"),
        ({"num_threads": 0}, ValueError, "num_threads must be >= 1"),
    ],
)
def test_training_validates_options(small_data, options, error, match):
    x, y = small_data
    with pytest.raises(error, match=match):
        train_transformer_net(_params(), x, y, **options)


def test_training_validates_data(small_data):
    x, y = small_data
    with pytest.raises(ValueError, match=r"x must be a non-empty tensor of shape \(N, 8\)"):
        train_transformer_net(_params(), x[:, :7], y)
    with pytest.raises(ValueError, match=r"x must be a non-empty tensor"):
        train_transformer_net(_params(), x[:0], y[:0])
    with pytest.raises(ValueError, match=r"y must be a tensor of shape \(40,\)"):
        train_transformer_net(_params(), x, y[:-1])
    with pytest.raises(ValueError, match=r"got a torch.float64 tensor of shape \(40,\)"):
        train_transformer_net(_params(), x, y.double())


def test_people_run_accuracy_and_importance(people_run):
    result = people_run.result
    assert people_run.test_accuracy >= 0.65
    assert people_run.train_accuracy >= 0.6
    assert result.losses[-10:].mean() < 0.005
    importance = result.input_importance
    assert importance.shape == (8,)
    torch.testing.assert_close(importance.sum(), torch.tensor(1.0))
    assert (importance >= 0).all()
    assert PEOPLE_FEATURES[int(importance.argmax())] == "age"
    assert importance[1] > 0.8
    fields = field_importance(importance, PEOPLE_FIELDS)
    assert list(fields) == ["sex", "age", "state", "politics"]
    assert fields["age"] == max(fields.values())
    assert sum(fields.values()) == pytest.approx(1.0, abs=1e-6)
    model = functools.partial(transformer_net, result.params)
    assert accuracy(model, people_run.x_test, people_run.y_test) == people_run.test_accuracy


# --- helpers ---------------------------------------------------------------------------------


def test_field_importance():
    importance = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert field_importance(importance, {"a": (0, 3), "b": (1,)}) == pytest.approx(
        {"a": 0.5, "b": 0.2}
    )
    with pytest.raises(ValueError, match=r"fields\['b'\] must be non-empty indices in \[0, 4\)"):
        field_importance(importance, {"b": (4,)})
    with pytest.raises(ValueError, match=r"fields\['c'\]"):
        field_importance(importance, {"c": ()})
    with pytest.raises(ValueError, match=r"importance must be a 1-d tensor"):
        field_importance(importance[None], {"a": (0,)})


def test_accuracy():
    y = torch.tensor([1.0, 2.0, -1.0, 0.5])
    predictions = torch.tensor([1.09, 2.21, -1.05, 0.5])
    assert accuracy(lambda x: predictions, torch.zeros(4, 1), y) == 0.75
    assert accuracy(lambda x: predictions, torch.zeros(4, 1), y, within=0.2) == 1.0
    with pytest.raises(ValueError, match="within must be positive"):
        accuracy(lambda x: predictions, torch.zeros(4, 1), y, within=0)
    with pytest.raises(ValueError, match=r"fn\(x\) has shape \(4, 1\), y has \(4,\)"):
        accuracy(lambda x: predictions[:, None], torch.zeros(4, 1), y)


# --- params files ----------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    params = _params(11)
    path = tmp_path / "model.pt"
    save_params(params, path)
    loaded = load_params(path, like=params)
    assert list(loaded) == list(params) and _equal_dicts(loaded, params)
    net = TransformerNet(params)
    save_params(dict(net.named_parameters()), str(path))
    assert _equal_dicts(load_params(str(path)), params)


def test_load_rejects_mismatched_params(tmp_path):
    path = tmp_path / "model.pt"
    save_params(_params(), path)
    other = init_transformer_net(n_layers=1, d_hidden=5)
    with pytest.raises(ValueError, match="params do not match") as info:
        load_params(path, like=other)
    message = str(info.value)
    assert str(path) in message
    assert "unexpected key 'layer1_qkv_weight'" in message
    assert (
        "'hidden_weight' is a torch.float32 tensor of shape (10, 32), "
        "expected a torch.float32 tensor of shape (5, 32)"
    ) in message
    double = init_transformer_net(dtype=torch.float64)
    with pytest.raises(ValueError, match="'output_bias' is a torch.float32 tensor of shape"):
        load_params(path, like=double)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "cannot be read as a params file"),
        (b"this is not a torch file\n", "cannot be read as a params file"),
        (pickle.dumps(print), "cannot be read as a params file"),
    ],
)
def test_load_rejects_corrupt_files(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        load_params(path)
    assert str(path) in str(info.value)


def test_load_rejects_files_that_are_not_params(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a tfx_explain params file"):
        load_params(path)
    torch.save(_params(), path)  # a bare dict, without the marker
    with pytest.raises(ValueError, match="not a tfx_explain params file"):
        load_params(path)
    torch.save({"format": "tfx_explain.params/1", "params": [torch.zeros(1)]}, path)
    with pytest.raises(ValueError, match="'params' is not a dict mapping str to Tensor"):
        load_params(path)
    truncated = tmp_path / "truncated.pt"
    save_params(_params(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(ValueError, match="cannot be read"):
        load_params(truncated)


def test_load_missing_file_and_save_validation(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_params(tmp_path / "absent.pt")
    with pytest.raises(TypeError, match="params must be a dict mapping str to Tensor"):
        save_params({"w": [1.0]}, tmp_path / "x.pt")
