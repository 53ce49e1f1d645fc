#!/usr/bin/env python3
"""Compare one supernet training step: Rust (tch) vs the PyTorch reference.

Runs, each in its own subprocess (so peak RSS is per implementation):
  (a) <binary> bench step --space SPACE --steps S --warmup W --batch-size B --threads T
  (b) tools/bench_reference.py --space SPACE --layout nchw --style official
  (c) tools/bench_reference.py --space SPACE --layout channels_last --style fast
  (d) tools/bench_reference.py --space SPACE --layout channels_last --style shared, with GLIBC_TUNABLES set to
      the allocator settings agnas makes itself: the agnas algorithm written in PyTorch, the best reference
SPACE is nb201 (C=16, N=5) or darts (C=16, 8 cells), the paper's supernets,
and prints a markdown table with median step time, peak RSS and the
reference/rust ratios (> 1 means the Rust side is faster / leaner).

SPACE proxyless (the ProxylessNAS macro supernet, with the macro search recipe:
label smoothing 0.1, SGD 0.25 momentum 0.9, wd 4e-5 on conv weights and the
classifier, clip by value 5) runs at ``--width-mult`` / ``--image-size`` /
``--batch-size``, by default 0.5 / 64 px / 32 (the paper's 1.0 / 224 / 512 does
not fit a 2-core machine), and compares
  (a) <binary> bench step ... --memory-format contiguous, and again with channels_last
  (b) tools/bench_reference.py --style official --layout nchw, and channels_last (concatenation, the official data
      flow; the official code runs NCHW)
  (c) tools/bench_reference.py --style shared --layout nchw and channels_last, with the allocator settings: agnas's
      fast path (folded identity and residuals) in PyTorch, the best reference
with time and RSS ratios against each Rust row.

``--also-python PY`` (repeatable) runs the PyTorch variants once more with each
further interpreter (e.g. another torch version), in the same run.

On a machine shared with other jobs (two 2-thread OpenMP processes on 2 cores
slow each other down 5-40x: the spinning threads wait for descheduled
partners), ``--rounds N`` runs every variant N times, interleaved, the order
rotated by one each round and reversed every other round; the table then gives
the median over the runs of each run's median step, the mean of their means,
the fastest step and the median peak RSS.  ``--wait-idle`` starts each run only
once the machine is at least 85 % idle (for up to ``--idle-timeout`` s),
measures the CPU share other processes took during the run and repeats a run
during which it exceeded 5 % (at most twice); such runs are kept in
``--json-out`` but left out of the table.

With ``--blocks`` it compares the building blocks of SPACE instead (candidate
ops, SE attention, mixed op, cell; see ``bench_reference.py --help``):
  (a) <binary> bench blocks --space SPACE --iters N --warmup W --batch-size B --threads T
  (b) tools/bench_reference.py --blocks --space SPACE --layout nchw --style official ...
  (c) tools/bench_reference.py --blocks --space SPACE --layout channels_last --style fast ...
  (d) tools/bench_reference.py --blocks --space SPACE --layout channels_last --style shared ...
Each prints one JSON line per block with "block", "forward_ms" and
"backward_ms" (medians); the table has one row per block with the agnas
forward/backward ms and, per PyTorch variant, its forward/backward ms and the
pytorch/agnas ratios for forward, backward and forward+backward (> 1 means
agnas is faster).  Example:

    python tools/bench_compare.py --blocks --space darts --iters 10 --binary target/release/agnas

``--json-out FILE`` writes the raw results of every subprocess in both modes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TOOLS_DIR)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="nb201", choices=["nb201", "darts", "proxyless"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="default: 64 (nb201, darts), 32 (proxyless)")
    ap.add_argument("--width-mult", type=float, default=None,
                    help="proxyless: channel multiplier (default 0.5)")
    ap.add_argument("--image-size", type=int, default=None,
                    help="proxyless: input side in pixels (default 64)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(REPO_ROOT, "target", "release", "agnas"),
                    help="path to the Rust agnas binary (default: target/release/agnas)")
    ap.add_argument("--python", default=sys.executable,
                    help="python interpreter with torch for the reference (default: this one)")
    ap.add_argument("--also-python", action="append", default=[], metavar="PY",
                    help="run the PyTorch variants again with this interpreter too (repeatable)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="per-subprocess timeout in seconds")
    ap.add_argument("--skip-reference", action="store_true",
                    help="only run the Rust binary")
    ap.add_argument("--json-out", default=None,
                    help="also write all raw results as JSON to this file")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every train-step variant this many times, interleaved (default 1)")
    ap.add_argument("--wait-idle", action="store_true",
                    help="start each train-step run on an idle machine; repeat runs disturbed by other processes")
    ap.add_argument("--idle-timeout", type=float, default=3600.0,
                    help="--wait-idle: longest wait for an idle machine before a run, in seconds")
    ap.add_argument("--blocks", action="store_true",
                    help="compare forward/backward of the building blocks instead of a train step")
    ap.add_argument("--iters", type=int, default=10,
                    help="--blocks: timed iterations per block")
    args = ap.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 32 if args.space == "proxyless" else 64
    if args.space == "proxyless":
        args.width_mult = 0.5 if args.width_mult is None else args.width_mult
        args.image_size = 64 if args.image_size is None else args.image_size
    elif args.width_mult is not None or args.image_size is not None:
        ap.error("--width-mult and --image-size are for --space proxyless")
    return args


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


# The allocator settings agnas makes with mallopt (crates/agnas/src/train/allocator.rs), for a PyTorch process.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647"


def run_one(label, cmd, timeout, extra_env=None):
    print(f"[bench_compare] {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    env = dict(os.environ, **(extra_env or {}))
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout, env=env)
    except FileNotFoundError as e:
        return None, f"cannot execute: {e}"
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return None, f"exit status {proc.returncode}: " + " | ".join(tail)
    obj = last_json_line(proc.stdout)
    if obj is None:
        return None, "no JSON line in its output"
    for key in ("median_ms", "peak_rss_mb"):
        if key not in obj:
            return None, f"JSON output lacks {key!r}: {obj}"
    return obj, None


def _cpu_jiffies():
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def wait_idle(timeout):
    """Waits until the machine was at least 85 % idle over 3 s, or ``timeout`` seconds; -> seconds waited."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        b0, a0 = _cpu_jiffies()
        time.sleep(3)
        b1, a1 = _cpu_jiffies()
        if b1 - b0 <= 0.15 * max(1, a1 - a0):
            break
    return time.time() - t0


