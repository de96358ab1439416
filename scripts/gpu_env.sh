# Sourced by the GPU scripts (gpu_check.sh, gpu_studies.sh) on a fresh GPU machine: installs
# the carried wheels in .whl/ (scripts/gpu_wheels.sh) whose packages the machine lacks, beside
# its own torch (those it has are left alone), and puts this working tree on PYTHONPATH.
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
