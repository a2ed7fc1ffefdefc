"""One phone set for every alignment: ARPAbet without stress, 39 phones, and silence apart.

Why one set: the forced aligner (pocketsphinx's en-us model, CMU dictionary phones) and the
synthesizer (flite's US English voices, which use a superset of those phones in lower case)
label the same sounds with different symbols. Token quality is measured against phones, so
both are mapped here to the 39 ARPAbet phones of the CMU dictionary without stress digits,
and every non-speech symbol (pauses, silence, noise fillers) becomes :data:`SILENCE`, which the
evaluation counts apart from phones.

flite's extra symbols and where they go (the CMU dictionary writes these sounds with the
39 phones): ``ax`` -> AH (schwa), ``axr`` -> ER, ``dx`` -> T (the flap of "butter", written
B AH T ER), ``nx`` -> N, ``el``/``em``/``en`` -> L/M/N (syllabic consonants), ``hv`` -> HH.
"""
from __future__ import annotations

import re

from ...errors import InputError

# Grouped by kind, so that pictures ordered this way show vowels, glides, nasals, stops,
# affricates and fricatives as blocks.
VOWELS = ("IY", "IH", "EY", "EH", "AE", "AA", "AO", "AH", "UH", "UW", "OW", "AW", "AY", "OY", "ER")
GLIDES = ("W", "Y", "R", "L")
NASALS = ("M", "N", "NG")
STOPS = ("P", "B", "T", "D", "K", "G")
AFFRICATES = ("CH", "JH")
FRICATIVES = ("F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH")
PHONES = VOWELS + GLIDES + NASALS + STOPS + AFFRICATES + FRICATIVES
PHONE_SET = frozenset(PHONES)
SILENCE = "SIL"

_EXTRA = {"AX": "AH", "AXR": "ER", "DX": "T", "NX": "N", "EL": "L", "EM": "M", "EN": "N", "HV": "HH"}
# pauses and silences of flite ("pau", "h#", "brth"), pocketsphinx ("SIL", "<sil>") and fillers ("+NSN+")
_SILENT = {"PAU", "H#", "BRTH", "SIL", "SP", "SPN", "NSN", "<SIL>", "</S>", "<S>"}
_STRESS = re.compile(r"[0-9]+$")


def normalize_phone(symbol: str) -> str:
    """A phone symbol of pocketsphinx, flite or the CMU dictionary -> one of :data:`PHONES` or :data:`SILENCE`.

    Stress digits are dropped (``AH0`` -> ``AH``), case is ignored. Raises :class:`InputError`
    for a symbol outside ARPAbet, so that a new aligner's phone set cannot slip in unmapped.
    """
    s = _STRESS.sub("", symbol.strip()).upper()
    if s in PHONE_SET:
        return s
    if s in _EXTRA:
        return _EXTRA[s]
    if s in _SILENT or (s.startswith("+") and s.endswith("+")):
        return SILENCE
    raise InputError(f"phone {symbol!r} is not ARPAbet (expected one of {' '.join(PHONES)} or a silence symbol)")


def phone_order(phones) -> list:
    """``phones`` sorted in the order of :data:`PHONES` (vowels first); unknown symbols last, by name."""
    rank = {p: i for i, p in enumerate(PHONES)}
    return sorted(phones, key=lambda p: (rank.get(p, len(rank)), p))
