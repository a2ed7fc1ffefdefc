"""Selection statistics: how often the sampled code is the argmax, and how far apart the logits are."""
import math

import pytest
import torch

from hypervq_fairseq.quantizers import EuclideanGumbelQuantizer, HyperbolicVectorQuantizer
from hypervq_fairseq.quantizers.selection import per_group, selection_stats


def test_numbers_worked_out_by_hand():
    # 2 frames, 1 group, 3 codes
    logits = torch.tensor([[[3.0, 1.0, 0.0]], [[0.0, 2.0, 1.5]]])
    stats = selection_stats(logits, torch.tensor([[0], [2]]))
    assert stats["sample_is_argmax"].tolist() == [0.5]                    # frame 1 agrees, frame 2 does not
    assert stats["logit_gap"].tolist() == pytest.approx([(2.0 + 0.5) / 2])
    std1 = math.sqrt(((3 - 4 / 3) ** 2 + (1 - 4 / 3) ** 2 + (4 / 3) ** 2) / 3)
    std2 = math.sqrt(((0 - 3.5 / 3) ** 2 + (2 - 3.5 / 3) ** 2 + (1.5 - 3.5 / 3) ** 2) / 3)
    assert stats["logit_std"].tolist() == pytest.approx([(std1 + std2) / 2])
    assert selection_stats(logits)["sample_is_argmax"].tolist() == [1.0]   # eval: the argmax itself
    flat = per_group(selection_stats(torch.zeros(4, 2, 5), torch.zeros(4, 2, dtype=torch.long)))
    assert set(flat) == {f"{k}{s}" for k in ("sample_is_argmax", "logit_gap", "logit_std") for s in ("", "_g0", "_g1")}
    empty = selection_stats(torch.zeros(0, 2, 5), torch.zeros(0, 2, dtype=torch.long))
    assert all(torch.isfinite(v).all() for v in empty.values())


@pytest.mark.parametrize("cls", [HyperbolicVectorQuantizer, EuclideanGumbelQuantizer])
def test_quantizers_report_them_only_when_asked(cls):
    torch.manual_seed(0)
    x = torch.randn(4, 50, 16)
    plain = cls(16, 8, (2, 0.5, 0.9), 2, False, 8, True)
    assert not any(k.startswith("sample_is_argmax") for k in plain(x))
    q = cls(16, 8, (2, 0.5, 0.9), 2, False, 8, True, diagnostics=True).train()
    out = q(x, produce_targets=True)
    assert 0.0 < float(out["sample_is_argmax"]) <= 1.0 and float(out["logit_gap"]) >= 0
    # the agreement is measured against the codes really used (the targets)
    q.eval()
    assert float(q(x)["sample_is_argmax"]) == 1.0


def test_large_logits_make_the_sample_the_argmax():
    """With logits spread far beyond the Gumbel noise, the input decides the code."""
    torch.manual_seed(0)
    logits = torch.randn(2000, 1, 16) * 1000
    sampled = torch.nn.functional.gumbel_softmax(logits, tau=1.0, hard=True).argmax(-1)
    assert float(selection_stats(logits, sampled)["sample_is_argmax"]) > 0.99
    flat = torch.randn(2000, 1, 16) * 0.01
    sampled = torch.nn.functional.gumbel_softmax(flat, tau=1.0, hard=True).argmax(-1)
    assert float(selection_stats(flat, sampled)["sample_is_argmax"]) < 0.15   # ~ 1/16: noise decides
