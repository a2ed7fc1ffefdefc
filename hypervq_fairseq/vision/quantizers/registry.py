"""The one quantizer factory of the vision trainers: VQ-VAE, ``compare`` and VQ-SA build by name here.

Names are the same everywhere (trainers, tables, ``--quantizer`` choices, checkpoints):
``hypervq``, ``gumbel``, ``kmeans``, ``hyper_kmeans``, ``hyper_embmat``. The names of the
previous release, ``hyper`` (now ``hypervq``) and ``vq`` (now ``kmeans``), still work for one
release: :func:`canonical_name` maps them, prints one line on stderr with the new name and
raises a ``DeprecationWarning``. Checkpoints written under an old name are mapped silently
(``warn=False``): the user cannot change a file they trained before.

Each trainer holds one flat set of quantizer settings (temperature, curvature, clipping,
β, ...); :func:`options_for` hands a quantizer the ones its constructor takes (its keyword-only
parameters), so a new quantizer needs no table entry to receive them.
"""
from __future__ import annotations

import inspect
import sys
import warnings
from typing import Callable, Dict, Mapping

from ...errors import InputError
from .base import VisionQuantizer
from .gumbel_vq import GumbelVQ
from .hyper_embmat_vq import HyperEmbMatVQ
from .hyper_kmeans_vq import HyperKmeansVQ
from .hyper_vq import HyperVQ
from .kmeans_vq import KmeansVQ

QUANTIZERS: Dict[str, Callable[..., VisionQuantizer]] = {}

# Old name -> new name; accepted (with a warning) for one release.
ALIASES = {"hyper": "hypervq", "vq": "kmeans"}

# Display names in the paper's tables.
PAPER_NAMES = {"kmeans": "KmeansVQ", "gumbel": "GumbelVQ", "hypervq": "HyperVQ",
               "hyper_kmeans": "HyperKmeansVQ", "hyper_embmat": "HyperEmbMatVQ"}


def canonical_name(name: str, *, warn: bool = True) -> str:
    """``name`` with an old alias replaced by the current name (and, with ``warn``, a notice)."""
    new = ALIASES.get(name)
    if new is None:
        return name
    if warn:
        message = f"quantizer name {name!r} is deprecated and will be removed in the next release; use {new!r}"
        print(f"warning: {message}", file=sys.stderr)
        warnings.warn(message, DeprecationWarning, stacklevel=2)
    return new


def register(name: str, factory: Callable[..., VisionQuantizer]) -> None:
    """Make ``factory(dim, num_codes, **options)`` available to every trainer as ``--quantizer name``."""
    if name in ALIASES or (name in QUANTIZERS and QUANTIZERS[name] is not factory):
        raise InputError(f"a vision quantizer named {name!r} is already registered")
    QUANTIZERS[name] = factory


def _factory(name: str) -> Callable[..., VisionQuantizer]:
    if name not in QUANTIZERS:
        raise InputError(f"unknown quantizer {name!r}; expected one of {sorted(QUANTIZERS)}")
    return QUANTIZERS[name]


def options_for(name: str, settings: Mapping) -> dict:
    """The entries of ``settings`` that quantizer ``name`` takes as keyword options."""
    params = inspect.signature(_factory(canonical_name(name, warn=False))).parameters
    return {k: v for k, v in settings.items() if k in params and params[k].kind is inspect.Parameter.KEYWORD_ONLY}


def build_quantizer(name: str, dim: int, num_codes: int, **options) -> VisionQuantizer:
    """The quantizer ``name`` for ``dim``-channel latents and ``num_codes`` codes."""
    return _factory(canonical_name(name))(dim, num_codes, **options)


for _name, _cls in [("kmeans", KmeansVQ), ("gumbel", GumbelVQ), ("hypervq", HyperVQ),
                    ("hyper_kmeans", HyperKmeansVQ), ("hyper_embmat", HyperEmbMatVQ)]:
    register(_name, _cls)
