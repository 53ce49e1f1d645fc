#!/usr/bin/env python3
"""Compare one supernet training step: Rust (tch) vs the PyTorch reference.

Runs, each in its own subprocess (so peak RSS is per implementation):
  (a) <binary> bench step --space SPACE --steps S --warmup W --batch-size B --threads T
  (b) tools/bench_reference.py --space SPACE --layout nchw --style official
  (c) tools/bench_reference.py --space SPACE --layout channels_last --style fast
SPACE is nb201 (C=16, N=5) or darts (C=16, 8 cells), the paper's supernets.
and prints a markdown table with median step time, peak RSS and the
reference/rust ratios (> 1 means the Rust side is faster / leaner).
"""

import argparse
import json
import os
import subprocess
import sys

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TOOLS_DIR)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="nb201", choices=["nb201", "darts"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(REPO_ROOT, "target", "release", "agnas"),
                    help="path to the Rust agnas binary (default: target/release/agnas)")
    ap.add_argument("--python", default=sys.executable,
                    help="python interpreter with torch for the reference (default: this one)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="per-subprocess timeout in seconds")
    ap.add_argument("--skip-reference", action="store_true",
                    help="only run the Rust binary")
    ap.add_argument("--json-out", default=None,
                    help="also write all raw results as JSON to this file")
    return ap.parse_args(argv)


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


def run_one(label, cmd, timeout):
    print(f"[bench_compare] {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=timeout)
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


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return num / den


def main(argv=None):
    args = parse_args(argv)
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup),
              "--batch-size", str(args.batch_size), "--threads", str(args.threads)]

    rows = []  # (label, result or None, error or None)

    binary = os.path.abspath(args.binary)
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        msg = (f"Rust binary not found or not executable at {binary}; build it with "
               f"`cargo build --release` (or pass --binary PATH)")
        print(f"[bench_compare] {msg}", file=sys.stderr)
        rows.append(("rust (tch)", None, "binary missing"))
    else:
        cmd = [binary, "bench", "step", "--space", args.space] + common
        res, err = run_one("rust", cmd, args.timeout)
        if err:
            print(f"[bench_compare] rust: {err}", file=sys.stderr)
        rows.append(("rust (tch)", res, err))

    if not args.skip_reference:
        ref = os.path.join(TOOLS_DIR, "bench_reference.py")
        for layout, style in (("nchw", "official"), ("channels_last", "fast")):
            label = f"pytorch {layout}/{style}"
            cmd = [args.python, ref, "--space", args.space, "--layout", layout,
                   "--style", style] + common
            res, err = run_one(label, cmd, args.timeout)
            if err:
                print(f"[bench_compare] {label}: {err}", file=sys.stderr)
            rows.append((label, res, err))

    rust = rows[0][1]
    rust_ms = rust["median_ms"] if rust else None
    rust_rss = rust["peak_rss_mb"] if rust else None

    print(f"\n{args.space} supernet train step: batch {args.batch_size}, threads {args.threads}, "
          f"{args.steps} timed steps after {args.warmup} warm-up\n")
    print("| impl | median ms | mean ms | peak RSS MB | time ref/rust | RSS ref/rust |")
    print("|------|----------:|--------:|------------:|--------------:|-------------:|")
    for label, res, err in rows:
        if res is None:
            print(f"| {label} | n/a ({err}) | n/a | n/a | | |")
            continue
        is_rust = label.startswith("rust")
        t_ratio = None if is_rust else ratio(res["median_ms"], rust_ms)
        m_ratio = None if is_rust else ratio(res["peak_rss_mb"], rust_rss)
        print(f"| {label} | {fmt(res['median_ms'])} | {fmt(res.get('mean_ms'))} | "
              f"{fmt(res['peak_rss_mb'])} | "
              f"{'' if is_rust else fmt(t_ratio, 2)} | {'' if is_rust else fmt(m_ratio, 2)} |")

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump([{"label": l, "result": r, "error": e} for l, r, e in rows], f, indent=2)

    if any(res is None for _, res, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
