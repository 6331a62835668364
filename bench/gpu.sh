#!/usr/bin/env bash
# One GPU check, ready to run on one NVIDIA H100/H200 in under 8 minutes: fp16 vs fp32 StyleGAN2
# agreement (256, 1024 px), batched vs one-at-a-time projection, batched vs looped Langevin forces,
# each with its peak GPU memory (what each row measures: the docstring of bench/gpu.py).
#
#   bash bench/gpu.sh      # one markdown table on stdout (progress on stderr), also $OUT/gpu_table.md if $OUT is set
#
# Python: $PYTHON, else the checkout's .venv/bin/python, else `python` on PATH; it needs only what
# `pip install torch -e .` installs. GPU_BENCH_BUDGET (seconds, default 420) bounds the measurements:
# rows that would not fit are reported as skipped. Without CUDA it prints one line and exits 0.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${PYTHON:-} ]]; then
    py=$PYTHON
elif [[ -x $repo/.venv/bin/python ]]; then
    py=$repo/.venv/bin/python
elif command -v python >/dev/null; then
    py=python
else
    py=python3
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

cuda=$("$py" -c 'import torch; print(torch.cuda.is_available())')  # an import error stops here, loudly
if [[ $cuda != True ]]; then
    echo "bench/gpu.sh: no CUDA device (torch.cuda.is_available() is False); skipping"
    exit 0
fi
out=()
if [[ -n ${OUT:-} ]]; then
    out=(--out "$OUT/gpu_table.md")
fi
exec "$py" "$repo/bench/gpu.py" --budget "${GPU_BENCH_BUDGET:-420}" ${out[@]+"${out[@]}"}
