"""hypervq_fairseq.vision stays independent of fairseq: a static check of every module's imports.

Parsing instead of importing makes the check cover imports inside functions too (the CLI
imports its subcommands lazily) and keeps it from depending on what happens to be installed.
"""
import ast
from pathlib import Path

import hypervq_fairseq.vision

VISION = Path(hypervq_fairseq.vision.__file__).parent
PACKAGE = "hypervq_fairseq"
# What vision may use from the rest of the package.
ALLOWED = ("hypervq_fairseq.core", "hypervq_fairseq.quantizers", "hypervq_fairseq.files", "hypervq_fairseq.safe_load",
           "hypervq_fairseq.errors",
           "hypervq_fairseq.cli")
# The fairseq glue, wherever it lives.
FORBIDDEN = ("fairseq", "hypervq_fairseq.fairseq", "hypervq_fairseq.models", "hypervq_fairseq.tasks")


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _module_name(path: Path) -> str:
    parts = path.relative_to(VISION.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path):
    """Absolute names of everything ``path`` imports, relative imports resolved."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            if node.module is None:  # from .. import x: x is a module of the package
                yield from (f"{module}.{alias.name}" for alias in node.names)
            else:
                yield module


def test_every_vision_module_is_parsed():
    modules = {_module_name(p) for p in VISION.rglob("*.py")}
    assert {"hypervq_fairseq.vision.cli", "hypervq_fairseq.vision.loop", "hypervq_fairseq.vision.vqsa.train"} <= modules
    probe = list(imported_modules(VISION / "vqsa" / "train.py"))
    assert "hypervq_fairseq.files" in probe and "hypervq_fairseq.vision.loop" in probe  # relative imports resolved


def test_vision_never_imports_fairseq_or_its_glue():
    bad = {f"{p.relative_to(VISION)}: {m}" for p in VISION.rglob("*.py") for m in imported_modules(p)
           if _within(m, FORBIDDEN)}
    assert not bad, sorted(bad)


def test_vision_imports_from_the_package_only_core_quantizers_files_errors_cli():
    outside = {f"{p.relative_to(VISION)}: {m}" for p in VISION.rglob("*.py") for m in imported_modules(p)
               if _within(m, (PACKAGE,)) and not _within(m, ("hypervq_fairseq.vision",) + ALLOWED)}
    assert not outside, sorted(outside)
