"""Which phone each model frame belongs to: the phone segment that covers the frame's centre.

A wav2vec 2.0 frame ``t`` is computed from input samples ``[t·stride, t·stride + receptive_field)``
(the conv feature extractor has no padding); for the stock stack, stride 320 and receptive field
400 samples at 16 kHz, frames are 20 ms apart and frame ``t`` is centred at
``0.02·t + 0.0125`` s. Its phone is the segment ``[start, end)`` that contains that centre:
half-open, so a centre exactly on a boundary belongs to the segment that starts there.

A frame whose centre lies in a silence segment is labelled :data:`~.phones.SILENCE`; one whose
centre no segment covers (before the first segment, after the last, in a gap) is labelled
:data:`UNCOVERED`. Both are kept out of the phone statistics and counted apart.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .phn import Segment

UNCOVERED = ""


def frame_centres(num_frames: int, *, stride: int, receptive_field: int, sample_rate: int) -> np.ndarray:
    """Centre of each frame in seconds, ``(num_frames,)`` float64."""
    return (np.arange(num_frames, dtype=np.float64) * stride + receptive_field / 2.0) / sample_rate


def frame_phones(segments: Sequence[Segment], centres: np.ndarray) -> List[str]:
    """The phone covering each centre (``SIL`` for silence, :data:`UNCOVERED` where nothing does)."""
    if not len(segments):
        return [UNCOVERED] * len(centres)
    starts = np.array([s.start for s in segments])
    ends = np.array([s.end for s in segments])
    # the last segment starting at or before the centre; it covers the centre if it ends after it
    idx = np.searchsorted(starts, centres, side="right") - 1
    covered = (idx >= 0) & (centres < ends[np.clip(idx, 0, None)])
    return [segments[i].phone if ok else UNCOVERED for i, ok in zip(idx.tolist(), covered.tolist())]
