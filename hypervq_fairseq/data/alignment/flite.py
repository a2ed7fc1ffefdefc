"""Synthetic English speech with its exact phone boundaries, from Debian's ``flite``.

Why: real speech can only be aligned by a model, with its errors; a synthesizer knows where
each phone it generated begins and ends. ``flite -psdur`` prints every segment it synthesized
with its end time (``pau:0.184 dh:0.236 ax:0.270 ...``), so the audio and its phone labels come
out of one call. Three 16 kHz voices give three synthetic speakers, enough for ABX across
speakers without any real-speech alignment.

Voices: ``slt`` (female), ``rms`` and ``awb`` (male) are clustergen voices whose printed end
times match the waveform: the last segment ends within 5 ms of the audio's end on an 8 s
sentence (measured here: 8.399 s printed for 8.395 s of audio, 9.541 for 9.540, 8.386 for
8.385). ``kal16`` is a diphone voice whose printed times are the planned durations, not the
waveform's (8.763 s printed for 8.652 s of audio), so it is refused: :data:`END_TOLERANCE`
checks every synthesized utterance, and a voice that drifts fails by name instead of
labelling frames with the wrong phones.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import List, Tuple

import numpy as np
import soundfile as sf

from .phn import AlignmentError, Segment, check_segments
from .phones import normalize_phone

SAMPLE_RATE = 16000
EXACT_VOICES = ("slt", "rms", "awb")
END_TOLERANCE = 0.01  # seconds between flite's last printed end time and the waveform's end


def parse_psdur(text: str) -> List[Tuple[str, float]]:
    """``"pau:0.184 dh:0.236 ..."`` -> ``[("pau", 0.184), ("dh", 0.236), ...]`` (end times)."""
    out = []
    for token in text.split():
        phone, sep, end = token.rpartition(":")
        if not sep or not phone:
            raise AlignmentError(f"unexpected flite -psdur output {token!r} (expected PHONE:END_TIME)")
        out.append((phone, float(end)))
    return out


def segments_from_ends(ends: List[Tuple[str, float]], duration: float, *, voice: str = "") -> List[Segment]:
    """Segments from consecutive end times; checks that they end with the audio (within :data:`END_TOLERANCE`)."""
    if not ends:
        raise AlignmentError(f"flite{f' voice {voice}' if voice else ''} printed no segments")
    last = ends[-1][1]
    if abs(last - duration) > END_TOLERANCE:
        raise AlignmentError(f"flite voice {voice or '?'}: its segments end at {last:.3f} s but the audio lasts "
                             f"{duration:.3f} s, so its printed times are not the waveform's; use one of "
                             f"{', '.join(EXACT_VOICES)}")
    segments, start = [], 0.0
    for phone, end in ends:
        end = min(end, duration)
        if end > start:
            segments.append(Segment(start, end, normalize_phone(phone)))
        start = max(start, end)
    check_segments(segments, f"flite voice {voice}")
    return segments


def synthesize_with_phones(text: str, voice: str = "slt") -> Tuple[np.ndarray, List[Segment]]:
    """int16 audio at 16 kHz saying ``text``, and its phone segments (seconds), from one flite call."""
    flite = shutil.which("flite")
    if flite is None:
        raise AlignmentError("synthetic aligned speech needs the 'flite' program (Debian/Ubuntu package flite)")
    if voice not in EXACT_VOICES:
        raise AlignmentError(f"flite voice {voice!r}: use one of {', '.join(EXACT_VOICES)} (16 kHz voices whose "
                             f"printed phone times match their audio)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        done = subprocess.run([flite, "-voice", voice, "-psdur", "-t", text, "-o", wav], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0 or not os.path.exists(wav):
            raise AlignmentError(f"flite -voice {voice} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        audio, rate = sf.read(wav, dtype="int16")
    if rate != SAMPLE_RATE:
        raise AlignmentError(f"flite voice {voice!r} produced {rate} Hz audio; expected {SAMPLE_RATE} Hz")
    audio = audio if audio.ndim == 1 else audio[:, 0]
    return audio, segments_from_ends(parse_psdur(done.stdout), len(audio) / rate, voice=voice)
