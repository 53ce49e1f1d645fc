#!/usr/bin/env bash
# The GPU check, run on a CUDA machine in one go (BENCHMARKS.md "On an NVIDIA H200" records what it printed):
#   1. smoke: for every space, a smoke search, a retrain of its genotype and an evaluation of those weights on the
#      GPU and on the CPU (same weights, so the two losses must agree);
#   2. the supernet train step of every space at its paper shape, agnas against PyTorch's official and shared
#      styles (tools/bench_reference.py --device "$DEVICE"), in turns;
#   3. RETRAINS (optional): a file of lines "name|arch|seed", each retrained with the reduced macro preset on DATA,
#      all at once (the runs are small; the GPU is shared);
#   4. the embedded NB201 search (`make search`) and a ProxylessNAS latency table on the GPU;
#   5. NCCL_BIN (optional: agnas built with `--features agnas/nccl`): a smoke search as one c10d/NCCL rank against
#      the same search without an engine (the parameters must agree to 1e-4).
# Every stage writes its lines to $OUT as it goes, and a stage starts only while the deadline (SECONDS_LEFT from
# the start) leaves room for it, so a run cut short still returns what it finished.
#
#   BIN=target/release/agnas DATA=cifar10-train-jpg.tar.gz OUT=/tmp/gpu PY=python3 tools/gpu_check.sh
set -u
BIN=${BIN:-target/release/agnas}
DATA=${DATA:?DATA must name the CIFAR-10 training images (folder or .tar.gz)}
OUT=${OUT:-/tmp/agnas-gpu}
PY=${PY:-python3}
RETRAINS=${RETRAINS:-}
NCCL_BIN=${NCCL_BIN:-}
DEVICE=${DEVICE:-cuda}  # cpu: a dry run of this script, with STEP_ARGS / RETRAIN_ARGS made small
STEP_ARGS=${STEP_ARGS:---steps 20 --warmup 5 --batch-size 64}
RETRAIN_ARGS=${RETRAIN_ARGS:---per-class 2000}
SECONDS_LEFT=${SECONDS_LEFT:-540}
ROUNDS=${ROUNDS:-1}
STAGES=${STAGES:-smoke step retrains embedded latency nccl}  # a rerun can name the stages it still needs
WORK=$(mktemp -d)
mkdir -p "$OUT"
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1

stage() { echo "=== $* (t=${SECONDS}s)"; }
want() { [[ " $STAGES " == *" $1 "* ]]; }
room() { [ $((SECONDS_LEFT - SECONDS)) -ge "$1" ] || { echo "--- skipped: under $1 s left"; return 1; }; }

TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

stage machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'
nproc
ldd "$BIN" | grep 'not found' && { echo "agnas cannot load its libraries"; exit 1; }

if want smoke; then
stage smoke
small="$WORK/small"
"$PY" - "$DATA" "$small" <<'EOF'
import collections, os, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
taken = collections.Counter()
if os.path.isdir(src):
    os.symlink(os.path.abspath(src), dst)
else:
    with tarfile.open(src) as t:
        for m in t:
            cls = m.name.split("/")[-2] if m.name.count("/") >= 1 else ""
            if m.isfile() and taken[cls] < 100:
                taken[cls] += 1
                t.extract(m, dst, filter="data")
EOF
for space in nb201 darts proxyless; do
    run="$WORK/$space"
    timeout 120 "$BIN" search --space "$space" --preset smoke --device "$DEVICE" --out "$run-search" >"$run.log" 2>&1 &&
        timeout 120 "$BIN" train --space "$space" --preset smoke --device "$DEVICE" \
            --genotype "$run-search/genotype.json" --out "$run-train" >>"$run.log" 2>&1 ||
        { echo "$space: FAILED"; tail -5 "$run.log"; continue; }
    for device in "$DEVICE" cpu; do
        timeout 120 "$BIN" eval --run "$run-train" --data "$small" --device "$device" 2>/dev/null |
            "$PY" -c "import json, sys; r = json.load(sys.stdin); print(json.dumps(dict(space='$space', eval_on='$device', **r)))" |
            tee -a "$OUT/smoke.jsonl"
    done
    echo "$space search on $DEVICE: $(grep -o '"heldout_acc": [0-9.]*' "$run-search/result.json")"
done
fi

