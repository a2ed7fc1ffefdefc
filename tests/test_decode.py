"""Speech recognition from a fine-tuned CTC checkpoint: WER/CER, the Kneser-Ney LM and lexicon
(hypervq-build-lm), greedy and lexicon + LM beam-search decoding (hypervq-decode), and its report."""
import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest

from hypervq_fairseq.asr import lm
from hypervq_fairseq.asr.decode import (BeamOptions, DecodeError, LexiconBeamSearch, check_tuning_subset,
                                        compute_emissions, greedy_decode, load_ctc_model)
from hypervq_fairseq.asr.metrics import error_rates
from hypervq_fairseq.tools import build_lm as build_lm_tool
from hypervq_fairseq.tools import decode as decode_tool
from helpers.runs import quiet_env

# ----------------------------------------------------------------------------- WER and CER


def test_wer_and_cer_by_hand():
    refs = ["THE CAT SAT", "A DOG"]
    hyps = ["THE CAT SAT DOWN", "A BOG"]
    c = error_rates(refs, hyps)
    # words: one insertion + one substitution over 5 reference words
    assert (c.word_errors, c.words) == (2, 5) and c.wer == pytest.approx(40.0)
    # characters (spaces included): " DOWN" is 5 insertions over 11, D->B 1 over 5: 6 / 16
    assert (c.char_errors, c.chars) == (6, 16) and c.cer == pytest.approx(37.5)
    assert error_rates(["A B"], [""]).wer == pytest.approx(100.0)
    assert error_rates([""], [""]).as_dict()["wer"] is None  # no reference words: no rate, not NaN


# ----------------------------------------------------------------------------- the LM


def test_kneser_ney_matches_a_hand_computed_model(tmp_path):
    """Corpus "A B" and "A", bigram. Unigram continuation counts A 1, B 1, </s> 2 (sum 4); both orders
    fall back to discounts 0.5, 1, 1.5 (no n-gram is seen 3 times). gamma() = (0.5 + 0.5 + 1) / 4 = 0.5,
    spread over 4 types (A, B, </s>, <unk>): p(A) = 0.5/4 + 0.125 = 0.25, p(</s>) = 1/4 + 0.125 = 0.375,
    p(<unk>) = 0.125. Bigrams: p(A|<s>) = (2-1)/2 + (1/2) 0.25 = 0.625; p(B|A) = 0.5/2 + (1/2) 0.25 = 0.375;
    p(</s>|A) = 0.25 + 0.5 * 0.375 = 0.4375; p(</s>|B) = 0.5/1 + 0.5 * 0.375 = 0.6875; every gamma 0.5."""
    model = lm.kneser_ney([["A", "B"], ["A"]], 2)
    assert model.discounts == [lm.FALLBACK_DISCOUNTS, lm.FALLBACK_DISCOUNTS]
    expect_uni = {"A": 0.25, "B": 0.25, "</s>": 0.375, "<unk>": 0.125}
    assert {g[0]: p for g, p in model.prob[0].items()} == pytest.approx(expect_uni)
    expect_bi = {("<s>", "A"): 0.625, ("A", "B"): 0.375, ("A", "</s>"): 0.4375, ("B", "</s>"): 0.6875}
    assert model.prob[1] == pytest.approx(expect_bi)
    assert model.backoff[0] == pytest.approx({("<s>",): 0.5, ("A",): 0.5, ("B",): 0.5})
    assert model.p("B", ["<s>"]) == pytest.approx(0.5 * 0.25)  # unseen bigram: gamma(<s>) p(B)

    arpa = lm.write_arpa(model, tmp_path / "lm.arpa").read_text().splitlines()
    assert arpa[:3] == ["\\data\\", "ngram 1=5", "ngram 2=4"]
    assert f"{math.log10(0.625):.7g}\t<s> A" in arpa and f"-99\t<s>\t{math.log10(0.5):.7g}" in arpa
    assert arpa[-1] == "\\end\\" and lm.arpa_words(tmp_path / "lm.arpa") == ["A", "B"]


