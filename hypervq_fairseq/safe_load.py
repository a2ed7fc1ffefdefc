"""Loading checkpoints as data: weights only, and no config string ever evaluated.

Every checkpoint this package opens, speech or vision, goes through :func:`load_checkpoint_file`,
and every fairseq config read from a checkpoint goes through :func:`sanitize_config`:

* **No unpickling of code.** ``torch.load(weights_only=True)`` with an explicit allow-list of the
  few classes our own and fairseq's checkpoints hold (:data:`ALLOWED_CLASSES`). A file that needs
  anything else is refused with its name. The one way around it is the environment variable
  :data:`ALLOW_PICKLE_ENV` set to ``1``, for an old checkpoint from a source you trust.
* **No config string evaluated.** fairseq evaluates (``eval``) a few config strings (the conv layer
  specification of wav2vec 2.0, HuBERT and data2vec, optimizer tuples, the CTC criterion's
  ``wer_args``). Before fairseq sees them, each is parsed here from its syntax tree, with nothing
  but literals allowed, and replaced by the canonical text of what was read; anything else is
  refused, naming the key. OmegaConf interpolations (``${...}``) in a stored config are refused too:
  a stored config is a record of values, and an interpolation could read the environment.

``docs/security.md`` says what a checkpoint may contain and what the opt-in gives up.
"""
from __future__ import annotations

import argparse
import ast
import os
import pickle
from typing import Any, Callable, Dict, List, Tuple

from .errors import CheckpointError, ConfigError

ALLOW_PICKLE_ENV = "HYPERVQ_UNSAFE_ALLOW_PICKLED_CHECKPOINTS"

MAX_LAYERS = 4096  # a spec that expands past this is refused, not built (``[(1, 1, 1)] * 10**9``)


def pickle_allowed() -> bool:
    """True when the user opted in to full unpickling (:data:`ALLOW_PICKLE_ENV` = ``1``)."""
    return os.environ.get(ALLOW_PICKLE_ENV, "") == "1"


# Classes a checkpoint may hold besides tensors and plain containers. The fairseq glue adds
# fairseq's ``Dictionary`` when it registers (fine-tuned checkpoints store the target dictionary;
# its fields are plain lists and dicts); nothing else is needed by our own or fairseq's files.
ALLOWED_CLASSES: List[type] = []


def allow_class(cls: type) -> None:
    """Add ``cls`` to :data:`ALLOWED_CLASSES` (a class whose pickled state is plain data)."""
    if cls not in ALLOWED_CLASSES:
        ALLOWED_CLASSES.append(cls)


def load_checkpoint_file(path, *, mmap: bool = False, what: str = "checkpoint") -> Any:
    """``torch.load`` of ``path`` on the CPU, weights only, with :data:`ALLOWED_CLASSES`.

    Raises :class:`CheckpointError` naming the file: missing, a folder, unreadable, or holding an
    object that is not plain data (with how to opt in, for a file the user trusts).
    """
    import torch

    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{what} {path} not found")
    if os.path.isdir(path):
        raise CheckpointError(f"{what} {path} is a folder; give the .pt file inside it")
    if pickle_allowed():
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    try:
        with torch.serialization.safe_globals(list(ALLOWED_CLASSES)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # torch's message is several paragraphs; the one naming the refused object is what a user needs
        found = next((part.strip() for part in str(e).split("\n\n") if "GLOBAL" in part or "global" in part),
                     type(e).__name__)
        raise CheckpointError(
            f"{what} {path} holds objects that are not plain data and was not loaded ({found[:200]}). "
            f"A checkpoint is loaded as weights only, so that it cannot run code. If you trust its source, "
            f"set {ALLOW_PICKLE_ENV}=1 to load it with full unpickling (docs/security.md).") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{what} {path} cannot be read ({type(e).__name__}: {str(e)[:200]}); it may be "
                              f"truncated or not a torch file") from None


# ----------------------------------------------------------------------------- config strings fairseq evaluates


