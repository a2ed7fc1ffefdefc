"""PNMI, purities, entropy and bitrate on small tables whose values are worked out by hand."""
import math

import numpy as np
import pytest

from hypervq_fairseq.eval.units import contingency, entropy_bits, phone_code_scores, stream_scores, merge_to_k

# 2 phones x 3 codes, 8 frames:      code0 code1 code2
#                          phone A     3     1     0
#                          phone B     0     1     3
TABLE = np.array([[3, 1, 0], [0, 1, 3]])


def test_scores_of_a_two_phone_three_code_table():
    s = phone_code_scores(TABLE)
    # H(phone) = 1 bit (4 and 4 frames). I = 2 * 3/8 * log2((3/8) / (1/2 * 3/8)) + 2 * 1/8 * log2((1/8) / (1/2 * 2/8))
    #          = 2 * 3/8 * 1 + 2 * 1/8 * 0 = 0.75 bits, so PNMI = 0.75
    assert s["phone_entropy_bits"] == pytest.approx(1.0)
    assert s["mutual_information_bits"] == pytest.approx(0.75)
    assert s["pnmi"] == pytest.approx(0.75)
    # phone purity: each code's majority phone, (3 + 1 + 3) / 8; cluster purity: each phone's majority code, (3 + 3) / 8
    assert s["phone_purity"] == pytest.approx(7 / 8)
    assert s["cluster_purity"] == pytest.approx(6 / 8)
    # H(code) of (3, 2, 3) / 8
    assert s["code_entropy_bits"] == pytest.approx(-(2 * 3 / 8 * math.log2(3 / 8) + 2 / 8 * math.log2(2 / 8)))


def test_extreme_tables():
    one_to_one = phone_code_scores(np.diag([5, 3, 2]))
    assert one_to_one["pnmi"] == pytest.approx(1.0) and one_to_one["phone_purity"] == 1.0 == one_to_one["cluster_purity"]
    independent = phone_code_scores(np.outer([1, 3], [2, 2, 4]))  # p(phone, code) = p(phone) p(code)
    assert independent["pnmi"] == pytest.approx(0.0, abs=1e-12)
    single = phone_code_scores(np.array([[7]]))  # one phone: H(phone) = 0, nothing to explain
    assert single["pnmi"] == 0.0 and single["mutual_information_bits"] == 0.0
    with pytest.raises(ValueError, match="no labelled frames"):
        phone_code_scores(np.zeros((2, 2)))


def test_contingency_counts_label_pairs_in_sorted_order():
    phones = ["A", "A", "A", "A", "B", "B", "B", "B"]
    codes = [7, 7, 7, 9, 9, 12, 12, 12]
    table, phone_values, code_values = contingency(phones, codes)
    np.testing.assert_array_equal(table, TABLE)
    assert list(phone_values) == ["A", "B"] and list(code_values) == [7, 9, 12]
    with pytest.raises(ValueError, match="3 phone labels but 2 codes"):
        contingency(["A", "B", "C"], [1, 2])


def test_codes_used_entropy_and_bitrate_of_a_stream():
    # codes 7 (3x), 9 (2x), 12 (3x): H = 1.5613 bits per frame; at 50 frames/s, 78.06 bits/s
    s = stream_scores(np.array([7, 7, 7, 9, 9, 12, 12, 12]), frame_rate=50.0)
    h = -(2 * 3 / 8 * math.log2(3 / 8) + 2 / 8 * math.log2(2 / 8))
    assert s["codes_used"] == 3
    assert s["entropy_bits"] == pytest.approx(h) and h == pytest.approx(1.5613, abs=1e-4)
    assert s["bitrate_bps"] == pytest.approx(50 * h)
    uniform = stream_scores(np.arange(1024), frame_rate=50.0)  # 10 bits per frame
    assert uniform["entropy_bits"] == pytest.approx(10.0) and uniform["bitrate_bps"] == pytest.approx(500.0)
    assert entropy_bits(np.array([4])) == 0.0


def test_merge_to_k_keeps_the_most_frequent_codes_and_merges_the_rest():
    codes = np.array([5, 5, 5, 2, 2, 9, 7, 7, 3])  # counts: 5:3, 2:2, 7:2, 9:1, 3:1
    assert merge_to_k(codes, 4).tolist() == [5, 5, 5, 2, 2, -1, 7, 7, -1]
    assert merge_to_k(codes, 3).tolist() == [5, 5, 5, 2, 2, -1, -1, -1, -1]   # tie 2/7: the smaller value kept
    assert merge_to_k(codes, 2).tolist() == [5, 5, 5, -1, -1, -1, -1, -1, -1]
    assert merge_to_k(codes, 5).tolist() == codes.tolist()                     # 5 codes already
    with pytest.raises(ValueError, match="k must be >= 1"):
        merge_to_k(codes, 0)


def test_pnmi_at_matched_k_removes_the_advantage_of_spare_codes():
    """A system that splits each of its codes in two at random gains raw PNMI from the split alone on a
    finite set; at matched K (merging back down) that gain is gone, and both are above their floors."""
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 8, size=4000)
    noisy = np.where(rng.random(4000) < 0.5, phones, rng.integers(0, 8, size=4000))  # 8 codes, half right
    split = noisy * 50 + rng.integers(0, 50, size=4000)                                   # 400 codes, same signal
    raw = {name: phone_code_scores(contingency(phones, c)[0])["pnmi"] for name, c in (("few", noisy), ("many", split))}
    assert raw["many"] > raw["few"] + 0.05          # the bias: random splitting looks like information
    matched = phone_code_scores(contingency(phones, merge_to_k(split, 8))[0])["pnmi"]
    assert matched < raw["few"] + 0.01              # ... gone at K = 8 (merging can only lose information)
    floor = phone_code_scores(contingency(phones, split[rng.permutation(4000)])[0])["pnmi"]
    assert floor > 0.05 and raw["many"] - floor < raw["many"]   # the floor itself is far above 0 with 400 codes
