#!/usr/bin/env bash
# Step 3: wav2vec 2.0 BASE pretraining with HyperVQ (or QUANTIZER=gumbel for the stock baseline),
# 400k updates at the paper's 64-GPU batch: update_freq = 64 / (GPUS x NNODES).
# Rerun the same command to resume from SAVE_DIR/checkpoint_last.pt.
#   GPUS=8 bash recipes/librispeech/03_pretrain.sh manifests/librispeech ckpt/hypervq
#   GPUS=8 NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 bash recipes/librispeech/03_pretrain.sh manifests/librispeech ckpt/hypervq
#   GPUS=8 NNODES=4 SLURM=1 bash recipes/librispeech/03_pretrain.sh manifests/librispeech ckpt/hypervq   # inside sbatch
# Extra arguments are Hydra overrides, e.g. optimization.max_update=100000.
set -euo pipefail
MANIFEST=${1:?usage: 03_pretrain.sh MANIFEST_DIR SAVE_DIR [hydra overrides]}
SAVE=${2:?usage: 03_pretrain.sh MANIFEST_DIR SAVE_DIR [hydra overrides]}
shift 2
args=(--data "$MANIFEST" --save-dir "$SAVE" --quantizer "${QUANTIZER:-hypervq}" --gpus "${GPUS:-1}" --nnodes "${NNODES:-1}")
if [ -n "${SLURM:-}" ]; then
  args+=(--slurm --master-port "${MASTER_PORT:-29500}")
elif [ "${NNODES:-1}" -gt 1 ]; then
  args+=(--node-rank "${NODE_RANK:?set NODE_RANK}" --master-addr "${MASTER_ADDR:?set MASTER_ADDR}" --master-port "${MASTER_PORT:-29500}")
fi
[ -n "${DRY_RUN:-}" ] && args+=(--dry-run)
exec hypervq-pretrain "${args[@]}" -- "$@"
