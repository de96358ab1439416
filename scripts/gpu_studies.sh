#!/usr/bin/env bash
# The architectures study (docs/results.md) and the specialisation study (docs/fine-tuning.md)
# on one GPU, in minutes rather than a day of CPU time:
#
#   bash scripts/gpu_studies.sh          # OUT=gpu_studies/ (or $OUT), DATA_ROOT=data/,
#                                        # RUNS=/tmp/mt-gpu-studies, LIMIT=540 (seconds)
#   TINY=1 bash scripts/gpu_studies.sh   # the same steps at a few updates: any CPU, minutes
#
#   1. architectures.yaml, its nine runs at once (mt.study --jobs 9: a GPU that small models
#      leave idle trains several side by side);
#   2. beside it, specialisation.yaml one run after another: the multilingual model (10,000
#      steps), its specialised child, then transformer_fast-seed1, which 1. has trained by then.
# Both with trainer.compile=false (mt.study --set): compiling takes longer than these runs. Each
# study is stopped after LIMIT seconds; what finished comes back. OUT holds check.log,
# env.json, the two studies' output and reports, and runs.tgz: every run's config, results,
# logs and test output and the studies' evaluations, no weights (what `mt.study --runs` needs to
# report them again anywhere).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_studies}
DATA_ROOT=${DATA_ROOT:-data}
RUNS=${RUNS:-/tmp/mt-gpu-studies}
LIMIT=${LIMIT:-540}
mkdir -p "$OUT" "$RUNS"
log() { echo "[gpu_studies $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/check.log"; }

source scripts/gpu_env.sh
write_env_json "$OUT/env.json"
log "device: $(tr -d '\n' <"$OUT/env.json")"

common=(--runs "$RUNS" --data-root "$DATA_ROOT" --threads 1 --set trainer.compile=false)
if [[ ${TINY:-0} == 1 ]]; then
  common+=(data.vocab_size=300 trainer.max_steps=4 trainer.valid_every=2
           trainer.warmup_steps=2 trainer.log_every=2 decode.max_len_a=0.5)
fi
study() {  # name jobs: the study in the background, stopped after LIMIT seconds
  log "$1: mt.study --jobs $2"
  timeout "$LIMIT" python3 -m mt.study "studies/$1.yaml" "${common[@]}" --jobs "$2" \
    >"$OUT/$1.out" 2>&1 &
}
study architectures 9
architectures=$!
sleep 10  # the multilingual run first: transformer_fast-seed1 is the architectures study's
study specialisation 1
specialisation=$!
status=0
for name in architectures specialisation; do
  wait "${!name}"
  rc=$?
  log "$name: exit $rc$([[ $rc == 124 ]] && echo ", stopped after $LIMIT s")"
  [[ $rc -eq 0 || $status -ne 0 ]] || status=$rc
  [[ -f $RUNS/$name.md ]] && cp "$RUNS/$name.md" "$OUT/$name.md"
done
tar -czf "$OUT/runs.tgz" -C "$RUNS" --exclude=checkpoints --exclude="*.pt" --exclude=.lock .
log "done: exit $status; $(du -h "$OUT/runs.tgz" | cut -f1) of runs in $OUT/runs.tgz"
exit $status
