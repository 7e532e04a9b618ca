"""Functional training of the TransformerNet, with training-time input-gradient importance.

Everything is a function of explicit values: the loss gradient comes from
``torch.func.grad_and_value`` on the params dict, Adam is a pure update on dicts, and all
randomness (batch order, dropout) comes from one ``torch.Generator``, so a seed reproduces a
run bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import grad, grad_and_value, vmap

from ._data import default_people_paths, load_people
from ._model import _count_layers, init_transformer_net, transformer_net

__all__ = [
    "AdamState",
    "TrainResult",
    "PeopleRun",
    "adam_init",
    "adam_update",
    "train_transformer_net",
    "field_importance",
    "accuracy",
    "save_params",
    "load_params",
    "train_people",
]

_FORMAT = "tfx_explain.params/1"


class AdamState(NamedTuple):
    """Adam's state: the step count and the two moment estimates per parameter."""

    step: int
    exp_avg: dict[str, Tensor]
    exp_avg_sq: dict[str, Tensor]


class TrainResult(NamedTuple):
    """What :func:`train_transformer_net` returns.

    Attributes:
      params: the trained parameters.
      losses: per-epoch mean squared error over the training rows ``(epochs,)``, as the
        optimizer saw it (with dropout when training used it).
      input_importance: mean absolute per-row input gradient of the loss ``(F,)``,
        averaged over the checkpoints and normalised to sum to 1.
      importance_epochs: the epochs (0-based) after which importance was measured.
    """

    params: dict[str, Tensor]
    losses: Tensor
    input_importance: Tensor
    importance_epochs: tuple[int, ...]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}: {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def _describe(value: object) -> str:
    """Shape and dtype of a tensor, the type of anything else: short enough for a message."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def adam_init(params: Mapping[str, Tensor]) -> AdamState:
    """Adam's initial state for ``params``: step 0 and zero moments."""
    return AdamState(
        step=0,
        exp_avg={k: torch.zeros_like(v) for k, v in params.items()},
        exp_avg_sq={k: torch.zeros_like(v) for k, v in params.items()},
    )


def adam_update(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    state: AdamState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[dict[str, Tensor], AdamState]:
    r"""One Adam step on a params dict, as ``torch.optim.Adam`` computes it.

    .. math::

        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
        \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}
            \frac{m_t}{\sqrt{v_t} / \sqrt{1-\beta_2^t} + \epsilon}

    with :math:`\theta` = ``params``, :math:`g` = ``grads``, :math:`\eta` = ``lr``,
    :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\epsilon` = ``eps`` and :math:`m, v, t`
    in ``state``. The arithmetic is ``torch.optim.Adam``'s (no weight decay, no amsgrad),
    so results agree bit for bit. Nothing is modified in place.

    Args:
      params: current parameters.
      grads: gradients, same keys and shapes.
      state: from :func:`adam_init` or the previous update.
      lr: learning rate, > 0.
      betas: moment decay rates, each in [0, 1).
      eps: added to the denominator, >= 0.

    Returns:
      ``(new_params, new_state)``.

    Example:
      >>> params = {"w": torch.tensor([1.0, -2.0])}
      >>> state = adam_init(params)
      >>> params, state = adam_update(params, {"w": 2 * params["w"]}, state, lr=0.1)
      >>> params["w"]
      tensor([ 0.9000, -1.9000])

    References:
      Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015.
    """
    lr = _check_positive("lr", lr)
    if (
        not isinstance(betas, tuple)
        or len(betas) != 2
        or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas)
    ):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < math.inf:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if grads.keys() != params.keys():
        raise ValueError(
            f"grads and params have different keys: {sorted(grads.keys() ^ params.keys())}"
        )
    beta1, beta2 = betas
    step = state.step + 1
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    new_params, exp_avg, exp_avg_sq = {}, {}, {}
    for key, param in params.items():
        g = grads[key]
        exp_avg[key] = torch.lerp(state.exp_avg[key], g, 1 - beta1)
        exp_avg_sq[key] = torch.addcmul(state.exp_avg_sq[key] * beta2, g, g, value=1 - beta2)
        denom = exp_avg_sq[key].sqrt() / bias_correction2_sqrt + eps
        new_params[key] = torch.addcdiv(param, exp_avg[key], denom, value=-step_size)
    return new_params, AdamState(step, exp_avg, exp_avg_sq)


def _mse_loss(params, x: Tensor, y: Tensor, dropout_generator=None) -> Tensor:
    return ((transformer_net(params, x, dropout_generator=dropout_generator) - y) ** 2).mean()


def _penalized_loss(params, x: Tensor, y: Tensor, dropout_generator, penalty) -> tuple:
    """``(mse + penalty(params, x, y), mse)``: the objective, and the error to report."""
    mse = _mse_loss(params, x, y, dropout_generator)
    return mse + penalty(params, x, y), mse


def _mean_abs_input_grad(params, x: Tensor, y: Tensor) -> Tensor:
    """``mean_i |d loss_i / d x_i|`` over the rows, without dropout: ``(N, F) -> (F,)``."""

    def row_loss(row: Tensor, target: Tensor) -> Tensor:
        return (transformer_net(params, row[None])[0] - target) ** 2

    return vmap(grad(row_loss))(x, y).abs().mean(0)  # (N, F) -> (F,)


@contextlib.contextmanager
def _intra_op_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (``None``: unchanged), restoring the setting after."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _checkpoint_epochs(epochs: int, checkpoints: int) -> tuple[int, ...]:
    spots = torch.linspace(0, epochs - 1, checkpoints, dtype=torch.float64).round()
    return tuple(sorted({int(e) for e in spots.tolist()}))


def train_transformer_net(
    params: Mapping[str, Tensor],
    x: Tensor,
    y: Tensor,
    *,
    epochs: int = 300,
    batch_size: int = 10,
    lr: float = 0.01,
    generator: torch.Generator | None = None,
    importance_checkpoints: int = 10,
    dropout: bool = True,
    on_epoch: Callable[[int, float], object] | None = None,
    num_threads: int | None = 1,
    penalty: Callable[[dict[str, Tensor], Tensor, Tensor], Tensor] | None = None,
) -> TrainResult:
    r"""Fit ``transformer_net(params, .)`` to ``(x, y)`` by minibatch Adam on the squared error.

    .. math::

        L(\theta) = \frac{1}{|B|} \sum_{i \in B} \big(f_\theta(x_i) - y_i\big)^2, \qquad
        I_j \propto \frac{1}{|E|\,N} \sum_{e \in E} \sum_{i=1}^{N}
            \Big|\frac{\partial}{\partial x_{ij}} \big(f_{\theta_e}(x_i) - y_i\big)^2\Big|

    Each epoch visits the rows in a fresh random order (``torch.randperm``) in batches of
    ``batch_size`` (the last one may be smaller). The importance :math:`I` (feature
    :math:`j`, normalised to sum 1) is the demo's training-time input-gradient method done
    over every training row: after each checkpoint epoch :math:`e \in E` (``importance_checkpoints``
    epochs spread evenly from the first to the last), the per-row input gradient of the loss
    is taken with ``vmap(grad(.))`` in evaluation mode (no dropout).

    Args:
      params: initial parameters (e.g. from :func:`~tfx_explain.people.init_transformer_net`);
        not modified.
      x: training inputs ``(N, F)`` in the params' dtype.
      y: targets ``(N,)``.
      epochs: passes over the data.
      batch_size: rows per Adam step.
      lr: Adam learning rate.
      generator: source of the batch order and, through a seed drawn from it first, of the
        dropout masks; advanced by training. ``None`` means ``torch.Generator()`` seeded
        with 0. Equal generator states give bitwise equal runs.
      importance_checkpoints: number of epochs at which importance is measured.
      dropout: train with the model's dropout (as the demo does).
      on_epoch: called as ``on_epoch(epoch, mean_loss)`` after every epoch.
      num_threads: ``torch.set_num_threads`` while training, restored afterwards; ``None``
        keeps the current setting. The default 1 suits the demo's tiny batches: with more
        threads every small op opens a parallel region, which costs more than it saves
        (10x slower on a busy 2-core machine), and results then depend on the thread count.
      penalty: an extra loss term :math:`\Omega`, called as ``penalty(params, x_batch,
        y_batch)`` on each batch and added to :math:`L`, e.g. an attribution prior from
        :mod:`tfx_explain.priors` on ``functools.partial(transformer_net, params)``
        (no dropout there: it is the model as evaluated). ``losses`` still records the
        squared error alone.

    Returns:
      A :class:`TrainResult`.

    Example:
      >>> x, y = torch.rand(20, 8), torch.rand(20)
      >>> params = init_transformer_net(generator=torch.Generator().manual_seed(0))
      >>> result = train_transformer_net(params, x, y, epochs=2)
      >>> result.losses.shape, round(float(result.input_importance.sum()), 6)
      (torch.Size([2]), 1.0)
    """
    _count_layers(params)
    n_features = params["embed_weight"].shape[0]
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != n_features or len(x) == 0:
        raise ValueError(
            f"x must be a non-empty tensor of shape (N, {n_features}), got {_describe(x)}"
        )
    if not isinstance(y, Tensor) or y.shape != x.shape[:1] or y.dtype != x.dtype:
        raise ValueError(
            f"y must be a tensor of shape ({len(x)},) and dtype {x.dtype}, got {_describe(y)}"
        )
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    lr = _check_positive("lr", lr)
    importance_checkpoints = _check_int("importance_checkpoints", importance_checkpoints, 1)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    if not isinstance(dropout, bool):
        raise TypeError(f"dropout must be a bool, got {dropout!r}")
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"on_epoch must be callable or None, got {on_epoch!r}")
    if num_threads is not None:
        num_threads = _check_int("num_threads", num_threads, 1)
    if penalty is not None and not callable(penalty):
        raise TypeError(f"penalty must be callable or None, got {penalty!r}")

    params = {key: value.detach() for key, value in params.items()}  # never updated in place
    x, y = x.detach(), y.detach()
    dropout_seed = int(torch.randint(0, 2**62, (), generator=generator))
    dropout_generator = torch.Generator().manual_seed(dropout_seed) if dropout else None
    checkpoints = _checkpoint_epochs(epochs, importance_checkpoints)
    if penalty is None:
        loss_and_grads = grad_and_value(_mse_loss)
    else:
        objective = functools.partial(_penalized_loss, penalty=penalty)
        loss_and_grads = grad_and_value(objective, has_aux=True)
    state = adam_init(params)
    n_rows = len(x)
    losses = []
    importance = x.new_zeros(n_features)  # (F,)
    with _intra_op_threads(num_threads):
        for epoch in range(epochs):
            order = torch.randperm(n_rows, generator=generator)
            total = x.new_zeros(())
            for batch in order.split(batch_size):
                grads, loss = loss_and_grads(params, x[batch], y[batch], dropout_generator)
                if penalty is not None:
                    loss = loss[1]  # (objective, mse): report the error alone
                params, state = adam_update(params, grads, state, lr=lr)
                total = total + loss * len(batch)
            losses.append(total / n_rows)
            if epoch in checkpoints:
                importance = importance + _mean_abs_input_grad(params, x, y)
            if on_epoch is not None:
                on_epoch(epoch, float(losses[-1]))
    return TrainResult(
        params=params,
        losses=torch.stack(losses),
        input_importance=importance / importance.sum(),
        importance_epochs=checkpoints,
    )


