#!/usr/bin/env bash
# The headers the NCCL variant of the c10d bridge (cargo feature `nccl`) needs besides the torch wheel's CUDA and NCCL
# headers: two header-only CUDA wheels, pinned to the CUDA 13.0 of the torch wheel, installed once per user beside
# the torch environment. Prints the AGNAS_CUDA_HEADERS value to build with, e.g.
#   AGNAS_CUDA_HEADERS="$(scripts/setup-nccl-headers.sh)" cargo build --release -p agnas-cli --features agnas/nccl
set -euo pipefail
VENV="$("$(dirname "$0")/setup-libtorch.sh")"
DEST="$VENV/nccl-headers"
PACKAGES="nvidia-cuda-crt==13.0.* nvidia-cuda-cccl==13.0.*"
if [ "$(cat "$DEST/.complete" 2>/dev/null)" != "$PACKAGES" ]; then
  rm -rf "$DEST"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$DEST" $PACKAGES >&2
  echo "$PACKAGES" > "$DEST/.complete"
fi
find "$DEST/nvidia" -maxdepth 3 -type d -name include | sort | paste -sd:
