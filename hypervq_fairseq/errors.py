"""The errors a user can fix: bad files, bad values, bad settings.

Every such error subclasses :class:`HyperVQError` and its message names the file or the value,
what was expected, and the fix where there is one. The console scripts print it as one line
(``PROG: error: MESSAGE``) and exit with status 1; a traceback is shown only with ``--debug`` or
``HYPERVQ_DEBUG=1`` (see :mod:`hypervq_fairseq.tools.cli`). Anything else that escapes is a bug
and keeps its traceback.

Each class also derives from the built-in exception it replaces, so that code catching
``ValueError`` or ``RuntimeError`` around the project's functions keeps working.
"""
from __future__ import annotations


class HyperVQError(Exception):
    """Base class: a problem in the user's input or settings, described in the message."""


class InputError(HyperVQError, ValueError):
    """A value, option or file content that cannot be used (range and meaning in the message)."""


class NonFiniteInputError(InputError):
    """Input frames holding NaN or Inf, which have no code (the message says where they are)."""


class ConfigError(InputError):
    """A config value no model can train with; the message names the ``group.key``."""


class ManifestError(HyperVQError, RuntimeError):
    """A manifest, audio tree or transcript that cannot be used."""


class AudioInputError(ManifestError):
    """An audio file that cannot be used: missing, unreadable, wrong rate, not mono, non-finite, ..."""


class BadAudioFilesError(AudioInputError):
    """Files listed in a manifest that cannot be used; ``files`` holds ``(path, reason)`` pairs."""

    def __init__(self, message: str, files=()):
        super().__init__(message)
        self.files = list(files)


class CheckpointError(HyperVQError, RuntimeError):
    """A checkpoint that is missing, truncated, or holds the wrong kind of model."""


class OutputError(HyperVQError, RuntimeError):
    """An output path that cannot be written, or an existing output that does not match this run."""