def field_importance(importance: Tensor, fields: Mapping[str, tuple[int, ...]]) -> dict[str, float]:
    """Sum a per-feature importance ``(F,)`` within each field.

    Args:
      importance: one value per feature ``(F,)``.
      fields: field name -> feature indices, e.g. ``datasets.PEOPLE_FIELDS``.

    Returns:
      Field name -> summed importance, in the order of ``fields``.

    Example:
      >>> importance = torch.tensor([0.1, 0.6, 0.2, 0.1], dtype=torch.float64)
      >>> field_importance(importance, {"a": (0,), "b": (1, 2, 3)})
      {'a': 0.1, 'b': 0.9}
    """
    if not isinstance(importance, Tensor) or importance.ndim != 1:
        raise ValueError(f"importance must be a 1-d tensor (F,), got {_describe(importance)}")
    n_features = len(importance)
    result = {}
    for name, indices in fields.items():
        bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < n_features]
        if bad or not indices:
            raise ValueError(
                f"fields[{name!r}] must be non-empty indices in [0, {n_features}), got {indices!r}"
            )
        result[name] = float(importance[list(indices)].sum())
    return result


def accuracy(
    fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, within: float = 0.10
) -> float:
    r"""Fraction of rows predicted within a relative tolerance: :math:`|f(x_i) - y_i| < w |y_i|`.

    Args:
      fn: batched model ``(N, F) -> (N,)``.
      x: inputs ``(N, F)``.
      y: targets ``(N,)``.
      within: the relative tolerance :math:`w` (0.10: within 10%).

    Returns:
      The fraction of correct rows, in [0, 1].

    Example:
      >>> accuracy(lambda x: x.sum(1), torch.tensor([[1.0], [2.0]]), torch.tensor([1.05, 3.0]))
      0.5
    """
    within = _check_positive("within", within)
    with torch.no_grad():
        predictions = fn(x)
    if predictions.shape != y.shape:
        raise ValueError(f"fn(x) has shape {tuple(predictions.shape)}, y has {tuple(y.shape)}")
    return float(((predictions - y).abs() < within * y.abs()).double().mean())