def random_corpus(n=300, seed=0):
    rng = random.Random(seed)
    words = "THE CAT SAT ON A MAT DOG RAN FAST DOWN".split()
    return [[rng.choice(words) for _ in range(rng.randint(1, 7))] for _ in range(n)]


def test_kneser_ney_probabilities_sum_to_one():
    model = lm.kneser_ney(random_corpus(), 4)
    assert model.discounts[2] != lm.FALLBACK_DISCOUNTS  # enough data to estimate at least one order
    vocab = model.vocabulary + ["</s>", "<unk>"]
    for history in [(), ("THE",), ("<s>",), ("<s>", "THE"), ("CAT", "SAT", "ON"), ("NEVER", "SEEN"), ("DOWN", "DOWN", "DOWN")]:
        assert sum(model.p(w, history) for w in vocab) == pytest.approx(1.0, abs=1e-9), history


def test_kenlm_reads_our_arpa_with_our_probabilities(tmp_path):
    pytest.importorskip("flashlight.lib.text", reason="the decode extra (flashlight-text) is not installed")
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict

    model = lm.kneser_ney(random_corpus(), 4)
    path = lm.write_arpa(model, tmp_path / "lm.arpa")
    words = model.vocabulary + ["</s>", "<unk>"]
    d = create_word_dict({w: [[w]] for w in words})
    kenlm = KenLM(str(path), d)
    state, history, ours, theirs = kenlm.start(False), ["<s>"], 0.0, 0.0
    for w in "THE CAT SAT ON DOG DOG FAST MAT".split():
        state, s = kenlm.score(state, d.get_index(w))
        theirs += s
        ours += math.log10(model.p(w, history))
        history.append(w)
    state, s = kenlm.finish(state)
    theirs += s
    ours += math.log10(model.p("</s>", history))
    assert theirs == pytest.approx(ours, abs=1e-4)


def test_lexicon_spells_words_as_the_letter_targets(tmp_path):
    lines, missing = lm.lexicon_lines(["CAT", "DON'T", "CAT", "NAÏVE", "<unk>"], ["|", "A", "C", "T", "D", "O", "N", "'"])
    assert lines == ["CAT\tC A T |", "DON'T\tD O N ' T |"] and missing == ["NAÏVE"]
    (tmp_path / "lex.txt").write_text("\n".join(lines) + "\n")
    assert lm.read_lexicon(tmp_path / "lex.txt", ["|", "A", "C", "T", "D", "O", "N", "'"]) == {
        "CAT": [["C", "A", "T", "|"]], "DON'T": [["D", "O", "N", "'", "T", "|"]]}
    (tmp_path / "phones.txt").write_text("CAT\tK AE1 T\n")
    with pytest.raises(lm.LMError, match="not in the letter dictionary"):
        lm.read_lexicon(tmp_path / "phones.txt", ["|", "A", "C", "T"])
    for bad in ("CAT\tC A T\n", "CAT\tC | A T |\n"):       # no boundary; one inside the word
        (tmp_path / "nosep.txt").write_text(bad)
        with pytest.raises(lm.LMError, match=r"nosep\.txt line 1: .*must end with the word boundary '\|'"):
            lm.read_lexicon(tmp_path / "nosep.txt", ["|", "A", "C", "T"])


# ----------------------------------------------------------------------------- beam search on known emissions

SYMBOLS = ["<s>", "<pad>", "</s>", "<unk>", "|", "A", "B", "C", "T"]  # fairseq's letter dictionary layout; blank = <s>


