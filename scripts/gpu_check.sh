#!/usr/bin/env bash
# The GPU check, from a fresh clone on a machine with one CUDA GPU:
#
#   bash scripts/gpu_check.sh                 # installs first if there is no .venv (scripts/setup.sh)
#   bash scripts/gpu_check.sh --steps 100     # arguments go to scripts/gpu_check.py (see its --help)
#
# What it runs (scripts/gpu_check.py says how): 300 training steps of configs/gpu.toml in bf16 and in fp16
# (loss scaling), eager and torch.compile'd: samples/s, peak GPU memory, and the first losses against a
# CPU fp32 run of the same steps on the same batches; then batched generation through the CUDA-graph
# step, equal to the plain PyTorch step, and its samples/s at batch 1, 16 and 64; then the tests marked
# `gpu`. Planned to take under 8 minutes after the install on an H100/H200-class GPU (the two compiles
# and the CPU reference are most of it). The report goes to runs/gpu-check/: report.txt (the table and
# the JSON) and report.json. Exit status 0 when every loss agrees, the graph step equals the plain one
# and the gpu tests pass.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  bash scripts/setup.sh
fi
if ! .venv/bin/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: PyTorch sees no CUDA device here (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

mkdir -p runs/gpu-check
start=$SECONDS
status=0
.venv/bin/python scripts/gpu_check.py "$@" | tee runs/gpu-check/report.txt || status=$?
tail -n 1 runs/gpu-check/report.txt > runs/gpu-check/report.json
.venv/bin/python -m pytest -q -p no:cacheprovider -m gpu tests/ || status=$?
echo "gpu_check: $((SECONDS - start)) s, exit status $status (report: runs/gpu-check/report.txt)"
exit $status