def save_params(params: Mapping[str, Tensor], path: str | Path) -> None:
    """Write a params dict with ``torch.save``, tagged with a format marker."""
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in params.items()
    ):
        raise TypeError("params must be a dict mapping str to Tensor")
    blob = {"format": _FORMAT, "params": {k: v.detach().cpu().clone() for k, v in params.items()}}
    torch.save(blob, Path(path))


MAX_PARAMS_BYTES = 2**28
"""Largest total size (256 MiB) the entries of a params file may declare (the demo's is ~20 kB)."""


def _check_declared_size(path: Path, max_bytes: int) -> None:
    """Refuse a zip (``torch.save``) file whose entries declare more than ``max_bytes``.

    ``weights_only`` stops code execution, not size: a small DEFLATE-compressed entry
    can declare gigabytes. The declared sizes are read from the zip directory, before
    anything is inflated.
    """
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            if file.read(1) != b"\x80":  # torch's legacy format starts with a pickle
                raise ValueError(
                    f"{path}: cannot be read as a params file (neither a torch.save archive "
                    "nor a legacy torch file); write one with tfx-explain people --save"
                )
        return  # the legacy format is not compressed: the file size bounds the memory
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path}: cannot be read as a params file ({error})") from error
    if declared > max_bytes:
        raise ValueError(
            f"{path}: the file declares {declared:,} bytes of tensors, more than max_bytes = "
            f"{max_bytes:,}; refusing to inflate it (not a params file of this model?)"
        )


