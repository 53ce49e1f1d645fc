#!/usr/bin/env bash
# AGNAS and the equal-cost random baseline on NB201, run side by side with one thread each, so that both see the same
# machine at every moment (a wall-clock budget taken from a run made earlier is only as equal as the machine's speed
# was steady; the 2-core VMs of this project drift by 1.5x within an hour). Random search runs with an open budget and
# is stopped once it has the candidates that the tool's own stopping rule allows at the AGNAS run's train_seconds;
# `tools/decision_table.py --agnas OUT/agnas/seed-* --random OUT/random/seed-* --random-beside` reads it there
# (`--random-beside 0.5`: at half, which for a 50-epoch search is the time its first 25 epochs took).
# Rerun after an interruption: both runs resume together.
#
#   tools/random_beside.sh OUT [SEEDS] [EPOCHS]      e.g. tools/random_beside.sh r30 "0 1 2 3 4" 25
#
# Environment: AGNAS (the binary, default target/release/agnas), DATA (the class folders, default
# /tmp/agnas-ci-cifar10/train).
set -euo pipefail
OUT=${1:?usage: tools/random_beside.sh OUT [SEEDS] [EPOCHS]}
SEEDS=${2:-0 1 2 3 4}
EPOCHS=${3:-25}
AGNAS=${AGNAS:-target/release/agnas}
DATA=${DATA:-/tmp/agnas-ci-cifar10/train}
ONE=(--threads 1 --workers 1)

# How many candidates `agnas baseline random` would train with the AGNAS run's seconds as its budget, counting the
# one in training when the search ended if the rule would have started it.
candidates_within() {
  python3 - "$1" "$2" "$(dirname "$0")" <<'PY'
import json, pathlib, sys
sys.path.insert(0, sys.argv[3])
from decision_table import candidates_within
budget = json.loads((pathlib.Path(sys.argv[1]) / "result.json").read_text())["train_seconds"]
log = pathlib.Path(sys.argv[2]) / "candidates.jsonl"
seconds = [json.loads(l)["seconds"] for l in log.read_text().splitlines()] if log.exists() else []
print(candidates_within(seconds, budget))
PY
}

lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

for S in $SEEDS; do
  A=$OUT/agnas/seed-$S
  Q=$OUT/random/seed-$S
  [ -f "$Q/result.json" ] && continue
  mkdir -p "$OUT/agnas" "$OUT/random"
  echo "$(date -u +%FT%TZ) seed $S"
  if [ ! -f "$A/result.json" ]; then
    if [ -f "$A/config.toml" ]; then
      "$AGNAS" search --resume "$A" >> "$OUT/agnas-$S.log" 2>&1 &
    else
      "$AGNAS" search --data "$DATA" --preset embedded --per-class 0 --epochs "$EPOCHS" --heldout-every 1 "${ONE[@]}" \
        --seed "$S" --out "$A" > "$OUT/agnas-$S.log" 2>&1 &
    fi
    SEARCH=$!
  fi
  if [ -f "$Q/config.toml" ]; then
    "$AGNAS" baseline random --resume "$Q" >> "$OUT/random-$S.log" 2>&1 &
  else
    "$AGNAS" baseline random --data "$DATA" --preset embedded --per-class 0 --epochs 5 --budget-minutes 100000 \
      "${ONE[@]}" --seed "$S" --out "$Q" > "$OUT/random-$S.log" 2>&1 &
  fi
  RANDOM_PID=$!
  if [ -n "${SEARCH:-}" ]; then wait "$SEARCH"; fi
  unset SEARCH
  N=$(candidates_within "$A" "$Q")
  echo "$(date -u +%FT%TZ) search $S done; random search $S takes $N candidates"
  while [ "$(lines "$Q/candidates.jsonl")" -lt "$N" ]; do sleep 10; done
  kill "$RANDOM_PID"; wait "$RANDOM_PID" || true
  # Write its result.json from the candidates it finished (all of them; the table applies the budget).
  sed -i "s/^max_candidates = .*/max_candidates = $(lines "$Q/candidates.jsonl")/" "$Q/config.toml"
  "$AGNAS" baseline random --resume "$Q" >> "$OUT/random-$S.log" 2>&1
  echo "$(date -u +%FT%TZ) random search $S done"
done
