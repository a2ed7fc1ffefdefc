#!/usr/bin/env bash
# Step 2: validated fairseq manifests. train.tsv = train-clean-100 + train-clean-360 +
# train-other-500 (whichever exist), valid.tsv = dev-clean + dev-other, plus SUBSET.tsv each,
# and transcripts (NAME.trans) for later fine-tuning. Fails listing every bad file; pass
# --skip-bad (forwarded) to leave them out.
#   bash recipes/librispeech/02_manifest.sh /data/LibriSpeech manifests/librispeech
#   bash recipes/librispeech/02_manifest.sh /data/LibriSpeech manifests/librispeech --skip-bad
set -euo pipefail
LIBRI=${1:?usage: 02_manifest.sh LIBRISPEECH_DIR OUT_DIR [hypervq-manifest options]}
OUT=${2:?usage: 02_manifest.sh LIBRISPEECH_DIR OUT_DIR [hypervq-manifest options]}
shift 2
exec hypervq-manifest "$LIBRI" --out "$OUT" --transcripts "$@"
