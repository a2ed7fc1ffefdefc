"""Run a function right after a given module finishes importing, whenever that happens.

Why: ``import hypervq_fairseq`` must be all a user needs before fairseq loads one of our
checkpoints, yet the quantizers and the vision trainers must not pay for importing fairseq (about
1.5 s) or need it at all. So the fairseq glue is registered when fairseq itself is imported: now,
if it already is, else by this import hook, which wraps fairseq's loader once and removes itself.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings
from typing import Callable


def _call(callback: Callable[[], None], name: str) -> None:
    try:
        callback()
    except Exception as error:  # a broken fairseq must not take the quantizer core down with it
        warnings.warn(f"hypervq_fairseq could not register with {name} ({type(error).__name__}: {error}); "
                      f"the quantizers work, {name} training will not")


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, callback: Callable[[], None]):
        self.name, self.callback, self.busy = name, callback, False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(fullname)  # the finders after this one
        finally:
            self.busy = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ThenCall(spec.loader, self)
        return spec


class _ThenCall(importlib.abc.Loader):
    def __init__(self, loader, finder: _AfterImport):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        _call(self.finder.callback, self.finder.name)


def after_import(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once ``name`` is imported (at once if it already is)."""
    if name in sys.modules:
        _call(callback, name)
    else:  # where the module is not installed, the hook waits for an import that never succeeds
        sys.meta_path.insert(0, _AfterImport(name, callback))