def run_measured(label, cmd, timeout, extra_env=None):
    """``run_one`` -> (result, error, share of the machine's CPU that other processes used meanwhile)."""
    b0, a0 = _cpu_jiffies()
    c0 = os.times()
    res, err = run_one(label, cmd, timeout, extra_env)
    c1 = os.times()
    b1, a1 = _cpu_jiffies()
    ours = (c1.children_user - c0.children_user + c1.children_system - c0.children_system) * os.sysconf("SC_CLK_TCK")
    return res, err, max(0.0, (b1 - b0) - ours) / max(1, a1 - a0)


def summarize(results):
    """One row's figures from the runs of a variant: median of the run medians, mean of the means, fastest step,
    median peak RSS (a single run: its own figures)."""
    if len(results) == 1:
        return results[0]
    return {"median_ms": statistics.median(r["median_ms"] for r in results),
            "mean_ms": statistics.fmean(r.get("mean_ms", r["median_ms"]) for r in results),
            "min_ms": min(r.get("min_ms", r["median_ms"]) for r in results),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
            "runs": [r["median_ms"] for r in results]}


def all_json_lines(text):
    """Every JSON object line of ``text``, in order."""
    objs = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            objs.append(obj)
    return objs


def run_blocks(label, cmd, timeout):
    """Run one block benchmark -> (list of per-block results, error or None).

    The block lines printed before a failure are kept (with the error)."""
    print(f"[bench_compare] {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError as e:
        return [], f"cannot execute: {e}"
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return _block_results(out)[0], f"timed out after {timeout:.0f} s"
    results, bad = _block_results(proc.stdout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return results, f"exit status {proc.returncode}: " + " | ".join(tail)
    if bad:
        return results, f"JSON line lacks block/forward_ms/backward_ms: {bad[0]}"
    if not results:
        return results, "no JSON line in its output"
    return results, None


def _block_results(stdout):
    good, bad = [], []
    for obj in all_json_lines(stdout):
        if all(k in obj for k in ("block", "forward_ms", "backward_ms")):
            good.append(obj)
        else:
            bad.append(obj)
    return good, bad


def interpreters(args):
    """[(python, label prefix)]: the reference interpreters; with --also-python the prefixes name the torch version."""
    pythons = [args.python] + args.also_python
    if not args.also_python:
        return [(args.python, "pytorch")]
    out = []
    for py in pythons:
        try:
            ver = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                                 text=True, timeout=600).stdout.strip() or "?"
        except (OSError, subprocess.TimeoutExpired):
            ver = "?"
        out.append((py, f"pytorch {ver}"))
    return out


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den


def blocks_main(args):
    common = ["--space", args.space, "--iters", str(args.iters), "--warmup", str(args.warmup),
              "--batch-size", str(args.batch_size), "--threads", str(args.threads)]

    runs = []  # (label, list of per-block results, error or None)

    binary = os.path.abspath(args.binary)
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        msg = (f"Rust binary not found or not executable at {binary}; build it with "
               f"`cargo build --release` (or pass --binary PATH)")
        print(f"[bench_compare] {msg}", file=sys.stderr)
        runs.append(("agnas", [], "binary missing"))
    else:
        res, err = run_blocks("agnas", [binary, "bench", "blocks"] + common, args.timeout)
        if err:
            print(f"[bench_compare] agnas: {err}", file=sys.stderr)
        runs.append(("agnas", res, err))

    if not args.skip_reference:
        ref = os.path.join(TOOLS_DIR, "bench_reference.py")
        for python, prefix in interpreters(args):
            for layout, style in (("nchw", "official"), ("channels_last", "fast"), ("channels_last", "shared")):
                label = f"{prefix} {layout}/{style}"
                cmd = [python, ref, "--blocks", "--layout", layout, "--style", style] + common
                res, err = run_blocks(label, cmd, args.timeout)
                if err:
                    print(f"[bench_compare] {label}: {err}", file=sys.stderr)
                runs.append((label, res, err))

    # block order: as the runs print them, agnas first
    names = []
    by_run = []
    for _label, res, _err in runs:
        d = {}
        for r in res:
            d[r["block"]] = r  # a repeated block: the last line wins
            if r["block"] not in names:
                names.append(r["block"])
        by_run.append(d)

    print(f"\n{args.space} building blocks, forward / backward median ms: batch "
          f"{args.batch_size}, threads {args.threads}, {args.iters} timed iterations after "
          f"{args.warmup} warm-up; ratios are pytorch/agnas (> 1: agnas faster)\n")
    for label, _res, err in runs:
        if err:
            print(f"- {label}: {err}")
    if any(err for _l, _r, err in runs):
        print()

    header = ["block", "agnas fwd", "agnas bwd"]
    align = ["---", "---:", "---:"]
    for label, _res, _err in runs[1:]:
        short = label[len("pytorch "):]
        header += [f"{short} fwd", f"{short} bwd", "fwd ratio", "bwd ratio", "f+b ratio"]
        align += ["---:"] * 5
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(align) + "|")
    agnas = by_run[0]
    for name in names:
        a = agnas.get(name)
        a_f = a["forward_ms"] if a else None
        a_b = a["backward_ms"] if a else None
        a_t = a_f + a_b if a else None
        cells = [name, fmt(a_f, 3), fmt(a_b, 3)]
        for d in by_run[1:]:
            p = d.get(name)
            p_f = p["forward_ms"] if p else None
            p_b = p["backward_ms"] if p else None
            p_t = p_f + p_b if p else None
            cells += [fmt(p_f, 3), fmt(p_b, 3), fmt(ratio(p_f, a_f), 2),
                      fmt(ratio(p_b, a_b), 2), fmt(ratio(p_t, a_t), 2)]
        print("| " + " | ".join(cells) + " |")
    if not names:
        print("| (no results) |" + " |" * (len(header) - 1))

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump([{"label": l, "results": r, "error": e} for l, r, e in runs], f, indent=2)

    if any(err for _l, _r, err in runs):
        sys.exit(1)


