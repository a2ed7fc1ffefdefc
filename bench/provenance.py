"""The last line of every table a bench script writes: which machine, which commit, which command."""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance_line() -> str:
    """``machine: ..., N CPUs; commit C (uncommitted changes); command: `python bench/X.py ARGS` ``."""
    commit = _git("rev-parse", "--short", "HEAD") or "?"
    dirty = " (uncommitted changes)" if _git("status", "--porcelain") else ""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(REPO) if script.is_relative_to(REPO) else script.name
    return (f"machine: {platform.platform()}, {os.cpu_count()} CPUs; commit {commit}{dirty}; "
            f"command: `python {shlex.join([str(name), *sys.argv[1:]])}`")
