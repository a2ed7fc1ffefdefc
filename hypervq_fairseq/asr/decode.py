"""Decode a fine-tuned CTC checkpoint on manifest subsets: greedy, and lexicon + n-gram LM beam search.

Input: a fairseq ``wav2vec_ctc`` checkpoint (``recipes/librispeech/07_finetune.sh``) and a manifest
folder with, per subset, ``SUBSET.tsv`` (audio), ``SUBSET.ltr`` (letters, which fairseq's
``audio_finetuning`` task loads with the audio) and ``SUBSET.wrd`` (the reference words), plus
the letter dictionary ``dict.ltr.txt`` the model was fine-tuned with (``hypervq-labels``).

Emissions: fairseq's own model and data path (``load_model_ensemble_and_task`` and the task's
dataset), one utterance at a time: with the BASE feature extractor (``extractor_mode: default``)
the first conv layer's GroupNorm also normalises over padding, so a padded batch changes the
emissions; one at a time gives every utterance the emissions it has alone. Log-probabilities
from ``model.get_normalized_probs``, as fairseq's ``ctc`` criterion takes them.

Greedy: argmax per frame, repeats merged, blanks (and ``</s>``) dropped, letters joined
into words at ``|``: exactly the ``ctc`` criterion's Viterbi WER during fine-tuning.

Beam search: flashlight-text's ``LexiconDecoder`` (the ``decode`` extra) with a KenLM n-gram LM (an
ARPA file: ``hypervq-build-lm``'s or LibriSpeech's official ``4-gram.arpa``) over a trie of the
lexicon's letter spellings. Scores add ``lm_weight`` x LM log-probability and ``word_score`` per
word to the CTC score. Words outside the lexicon are never emitted (``unk_score`` -inf). We call
flashlight directly rather than torchaudio's ``ctc_decoder`` (a thin wrapper of this same decoder)
because no torchaudio build matches every torch this project supports (none for torch 2.14).

The LM weight and word score can be tuned by a grid search on one development subset; a subset
whose name starts with ``test`` is refused for tuning (tuning on test data makes its WER a
training number).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import CheckpointError, HyperVQError, InputError
from ..files import atomic_write_all
from . import lm as lmlib
from .metrics import ErrorCounts

EXTRA = "decode"
INSTALL_HINT = f"pip install -e '.[{EXTRA}]' (or pip install 'hypervq-fairseq[{EXTRA}]')"


class MissingExtraError(HyperVQError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class DecodeError(InputError):
    """A manifest subset, reference file or option the decoder cannot use."""


def import_flashlight():
    """flashlight-text's decoder and dictionary modules, or a :class:`MissingExtraError` naming the extra."""
    try:
        from flashlight.lib.text import decoder, dictionary
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError as e:
        raise MissingExtraError(f"LM decoding needs flashlight-text, which is not installed ({e}): {INSTALL_HINT}") from None
    return decoder, dictionary, KenLM


# ----------------------------------------------------------------------------- emissions


@dataclass
class Subset:
    name: str
    ids: List[str]  # the audio paths of the manifest, in order
    references: List[str]
    emissions: List[np.ndarray]  # per utterance: float32 (frames, vocabulary) log-probabilities


@dataclass
class CtcModel:
    model: object
    task: object
    symbols: List[str]  # the target dictionary, by index
    blank: int
    ignore: tuple  # indices greedy decoding drops besides the blank: </s>, as fairseq's Dictionary.string
    device: str


