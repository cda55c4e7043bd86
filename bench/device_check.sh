#!/usr/bin/env bash
# The one prepared GPU check (issue "Fast where it counts", items 2, 3 and 5), for a session
# that has the device tool: at most about 5 minutes on an H100-class GPU, from the source tree
# with the device's own torch (no install, no network). Writes under $OUT (default
# bench/results): <gpu>.json (evaluation vs forward, training steps with and without the
# losses, eager and with the losses compiled) and <gpu>-gpu-runs.json (the gpu profile's two
# backbones and a seed-0 run of every method, three at a time).
#     run: bash bench/device_check.sh     (then copy $OUT's files into bench/results/)
set -uo pipefail
OUT=${OUT:-bench/results}
export PYTHONPATH=.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
timeout 120 python -m bench --device cuda --compile-losses --out "$OUT"; echo "bench: exit $?"
timeout 170 python -m bench.gpu_runs --out "$OUT" --jobs 3 \
    --methods baseline ours ours_nosync csgcnn cw iccnn icnn; echo "gpu_runs: exit $?"
ls -l "$OUT"
