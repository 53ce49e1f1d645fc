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
    ap.add_argument("--blocks", action="store_true",
                    help="compare forward/backward of the building blocks instead of a train step")
    ap.add_argument("--iters", type=int, default=10,
                    help="--blocks: timed iterations per block")
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
        for layout, style in (("nchw", "official"), ("channels_last", "fast"), ("channels_last", "shared")):
            label = f"pytorch {layout}/{style}"
            cmd = [args.python, ref, "--blocks", "--layout", layout, "--style", style] + common
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


def main(argv=None):
    args = parse_args(argv)
    if args.blocks:
        blocks_main(args)
        return
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
        malloc = {"GLIBC_TUNABLES": MALLOC_TUNABLES}
        variants = (("nchw", "official", None), ("channels_last", "fast", None),
                    ("channels_last", "shared", malloc))
        for layout, style, extra_env in variants:
            label = f"pytorch {layout}/{style}" + (" + malloc settings" if extra_env else "")
            cmd = [args.python, ref, "--space", args.space, "--layout", layout,
                   "--style", style] + common
            res, err = run_one(label, cmd, args.timeout, extra_env)
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