bench() {  # space, then the shape flags both implementations take
    local space=$1
    shift
    for round in $(seq "$ROUNDS"); do
        for fmt in contiguous channels_last; do
            timeout 120 "$BIN" bench step --space "$space" --device "$DEVICE" --memory-format "$fmt" "$@" 2>/dev/null |
                tail -1 | "$PY" -c "import json, sys; print(json.dumps(dict(json.load(sys.stdin), impl='agnas', layout='$fmt', round=$round)))" |
                tee -a "$OUT/bench.jsonl"
        done
        for style in official shared; do
            for layout in nchw channels_last; do
                [ "$style" = official ] && [ "$layout" = channels_last ] && continue
                timeout 120 "$PY" tools/bench_reference.py --space "$space" --device "$DEVICE" --style "$style" \
                    --layout "$layout" "$@" |
                    "$PY" -c "import json, sys; print(json.dumps(dict(json.load(sys.stdin), round=$round)))" |
                    tee -a "$OUT/bench.jsonl"
            done
        done
    done
}
if want step; then
    stage step time
    read -r -a common <<<"$STEP_ARGS"
    room 150 && bench nb201 "${common[@]}" --image-size 32
    room 150 && bench darts "${common[@]}" --image-size 32
    room 150 && bench proxyless "${common[@]}" --image-size 224 --width-mult 1.0
fi

if want retrains && [ -n "$RETRAINS" ]; then
    stage retrains
    if room 200; then
        while IFS='|' read -r name arch seed; do
            [ -z "$name" ] && continue
            ( timeout $((SECONDS_LEFT - SECONDS - 30)) "$BIN" train --space proxyless --preset embedded --device "$DEVICE" \
                --arch "$arch" --seed "$seed" --data "$DATA" $RETRAIN_ARGS --threads 1 --workers 2 \
                --out "$WORK/retrain-$name-$seed" >"$WORK/retrain-$name-$seed.log" 2>&1 &&
                "$PY" -c "import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps(dict(name='$name', arch='$arch', seed=$seed, top1=r['final_valid']['top1'], best=r['best_valid'], params=r['params'], train_seconds=r['train_seconds'])))" \
                    "$WORK/retrain-$name-$seed/result.json" | tee -a "$OUT/retrain.jsonl" ||
                { echo "retrain $name $seed: FAILED"; tail -3 "$WORK/retrain-$name-$seed.log"; } ) &
        done <"$RETRAINS"
        wait
        (cd "$WORK" && tar czf "$OUT/retrains.tgz" retrain-*.log retrain-*/metrics.jsonl retrain-*/result.json 2>/dev/null)
    fi
fi

if want embedded && room 90; then
    stage embedded search
    /usr/bin/time -f "embedded nb201 search on $DEVICE: %e s wall" timeout 150 "$BIN" search --device "$DEVICE" \
        --out "$WORK/nb201-embedded" >"$WORK/embedded.log" 2>&1
    tail -3 "$WORK/embedded.log"
    cp "$WORK/nb201-embedded/result.json" "$OUT/embedded_search.json" 2>/dev/null
fi

if want latency && room 60; then
    stage latency table
    timeout $((SECONDS_LEFT - SECONDS - 10)) "$BIN" latency-table --space proxyless --device "$DEVICE" --repeats 20 \
        --warmup 5 --check 3 --out "$OUT/latency_h200.json" >/dev/null 2>"$WORK/latency.log"
    tail -3 "$WORK/latency.log"
fi
if want nccl && [ -n "$NCCL_BIN" ] && room 60; then
    stage nccl world 1
    RANK=0 WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 timeout 120 "$NCCL_BIN" search --space nb201 \
        --preset smoke --device "$DEVICE" --dist c10d --out "$WORK/nccl" >"$WORK/nccl.log" 2>&1 &&
        timeout 120 "$NCCL_BIN" search --space nb201 --preset smoke --device "$DEVICE" --out "$WORK/plain" \
            >>"$WORK/nccl.log" 2>&1 || { echo "nccl: FAILED"; tail -5 "$WORK/nccl.log"; }
    grep -m1 'c10d' "$WORK/nccl.log"
    "$PY" - "$WORK/nccl" "$WORK/plain" <<'EOF' | tee -a "$OUT/nccl.jsonl"
import glob, json, sys
from safetensors.torch import load_file
runs = [load_file(glob.glob(f"{d}/checkpoints/step-*/weights.safetensors")[0]) for d in sys.argv[1:]]
diff = max((runs[0][k] - runs[1][k]).abs().max().item() for k in runs[0])
print(json.dumps(dict(check="nccl world 1 against no engine", max_abs_diff=diff, ok=diff <= 1e-4)))
EOF
fi
stage done
