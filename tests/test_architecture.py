"""The import graph keeps the layers of README "How it is built".

Floors, lowest first; a module imports only from its own floor or below:

1. engine: ``tfx_explain._engine.*`` imports nothing else of the package;
2. core methods: the private top-level modules ``tfx_explain._*`` (and the
   ``tfx_explain`` face that re-exports them) import only the engine and each other;
3. batteries (``people``, ``plot``, ``text``, ``testing``, ``distributed``, ...) use the
   public face of the core only (``tfx_explain`` and its public names), never a private
   module of the core or the engine; they may use each other's public faces;
4. faces: ``tfx_explain.cli`` and the examples; nothing in the package imports them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tfx_explain"
FACES = ("tfx_explain.cli", "tfx_explain.__main__")
CORE_FACES = ("tfx_explain", "tfx_explain.metrics")
"""Public modules of the core: they only re-export its private modules."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``tfx_explain`` module (or ``module.name``) that ``path`` imports, with lines."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import name` may import a submodule: keep the name with the module
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return [(m, line) for m, line in found if m == "tfx_explain" or m.startswith("tfx_explain.")]


def _floor(module: str) -> str:
    if module.startswith("tfx_explain._engine"):
        return "engine"
    if module.startswith(FACES):
        return "face"
    parts = module.split(".")
    if module in CORE_FACES or parts[1].startswith("_"):
        return "core"
    return "battery"


def _is_private_core(target: str) -> bool:
    """``tfx_explain._x...`` or ``tfx_explain._engine...``: not the public face."""
    parts = target.split(".")
    return len(parts) > 1 and parts[1].startswith("_") and parts[1] != "__version__"


def _battery_root(module: str) -> str:
    return ".".join(module.split(".")[:2])


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        floor = _floor(module)
        for target, line in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if floor == "engine" and not target.startswith("tfx_explain._engine"):
                found.append(f"{where}: the engine imports nothing else of the package")
            elif floor == "core" and module not in CORE_FACES and not _is_private_core(target):
                found.append(f"{where}: a core method imports only the engine and the core")
            elif floor in ("battery", "face"):
                own = target.startswith(_battery_root(module) + ".")
                if _is_private_core(target) and not own:
                    found.append(f"{where}: batteries and faces use the public face only")
            if target.startswith(FACES) and floor != "face":
                found.append(f"{where}: nothing imports the faces")
    return found


def test_import_graph_keeps_the_floors():
    assert violations() == []


def test_the_check_bites(tmp_path, monkeypatch):
    """A battery reaching into the engine, and the engine reaching up, are both caught."""
    fake = tmp_path / "tfx_explain"
    (fake / "_engine").mkdir(parents=True)
    (fake / "__init__.py").write_text("from ._gradients import input_gradients\n")
    (fake / "_gradients.py").write_text("from .plot import bars\n")
    (fake / "_engine" / "rows.py").write_text("from .._gradients import input_gradients\n")
    (fake / "plot.py").write_text("from tfx_explain._engine.rows import chunked\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    found = violations()
    assert len(found) == 3, found
    assert any("plot.py" in v and "public face only" in v for v in found)
    assert any("rows.py" in v and "engine imports nothing" in v for v in found)
    assert any("_gradients.py" in v and "core method imports only" in v for v in found)


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_use_the_public_face(example):
    private = [
        f"{example.name}:{line} imports {target}"
        for target, line in _imports(example)
        if _is_private_core(target) or ("._" in target and not target.startswith("tfx_explain._"))
    ]
    assert private == []


def test_import_tfx_explain_stays_light():
    # (torch itself imports tqdm, through torch.hub)
    heavy = ("matplotlib", "hypothesis", "captum", "transformers", "dask", "pandas", "sklearn")
    code = f"import sys, tfx_explain\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
