"""Frame-to-phone mapping: the phone covering each frame's centre, worked out by hand at segment edges."""
import numpy as np

from hypervq_fairseq.data.alignment import UNCOVERED, Segment, frame_centres, frame_phones


def test_centres_of_the_stock_conv_stack_are_20ms_apart_starting_at_12_5ms():
    c = frame_centres(4, stride=320, receptive_field=400, sample_rate=16000)
    np.testing.assert_allclose(c, [0.0125, 0.0325, 0.0525, 0.0725])


def test_a_centre_on_a_boundary_belongs_to_the_segment_starting_there():
    centres = frame_centres(6, stride=320, receptive_field=400, sample_rate=16000)  # .0125 .0325 ... .1125
    segments = [Segment(0.0125, 0.0525, "AH"),  # starts exactly at frame 0's centre, ends exactly at frame 2's
                Segment(0.0525, 0.0600, "K"),  # frame 2's centre is its start: K, not AH
                Segment(0.0800, 0.1000, "SIL")]  # a gap 0.06-0.08 holds frame 3 (0.0725)
    assert frame_phones(segments, centres) == ["AH", "AH", "K", UNCOVERED, "SIL", UNCOVERED]


def test_frames_before_the_first_and_after_the_last_segment_are_uncovered():
    centres = np.array([0.01, 0.05, 0.2])
    assert frame_phones([Segment(0.02, 0.1, "S")], centres) == [UNCOVERED, "S", UNCOVERED]
    assert frame_phones([], centres) == [UNCOVERED] * 3
