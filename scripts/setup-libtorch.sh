#!/usr/bin/env bash
# Creates (once per user and torch version) the virtual environment whose torch wheel provides libtorch for tch,
# and prints its path. The environment lives in a per-user cache so fresh clones (CI) reuse it.
set -euo pipefail
TORCH_VERSION="${AGNAS_TORCH_VERSION:-2.11.0}"
CACHE="${AGNAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agnas}"
VENV="$CACHE/torch-$TORCH_VERSION"
PY="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
link_libtorch() {
  local torch_dir
  torch_dir="$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
  ln -sfn "$torch_dir" "$ROOT/.libtorch"
}
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.complete" ]; then
  [ -e "$ROOT/.libtorch" ] || link_libtorch
  echo "$VENV"
  exit 0
fi
mkdir -p "$CACHE"
# A half-built environment (interrupted download) is rebuilt from scratch.
rm -rf "$VENV" "$VENV.tmp"
"$PY" -m venv "$VENV.tmp" >&2
"$VENV.tmp/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy safetensors >&2
# venv scripts embed their own path; recreate in place so the final path is right.
mv "$VENV.tmp" "$VENV"
"$PY" -m venv --upgrade "$VENV" >&2
sed -i "s#$VENV.tmp#$VENV#g" "$VENV"/bin/* 2>/dev/null || true
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__" >&2
touch "$VENV/.complete"
link_libtorch
echo "$VENV"