def load_ctc_model(checkpoint, manifest_dir, device: str = "cpu") -> CtcModel:
    """The fine-tuned model of ``checkpoint`` with fairseq's task reading ``manifest_dir``."""
    from fairseq import checkpoint_utils
    from fairseq.data import Dictionary

    from ..fairseq.checkpoints import FINETUNED_MODELS, read_checkpoint

    checkpoint, manifest_dir = str(checkpoint), str(manifest_dir)
    state = read_checkpoint(checkpoint)
    name = state["cfg"].model.get("_name")
    if name not in FINETUNED_MODELS or name == "wav2vec_seq2seq":
        raise CheckpointError(f"{checkpoint} holds a '{name}' model, not a CTC fine-tuned one (wav2vec_ctc): "
                              f"fine-tune it first (recipes/librispeech/07_finetune.sh)")
    labels = state["cfg"].task.get("labels") or "ltr"
    dict_path = os.path.join(manifest_dir, f"dict.{labels}.txt")
    if not os.path.isfile(dict_path):
        raise DecodeError(f"{dict_path} not found: the manifest folder needs the fine-tuning dictionary (hypervq-labels)")
    proj = state["model"].get("w2v_encoder.proj.weight")
    n_symbols = len(Dictionary.load(dict_path))
    if proj is not None and proj.shape[0] != n_symbols:  # checked before fairseq's size-mismatch traceback
        raise DecodeError(f"{dict_path} has {n_symbols} symbols but {checkpoint} has {proj.shape[0]} outputs: "
                          f"use the dictionary the model was fine-tuned with")
    del state
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={"data": manifest_dir})
    model = models[0].eval().to(device)
    d = task.target_dictionary
    blank = d.index(task.blank_symbol) if hasattr(task, "blank_symbol") else 0  # as fairseq's ctc criterion
    return CtcModel(model, task, list(d.symbols), blank, (d.eos(),), device)  # the ctc criterion drops these too


def read_references(manifest_dir, subset: str) -> List[str]:
    path = Path(manifest_dir) / f"{subset}.wrd"
    if not path.is_file():
        raise DecodeError(f"{path} not found: write the subset's labels first (hypervq-labels {manifest_dir} --splits {subset})")
    return path.read_text(encoding="utf-8").splitlines()


def check_subset_files(manifest_dir, subset: str) -> None:
    """The manifest, letter labels and words of ``subset`` are there (else a named error)."""
    for ext in ("tsv", "ltr", "wrd"):
        path = Path(manifest_dir) / f"{subset}.{ext}"
        if not path.is_file():
            hint = "" if ext == "tsv" else f" (hypervq-labels {manifest_dir} --splits {subset} writes it)"
            raise DecodeError(f"{path} not found{hint}")


def compute_emissions(ctc: CtcModel, manifest_dir, subset: str,
                      progress: Optional[Callable[[int, int], None]] = None) -> Subset:
    """Every utterance of ``SUBSET.tsv``, in manifest order, through the model alone (batch of one)."""
    import torch

    check_subset_files(manifest_dir, subset)
    references = read_references(manifest_dir, subset)
    ctc.task.load_dataset(subset)
    dataset = ctc.task.dataset(subset)
    if len(dataset) != len(references):
        raise DecodeError(f"{subset}: {len(dataset)} utterances in {subset}.tsv but {len(references)} lines in {subset}.wrd")
    base = dataset
    while not hasattr(base, "fnames") and hasattr(base, "dataset"):
        base = base.dataset
    ids = [_name(base.fnames[i]) for i in range(len(dataset))] if hasattr(base, "fnames") else [str(i) for i in range(len(dataset))]
    emissions = []
    with torch.inference_mode():
        for i in range(len(dataset)):
            sample = dataset.collater([dataset[i]])
            net_input = {k: (v.to(ctc.device) if torch.is_tensor(v) else v) for k, v in sample["net_input"].items()
                         if k in ("source", "padding_mask")}
            out = ctc.model(**net_input)
            lprobs = ctc.model.get_normalized_probs(out, log_probs=True)  # (T, 1, V)
            emissions.append(lprobs[:, 0].float().cpu().numpy().astype(np.float32, copy=False))
            if progress:
                progress(i + 1, len(dataset))
    return Subset(subset, ids, references, emissions)


def _name(fname) -> str:
    """A manifest path as fairseq's dataset stores it (str, bytes or a pyarrow scalar)."""
    fname = fname.as_py() if hasattr(fname, "as_py") else fname
    return fname.decode("utf-8") if isinstance(fname, bytes) else str(fname)


# ----------------------------------------------------------------------------- decoders


