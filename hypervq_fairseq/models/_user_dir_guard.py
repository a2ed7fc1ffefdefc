"""A clear error when ``user_dir`` names a second copy of this package.

fairseq imports ``common.user_dir`` / ``--user-dir`` by the folder's name. When the pip-installed
``hypervq_fairseq`` is already imported (the Hydra plugin registers it inside fairseq's
programs) and ``user_dir`` points to another folder of the same name (say, a second clone),
fairseq stops with "... is not globally unique. Please rename the directory", which suggests
the wrong fix. We wrap ``fairseq.utils.import_user_module`` (looked up by attribute at call
time by fairseq's entry points) to detect that case first and say what to do.
The file name starts with ``_`` so that fairseq's model scan does not import it as a model.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

PACKAGE = __name__.split(".")[0]


class UserDirConflictError(ImportError):
    """``user_dir`` points to a copy of the plugin other than the one already imported."""


def check_user_dir(user_dir: Optional[str]) -> None:
    """Raise :class:`UserDirConflictError` if ``user_dir`` is another copy of this package."""
    if not user_dir:
        return
    path = os.path.realpath(os.path.abspath(user_dir))
    if os.path.basename(path) != PACKAGE or PACKAGE not in sys.modules:
        return
    loaded = [os.path.realpath(p) for p in getattr(sys.modules[PACKAGE], "__path__", [])]
    if path in loaded:
        return
    here = loaded[0] if loaded else "?"
    root = os.path.dirname(path)
    has_setup = any(os.path.exists(os.path.join(root, f)) for f in ("setup.py", "pyproject.toml"))
    reinstall = f"pip install -e {root}" if has_setup else "pip install -e <the project folder holding setup.py>"
    raise UserDirConflictError(
        f"user_dir={user_dir!r} is a second copy of {PACKAGE}: the installed plugin is already "
        f"loaded from {here!r}, and fairseq cannot import two packages with the same name.\n"
        f"Fix, one of:\n"
        f"  - drop common.user_dir / --user-dir: the installed plugin registers its models by itself;\n"
        f"  - point it to the installed copy: common.user_dir={here};\n"
        f"  - or install the copy you want instead: {reinstall}"
    )


def install() -> None:
    """Put the check in front of ``fairseq.utils.import_user_module`` (idempotent)."""
    import fairseq.utils

    original = fairseq.utils.import_user_module
    if getattr(original, "_hypervq_guarded", False):
        return

    def import_user_module(args):
        check_user_dir(getattr(args, "user_dir", None))
        return original(args)

    import_user_module._hypervq_guarded = True
    import_user_module.__doc__ = original.__doc__
    fairseq.utils.import_user_module = import_user_module
