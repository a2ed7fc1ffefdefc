"""Triphone ABX of discrete codes on constructed cases whose error is known."""
import random

import numpy as np
import pytest

from hypervq_fairseq.data.alignment import Segment
from hypervq_fairseq.eval.abx import abx_error, triphone_items

SHIFT, FIRST = 0.02, 0.0125  # the stock conv stack: frame t centred at 0.02 t + 0.0125 s
BIG = 10 ** 6  # code ids this large would need a million-wide one-hot vector: none is built


def corpus(code_of, *, onset=0.0, offset=0.18, speakers=("s1", "s1", "s2", "s2")):
    """Utterances "K AE T" and "K IH T", 3 frames per phone; ``code_of(category, frame)`` gives each frame's code."""
    segments, codes, spk = {}, {}, {}
    for i, who in enumerate(speakers):
        for mid in ("AE", "IH"):
            key = f"{who}/{mid}{i}"
            segments[key] = [Segment(onset, 0.06, "K"), Segment(0.06, 0.12, mid), Segment(0.12, offset, "T")]
            codes[key] = np.array([code_of(mid, t) for t in range(10)])
            spk[key] = who
    return segments, codes, spk


def score(segments, codes, spk, **kw):
    items = triphone_items(segments, spk)
    return abx_error(codes, items, frame_shift=SHIFT, first_centre=FIRST, **kw)


def test_identical_categories_give_half_and_separated_ones_give_zero():
    same = score(*corpus(lambda mid, t: BIG + t % 3))
    assert same.error == pytest.approx(0.5) and same.pairs == 2  # (AE, IH) and (IH, AE)
    apart = score(*corpus(lambda mid, t: BIG + (1 if mid == "AE" else 2) if 3 <= t < 6 else BIG))
    assert apart.error == 0.0
    across = score(*corpus(lambda mid, t: BIG + (1 if mid == "AE" else 2) if 3 <= t < 6 else BIG), across=True)
    assert across.error == 0.0 and across.pairs == 2
    wrong = score(*corpus(lambda mid, t: BIG + 7 if 3 <= t < 6 else BIG))  # every frame alike again
    assert wrong.error == pytest.approx(0.5)


def test_an_item_holds_exactly_the_frames_whose_centre_lies_in_its_span():
    # item span [0.011, 0.171): frame 0 (centre 0.0125) is inside, frame 8 (centre 0.1725) is not; with
    # span [0.011, 0.18) frame 8 is inside. (Left to itself, the package would put frame 0 at 0.01, outside,
    # and leave frame 8 out of [0.011, 0.18) as the last frame of the span.)
    def only(frame):
        return lambda mid, t: (1 if mid == "AE" else 2) if t == frame else 0
    assert score(*corpus(only(0), onset=0.011, offset=0.171)).error == 0.0
    assert score(*corpus(only(8), onset=0.011, offset=0.171)).error == pytest.approx(0.5)
    assert score(*corpus(only(8), onset=0.011, offset=0.18)).error == 0.0  # now frame 8's centre is inside
    # centres exactly on the edges: frame 0 at the onset 0.0125 is inside, frame 8 at the offset 0.1725 is not
    assert score(*corpus(only(0), onset=0.0125, offset=0.1725)).error == 0.0
    assert score(*corpus(only(8), onset=0.0125, offset=0.1725)).error == pytest.approx(0.5)


def test_triphones_need_contiguous_phone_neighbours_and_a_result_needs_triplets():
    segments = {"u": [Segment(0, 0.1, "SIL"), Segment(0.1, 0.2, "K"), Segment(0.2, 0.3, "AE"),
                      Segment(0.3, 0.4, "T"), Segment(0.45, 0.5, "S"), Segment(0.5, 0.6, "IH")]}
    items = triphone_items(segments, {"u": "s"})
    assert [(i.previous, i.phone, i.next, i.onset, i.offset) for i in items] == [("K", "AE", "T", 0.1, 0.4)]
    one = abx_error({"u": np.zeros(30, dtype=int)}, items, frame_shift=SHIFT, first_centre=FIRST)
    assert one.error is None and one.pairs == 0  # one item: no A-B pair
    assert abx_error({}, [], frame_shift=SHIFT, first_centre=FIRST).error is None


def test_scores_are_seeded_and_leave_pythons_random_state_alone():
    rng = np.random.default_rng(0)
    segments, codes, spk = corpus(lambda mid, t: int(rng.integers(0, 3)), speakers=("s1",) * 12 + ("s2",) * 12)
    random.seed(123)
    before = random.random()
    random.seed(123)
    a = score(segments, codes, spk, max_size_group=3, seed=1)
    assert random.random() == before
    b = score(segments, codes, spk, max_size_group=3, seed=1)
    assert a == b and 0.0 < a.error < 1.0