def _literal_number(node: ast.AST) -> int | float:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal_number(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    raise ValueError(f"expected a number, found {type(node).__name__}")


def _layers(node: ast.AST) -> List[Tuple[int, ...]]:
    """A list of int tuples, ``+`` of such lists, or such a list ``*`` an int (either side)."""
    if isinstance(node, ast.List):
        out = []
        for item in node.elts:
            if not isinstance(item, ast.Tuple) or not item.elts:
                raise ValueError("each layer must be a tuple of integers, e.g. (512, 10, 5)")
            values = tuple(_literal_number(e) for e in item.elts)
            if not all(type(v) is int for v in values):
                raise ValueError(f"layer {values} holds a number that is not an integer")
            out.append(values)
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        layers = _layers(node.left) + _layers(node.right)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        lst, count = (node.left, node.right) if isinstance(node.right, ast.Constant) else (node.right, node.left)
        times = _literal_number(count)
        if type(times) is not int or times < 0 or times > MAX_LAYERS:
            raise ValueError(f"a list may be repeated 0 to {MAX_LAYERS} times, found {times!r}")
        layers = _layers(lst)
        if len(layers) * times > MAX_LAYERS:
            raise ValueError(f"more than {MAX_LAYERS} layers")
        layers = layers * times
    else:
        raise ValueError(f"only lists of tuples, '+' and '* N' are allowed, found {type(node).__name__}")
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"more than {MAX_LAYERS} layers")
    return layers


def parse_layer_spec(text: str) -> List[Tuple[int, ...]]:
    """fairseq's conv layer specification, read without evaluating it.

    ``"[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2"`` -> 7 tuples. Only list displays of
    integer tuples, ``+`` between lists and ``*`` by a non-negative integer are accepted; a name,
    a call, an attribute, a subscript or any other expression raises ``ValueError``.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not a layer list ({e.msg})") from None
    return _layers(tree.body)


def canonical_layer_spec(layers: List[Tuple[int, ...]]) -> str:
    """The literal text of ``layers`` (what fairseq's ``eval`` of it gives back, and nothing else)."""
    return "[" + ", ".join("(" + ", ".join(str(v) for v in layer) + ("," if len(layer) == 1 else "") + ")"
                           for layer in layers) + "]"


def _canonical_literal(text: str) -> str:
    """A string fairseq evaluates to a tuple or number (``adam_betas``, ``wer_args``): the repr of what
    :func:`ast.literal_eval` reads, which holds literals only."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string, got {type(text).__name__}")
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError("not a literal (numbers, strings, tuples and lists only)") from None
    return repr(value)


def _canonical_layers(text: str) -> str:
    return canonical_layer_spec(parse_layer_spec(text))


# config key -> how its string is made safe; fairseq evaluates each of these where a model, an
# optimizer or a criterion is built from a config (wav2vec/wav2vec2/hubert/data2vec, adam & co, ctc)
EVALUATED_KEYS: Dict[str, Callable[[str], str]] = {
    "conv_feature_layers": _canonical_layers,
    "conv_aggregator_layers": _canonical_layers,
    "feature_encoder_spec": _canonical_layers,
    "adam_betas": _canonical_literal,
    "adamax_betas": _canonical_literal,
    "lamb_betas": _canonical_literal,
    "adafactor_eps": _canonical_literal,
    "wer_args": _canonical_literal,
}


def sanitize_config(cfg: Any, source: str) -> List[str]:
    """Make a config read from ``source`` safe for fairseq, in place; the dotted keys rewritten.

    ``cfg`` is what ``torch.load`` gave: plain dicts and lists (or an old checkpoint's
    ``argparse.Namespace``). Each :data:`EVALUATED_KEYS` string, at any depth (a fine-tuned model
    nests its pretraining config), becomes the canonical text of what the safe parser read.
    Raises :class:`ConfigError` naming the key for such a string that is not plain data, and for
    any interpolation (``${...}``) anywhere.
    """
    rewritten: List[str] = []
    _walk(cfg, "", source, rewritten)
    return rewritten


def _walk(node, prefix: str, source: str, rewritten: List[str]) -> None:
    if isinstance(node, argparse.Namespace):
        fields = vars(node)  # the live attribute dict: writing it sets the attribute
    elif isinstance(node, dict):
        fields = node
    elif isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            _walk(child, f"{prefix}{i}.", source, rewritten)
        return
    else:
        return
    for key, value in list(fields.items()):
        name = f"{prefix}{key}"
        if isinstance(value, (dict, list, tuple, argparse.Namespace)):
            _walk(value, name + ".", source, rewritten)
        elif isinstance(value, str):
            if "${" in value:
                raise ConfigError(f"{source}: config key {name} holds an interpolation ({value[:80]!r}); a stored "
                                  f"config must hold plain values")
            if key in EVALUATED_KEYS:
                fields[key] = safe_config_string(key, value, f"{source}: config key {name}")
                if fields[key] != value:
                    rewritten.append(name)


def safe_config_string(key: str, value: str, where: str) -> str:
    """The canonical, literal-only text of ``value`` for the evaluated config key ``key``; a
    :class:`ConfigError` that starts with ``where`` if it is not plain data."""
    try:
        return EVALUATED_KEYS[key](value)
    except ValueError as e:
        raise ConfigError(f"{where}={value[:120]!r} is not plain data ({e}); it was not evaluated") from None
