#!/usr/bin/env bash
# Step 6: manifests and labels for CTC fine-tuning on LibriSpeech: SET is 10h, 100h or 960h.
#   10h  : train = Libri-light's limited-resource set (librispeech_finetuning/1h + 9h; set LIBRILIGHT_FT)
#   100h : train = train-clean-100          960h : train = train-clean-100 + -360 + train-other-500
# Every SET also gets dev-clean, dev-other, test-clean, test-other manifests (those present) and
# valid.tsv (= dev-clean + dev-other); then .wrd, .ltr and dict.ltr.txt for each
# (SPM=VOCAB adds sentencepiece units: .spm, dict.spm.txt, spm.model).
# Libri-light's 1h/9h folders hold LibriSpeech-style .trans.txt files, read the same way.
#   bash recipes/librispeech/06_labels.sh 100h /data/LibriSpeech manifests/ft100h
#   LIBRILIGHT_FT=/data/librispeech_finetuning bash recipes/librispeech/06_labels.sh 10h /data/LibriSpeech manifests/ft10h
#   SPM=1000 bash recipes/librispeech/06_labels.sh 960h /data/LibriSpeech manifests/ft960h
# Any LibriSpeech-layout tree works, e.g. the offline demo corpus (SET=demo, subsets train-demo/dev-demo)
# or the speech-recognition demo's corpus (SET=demo-asr: train-asr -> train, dev-asr -> valid,
# the held-apart test-asr -> test; hypervq-demo-corpus --asr).
set -euo pipefail
SET=${1:?usage: 06_labels.sh 10h|100h|960h|demo|demo-asr LIBRISPEECH_DIR OUT_DIR}
LIBRI=${2:?usage: 06_labels.sh 10h|100h|960h|demo|demo-asr LIBRISPEECH_DIR OUT_DIR}
OUT=${3:?usage: 06_labels.sh 10h|100h|960h|demo|demo-asr LIBRISPEECH_DIR OUT_DIR}
case "$SET" in
  10h)  hypervq-manifest "${LIBRILIGHT_FT:?set LIBRILIGHT_FT to the unpacked librispeech_finetuning folder}" \
          --out "$OUT" --train-subsets 1h 9h ;;
  100h) hypervq-manifest "$LIBRI" --out "$OUT" --train-subsets train-clean-100 ;;
  960h) hypervq-manifest "$LIBRI" --out "$OUT" --train-subsets train-clean-100 train-clean-360 train-other-500 ;;
  demo) hypervq-manifest "$LIBRI" --out "$OUT" --train-subsets train-demo --valid-subsets dev-demo ;;
  demo-asr) hypervq-manifest "$LIBRI" --out "$OUT" --train-subsets train-asr --valid-subsets dev-asr ;;
  *) echo "06_labels.sh: SET must be 10h, 100h, 960h, demo or demo-asr, got '$SET'" >&2; exit 2 ;;
esac
splits="train valid"
if [ "$SET" = demo-asr ]; then
  # the held-apart test prompts: test.tsv only (never in valid.tsv, so never used to pick a checkpoint)
  python - "$LIBRI" "$OUT" <<'PY'
import os, shutil, sys, tempfile
from pathlib import Path
from hypervq_fairseq.data.manifest import build_manifests
root, out = Path(sys.argv[1]), Path(sys.argv[2])
tmp = Path(tempfile.mkdtemp(dir=out))
try:
    print(build_manifests(root, tmp, train_subsets=[], valid_subsets=["test-asr"], progress=False).summary_table())
    os.replace(tmp / "test-asr.tsv", out / "test.tsv")
finally:
    shutil.rmtree(tmp)
PY
  splits="train valid test"
elif [ "$SET" != demo ]; then
  # evaluation sets from the LibriSpeech tree: valid.tsv = dev-clean + dev-other (10h: not written
  # above), SUBSET.tsv for each dev/test set; train.tsv is left alone
  python - "$LIBRI" "$OUT" <<'PY'
import os, shutil, sys, tempfile
from pathlib import Path
from hypervq_fairseq.data.manifest import build_manifests
root, out = Path(sys.argv[1]), Path(sys.argv[2])
missing = [s for s in ("dev-clean", "dev-other") if not (root / s).is_dir()]
if missing:
    sys.exit(f"06_labels.sh: {root} lacks {', '.join(missing)}")
if not (out / "valid.tsv").exists():
    print(build_manifests(root, out, train_subsets=[], valid_subsets=["dev-clean", "dev-other"], progress=False).summary_table())
tests = [s for s in ("test-clean", "test-other") if (root / s).is_dir()]
if tests:
    tmp = Path(tempfile.mkdtemp(dir=out))
    try:
        print(build_manifests(root, tmp, train_subsets=[], valid_subsets=tests, progress=False).summary_table())
        for s in tests:
            os.replace(tmp / f"{s}.tsv", out / f"{s}.tsv")
    finally:
        shutil.rmtree(tmp)
PY
  for s in dev-clean dev-other test-clean test-other; do [ -f "$OUT/$s.tsv" ] && splits="$splits $s"; done
fi
hypervq-labels "$OUT" --splits $splits ${SPM:+--sentencepiece "$SPM"}
