#!/usr/bin/env bash
# The prepared GPU check: on a fresh machine with one GPU and this working tree, everything the
# GPU figures of docs/performance.md come from, into one folder, in under 10 minutes on an H200.
#
#   bash scripts/gpu_check.sh                 # OUT=gpu_check/ (or $OUT), DATA_ROOT=data/,
#                                             # RUN=/tmp/mt-gpu-check-run (replaced; a RUN
#                                             # given that exists is refused, never deleted)
#   TINY=1 bash scripts/gpu_check.sh          # the same steps at a tiny size: any CPU, minutes
#
#   1. installs the Python packages the machine lacks from wheels carried in .whl/ (those it
#      has are left alone)
#      (scripts/gpu_wheels.sh makes them), beside the machine's own torch;
#   2. pytest -m gpu (tests/test_gpu.py);
#   3. scripts/bench_gpu.py: base, big and Multi30k's step: tokens/s, ms, memory, MFU;
#   4. the Multi30k transformer recipe for STEPS updates (8000) from DATA_ROOT/multi30k/, timed;
#   5. scripts/benchmark.py on its checkpoint: our beam search and CTranslate2's speed.
# Without CUDA, step 2 is skipped (check.log says so) and step 5 decodes CTranslate2 float32
# instead of float16. Each step's figures
# land in OUT even when a later step fails; the exit status is the first failure's. OUT holds
# six files (a device machine returns at most eight): check.log (what ran, how long, the
# training throughput), steps.log (every step's own output), env.json, bench_gpu.json,
# results.json (the Multi30k run's) and decode.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check}
DATA_ROOT=${DATA_ROOT:-data}
TINY=${TINY:-0}
if [[ -n ${RUN:-} && -e $RUN ]]; then  # the default is this script's own; a given one may be a run
  echo "error: RUN=$RUN exists; give a new directory (nothing was changed)" >&2
  exit 2
fi
mkdir -p "$OUT"
log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/check.log"; }
status=0
step() {  # name command...: run it, its output into OUT/steps.log, remember a failure
  local name=$1; shift
  log "$name: $*"
  echo "===== $name: $*" >>"$OUT/steps.log"
  "$@" >>"$OUT/steps.log" 2>&1
  local rc=$?
  log "$name: exit $rc"
  [[ $rc -eq 0 || $status -ne 0 ]] || status=$rc
}

source scripts/gpu_env.sh
CUDA=$(python3 -c "import torch; print(int(torch.cuda.is_available()))")
write_env_json "$OUT/env.json"
log "device: $(tr -d '\n' <"$OUT/env.json")"

if [[ $CUDA == 1 ]]; then
  step pytest_gpu python3 -m pytest -m gpu -n 0 -p no:cacheprovider tests/test_gpu.py
else
  log "pytest_gpu: skipped, no CUDA device"
fi

if [[ $TINY == 1 ]]; then
  shape=(model.d_model=32 model.num_heads=2 model.num_layers=1 model.ff_dim=64 data.vocab_size=300)
  bench=(--tiny --steps 3 --warmup 1)
  recipe=(data.root=tests/data trainer.max_steps=${STEPS:-20} trainer.valid_every=10
          trainer.log_every=1 "trainer.length_penalties=[]" decode.max_len_a=0.5 "${shape[@]}")
  decode=(--sentences 8 --steps 2 --repeats 1 --data-root tests/data)
  for key in "${shape[@]}"; do decode+=(--set "$key"); done
else
  bench=()
  recipe=(data.root=$DATA_ROOT trainer.max_steps=${STEPS:-8000})
  decode=(--data-root "$DATA_ROOT")
fi
step bench_gpu python3 scripts/bench_gpu.py "${bench[@]}" --out "$OUT/bench_gpu.json"

run=${RUN:-/tmp/mt-gpu-check-run}
rm -rf "$run"
start=$(date +%s.%N)
step train python3 -m mt.train +experiment=transformer "${recipe[@]}" "hydra.run.dir=$run"
end=$(date +%s.%N)
log "train: $(python3 -c "print(f'{$end - $start:.1f}')") s wall, start-up, validation and test included"
[[ -f $run/results.json ]] && cp "$run/results.json" "$OUT/results.json"
python3 scripts/train_throughput.py "$run" >>"$OUT/check.log" 2>&1

if [[ -f $run/checkpoints/final.pt ]]; then
  step decode python3 scripts/benchmark.py --models transformer "${decode[@]}" \
    --checkpoint "transformer=$run/checkpoints/final.pt" --ctranslate2 transformer \
    --json "$OUT/decode.json"
fi
log "done: exit $status; figures in $OUT/"
exit $status
