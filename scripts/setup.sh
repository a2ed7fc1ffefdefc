#!/usr/bin/env bash
# Set up a fresh machine for hypervq-fairseq: system packages, a virtual environment in
# .venv (override with HYPERVQ_VENV), torch, and this package with its extras.
# Safe to run again: every step is skipped or a no-op once done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HYPERVQ_VENV:-.venv}
PY=${PYTHON:-python3}

# 1. System packages: offline real speech (Asterisk prompts, G.722), synthetic voices (flite),
#    sox for resampling, and Fashion-MNIST for the offline vision runs.
APT_PKGS="asterisk-core-sounds-en-g722 asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 \
asterisk-core-sounds-ru-g722 asterisk-core-sounds-en flite sox dataset-fashion-mnist"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "[setup] warning: missing system packages:$missing (install them with apt-get as root)" >&2
  fi
fi

# 2. Virtual environment.
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel

# 3. torch + torchvision as this kind of machine needs them (local wheels, matching pair).
#    GPU users: install your own CUDA torch first; a satisfied torch is left alone.
if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
  case "$(uname -m)" in
    x86_64) "$PIP" install -q "torch==2.14.1" "torchvision==0.29.1" ;;
    aarch64) "$PIP" install -q "torch==2.9.1" "torchvision==0.24.1" ;;
    *) "$PIP" install -q torch torchvision ;;
  esac
fi

# 4. This package, editable, with the vision and test extras (builds fairseq-fixed once, ~4 min).
"$PIP" install -q -e ".[vision,dev]"
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, fairseq, hypervq_fairseq as h; print("torch", torch.__version__, "| fairseq", fairseq.__version__, "| hypervq_fairseq", h.__version__)')"
