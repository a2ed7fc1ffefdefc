#!/usr/bin/env bash
# The GPU check: one table of every GPU claim (precision, speed, memory, fp16 training with a kill
# and a resume, tokens on the GPU, torch.compile), under 8 minutes on one GPU.
#
#   bash bench/gpu_check.sh                      # on a machine with a CUDA GPU and a CUDA build of torch
#   bash bench/gpu_check.sh --out gpu_check.md   # the table also goes to this file (default runs/gpu_check-DATE.md)
#   bash bench/gpu_check.sh --cpu-smoke          # the same steps at toy sizes on CPU, a few minutes
#
# Uses the project's .venv if there is one, else $PYTHON, else python3. Exit status 0 when every
# row passed; each step's failure is a row of the table, never an abort. See bench/gpu_check.py.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x "$root/.venv/bin/python" ]]; then
    py="$root/.venv/bin/python"
else
    py="python3"
fi
cd "$root" && exec "$py" "$here/gpu_check.py" "$@"
