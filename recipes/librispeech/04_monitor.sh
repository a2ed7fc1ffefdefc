#!/usr/bin/env bash
# Step 4: compare runs while they train (or after): codebook perplexity curves and the selection
# statistics (how often the sampled code is the argmax, i.e. the input rather than Gumbel noise
# picks it) of each SAVE_DIR's TensorBoard logs, side by side, written to OUT_DIR as PNG + HTML.
# Cheap: it only reads the event files, so run it as often as you like.
#   bash recipes/librispeech/04_monitor.sh plots ckpt/hypervq ckpt/gumbel
#   SPLIT=valid bash recipes/librispeech/04_monitor.sh plots ckpt/hypervq ckpt/gumbel
set -euo pipefail
OUT=${1:?usage: 04_monitor.sh OUT_DIR SAVE_DIR [SAVE_DIR...]}
shift
[ $# -gt 0 ] || { echo "usage: 04_monitor.sh OUT_DIR SAVE_DIR [SAVE_DIR...]" >&2; exit 2; }
runs=() labels=()
for save in "$@"; do
  runs+=("$save/tb")
  labels+=(--label "$(basename "$save")")
done
mkdir -p "$OUT"
split=(${SPLIT:+--split "$SPLIT"})
hypervq-plot "${runs[@]}" "${labels[@]}" "${split[@]}" -o "$OUT/perplexity.png" --html "$OUT/perplexity.html"
hypervq-plot "${runs[@]}" "${labels[@]}" "${split[@]}" --selection -o "$OUT/selection.png"
echo "wrote $OUT/perplexity.png, $OUT/perplexity.html and $OUT/selection.png"