# The PyTorch variants of a train-step comparison: (layout, style, with agnas's allocator settings).
STEP_VARIANTS = (("nchw", "official", False), ("channels_last", "fast", False), ("channels_last", "shared", True))
PROXYLESS_VARIANTS = (("nchw", "official", False), ("channels_last", "official", False), ("nchw", "shared", True),
                      ("channels_last", "shared", True))


def main(argv=None):
    args = parse_args(argv)
    if args.blocks:
        blocks_main(args)
        return
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup),
              "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    proxyless = args.space == "proxyless"
    if proxyless:
        common += ["--width-mult", str(args.width_mult), "--image-size", str(args.image_size)]

    variants = []  # (label, command, extra environment or None); the Rust ones first
    binary = os.path.abspath(args.binary)
    # proxyless: both layouts (the CPU default `auto` is channels-last)
    rust_runs = ([("rust (tch) contiguous", ["--memory-format", "contiguous"]),
                  ("rust (tch) channels-last", ["--memory-format", "channels_last"])]
                 if proxyless else [("rust (tch) fp32", ["--precision", "fp32"])])
    rust_runs.append(("rust (tch) bf16", ["--precision", "bf16"]))
    missing = not os.path.isfile(binary) or not os.access(binary, os.X_OK)
    if missing:
        msg = (f"Rust binary not found or not executable at {binary}; build it with "
               f"`cargo build --release` (or pass --binary PATH)")
        print(f"[bench_compare] {msg}", file=sys.stderr)
    for label, extra in rust_runs:
        variants.append((label, None if missing else [binary, "bench", "step", "--space", args.space] + common + extra,
                         None))
    n_rust = len(variants)

    if not args.skip_reference:
        ref = os.path.join(TOOLS_DIR, "bench_reference.py")
        malloc = {"GLIBC_TUNABLES": MALLOC_TUNABLES}
        for python, prefix in interpreters(args):
            for layout, style, with_malloc in (PROXYLESS_VARIANTS if proxyless else STEP_VARIANTS):
                extra_env = malloc if with_malloc else None
                label = f"{prefix} {layout}/{style}" + (" + malloc settings" if extra_env else "")
                cmd = [python, ref, "--space", args.space, "--layout", layout,
                       "--style", style] + common
                variants.append((label, cmd, extra_env))
            # PyTorch's own mixed precision (autocast bf16), in both layouts of its official code.
            for layout in ("nchw", "channels_last"):
                cmd = [python, ref, "--space", args.space, "--layout", layout, "--style", "official",
                       "--amp", "bf16"] + common
                variants.append((f"{prefix} {layout}/official + autocast bf16", cmd, None))

    runs = {label: [] for label, _c, _e in variants}  # label -> [(result, error, other processes' CPU share)]
    for r in range(max(1, args.rounds)):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        if r % 2:
            order = order[::-1]
        for label, cmd, extra_env in order:
            if cmd is None:
                runs[label].append((None, "binary missing", 0.0))
                continue
            for attempt in range(3 if args.wait_idle else 1):
                if args.wait_idle:
                    waited = wait_idle(args.idle_timeout)
                    if waited > 10:
                        print(f"[bench_compare] waited {waited:.0f} s for an idle machine", file=sys.stderr)
                res, err, foreign = run_measured(label, cmd, args.timeout, extra_env)
                if err:
                    print(f"[bench_compare] {label}: {err}", file=sys.stderr)
                runs[label].append((res, err, foreign))
                if not args.wait_idle or err or foreign <= 0.05:
                    break
                print(f"[bench_compare] {label}: other processes took {100 * foreign:.0f} % of the CPU; again",
                      file=sys.stderr)

    rows = []  # (label, result or None, error or None)
    for label, _cmd, _env in variants:
        good = [res for res, err, foreign in runs[label]
                if res is not None and (not args.wait_idle or foreign <= 0.05)]
        errs = [err for _res, err, _f in runs[label] if err]
        if good:
            rows.append((label, summarize(good), None))
        elif errs:
            rows.append((label, None, errs[-1]))
        else:
            rows.append((label, None, "every run disturbed by other processes"))

    rusts = [(label, res) for label, res, _ in rows[:n_rust]]
    shape = (f", width {args.width_mult}, {args.image_size}x{args.image_size}" if proxyless else "")
    rounds = f", median of {args.rounds} interleaved runs" if args.rounds > 1 else ""
    print(f"\n{args.space} supernet train step: batch {args.batch_size}{shape}, threads {args.threads}, "
          f"{args.steps} timed steps after {args.warmup} warm-up{rounds}\n")
    if n_rust == 1:
        header = "| impl | median ms | mean ms | peak RSS MB | time ref/rust | RSS ref/rust |"
        align = "|------|----------:|--------:|------------:|--------------:|-------------:|"
    else:
        # one pair of ratio columns per Rust row; min ms too (on a shared machine the least disturbed step)
        header = "| impl | median ms | mean ms | min ms | peak RSS MB |" + "".join(
            f" time ref/{label[len('rust (tch) '):]} | RSS ref/{label[len('rust (tch) '):]} |" for label, _ in rusts)
        align = "|------|----------:|--------:|-------:|------------:|" + "----:|----:|" * n_rust
    print(header)
    print(align)
    for i, (label, res, err) in enumerate(rows):
        if res is None:
            print(f"| {label} | n/a ({err}) | n/a |" + (" n/a |" if n_rust > 1 else "") + " n/a |"
                  + " |" * (2 * n_rust))
            continue
        cells = [label, fmt(res["median_ms"]), fmt(res.get("mean_ms"))]
        if n_rust > 1:
            cells.append(fmt(res.get("min_ms")))
        cells.append(fmt(res["peak_rss_mb"]))
        for _rl, rust in rusts:
            if i < n_rust:
                cells += ["", ""]
            elif rust is None:
                cells += ["n/a", "n/a"]
            else:
                cells += [fmt(ratio(res["median_ms"], rust["median_ms"]), 2),
                          fmt(ratio(res["peak_rss_mb"], rust["peak_rss_mb"]), 2)]
        print("| " + " | ".join(cells) + " |")

    if args.json_out:
        with open(args.json_out, "w") as f:
            if args.rounds > 1 or args.wait_idle:
                json.dump([{"label": l, "result": r, "error": e,
                            "runs": [{"result": rr, "error": ee, "other_cpu_share": round(ff, 3)}
                                     for rr, ee, ff in runs[l]]} for l, r, e in rows], f, indent=2)
            else:
                json.dump([{"label": l, "result": r, "error": e} for l, r, e in rows], f, indent=2)

    if any(res is None for _, res, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
