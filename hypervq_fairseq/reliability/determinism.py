"""Reproducible wav2vec 2.0 masks, so that a resumed run repeats the uninterrupted one.

Why: fairseq draws the time masks in ``data_utils.compute_mask_indices`` from
``np.random.default_rng(None)`` (fresh OS entropy per sample) unless the caller passes a seed, an
epoch and sample indices, which ``Wav2Vec2Model.apply_mask`` does not; its probabilistic rounding
and layer drop use numpy's global generator. So two runs from the same seed differ, and a run
resumed from a checkpoint cannot be compared with the run it continues.

:func:`seeded_numpy` makes every such draw a function of ``(seed, update)``: numpy's global
generator is seeded (and restored afterwards, like fairseq's ``numpy_seed``), and the name ``np``
inside ``fairseq.data.data_utils`` is briefly bound to a view of numpy whose
``random.default_rng(None)`` hands out children of one ``SeedSequence((seed, update))`` in call
order. Nothing else changes: explicit seeds and every other numpy function pass through.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

_LOCK = threading.Lock()


class _SeededRandom:
    """``numpy.random`` whose ``default_rng()`` without a seed is reproducible."""

    def __init__(self, entropy):
        self._sequence = np.random.SeedSequence(entropy)

    def default_rng(self, seed=None):
        if seed is None:
            seed = self._sequence.spawn(1)[0]
        return np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(np.random, name)


class _NumpyView:
    def __init__(self, random):
        self.random = random

    def __getattr__(self, name):
        return getattr(np, name)


@contextlib.contextmanager
def seeded_numpy(seed: int, update: int):
    """Within the block, fairseq's mask draws and numpy's global draws follow ``(seed, update)``."""
    from fairseq.data import data_utils

    with _LOCK:
        original = data_utils.np
        data_utils.np = _NumpyView(_SeededRandom([int(seed), int(update)]))
    state = np.random.get_state()
    np.random.seed((int(seed) * 1_000_003 + int(update)) % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)
        with _LOCK:
            data_utils.np = original
