#!/usr/bin/env bash
# Step 8: Viterbi (greedy CTC) decoding and WER with fairseq-validate and the ctc criterion:
# argmax per frame, repeats merged, blanks dropped, letters joined into words at '|', WER
# against the .wrd words. One line per subset in SAVE_DIR/wer.tsv. (fairseq's
# examples/speech_recognition/new/infer.py is in the installed package but does not import on
# Python 3.11: a dataclass with a mutable default; LM decoding would also need flashlight.)
# MAX_TOKENS (default 3200000, as in configs/finetune/base_*.yaml) sets the batches: with
# extractor_mode default (BASE), padding enters the first conv layer's GroupNorm, so the WER moves
# slightly with batch composition; use the fine-tuning config's max_tokens to reproduce its valid_wer.
# DEVICE=cpu or cuda (default: cuda when torch sees a GPU).
#   bash recipes/librispeech/08_decode.sh manifests/ft100h ckpt/ft100h/checkpoint_best.pt dev-clean dev-other test-clean test-other
#   bash recipes/librispeech/08_decode.sh runs/demo_asr/manifest runs/demo_asr/ctc/checkpoint_best.pt valid
set -euo pipefail
DATA=${1:?usage: 08_decode.sh MANIFEST_DIR FINETUNED_CHECKPOINT SUBSET...}
CKPT=${2:?usage: 08_decode.sh MANIFEST_DIR FINETUNED_CHECKPOINT SUBSET...}
shift 2
[ $# -gt 0 ] || set -- valid
DEVICE=${DEVICE:-$(python -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}
device=()
[ "$DEVICE" = cpu ] && device=(--cpu)
out="$(dirname "$CKPT")/wer.tsv"
tmp="$out.partial"
printf 'subset\twer\tletter_error_rate\tutterances\n' > "$tmp"
subsets=$(IFS=,; echo "$*")   # one fairseq-validate for all subsets: the model loads once
log=$(fairseq-validate "$DATA" --path "$CKPT" --task audio_finetuning --labels ltr --valid-subset "$subsets" \
      --criterion ctc --post-process letter --max-tokens "${MAX_TOKENS:-3200000}" \
      --required-batch-size-multiple 1 "${device[@]}" 2>&1) \
  || { echo "$log" | tail -30 >&2; exit 1; }
for subset in "$@"; do
  line=$(echo "$log" | grep "valid on '$subset' subset" | tail -1)
  wer=$(echo "$line" | sed -n 's/.*| wer \([0-9.]*\) |.*/\1/p')
  uer=$(echo "$line" | sed -n 's/.*| uer \([0-9.]*\) |.*/\1/p')
  [ -n "$wer" ] || { echo "$log" | tail -30 >&2; echo "08_decode.sh: no WER for '$subset' in fairseq-validate's output" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\n' "$subset" "$wer" "$uer" "$(($(wc -l < "$DATA/$subset.tsv") - 1))" >> "$tmp"
  echo "$subset: WER $wer (letter error rate $uer)"
done
mv "$tmp" "$out"
echo "wrote $out"
