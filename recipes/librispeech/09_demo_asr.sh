#!/usr/bin/env bash
# Step 9, offline on CPU: a small speech recognizer that works, on real speech, with the same steps
# as for LibriSpeech. Corpus (hypervq-demo-corpus --asr: Debian's English Asterisk voice, its
# prompts split by a hash of their words into train / dev / held-apart test, plus flite voices
# speaking the training sentences) -> manifests + labels (06, SET=demo-asr) -> tiny HyperVQ
# pretraining on train (or PRETRAINED=a checkpoint) -> tokens + codebook report of dev (05) ->
# CTC fine-tuning (07, configs/finetune/hypervq_ctc_demo.yaml; checkpoint picked on dev) ->
# greedy WER and letter error rate of dev (valid) and the held-apart test (08) -> greedy and trigram-LM
# WER/CER with every sentence beside its reference (10; LM weights tuned on dev, never on test).
# About 18 CPU-minutes from an empty folder, one thread; docs/demo_asr.md has the measured rates.
# MAX_UTTERANCES caps each subset of the corpus (a smoke test of every step, not a recognizer).
#   bash recipes/librispeech/09_demo_asr.sh                                   # everything under runs/demo_asr
#   PRETRAINED=runs/demo_asr/pretrain/checkpoint_last.pt bash recipes/librispeech/09_demo_asr.sh runs/again
#   PRETRAIN_UPDATES=20 FINETUNE_UPDATES=20 FLITE_VOICES=slt bash recipes/librispeech/09_demo_asr.sh runs/quick
#   MAX_UTTERANCES=8 FLITE_VOICES= PRETRAIN_UPDATES=2 FINETUNE_UPDATES=2 bash recipes/librispeech/09_demo_asr.sh runs/smoke   # every step, 1-2 min
# PRETRAIN_CONFIG=gumbel_demo pretrains with fairseq's stock quantizer; PRETRAIN_UPDATES=0 gives
# no pretraining: one update at learning rate 0 saves the randomly initialised model (seed
# SEED) as the checkpoint that fine-tuning starts from. SEED (default 1) seeds both trainings.
# DEMO_CONFIGS / FINETUNE_CONFIGS: other config folders than the installed package's (e.g. a
# checkout's configs/demo and configs/finetune). Rerunning resumes: the corpus is reused,
# training restarts from checkpoint_last.pt, tokens skip finished utterances.
set -euo pipefail
W=${1:-runs/demo_asr}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
SEED=${SEED:-1}
PRETRAIN_UPDATES=${PRETRAIN_UPDATES:-400}
export DEVICE=cpu   # the demo's configs train on CPU; tokens and decoding follow
if [ -z "${DEMO_CONFIGS:-}" ] || [ -z "${FINETUNE_CONFIGS:-}" ]; then
  configs=$(python -c 'import os, hypervq_fairseq.configs as c; print(os.path.dirname(c.__file__))')
  DEMO_CONFIGS=${DEMO_CONFIGS:-$configs/demo}
  export FINETUNE_CONFIGS=${FINETUNE_CONFIGS:-$configs/finetune}
fi
mkdir -p "$W"
hypervq-demo-corpus "$W/corpus" --asr ${FLITE_VOICES+--flite-voices $FLITE_VOICES} ${MAX_UTTERANCES:+--max-utterances "$MAX_UTTERANCES"}
bash "$HERE/06_labels.sh" demo-asr "$W/corpus" "$W/manifest"
if [ -z "${PRETRAINED:-}" ]; then
  updates=("optimization.max_update=$PRETRAIN_UPDATES")
  [ "$PRETRAIN_UPDATES" -gt 0 ] || updates=("optimization.max_update=1" "optimization.lr=[0.0]")
  fairseq-hydra-train --config-dir "$DEMO_CONFIGS" --config-name "${PRETRAIN_CONFIG:-hypervq_demo}" \
    "task.data=$(realpath "$W/manifest")" "checkpoint.save_dir=$(realpath -m "$W/pretrain")" "${updates[@]}" \
    "common.seed=$SEED" dataset.disable_validation=true "hydra.run.dir=$(realpath -m "$W/pretrain")/hydra"
  PRETRAINED=$W/pretrain/checkpoint_last.pt
fi
SPLITS=valid bash "$HERE/05_tokens.sh" "$PRETRAINED" "$W/manifest" "$W/tokens"
bash "$HERE/07_finetune.sh" hypervq_ctc_demo "$W/manifest" "$PRETRAINED" "$W/ctc" \
  "optimization.max_update=${FINETUNE_UPDATES:-3000}" "common.seed=$SEED"
MAX_TOKENS=260000 bash "$HERE/08_decode.sh" "$W/manifest" "$W/ctc/checkpoint_best.pt" valid test   # hypervq_ctc_demo's batches
# greedy and trigram-LM WER/CER, one utterance at a time, sentences in W/ctc/decode_lm/hyp/ (the LM
# counted on the training transcripts; its weight and word score tuned on valid, never on test; the
# grid leaves out LM weights below 1.5, which dev chose in none of the nine runs, seeds 1-3, of docs/demo_asr.md)
LM_DIR="$W/lm" ORDER=3 TUNE=valid GRID_LM_WEIGHTS=1.5,2,3 GRID_WORD_SCORES=-1,0,1 bash "$HERE/10_decode_lm.sh" "$W/manifest" "$W/ctc/checkpoint_best.pt" valid test
head -n 11 "$W/ctc/decode_lm/hyp/test.greedy.tsv"
