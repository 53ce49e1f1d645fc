#!/usr/bin/env bash
# Creates (once per user and torch version) the virtual environment whose torch wheel provides libtorch for tch,
# links the wheel's torch folder as .libtorch in the repository, and prints the environment's path.
# The environment lives in a per-user cache, so fresh clones (CI) reuse it instead of downloading 2.7 GB again.
set -euo pipefail
TORCH_VERSION="${AGNAS_TORCH_VERSION:-2.11.0}"
PACKAGES="torch==$TORCH_VERSION numpy safetensors"
CACHE="${AGNAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agnas}"
VENV="$CACHE/torch-$TORCH_VERSION"
PY="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# .complete records what was installed; anything else (an interrupted install, an older package list) is redone.
if [ "$(cat "$VENV/.complete" 2>/dev/null)" != "$PACKAGES" ]; then
  echo "setting up libtorch: $PACKAGES in $VENV (once per user)" >&2
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PY" -m venv "$VENV" >&2
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $PACKAGES >&2
  "$VENV/bin/python" -c "import torch; assert torch.__version__.split('+')[0] == '$TORCH_VERSION', torch.__version__" >&2
  echo "$PACKAGES" > "$VENV/.complete"
fi
TORCH_DIR="$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
if [ "$(readlink "$ROOT/.libtorch" 2>/dev/null)" != "$TORCH_DIR" ]; then
  ln -sfn "$TORCH_DIR" "$ROOT/.libtorch"
fi
echo "$VENV"