def greedy_tokens(emissions: np.ndarray, blank: int, ignore: Sequence[int] = ()) -> List[int]:
    """Argmax per frame, repeats merged, then blanks and ``ignore`` dropped."""
    best = emissions.argmax(axis=-1)
    drop = {blank, *ignore}
    return [int(k) for k, _ in itertools.groupby(best) if int(k) not in drop]


def letters_to_words(symbols: Sequence[str]) -> str:
    """fairseq's ``post_process(..., "letter")``: letters joined, ``|`` -> space, spaces squeezed."""
    return " ".join("".join(symbols).replace(lmlib.WORD_BOUNDARY, " ").split())


def greedy_decode(emissions: np.ndarray, ctc_symbols: Sequence[str], blank: int, ignore: Sequence[int] = ()) -> str:
    return letters_to_words([ctc_symbols[i] for i in greedy_tokens(emissions, blank, ignore)])


@dataclass
class BeamOptions:
    beam: int = 500
    beam_size_token: Optional[int] = None  # default: the whole vocabulary
    beam_threshold: float = 25.0
    lm_weight: float = 2.0
    word_score: float = -1.0
    unk_score: float = -math.inf
    sil_score: float = 0.0


class LexiconBeamSearch:
    """flashlight's lexicon-constrained CTC beam search with a KenLM model.

    ``symbols`` is the CTC output alphabet by index (the fine-tuning dictionary); ``blank`` its
    blank index; the word boundary ``|`` is the decoder's silence token.
    """

    def __init__(self, lexicon: Dict[str, List[List[str]]], arpa, symbols: Sequence[str], blank: int,
                 options: BeamOptions):
        decoder, dictionary, KenLM = import_flashlight()
        self._decoder_mod = decoder
        if lmlib.WORD_BOUNDARY not in symbols:
            raise DecodeError(f"the model's dictionary has no word boundary {lmlib.WORD_BOUNDARY!r}: not letter CTC")
        self.symbols = list(symbols)
        index = {s: i for i, s in enumerate(self.symbols)}
        self.silence, self.blank = index[lmlib.WORD_BOUNDARY], blank
        words = {w: sp for w, sp in lexicon.items() if w != lmlib.UNK}
        self.word_dict = dictionary.create_word_dict({**words, lmlib.UNK: []})
        self.unk_word = self.word_dict.get_index(lmlib.UNK)
        if not os.path.isfile(str(arpa)):
            raise DecodeError(f"language model {arpa} not found")
        try:
            self.lm = KenLM(str(arpa), self.word_dict)
        except Exception as e:  # KenLM's own errors name neither the file nor the format it expected
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise DecodeError(f"language model {arpa} cannot be read as an ARPA (or KenLM binary) file: {reason}; "
                              f"hypervq-build-lm writes one") from None
        self.trie = decoder.Trie(len(self.symbols), self.silence)
        start = self.lm.start(False)
        for word, spellings in words.items():
            w = self.word_dict.get_index(word)
            _, score = self.lm.score(start, w)
            for spelling in spellings:
                self.trie.insert([index[s] for s in spelling], w, score)
        self.trie.smear(decoder.SmearingMode.MAX)
        self.set_options(options)

    def set_options(self, options: BeamOptions) -> None:
        d = self._decoder_mod
        self.options = options
        opts = d.LexiconDecoderOptions(
            beam_size=options.beam, beam_size_token=options.beam_size_token or len(self.symbols),
            beam_threshold=options.beam_threshold, lm_weight=options.lm_weight, word_score=options.word_score,
            unk_score=options.unk_score, sil_score=options.sil_score, log_add=False, criterion_type=d.CriterionType.CTC)
        self.decoder = d.LexiconDecoder(opts, self.trie, self.lm, self.silence, self.blank, self.unk_word, [], False)

    def __call__(self, emissions: np.ndarray) -> str:
        em = np.ascontiguousarray(emissions, dtype=np.float32)
        frames, vocab = em.shape
        if vocab != len(self.symbols):
            raise DecodeError(f"emissions have {vocab} outputs but the dictionary has {len(self.symbols)} symbols")
        if frames == 0:
            return ""
        best = self.decoder.decode(em.ctypes.data, frames, vocab)[0]
        return " ".join(self.word_dict.get_entry(w) for w in best.words if w >= 0)


