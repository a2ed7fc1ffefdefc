"""ABX phone discrimination of discrete codes on triphones, with ``zerospeech-libriabx2``'s triplets and DTW.

The task (Schatz et al. 2013; ZeroSpeech, Libri-light): items are triphones taken from the phone
alignment (a phone with a phone on each side, no silence between). For a context
(previous, next phone) and two centre phones A ≠ B, an item X of category A is compared with
another item of A and an item of B: the comparison is an error when X is closer to B. Distances
between items are DTW alignments of their frame sequences, normalised by path length; ties
count half. Errors are averaged over contexts, then speakers, then (A, B) pairs. Within
speaker, A, B and X share one speaker; across speaker, X comes from another speaker.

Codes are compared as one-hot vectors under the cosine distance (the usual way to score discrete
units): two frames are at distance 0 when their codes are equal and at the same positive
distance otherwise. Here that is computed directly as ``code_a != code_b`` on the code ids,
which orders every comparison exactly as the one-hot cosine does, without a one-hot tensor:
the package's own loader would build ``items × frames × codes`` floats (gigabytes at
LibriSpeech scale with a few hundred codes), and each group comparison would hold
``N_a × N_b × S_a × S_b × codes`` products. Memory is therefore linear in the number of items
(one float per frame) plus, per comparison, ``max_size_group² × S_max²`` floats for the
frame distances, independent of the input's length.

What is used from ``zrc_abx2`` (0.9.8): the item-file reader and feature loader (which frames
an item covers), the within-context triplet iterators (which A, B, X are compared, with its
seeded sampling of at most ``max_size_group`` items per group and ``max_x_across`` X speakers)
and the DTW comparison of a group (``loc_dtw``). Its top-level ``EvalABX`` is not used because
it fixes the distance to one of its named float distances and renormalises the features; the
averaging it does afterwards is written out in :func:`_average` (same order: contexts, then
speakers, then pairs).

Frame times: the package places frame ``i`` at ``(i + 0.5)·shift`` seconds and gives an item
the frames ``ceil(onset/shift − 0.5) ≤ i < floor(offset/shift − 0.5)``, which leaves out the last
frame whose centre lies inside the span; our frames are centred at ``i·shift + receptive_field/2``.
Item times are written so that an item covers exactly the frames whose centre lies in
``[onset, offset)``, the rule of the phone labels (:func:`package_times`).
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import tempfile
import warnings
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from ..data.alignment.phn import Segment
from ..data.alignment.phones import SILENCE

CONTIGUOUS = 1e-6  # seconds: segments closer than this are neighbours
EDGE = 1e-7  # seconds: a centre exactly on an item's onset is inside, on its offset outside


class Item(NamedTuple):
    utterance: str
    onset: float
    offset: float
    phone: str
    previous: str
    next: str
    speaker: str


class ABXResult(NamedTuple):
    error: Optional[float]  # None when no triplet could be formed
    pairs: int  # (A, B) phone pairs averaged
    triplet_groups: int  # groups of (A, B, X) compared


def triphone_items(alignments: Dict[str, Sequence[Segment]], speakers: Dict[str, str]) -> List[Item]:
    """Every phone with a contiguous phone on each side (no silence, no gap), spanning the three."""
    items = []
    for utt, segments in alignments.items():
        for prev, cur, nxt in zip(segments, segments[1:], segments[2:]):
            if SILENCE in (prev.phone, cur.phone, nxt.phone):
                continue
            if cur.start - prev.end > CONTIGUOUS or nxt.start - cur.end > CONTIGUOUS:
                continue
            items.append(Item(utt, prev.start, nxt.end, cur.phone, prev.phone, nxt.phone, speakers[utt]))
    return items


def code_mismatch(a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """Frame distances ``(N1, N2, S1, S2)`` between code sequences ``(N1, S1, 1)`` and ``(N2, S2, 1)``: 1 where codes differ."""
    n1, s1, _ = a1.shape
    n2, s2, _ = a2.shape
    return (a1.view(n1, 1, s1, 1) != a2.view(1, n2, 1, s2)).float()


def package_times(onset: float, offset: float, *, frame_shift: float, first_centre: float) -> tuple:
    """Item times for the package's loader such that it takes the frames with centre in ``[onset, offset)``.

    Frame ``i`` (centre ``c_i = first_centre + i·shift``) is taken when ``i ≥ onset'/shift − 0.5`` and
    ``i + 1 ≤ offset'/shift − 0.5``; with ``onset' = onset − d − ε`` and ``offset' = offset − d + shift − ε``,
    ``d = first_centre − shift/2``, these read ``c_i ≥ onset`` and ``c_i < offset`` (ε keeps a centre that
    falls exactly on an edge on the right side of it despite rounding).
    """
    d = first_centre - 0.5 * frame_shift
    return onset - d - EDGE, offset - d + frame_shift - EDGE


def _average(cells: Dict[tuple, List[float]]) -> ABXResult:
    """Mean over contexts (and X speakers) per (speaker, A, B), then over speakers per (A, B), then over pairs."""
    per_speaker = defaultdict(list)
    for (speaker, a, b), errors in cells.items():
        per_speaker[(a, b)].append(float(np.mean(errors)))
    if not per_speaker:
        return ABXResult(None, 0, 0)
    pair_errors = [float(np.mean(v)) for v in per_speaker.values()]
    return ABXResult(float(np.mean(pair_errors)), len(pair_errors), sum(len(v) for v in cells.values()))


def abx_error(codes: Dict[str, np.ndarray], items: Sequence[Item], *, frame_shift: float, first_centre: float,
              across: bool = False, max_size_group: int = 10, max_x_across: int = 5, seed: int = 3459) -> ABXResult:
    """ABX error of the code sequences ``codes[utterance]`` (``(T,)`` ints) on triphone ``items``.

    ``frame_shift``: seconds between frames; ``first_centre``: centre of frame 0 in seconds.
    ``across``: X from another speaker than A and B. Seeded: the same inputs give the same score.
    """
    if not items:
        return ABXResult(None, 0, 0)
    from zrc_abx2.ABX_src import abx_group_computation as abx_g
    from zrc_abx2.ABX_src.ABXDataset.abx_feature_loader import ABXFeatureLoader
    from zrc_abx2.ABX_src.ABXIterators.abx_iterator_factory import IteratorFactory
    from zrc_abx2.ABX_src.models import Pooling

    ids = {utt: f"u{i:07d}" for i, utt in enumerate(sorted({it.utterance for it in items}))}
    by_id = {ids[u]: u for u in ids}
    state = random.getstate()  # the iterators seed Python's global generator; leave it as it was
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        item_file = os.path.join(tmp, "triphones.item")
        with open(item_file, "w", encoding="utf-8") as f:
            f.write("#file onset offset #phone prev-phone next-phone speaker\n")
            for it in items:
                onset, offset = package_times(it.onset, it.offset, frame_shift=frame_shift, first_centre=first_centre)
                f.write(f"{ids[it.utterance]} {onset:.9f} {offset:.9f} {it.phone} {it.previous} {it.next} "
                        f"{it.speaker}\n")

        def features(file_id: str) -> torch.Tensor:
            return torch.as_tensor(np.asarray(codes[by_id[file_id]], dtype=np.float32)).view(-1, 1)

        try:
            dataset = ABXFeatureLoader(Pooling.NONE, item_file, [(i, i) for i in by_id], features, 1.0 / frame_shift,
                                       False).loadFromFileData()
        except RuntimeError:  # torch.cat of nothing: no item covers a frame
            return ABXResult(None, 0, 0)
        try:
            iterator = IteratorFactory.get_iterator(dataset, "within", "across" if across else "within",
                                                    max_size_group, seed)
            if across:
                iterator.max_x = max_x_across
            cells: Dict[tuple, List[float]] = defaultdict(list)
            for group in iterator:
                coords, error = abx_g.loc_dtw(group, code_mismatch, iterator.symmetric, Pooling.NONE)
                cells[tuple(coords[:3])].append(error)  # (speaker, A, B); context and X speaker averaged
        finally:
            random.setstate(state)
    return _average(cells)
