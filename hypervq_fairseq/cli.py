"""What every console script shares: one-line errors, ``--debug``, Ctrl-C, checked numbers.

A console script's ``main`` builds its parser with :func:`add_debug_flag` and runs its work
through :func:`run`:

- a :class:`~hypervq_fairseq.errors.HyperVQError` (bad file, bad value, bad setting) and the
  operating system's file errors print ``PROG: error: MESSAGE`` on one line and exit 1;
- Ctrl-C (or SIGTERM, turned into the same) exits 130 with what the command says about its
  outputs (``interrupted=``), never a traceback;
- ``--debug`` or ``HYPERVQ_DEBUG=1`` shows the traceback as well.

Numeric options are checked by the argparse types below, so ``--steps -5`` or
``--batch-size 0`` stop at parse time with the allowed range in the message, before any
folder is created or any file is read.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import traceback
from typing import Callable, Optional

from .errors import HyperVQError

DEBUG_ENV = "HYPERVQ_DEBUG"


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help=f"show tracebacks of errors (or set {DEBUG_ENV}=1)")


def _debug(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(prog: str, work: Callable[[], Optional[int]], args=None, *,
        interrupted: str = "interrupted; finished outputs are kept, unfinished ones were not written") -> int:
    """Run ``work()`` and turn user errors and interrupts into a message and an exit status."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        code = work()
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    except (HyperVQError, OSError) as e:
        if _debug(args):
            traceback.print_exc()
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, HyperVQError) and e.filename is not None:
        target = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
        return f"{target}: {e.strerror or e}"
    return str(e)


# ----------------------------------------------------------------------------- checked numbers


def _number(kind, text: str, *, low=None, high=None, low_open=False, what=""):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
        hi = "" if high is None else f"<= {high}"
        rng = " and ".join(x for x in (lo, hi) if x)
        raise argparse.ArgumentTypeError(f"{value} is out of range: must be {rng}{f' ({what})' if what else ''}")
    return value


def int_at_least(low: int, what: str = "") -> Callable[[str], int]:
    """argparse type: an integer ``>= low``."""
    def parse(text: str) -> int:
        return _number(int, text, low=low, what=what)
    parse.__name__ = f"integer >= {low}"
    return parse


def int_in_range(low: int, high: int, what: str = "") -> Callable[[str], int]:
    """argparse type: an integer in ``[low, high]``."""
    def parse(text: str) -> int:
        return _number(int, text, low=low, high=high, what=what)
    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def port(what: str = "TCP port") -> Callable[[str], int]:
    """argparse type: a TCP port number, 1 to 65535."""
    return int_in_range(1, 65535, what)


def positive_float(what: str = "") -> Callable[[str], float]:
    """argparse type: a finite number ``> 0``."""
    def parse(text: str) -> float:
        return _number(float, text, low=0.0, low_open=True, what=what)
    parse.__name__ = "number > 0"
    return parse


def float_at_least(low: float, what: str = "") -> Callable[[str], float]:
    """argparse type: a finite number ``>= low``."""
    def parse(text: str) -> float:
        return _number(float, text, low=low, what=what)
    parse.__name__ = f"number >= {low}"
    return parse


def finite_float(what: str = "") -> Callable[[str], float]:
    """argparse type: any finite number (negative allowed)."""
    def parse(text: str) -> float:
        return _number(float, text, what=what)
    parse.__name__ = "finite number"
    return parse


def fraction(what: str = "") -> Callable[[str], float]:
    """argparse type: a number in ``[0, 1]``."""
    def parse(text: str) -> float:
        return _number(float, text, low=0.0, high=1.0, what=what)
    parse.__name__ = "number in [0, 1]"
    return parse
