#!/usr/bin/env bash
# Set up a machine for hypervq-fairseq: system packages, a virtual environment in .venv
# (HYPERVQ_VENV to change it), torch, and this package with its extras (HYPERVQ_EXTRAS).
# Prints one line per step and a summary; the full output of every step goes to setup.log.
# Safe to run again: finished steps are skipped or are no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HYPERVQ_VENV:-.venv}
PY=${PYTHON:-python3}
EXTRAS=${HYPERVQ_EXTRAS:-vision,dev,units,hf,decode}
LOG=${HYPERVQ_SETUP_LOG:-setup.log}
START=$(date +%s)
: > "$LOG"

step_no=0
step() {  # step "what" command...: run it with its output in the log, one line on screen
  local what=$1; shift
  step_no=$((step_no + 1))
  local t0; t0=$(date +%s)
  printf '[setup] %d. %s ... ' "$step_no" "$what"
  echo "===== $step_no. $what: $*" >> "$LOG"
  if "$@" >> "$LOG" 2>&1; then
    echo "ok ($(( $(date +%s) - t0 )) s)"
  else
    local code=$?
    echo "FAILED (exit $code)"
    echo "[setup] step '$what' failed; the end of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit "$code"
  fi
}

# 1. System packages: offline real speech (Asterisk G.722 prompts and their English transcripts),
#    synthetic voices (flite), sox for resampling, Fashion-MNIST for the offline vision runs.
APT_PKGS="asterisk-core-sounds-en-g722 asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 \
asterisk-core-sounds-ru-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-en flite sox dataset-fashion-mnist"
apt_install() {
  local missing=""
  for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  [ -z "$missing" ] && { echo "all present"; return 0; }
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  else
    echo "missing system packages:$missing (install them with apt-get as root)"
    echo "[setup] warning: missing system packages:$missing (install them with apt-get as root)" >&2
  fi
}
step "system packages" apt_install

# 2. Virtual environment and recent packaging tools.
make_venv() { [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"; "$VENV/bin/python" -m pip install --upgrade pip setuptools wheel; }
step "virtual environment $VENV" make_venv

# 3. torch + torchvision as this kind of machine needs them (local wheels, a matching pair).
#    GPU users: install your own CUDA torch first; a torch that imports is left alone.
install_torch() {
  if "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then echo "already installed"; return 0; fi
  case "$(uname -m)" in
    x86_64) "$VENV/bin/pip" install "torch==2.14.1" "torchvision==0.29.1" ;;
    aarch64) "$VENV/bin/pip" install "torch==2.9.1" "torchvision==0.24.1" ;;
    *) "$VENV/bin/pip" install torch torchvision ;;
  esac
}
step "torch" install_torch

# 4. This package, editable, with its extras (the first time builds fairseq-fixed: ~4 min).
step "hypervq-fairseq[$EXTRAS]" "$VENV/bin/pip" install -e ".[$EXTRAS]"

# 5. Summary.
summary=$("$VENV/bin/python" -W ignore -c '
import platform, torch, fairseq, hypervq_fairseq as h
print(f"Python {platform.python_version()} | torch {torch.__version__} | fairseq {fairseq.__version__} | hypervq_fairseq {h.__version__}")
' 2>>"$LOG") || { echo "[setup] the installed package does not import; the end of $LOG:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
echo "[setup] ready in $(( $(date +%s) - START )) s: $summary | extras $EXTRAS | log $LOG"
