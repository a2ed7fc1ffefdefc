#!/usr/bin/env bash
# Step 1 (optional, needs a network): fetch LibriSpeech 960 h into $DATA/LibriSpeech.
# Resumable (rerun after an interruption), SHA-256 verified, subsets already present are skipped.
#   bash recipes/librispeech/01_download.sh /data            # the 960 h + dev-clean/dev-other (~60 GB)
#   bash recipes/librispeech/01_download.sh /data dev-clean  # just some subsets
set -euo pipefail
DATA=${1:?usage: 01_download.sh DATA_DIR [SUBSET ...]}
shift
if [ $# -gt 0 ]; then
  exec hypervq-download "$DATA" --subsets "$@"
else
  exec hypervq-download "$DATA" --all-960h
fi
