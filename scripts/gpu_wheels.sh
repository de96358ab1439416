#!/usr/bin/env bash
# Wheels for scripts/gpu_check.sh: the packages mt needs that a GPU machine's image may lack
# (its own torch, sentencepiece, sacrebleu, tensorboard and pytest are used as they are), for
# Python 3.12 on x86-64 Linux, into .whl/ (ignored by git; carry it with the working tree).
#
#   bash scripts/gpu_wheels.sh            # PYTHON_VERSION=3.12 by default
#   NAMES="hydra-core" WHEELS=/tmp/w bash scripts/gpu_wheels.sh   # only these, elsewhere
# pip's own settings hold (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX for a local folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
# The versions installed here, where the tests pass; --no-deps: each needed one is named.
read -ra NAMES <<<"${NAMES:-hydra-core omegaconf antlr4-python3-runtime datasets dill multiprocess ctranslate2}"
WHEELS=${WHEELS:-.whl}
# The versions as a whole first: a package not installed here stops the script, naming it.
versions=$(python3 -c '
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"error: {name} is not installed here: pip install -e \".[test]\" first")
' "${NAMES[@]}")
mapfile -t PACKAGES <<<"$versions"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
mkdir -p "$WHEELS"
if [[ $WHEELS == .whl ]]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
fi
for package in "${PACKAGES[@]}"; do
  # A package published as source only (antlr4's runtime) is built into a wheel here.
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp "${platforms[@]}" -d "$WHEELS" "$package" 2>/dev/null \
  || python3 -m pip wheel -q --no-deps -w "$WHEELS" "$package"
done
du -sh "$WHEELS"
ls "$WHEELS"
