"""The folder layout is the architecture: which part may import which, checked on the source.

    errors  <-  core  <-  quantizers  <-  { fairseq glue, vision, eval, tools }
    files, errors, cli: leaves every part may use;  data: audio, manifests, labels, corpora

Rules (``ANY``: anywhere in the module; ``TOP``: at module level, so importing the module pulls
it in; a lazy import inside a function is how tools and evaluation reach fairseq only when a
command needs it):
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hypervq_fairseq"

# part -> parts of the package it may import (anywhere), and whether it may import fairseq at module level
ALLOWED = {
    "core": {"core", "errors"},
    "quantizers": {"core", "quantizers", "errors"},
    "files": {"errors"},
    "safe_load": {"errors"},
    "errors": set(),
    "cli": {"errors"},
    "_after_import": set(),
    "data": {"data", "files", "errors", "cli"},
    "fairseq": {"core", "quantizers", "data", "files", "errors", "fairseq", "safe_load"},
    "eval": {"core", "quantizers", "data", "files", "errors", "cli", "eval", "fairseq", "safe_load"},
    "asr": {"data", "files", "errors", "cli", "asr", "fairseq", "safe_load"},
    "vision": {"core", "quantizers", "files", "errors", "cli", "vision", "safe_load"},
    "tools": None,  # console scripts: anything
    "__init__": {"core", "quantizers", "fairseq", "_after_import"},
}
FAIRSEQ_AT_TOP = {"fairseq"}  # only the glue imports fairseq when it is imported
NEVER_FAIRSEQ = {"core", "quantizers", "files", "safe_load", "errors", "cli", "_after_import", "data", "vision"}


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 or rel.name != "__init__.py" else "__init__"


def imports(path: Path):
    """(module imported, at module level?) for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["hypervq_fairseq", *path.relative_to(PACKAGE).parent.parts]
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x
                    for alias in node.names:
                        yield f"{name}.{alias.name}", id(node) in top
                    continue
            else:
                name = node.module
            yield name, id(node) in top


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_part_is_known():
    assert {part_of(p) for p in MODULES} <= set(ALLOWED), "a new top-level part needs a rule in ALLOWED"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layout(path):
    part = part_of(path)
    allowed = ALLOWED[part]
    for name, at_top in imports(path):
        root = name.split(".")[0]
        glue = root == "hypervq_fairseq" and name.split(".")[1:2] == ["fairseq"]
        if root in ("fairseq", "fairseq_cli") or glue:
            assert part not in NEVER_FAIRSEQ, f"{path.relative_to(PACKAGE)} ({part}) imports {name}"
            assert not at_top or part in FAIRSEQ_AT_TOP, (
                f"{path.relative_to(PACKAGE)} imports {name} at module level; import it inside the function that needs it")
        if root != "hypervq_fairseq" or allowed is None:
            continue
        target = name.split(".")[1] if "." in name else "__init__"
        assert target in allowed, f"{path.relative_to(PACKAGE)} ({part}) imports {name}; {part} may import {sorted(allowed)}"