# ----------------------------------------------------------------------------- runs, grid, report


def decode_subset(subset: Subset, decode: Callable[[np.ndarray], str]) -> List[str]:
    return [decode(e) for e in subset.emissions]


def score(subset: Subset, hypotheses: Sequence[str]) -> ErrorCounts:
    counts = ErrorCounts()
    for ref, hyp in zip(subset.references, hypotheses):
        counts.add(ref, hyp)
    return counts


def check_tuning_subset(name: str) -> None:
    if Path(name).name.lower().startswith("test"):
        raise DecodeError(f"refusing to tune the LM weight and word score on '{name}': a test subset must stay unseen; "
                          f"tune on a development subset (e.g. dev-other or valid)")


def best_grid_point(rows: Sequence[dict]) -> dict:
    """The grid row to keep: lowest WER, then lowest CER; the first such row on a tie."""
    return min(rows, key=lambda r: (r["wer"], r["cer"]))


def grid_search(subset: Subset, search: LexiconBeamSearch, lm_weights: Sequence[float], word_scores: Sequence[float],
                log: Callable[[str], None] = print) -> List[dict]:
    """WER on ``subset`` for every (LM weight, word score); ``search`` is left at the best pair."""
    check_tuning_subset(subset.name)
    base = search.options
    rows = []
    for lw, ws in itertools.product(lm_weights, word_scores):
        search.set_options(BeamOptions(**{**base.__dict__, "lm_weight": lw, "word_score": ws}))
        counts = score(subset, decode_subset(subset, search))
        rows.append({"subset": subset.name, "lm_weight": lw, "word_score": ws, "wer": counts.wer, "cer": counts.cer})
        log(f"grid {subset.name}: lm_weight {lw:g} word_score {ws:g}: WER {counts.wer:.2f} CER {counts.cer:.2f}")
    best = best_grid_point(rows)
    search.set_options(BeamOptions(**{**base.__dict__, "lm_weight": best["lm_weight"], "word_score": best["word_score"]}))
    return rows


ROW_KEYS = ("subset", "decoder", "utterances", "words", "wer", "cer", "word_errors", "char_errors", "lm_weight",
            "word_score", "beam")


def report_files(out_dir, rows: List[dict], hypotheses: Dict[tuple, tuple], meta: dict) -> Dict[Path, object]:
    """The files of one run: ``wer.tsv``, ``wer.json`` and ``hyp/SUBSET.DECODER.tsv`` (id, reference, hypothesis)."""
    out_dir = Path(out_dir)
    files: Dict[Path, object] = {}
    lines = ["\t".join(ROW_KEYS)]
    for r in rows:
        lines.append("\t".join(_cell(r.get(k)) for k in ROW_KEYS))
    files[out_dir / "wer.tsv"] = lines
    files[out_dir / "wer.json"] = json.dumps({**meta, "rows": rows}, indent=1, allow_nan=False) + "\n"
    for (subset, decoder), (ids, refs, hyps) in hypotheses.items():
        table = ["id\treference\thypothesis\tword_errors\treference_words"]
        for i, r, h in zip(ids, refs, hyps):
            table.append(f"{i}\t{r}\t{h}\t{ErrorCounts().add(r, h).word_errors}\t{len(r.split())}")
        files[out_dir / "hyp" / f"{subset}.{decoder}.tsv"] = table
    return files


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if math.isfinite(v) else str(v)
    return str(v)


@dataclass
class DecodeRun:
    checkpoint: str
    manifest_dir: str
    subsets: List[str]
    out_dir: str
    arpa: Optional[str] = None
    lexicon: Optional[str] = None
    beam: BeamOptions = field(default_factory=BeamOptions)
    greedy: bool = True
    tune_subset: Optional[str] = None
    grid_lm_weights: Sequence[float] = ()
    grid_word_scores: Sequence[float] = ()
    device: str = "cpu"


