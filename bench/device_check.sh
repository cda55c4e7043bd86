#!/usr/bin/env bash
# The one prepared GPU check (issue "Fast where it counts", items 2, 3 and 5; issue "Pages read,
# never recompute", item 4), for a session that has the device tool: at most about 11 minutes on
# an H100-class GPU, from the source tree with the device's own torch (no network). Writes under
# $OUT (default bench/results):
#   <gpu>.json               evaluation vs forward; training steps with and without the losses,
#                            eager and with the losses compiled
#   <gpu>-compile-cost.json  what compiling ours' losses costs and saves over one gpu-profile run,
#                            with inductor's cache cold and warm
#   <gpu>-gpu-runs.json      the gpu profile's two backbones and a seed-0 run of every method,
#                            three at a time
#   <gpu>-gpu-runs-all.json  the whole gpu profile's training (every seed, the sweep), three at
#                            a time, for at most $ALL_S seconds: the runs done and the wall time
#                            (stopped: true when the limit came first)
#     run: bash bench/device_check.sh     (then copy $OUT's files into bench/results/)
# A device without submitit (the SLURM executor's import) gets it from wheels in .whl/, carried.
# PROFILE and DEVICE (default gpu, cuda), BENCH_ARGS (--quick --train-only) and COST_ARGS
# (--size 64 --steps 2) let the script be tried on a CPU first.
set -uo pipefail
OUT=${OUT:-bench/results}
PROFILE=${PROFILE:-gpu}
DEVICE=${DEVICE:-cuda}
ALL_S=${ALL_S:-120}
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! python3 -c "import submitit" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
timeout 150 python3 -m bench --device "$DEVICE" --compile-losses ${BENCH_ARGS:-} --out "$OUT"; echo "bench: exit $?"
timeout 150 python3 -m bench.compile_cost --device "$DEVICE" ${COST_ARGS:-} --out "$OUT"; echo "compile_cost: exit $?"
timeout 260 python3 -m bench.gpu_runs --profile "$PROFILE" --out "$OUT" --jobs 3 \
    --methods baseline ours ours_nosync csgcnn decoup cw iccnn icnn; echo "gpu_runs: exit $?"
t0=$(date +%s)
timeout "$ALL_S" python3 -m bench.gpu_runs --profile "$PROFILE" --all --out "$OUT" --jobs 3; rc=$?
echo "gpu_runs --all: exit $rc"
if [ "$rc" = 124 ]; then
    python3 -m bench.gpu_runs --profile "$PROFILE" --all --collect --wall-s $(( $(date +%s) - t0 )) --out "$OUT" --jobs 3
fi
ls -l "$OUT"
