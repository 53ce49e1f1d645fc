#!/usr/bin/env bash
# Installs the Debian packages a build needs, where they are missing: Gloo's headers for the c10d bridge (default
# build); with `mpi`, also Open MPI and libclang (the `mpi` cargo feature: mpi-sys runs bindgen). Needs root or sudo
# for apt-get; otherwise it prints the command to run.
set -euo pipefail
need=()
[ -f "${GLOO_INCLUDE_DIR:-/usr/include}/gloo/algorithm.h" ] || need+=(libgloo-dev)
if [ "${1:-}" = "mpi" ]; then
  command -v mpicc >/dev/null || need+=(libopenmpi-dev openmpi-bin)
  compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || need+=(libclang-dev)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "agnas needs Debian packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing ${need[*]} (once per machine)" >&2
"${sudo[@]}" apt-get install -y -q "${need[@]}" >/dev/null || {
  "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q "${need[@]}" >/dev/null
}
