#!/usr/bin/env bash
# Step 9, offline on CPU: the whole token and speech-recognition path on the built-in demo corpus
# (real speech from Debian's Asterisk prompts in LibriSpeech's layout; no download). It runs the
# same steps as for LibriSpeech: corpus -> manifests + labels (06) -> tiny HyperVQ pretraining
# (or PRETRAINED=an existing checkpoint, e.g. hypervq-demo's) -> tokens + codebook report (05)
# -> CTC fine-tuning (07, configs/finetune/hypervq_ctc_tiny.yaml) -> Viterbi WER (08) -> greedy and LM
# WER and CER (10).
#   bash recipes/librispeech/09_demo_asr.sh                                   # everything under runs/demo_asr
#   PRETRAINED=runs/demo/hypervq/ckpt/checkpoint_last.pt bash recipes/librispeech/09_demo_asr.sh
#   PRETRAIN_UPDATES=20 FINETUNE_UPDATES=20 MAX_MINUTES=10 bash recipes/librispeech/09_demo_asr.sh runs/quick
# Rerunning resumes: the corpus is reused, training restarts from checkpoint_last.pt, tokens skip
# finished utterances. The WER of a model this small after minutes of CPU training is close to
# 100%: the point is that every step runs.
set -euo pipefail
W=${1:-runs/demo_asr}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$W"
hypervq-demo-corpus "$W/corpus" ${MAX_MINUTES:+--max-minutes "$MAX_MINUTES"}
bash "$HERE/06_labels.sh" demo "$W/corpus" "$W/manifest"
if [ -z "${PRETRAINED:-}" ]; then
  DEMO_CONFIGS=$(python -c 'import os, hypervq_fairseq.configs as c; print(os.path.join(os.path.dirname(c.__file__), "demo"))')
  fairseq-hydra-train --config-dir "$DEMO_CONFIGS" --config-name hypervq_demo "task.data=$(realpath "$W/manifest")" \
    "checkpoint.save_dir=$(realpath -m "$W/pretrain")" "optimization.max_update=${PRETRAIN_UPDATES:-400}" \
    "hydra.run.dir=$(realpath -m "$W/pretrain")/hydra"
  PRETRAINED=$W/pretrain/checkpoint_last.pt
fi
bash "$HERE/05_tokens.sh" "$PRETRAINED" "$W/manifest" "$W/tokens"
bash "$HERE/07_finetune.sh" hypervq_ctc_tiny "$W/manifest" "$PRETRAINED" "$W/ctc" \
  "optimization.max_update=${FINETUNE_UPDATES:-300}"
MAX_TOKENS=400000 bash "$HERE/08_decode.sh" "$W/manifest" "$W/ctc/checkpoint_best.pt" valid   # hypervq_ctc_tiny's batches
# greedy and trigram-LM WER/CER (the LM counted on the demo's train.wrd; no tuning: valid is the only subset)
LM_DIR="$W/lm" ORDER=3 TUNE=none bash "$HERE/10_decode_lm.sh" "$W/manifest" "$W/ctc/checkpoint_best.pt" valid