def emissions_spelling(text: str, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Log-probabilities whose best path spells ``text`` (letters, ``|`` between words), blanks between."""
    rng = np.random.default_rng(seed)
    frames = []
    for ch in text:
        for k in (SYMBOLS.index(ch), 0):
            row = np.full(len(SYMBOLS), -8.0) + noise * rng.standard_normal(len(SYMBOLS))
            row[k] = 0.0
            frames.append(row)
    x = np.array(frames, dtype=np.float64)
    return (x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(np.float32)


@pytest.mark.parametrize("content", ["", "\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\tCAT\n", "not an lm at all\n"])
def test_a_malformed_truncated_or_empty_arpa_is_named(tmp_path, content):
    pytest.importorskip("flashlight.lib.text", reason="the decode extra (flashlight-text) is not installed")
    from hypervq_fairseq.asr.decode import DecodeError

    arpa = tmp_path / "broken.arpa"
    arpa.write_text(content)
    lexicon = {"CAT": [lm.spell("CAT")]}
    with pytest.raises(DecodeError, match=r"language model .*broken\.arpa cannot be read as an ARPA"):
        LexiconBeamSearch(lexicon, arpa, SYMBOLS, 0, BeamOptions(beam=5, lm_weight=1.0, word_score=0.0))


def test_lm_decoding_emits_only_lexicon_words(tmp_path):
    pytest.importorskip("flashlight.lib.text", reason="the decode extra (flashlight-text) is not installed")
    model = lm.kneser_ney([["CAT", "BAT"], ["TAB", "CAT"], ["CAT"]], 3)
    arpa = lm.write_arpa(model, tmp_path / "lm.arpa")
    lexicon = {w: [lm.spell(w)] for w in ("CAT", "BAT", "TAB")}
    search = LexiconBeamSearch(lexicon, arpa, SYMBOLS, 0, BeamOptions(beam=50, lm_weight=1.0, word_score=0.0))
    # the acoustics say "CAB" (not a word of the lexicon) between two real words
    em = emissions_spelling("CAT|CAB|BAT|")
    assert greedy_decode(em, SYMBOLS, 0) == "CAT CAB BAT"
    words = search(em).split()
    assert words and set(words) <= set(lexicon), words
    assert words[0] == "CAT" and words[-1] == "BAT"
    assert search(emissions_spelling("TAB|CAT|", noise=1.0)) == "TAB CAT"


# ----------------------------------------------------------------------------- options, refusals, missing extra


def test_grid_refuses_test_subsets(tmp_path, capsys):
    for name in ("test", "test-clean", "TEST_other", "sub/test-other"):
        with pytest.raises(DecodeError, match="refusing to tune"):
            check_tuning_subset(name)
    check_tuning_subset("dev-other")
    check_tuning_subset("valid")
    # the command refuses before it loads anything (the checkpoint does not even exist)
    code = decode_tool.main([str(tmp_path / "none.pt"), str(tmp_path), "--subsets", "dev-clean", "--lm", "x.arpa",
                             "--lexicon", "x.txt", "--grid", "test-clean", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "refusing to tune" in err[0] and "test-clean" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_missing_extra_is_one_line_naming_it(tmp_path):
    """Where flashlight-text is not installed (simulated: its import fails), --lm stops with one line."""
    code = ("import sys; sys.modules['flashlight'] = None\n"
            "from hypervq_fairseq.tools.decode import main\n"
            f"sys.exit(main([{str(tmp_path / 'none.pt')!r}, {str(tmp_path)!r}, '--lm', 'x.arpa', '--lexicon', 'x.txt']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=quiet_env(), timeout=300)
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert err[0].startswith("hypervq-decode: error:") and "flashlight-text" in err[0] and ".[decode]" in err[0]


# ----------------------------------------------------------------------------- a real fine-tuned checkpoint


@pytest.mark.slow
def test_greedy_equals_fairseq_ctc_viterbi(ctc_checkpoint, finetune_manifest):
    """On the same emissions, greedy decoding gives fairseq's own argmax-collapse words (Dictionary.string +
    post_process "letter"), and the ctc criterion's word error count."""
    import torch
    from fairseq.criterions.ctc import CtcCriterion, CtcCriterionConfig
    from fairseq.data.data_utils import post_process

    ctc = load_ctc_model(ctc_checkpoint, finetune_manifest)
    subset = compute_emissions(ctc, finetune_manifest, "valid")
    d = ctc.task.target_dictionary
    ours = [greedy_decode(e, ctc.symbols, ctc.blank, ctc.ignore) for e in subset.emissions]
    for e, hyp in zip(subset.emissions, ours):
        toks = torch.from_numpy(e).argmax(dim=-1).unique_consecutive()
        theirs = post_process(d.string(toks[toks != ctc.blank].tolist()), "letter")
        assert hyp == " ".join(theirs.split())

    criterion = CtcCriterion(CtcCriterionConfig(post_process="letter", zero_infinity=True), ctc.task)
    dataset = ctc.task.dataset("valid")
    w_errors = w_total = 0
    with torch.inference_mode():
        for i in range(len(dataset)):
            _, _, log = criterion(ctc.model, dataset.collater([dataset[i]]))
            w_errors += log["w_errors"]
            w_total += log["w_total"]
    counts = error_rates(subset.references, ours)
    assert (counts.word_errors, counts.words) == (w_errors, w_total)