def load_params(
    path: str | Path,
    *,
    like: Mapping[str, Tensor] | None = None,
    n_features: int | None = None,
    max_bytes: int = MAX_PARAMS_BYTES,
) -> dict[str, Tensor]:
    """Read a params dict written by :func:`save_params` (``torch.load(weights_only=True)``).

    Args:
      path: the file.
      like: if given, the loaded params must have exactly its keys and shapes.
      n_features: if given, the TransformerNet params must take this many input
        features (``embed_weight`` of shape ``(n_features, D)``).
      max_bytes: the most bytes the file's entries may declare, checked before any is
        inflated (default ``MAX_PARAMS_BYTES``, 256 MiB).

    Returns:
      The params dict (CPU tensors).

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is corrupt, is not a params file, or does not match ``like``;
        the message names the path and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file {path} not found")
    _check_declared_size(path, _check_int("max_bytes", max_bytes, 1))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types for a damaged file
        raise ValueError(
            f"{path}: cannot be read as a params file ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a tfx_explain params file (no {_FORMAT!r} marker)")
    params = blob.get("params")
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in params.items()
    ):
        raise ValueError(f"{path}: 'params' is not a dict mapping str to Tensor")
    if like is not None:
        problems = [f"missing key {k!r}" for k in like if k not in params]
        problems += [f"unexpected key {k!r}" for k in params if k not in like]
        problems += [
            f"{k!r} is {_describe(params[k])}, expected {_describe(like[k])}"
            for k in like
            if k in params and (params[k].shape, params[k].dtype) != (like[k].shape, like[k].dtype)
        ]
        if problems:
            raise ValueError(f"{path}: params do not match: {'; '.join(problems)}")
    if n_features is not None:
        n_features = _check_int("n_features", n_features, 1)
        embed = params.get("embed_weight")
        if not isinstance(embed, Tensor) or embed.ndim != 2:
            raise ValueError(f"{path}: not TransformerNet params (no 2-d 'embed_weight')")
        if embed.shape[0] != n_features:
            raise ValueError(
                f"{path}: expected {n_features} features, the file has {embed.shape[0]}"
            )
    return params


class PeopleRun(NamedTuple):
    """What :func:`train_people` returns: the training result, accuracies and the data."""

    result: TrainResult
    train_accuracy: float
    test_accuracy: float
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def train_people(
    *,
    train_path: str | Path | None = None,
    test_path: str | Path | None = None,
    epochs: int = 300,
    seed: int = 0,
    on_epoch: Callable[[int, float], object] | None = None,
) -> PeopleRun:
    """Train the demo's TransformerNet on the people data with the demo's settings.

    Initialization and training draw from one ``torch.Generator`` seeded with ``seed``;
    batch size 10, Adam with learning rate 0.01, dropout on, accuracy within 10%.

    Args:
      train_path: training file; ``None`` for the shipped ``data/people_train.txt``.
      test_path: test file; ``None`` for the shipped ``data/people_test.txt``.
      epochs: passes over the training data.
      seed: seed of the run.
      on_epoch: progress callback ``on_epoch(epoch, mean_loss)``.

    Returns:
      A :class:`PeopleRun`.
    """
    seed = _check_int("seed", seed, 0)
    if train_path is None or test_path is None:
        default_train, default_test = default_people_paths()
        train_path = default_train if train_path is None else train_path
        test_path = default_test if test_path is None else test_path
    x_train, y_train = load_people(train_path)
    x_test, y_test = load_people(test_path)
    generator = torch.Generator().manual_seed(seed)
    params = init_transformer_net(n_features=x_train.shape[1], generator=generator)
    result = train_transformer_net(
        params, x_train, y_train, epochs=epochs, generator=generator, on_epoch=on_epoch
    )
    model = functools.partial(transformer_net, result.params)
    return PeopleRun(
        result=result,
        train_accuracy=accuracy(model, x_train, y_train),
        test_accuracy=accuracy(model, x_test, y_test),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
    )
