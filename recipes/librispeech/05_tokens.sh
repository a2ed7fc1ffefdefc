#!/usr/bin/env bash
# Step 5: HyperVQ tokens. The code ids of every utterance of each manifest (one line per
# utterance, keyed by its manifest path), then a codebook report (usage histograms per group,
# dataset perplexity, dead codes) of the last one. Interrupted? Run it again: finished
# utterances are skipped. COMBINE=1 writes one id per frame (V^G symbols) instead of G ids.
#   bash recipes/librispeech/05_tokens.sh ckpt/hypervq/checkpoint_best.pt manifests/librispeech tokens/hypervq
#   SPLITS="dev-clean dev-other" DEVICE=cuda COMBINE=1 bash recipes/librispeech/05_tokens.sh CKPT MANIFEST_DIR OUT_DIR
set -euo pipefail
CKPT=${1:?usage: 05_tokens.sh PRETRAINED_CHECKPOINT MANIFEST_DIR OUT_DIR}
MANIFEST=${2:?usage: 05_tokens.sh PRETRAINED_CHECKPOINT MANIFEST_DIR OUT_DIR}
OUT=${3:?usage: 05_tokens.sh PRETRAINED_CHECKPOINT MANIFEST_DIR OUT_DIR}
SPLITS=${SPLITS:-train valid}
DEVICE=${DEVICE:-$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}
mkdir -p "$OUT"
last=""
for split in $SPLITS; do
  hypervq-tokenize "$CKPT" "$MANIFEST/$split.tsv" --out "$OUT/$split.tok" --device "$DEVICE" ${COMBINE:+--combine}
  last=$split
done
hypervq-codebook-report --tokens "$OUT/$last.tok" --out "$OUT/report_$last" --title "HyperVQ codebook, $last"
