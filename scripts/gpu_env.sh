# Sourced by the GPU scripts (gpu_check.sh, gpu_studies.sh) on a fresh GPU machine: installs
# the carried wheels in .whl/ (scripts/gpu_wheels.sh) whose packages the machine lacks, beside
# its own torch (those it has are left alone), and puts this working tree on PYTHONPATH;
# write_env_json FILE records the device, torch, CUDA, Python and commit. OUT must be empty.
# An earlier run's figures in OUT are the user's: refused, never overwritten.
if [[ -n $(ls -A "$OUT" 2>/dev/null) ]]; then
  echo "error: $OUT holds an earlier run's files; move them or give another OUT" >&2
  exit 2
fi
missing=()
for wheel in .whl/*.whl; do
  [[ -e $wheel ]] || continue
  name=$(basename "$wheel" | cut -d- -f1)
  python3 -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" 2>/dev/null \
    || missing+=("$wheel")
done
if ((${#missing[@]})); then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/mt-site "${missing[@]}" || exit 1
  export PYTHONPATH=/tmp/mt-site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export MT_CACHE_DIR=${MT_CACHE_DIR:-/tmp/mt-cache}

write_env_json() {
  python3 - >"$1" <<'PY'
import json, platform, torch
from mt.common.runtime import describe_device, pick_device, source_commit
name = describe_device(pick_device("auto"))
print(json.dumps({"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
                  "python": platform.python_version(), "commit": source_commit()}, indent=2))
PY
}
