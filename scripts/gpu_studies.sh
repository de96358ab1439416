#!/usr/bin/env bash
# The architectures study (docs/results.md) and the specialisation study (docs/fine-tuning.md)
# on one GPU, in minutes rather than a day of CPU time:
#
#   bash scripts/gpu_studies.sh          # OUT=gpu_studies/ (or $OUT), DATA_ROOT=data/,
#                                        # RUNS=/tmp/mt-gpu-studies, LIMIT=540 (seconds)
#   TINY=1 bash scripts/gpu_studies.sh   # the same steps at a few updates: any CPU, minutes
#   STUDIES="studies/quality.yaml:7" bash scripts/gpu_studies.sh   # other studies, FILE:JOBS
#   SET="model.d_model=32 ..." ...        # more mt.train overrides for every run (a test's)
#
# By default (STUDIES="studies/architectures.yaml:9 studies/specialisation.yaml:1"):
#   1. architectures.yaml, its nine runs at once (mt.study --jobs 9: a GPU that small models
#      leave idle trains several side by side);
#   2. beside it, specialisation.yaml one run after another: the multilingual model (10,000
#      steps), its specialised child, then transformer_fast-seed1, which 1. has trained by then.
# The studies start 10 s apart, in that order, and share RUNS (a run two studies name is
# trained once). All with trainer.compile=false (mt.study --set): compiling takes longer than
# these runs. Each study is stopped after LIMIT seconds; what finished comes back. OUT holds
# check.log, env.json, each study's output and report, and runs.tgz: every run's config,
# results, logs and test output and the studies' evaluations, no weights (what
# `mt.study --runs` needs to report them again anywhere).
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
read -ra extra <<<"${SET:-}"
common+=("${extra[@]}")
STUDIES=${STUDIES:-"studies/architectures.yaml:9 studies/specialisation.yaml:1"}
names=() pids=()
for entry in $STUDIES; do  # FILE:JOBS, each in the background, stopped after LIMIT seconds
  file=${entry%:*} jobs=${entry##*:} name=$(basename "${entry%:*}" .yaml)
  ((${#names[@]})) && sleep 10  # in the given order: a later study may wait on an earlier's run
  log "$name: python3 -m mt.study $file ${common[*]} --jobs $jobs"
  timeout "$LIMIT" python3 -m mt.study "$file" "${common[@]}" --jobs "$jobs" \
    >"$OUT/$name.out" 2>&1 &
  names+=("$name") pids+=($!)
done
status=0
for i in "${!names[@]}"; do
  name=${names[$i]}
  wait "${pids[$i]}"
  rc=$?
  log "$name: exit $rc$([[ $rc == 124 ]] && echo ", stopped after $LIMIT s")"
  [[ $rc -eq 0 || $status -ne 0 ]] || status=$rc
  [[ -f $RUNS/$name.md ]] && cp "$RUNS/$name.md" "$OUT/$name.md"
done
tar -czf "$OUT/runs.tgz" -C "$RUNS" --exclude=checkpoints --exclude="*.pt" --exclude=.lock .
log "done: exit $status; $(du -h "$OUT/runs.tgz" | cut -f1) of runs in $OUT/runs.tgz"
exit $status
