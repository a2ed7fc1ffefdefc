"""Who speaks an utterance, and which speakers of a corpus speak the language of their transcripts.

ABX across speakers needs a speaker per utterance; LibriSpeech and the demo corpus encode it in
the file name (``SPEAKER-CHAPTER-UTT.flac``). Forced alignment needs transcripts that say what
the audio says: in the demo corpus only the English voice (and flite's voices) has them, the
French, Italian and Russian prompts carry the English text they were translated from.
"""
from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Optional, Set

_LIBRISPEECH_NAME = re.compile(r"^([^-]+)-[^-]+-[^-]+$")
DEMO_METADATA = "demo_corpus.json"


def speaker_of(rel: str) -> str:
    """``dev-clean/1272/128104/1272-128104-0000.flac`` -> ``1272``; otherwise the folder two levels up, or ``-``."""
    path = PurePosixPath(rel)
    m = _LIBRISPEECH_NAME.match(path.stem)
    if m:
        return m.group(1)
    parents = path.parts[:-1]
    return parents[-2] if len(parents) >= 2 else (parents[-1] if parents else "-")


def english_speakers(root) -> Optional[Set[str]]:
    """For a demo corpus (``demo_corpus.json`` in ``root``): the speakers whose transcripts are verbatim English.

    That is the Asterisk ``en`` voice(s) and flite's synthetic voices. ``None`` for any other
    corpus: every speaker is taken to speak its transcript.
    """
    from pathlib import Path

    meta = Path(root) / DEMO_METADATA
    if not meta.is_file():
        return None
    speakers = json.loads(meta.read_text(encoding="utf-8")).get("speakers", {})
    return {spk for spk, about in speakers.items() if " voice en" in about or about.startswith("flite voice")}
