"""Models and methods named by import path, resolved on the worker and cached per process.

The task graph of a distributed job carries only strings: the params file, the model
function (or factory) and the method as ``"module:qualname"``. Each worker process
imports them and loads the params once, in :func:`load_model`'s cache, keyed on the
file's path, modification time and size, so a rewritten file is never served stale.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

__all__ = ["METHODS", "import_path", "resolve", "load_model", "params_stamp"]

METHODS = {
    "ig": "tfx_explain:integrated_gradients",
    "gxi": "tfx_explain:gradient_x_input",
    "grad": "tfx_explain:input_gradients",
    "occlusion": "tfx_explain:occlusion",
    "ablation": "tfx_explain:feature_ablation",
    "shapley": "tfx_explain:shapley_values",
    "eg": "tfx_explain:expected_gradients",
    "kernel_shap": "tfx_explain:kernel_shap",
    "lime": "tfx_explain:lime",
}
"""Short method names accepted by ``attribute_dataset(method=...)`` and the command line."""


def import_path(obj: Any, name: str) -> str:
    """``"module:qualname"`` of a module-level function, or ``obj`` itself if it is one.

    Raises:
      TypeError: ``obj`` is neither a string nor a function importable by its name
        (lambdas, closures and bound methods cannot be re-imported on a worker).
    """
    if isinstance(obj, str):
        module, sep, qualname = obj.partition(":")
        if not (sep and module and qualname):
            raise ValueError(f"{name} must look like 'package.module:function', got {obj!r}")
        return obj
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not callable(obj) or not module or not qualname or "<" in qualname:
        raise TypeError(
            f"{name} must be an import path 'module:function' or a module-level function, "
            f"got {obj!r}; lambdas and closures cannot be imported by a worker"
        )
    path = f"{module}:{qualname}"
    try:
        found = resolve(path)
    except (ImportError, AttributeError):
        found = None
    if found is not obj:
        raise TypeError(f"{name} {obj!r} is not importable as {path!r}")
    return path


def resolve(path: str) -> Any:
    """Import ``"module:qualname"`` and return the object it names."""
    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def params_stamp(path: str) -> tuple[int, int]:
    """``(mtime_ns, size)`` of a params file: changes whenever the file is rewritten."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _cached_model(
    path: str, stamp: tuple[int, int], model: str | None, factory: str | None
) -> Callable:
    if model is not None:
        from tfx_explain.people import load_params

        return functools.partial(resolve(model), load_params(path))
    return resolve(factory)(path)


def load_model(
    path: str, *, model: str | None = None, factory: str | None = None, stamp: Any = None
) -> Callable:
    """The batched model ``fn`` for a params file, loaded at most once per process and file.

    Args:
      path: params file (absolute path).
      model: import path of a pure ``model(params, x)``; the params are read with
        ``tfx_explain.people.load_params`` and bound with ``functools.partial``.
      factory: import path of ``factory(path) -> fn`` for any other format (e.g. build an
        ``nn.Module``, load its state, call ``.eval()``). Exactly one of the two.
      stamp: the ``(mtime_ns, size)`` the caller expects; a different file on disk
        raises instead of mixing two models in one job.

    Returns:
      The batched callable ``fn``, the same object on every call while the file is unchanged.
    """
    if (model is None) == (factory is None):
        raise ValueError(f"give exactly one of model and factory, got {model!r} and {factory!r}")
    found = params_stamp(path)
    if stamp is not None and tuple(stamp) != found:
        raise RuntimeError(
            f"params file {path} changed during the job (mtime_ns, size) {tuple(stamp)} -> "
            f"{found}; rerun the job on the new file"
        )
    return _cached_model(path, found, model, factory)
