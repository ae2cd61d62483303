"""The documentation stays true: ``docs/api.md`` is what ``docs/make_api.py`` generates from the
current public names and docstrings, and every Python block of the README and the user guide is
valid Python whose jaxgamma imports exist."""

from __future__ import annotations

import ast
import importlib
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_api_reference_is_up_to_date():
    render = runpy.run_path(str(DOCS / "make_api.py"))["render"]
    expected = render()
    actual = (DOCS / "api.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/api.md is out of date: run `python docs/make_api.py`"
    # every public name of the documented modules has an entry
    for module_name in ("jaxgamma.models", "jaxgamma.datasets", "jaxgamma.data", "jaxgamma.estimators"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            assert re.search(rf"### `{re.escape(name)}\b", actual), (module_name, name)


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("name", ["README.md", "docs/guide.md"])
def test_code_blocks_parse_and_their_imports_exist(name: str):
    blocks = _python_blocks(ROOT / name)
    assert blocks, f"{name} has no python block"
    for block in blocks:
        tree = ast.parse(block)  # a SyntaxError fails the test
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jaxgamma"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{name}: {node.module} has no {alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("jaxgamma"):
                        importlib.import_module(alias.name)


def test_guide_model_example_runs():
    """The guide's immutable-model example runs and does what its comments say."""
    block = next(b for b in _python_blocks(DOCS / "guide.md") if "with_values" in b)
    namespace: dict = {}
    exec(compile(block, "docs/guide.md", "exec"), namespace)
    spectral, source = namespace["spectral"], namespace["source"]
    assert float(spectral.index.value) == 2.5 and spectral.index.frozen
    assert source.name == "src2" and float(source.spectral_model.index.value) == 2.5
