#!/usr/bin/env bash
# Step 7: CTC fine-tuning of a HyperVQ-pretrained wav2vec 2.0 (fairseq's audio_finetuning task and
# wav2vec_ctc model, letter targets). CONFIG is one of configs/finetune: base_10h, base_100h,
# base_960h (wav2vec 2.0 paper settings, 8 GPUs: update_freq = 8 / GPUS), hypervq_ctc_tiny (CPU smoke
# test) or hypervq_ctc_demo (CPU speech-recognition demo, recipe 09).
# The installed plugin registers hypervq_wav2vec2 inside fairseq, so model.w2v_path loads directly.
# Rerun the same command to resume from SAVE_DIR/checkpoint_last.pt. Extra arguments: Hydra overrides.
#   GPUS=8 bash recipes/librispeech/07_finetune.sh base_100h manifests/ft100h ckpt/hypervq/checkpoint_best.pt ckpt/ft100h
#   GPUS=2 bash recipes/librispeech/07_finetune.sh base_10h manifests/ft10h ckpt/hypervq/checkpoint_best.pt ckpt/ft10h
#   bash recipes/librispeech/07_finetune.sh hypervq_ctc_demo runs/demo_asr/manifest runs/demo_asr/pretrain/checkpoint_last.pt runs/demo_asr/ctc
set -euo pipefail
CONFIG=${1:?usage: 07_finetune.sh CONFIG MANIFEST_DIR PRETRAINED_CHECKPOINT SAVE_DIR [hydra overrides]}
DATA=${2:?usage: 07_finetune.sh CONFIG MANIFEST_DIR PRETRAINED_CHECKPOINT SAVE_DIR [hydra overrides]}
W2V=${3:?usage: 07_finetune.sh CONFIG MANIFEST_DIR PRETRAINED_CHECKPOINT SAVE_DIR [hydra overrides]}
SAVE=${4:?usage: 07_finetune.sh CONFIG MANIFEST_DIR PRETRAINED_CHECKPOINT SAVE_DIR [hydra overrides]}
shift 4
# FINETUNE_CONFIGS: another folder of fine-tuning configs (default: the installed package's)
CONFIG_DIR=${FINETUNE_CONFIGS:-$(python -c 'import os, hypervq_fairseq.configs as c; print(os.path.join(os.path.dirname(c.__file__), "finetune"))')}
args=(--config-dir "$CONFIG_DIR" --config-name "$CONFIG" "task.data=$(realpath "$DATA")"
      "model.w2v_path=$(realpath "$W2V")" "checkpoint.save_dir=$(realpath -m "$SAVE")"
      "hydra.run.dir=$(realpath -m "$SAVE")/hydra")
if [ "$CONFIG" != hypervq_ctc_tiny ] && [ "$CONFIG" != hypervq_ctc_demo ]; then
  GPUS=${GPUS:-1}
  if [ $((8 % GPUS)) -ne 0 ]; then echo "07_finetune.sh: GPUS must divide 8, got $GPUS" >&2; exit 2; fi
  args+=("distributed_training.distributed_world_size=$GPUS" "optimization.update_freq=[$((8 / GPUS))]"
         "common.tensorboard_logdir=$(realpath -m "$SAVE")/tb")
fi
mkdir -p "$SAVE"
exec fairseq-hydra-train "${args[@]}" "$@"