@pytest.mark.slow
def test_build_lm_and_decode_end_to_end(ctc_checkpoint, finetune_manifest, tmp_path, capsys):
    pytest.importorskip("flashlight.lib.text", reason="the decode extra (flashlight-text) is not installed")
    lm_dir, out = tmp_path / "lm", tmp_path / "decode"
    assert build_lm_tool.main([str(finetune_manifest), "--out", str(lm_dir), "--order", "3"]) == 0
    train_words = set((finetune_manifest / "train.wrd").read_text().split())
    lexicon = lm.read_lexicon(lm_dir / "lexicon.txt", lm.read_letters(finetune_manifest / "dict.ltr.txt"))
    assert set(lexicon) == train_words and all(sp == [lm.spell(w)] for w, sp in lexicon.items())
    assert set(lm.arpa_words(lm_dir / "lm.arpa")) == train_words

    code = decode_tool.main([str(ctc_checkpoint), str(finetune_manifest), "--subsets", "valid", "train",
                             "--lm", str(lm_dir / "lm.arpa"), "--lexicon", str(lm_dir / "lexicon.txt"), "--beam", "20",
                             "--grid", "valid", "--grid-lm-weights=0,2", "--grid-word-scores=-1,1",
                             "--out", str(out), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err[-3000:]
    report = json.loads((out / "wer.json").read_text())
    tsv = [line.split("\t") for line in (out / "wer.tsv").read_text().splitlines()]
    assert [(r[0], r[1]) for r in tsv[1:]] == [("valid", "greedy"), ("valid", "lm"), ("train", "greedy"), ("train", "lm")]
    assert [(r["subset"], r["decoder"]) for r in report["rows"]] == [tuple(r[:2]) for r in tsv[1:]]
    assert len(report["grid"]) == 4 and {g["subset"] for g in report["grid"]} == {"valid"}
    best = min(report["grid"], key=lambda g: (g["wer"], g["cer"]))
    for row in report["rows"]:
        name = row["subset"]
        refs = (finetune_manifest / f"{name}.wrd").read_text().splitlines()
        hyp = [line.split("\t") for line in (out / "hyp" / f"{name}.{row['decoder']}.tsv").read_text().splitlines()[1:]]
        assert [h[1] for h in hyp] == refs and row["utterances"] == len(refs)
        counts = error_rates(refs, [h[2] for h in hyp])  # the reported rates are those of the written hypotheses
        assert (row["wer"], row["cer"]) == (pytest.approx(counts.wer), pytest.approx(counts.cer))
        if row["decoder"] == "lm":
            assert (row["lm_weight"], row["word_score"]) == (best["lm_weight"], best["word_score"])
            assert {w for h in hyp for w in h[2].split()} <= train_words  # only lexicon words
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.slow
def test_pretraining_checkpoint_is_refused_in_one_line(pretrained_checkpoint, finetune_manifest, tmp_path, capsys):
    code = decode_tool.main([str(pretrained_checkpoint), str(finetune_manifest), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "hypervq_wav2vec2" in err[0] and "fine-tune it first" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_wrong_dictionary_is_named(ctc_checkpoint, finetune_manifest, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("valid.tsv", "valid.ltr", "valid.wrd"):
        (data / name).write_bytes((finetune_manifest / name).read_bytes())
    (data / "dict.ltr.txt").write_text("| 10\nA 5\n")  # another fine-tuning's dictionary
    code = decode_tool.main([str(ctc_checkpoint), str(data), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "dict.ltr.txt has 6 symbols" in err[0], err