def run(cfg: DecodeRun, log: Callable[[str], None] = print) -> List[dict]:
    """Decode every subset, write the report atomically (all files or none), return its rows."""
    with_lm = cfg.arpa is not None
    if with_lm and cfg.lexicon is None:
        raise DecodeError("--lm needs --lexicon (hypervq-build-lm writes both)")
    if cfg.tune_subset is not None:
        if not with_lm:
            raise DecodeError("--grid tunes the LM weight and word score: give --lm and --lexicon")
        check_tuning_subset(cfg.tune_subset)
    if not with_lm and not cfg.greedy:
        raise DecodeError("nothing to do: --no-greedy without --lm")
    if with_lm:
        import_flashlight()
    for name in dict.fromkeys([*cfg.subsets, *([cfg.tune_subset] if cfg.tune_subset else [])]):
        check_subset_files(cfg.manifest_dir, name)  # every missing file is reported before the model is loaded
    search = None
    if with_lm:
        for what, path in (("language model", cfg.arpa), ("lexicon", cfg.lexicon)):
            if not os.path.isfile(path):
                raise DecodeError(f"{what} {path} not found (hypervq-build-lm writes lm.arpa and lexicon.txt)")
    ctc = load_ctc_model(cfg.checkpoint, cfg.manifest_dir, cfg.device)
    if with_lm:
        letters = [s for s in ctc.symbols]
        lexicon = lmlib.read_lexicon(cfg.lexicon, letters)
        t0 = time.time()
        search = LexiconBeamSearch(lexicon, cfg.arpa, ctc.symbols, ctc.blank, cfg.beam)
        log(f"LM {cfg.arpa} and lexicon {cfg.lexicon} ({len(lexicon)} words) loaded in {time.time() - t0:.1f} s")
    cache: Dict[str, Subset] = {}

    def subset_of(name: str) -> Subset:
        if name not in cache:
            t0 = time.time()
            cache[name] = compute_emissions(ctc, cfg.manifest_dir, name, progress=lambda i, n: (
                log(f"{name}: emissions of {i}/{n} utterances") if i % 500 == 0 and i < n else None))
            log(f"{name}: emissions of {len(cache[name].emissions)} utterances in {time.time() - t0:.1f} s")
        return cache[name]

    grid = []
    if cfg.tune_subset is not None:
        grid = grid_search(subset_of(cfg.tune_subset), search, cfg.grid_lm_weights, cfg.grid_word_scores, log)
        log(f"best on {cfg.tune_subset}: lm_weight {search.options.lm_weight:g} word_score {search.options.word_score:g}")
    rows, hyps = [], {}
    for name in cfg.subsets:
        sub = subset_of(name)
        decoders = []
        if cfg.greedy:
            decoders.append(("greedy", lambda e: greedy_decode(e, ctc.symbols, ctc.blank, ctc.ignore), {}))
        if search is not None:
            o = search.options
            decoders.append(("lm", search, {"lm_weight": o.lm_weight, "word_score": o.word_score, "beam": o.beam}))
        for decoder_name, decode, settings in decoders:
            t0 = time.time()
            hypotheses = decode_subset(sub, decode)
            counts = score(sub, hypotheses)
            rows.append({"subset": name, "decoder": decoder_name, **counts.as_dict(), **settings})
            hyps[(name, decoder_name)] = (sub.ids, sub.references, hypotheses)
            log(f"{name} {decoder_name}: WER {counts.wer:.2f} CER {counts.cer:.2f} ({counts.utterances} utterances, "
                f"{counts.words} words, {time.time() - t0:.1f} s)")
    meta = {"checkpoint": str(cfg.checkpoint), "manifest_dir": str(cfg.manifest_dir), "lm": cfg.arpa,
            "lexicon": cfg.lexicon, "beam": {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                                                      for k, v in cfg.beam.__dict__.items()}, "tune_subset": cfg.tune_subset,
            "grid": grid}
    written = atomic_write_all(report_files(cfg.out_dir, rows, hyps, meta))
    log(f"wrote {Path(cfg.out_dir) / 'wer.tsv'}, wer.json and {len(written) - 2} hypothesis files")
    return rows
