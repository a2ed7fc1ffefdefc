#!/usr/bin/env bash
# Step 10: WER and CER with hypervq-decode, greedy and with a lexicon + 4-gram LM beam search (flashlight;
# the decode extra, installed by scripts/setup.sh). One row per subset and decoder in OUT/wer.tsv and
# OUT/wer.json, hypotheses beside references in OUT/hyp/ (OUT: the checkpoint's folder/decode_lm).
# The LM, in LM_DIR (default lm/librispeech):
#   - LibriSpeech's official 4-gram: download 4-gram.arpa.gz from openslr.org/11, gunzip it to
#     LM_DIR/4-gram.arpa; its lexicon is LM_DIR/lexicon.txt if you put one there (letter spellings,
#     WORD<TAB>W O R D |), else hypervq-build-lm writes one for the ARPA's words;
#   - otherwise hypervq-build-lm counts a 4-gram on MANIFEST_DIR/train.wrd into LM_DIR (lm.arpa, lexicon.txt).
# TUNE: the subset on which --grid picks the LM weight and word score (default dev-other if decoded,
# else the first subset not named test*; test subsets are never used for tuning; TUNE=none: no tuning,
# the default LM weight and word score). GRID_LM_WEIGHTS / GRID_WORD_SCORES: other grids than
# hypervq-decode's defaults (comma-separated).
#   bash recipes/librispeech/10_decode_lm.sh manifests/ft100h ckpt/ft100h/checkpoint_best.pt dev-clean dev-other test-clean test-other
#   LM_DIR=runs/demo_asr/lm bash recipes/librispeech/10_decode_lm.sh runs/demo_asr/manifest runs/demo_asr/ctc/checkpoint_best.pt valid
set -euo pipefail
DATA=${1:?usage: 10_decode_lm.sh MANIFEST_DIR FINETUNED_CHECKPOINT SUBSET...}
CKPT=${2:?usage: 10_decode_lm.sh MANIFEST_DIR FINETUNED_CHECKPOINT SUBSET...}
shift 2
[ $# -gt 0 ] || set -- valid
LM_DIR=${LM_DIR:-lm/librispeech}
if [ -f "$LM_DIR/4-gram.arpa" ]; then
  ARPA=$LM_DIR/4-gram.arpa
  [ -f "$LM_DIR/lexicon.txt" ] || hypervq-build-lm "$DATA" --out "$LM_DIR" --arpa "$ARPA"
else
  ARPA=$LM_DIR/lm.arpa
  [ -f "$ARPA" ] && [ -f "$LM_DIR/lexicon.txt" ] || hypervq-build-lm "$DATA" --out "$LM_DIR" --order "${ORDER:-4}"
fi
TUNE=${TUNE:-}
if [ -z "$TUNE" ]; then
  for s in "$@"; do [ "$s" = dev-other ] && TUNE=dev-other; done
  if [ -z "$TUNE" ]; then for s in "$@"; do case "$s" in test*) ;; *) TUNE=$s; break ;; esac; done; fi
fi
grid=()
[ -n "$TUNE" ] && [ "$TUNE" != none ] && grid=(--grid "$TUNE")
[ -n "${GRID_LM_WEIGHTS:-}" ] && grid+=("--grid-lm-weights=$GRID_LM_WEIGHTS")
[ -n "${GRID_WORD_SCORES:-}" ] && grid+=("--grid-word-scores=$GRID_WORD_SCORES")
exec hypervq-decode "$CKPT" "$DATA" --subsets "$@" --lm "$ARPA" --lexicon "$LM_DIR/lexicon.txt" "${grid[@]}" \
  --out "$(dirname "$CKPT")/decode_lm"
