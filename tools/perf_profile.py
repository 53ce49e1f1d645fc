#!/usr/bin/env python3
"""Where a train step's CPU time goes, grouped by op kind and by forward/backward.

Records `perf record` samples of a command (by default `agnas bench step`), or reads an existing perf.data, and sums
the sampled symbols into op kinds (libtorch's kernels are named after the op; oneDNN's JIT convolutions have no
symbols and are counted from the anonymous-mapping addresses). Prints a markdown table.

    python tools/perf_profile.py -- target/release/agnas bench step --space nb201 --steps 3 --warmup 1 --threads 2
    python tools/perf_profile.py --data perf.data

With ``--steps N`` (the steps inside the sampled window) it also prints CPU milliseconds per step for each kind.
Profiling ``agnas bench step --forward-only`` the same way and subtracting gives each kind's backward share.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from collections import defaultdict

# (kind, pattern) in priority order: the first match names the sample's kind. "backward" in a libtorch kernel's
# name marks the backward pass; the elementwise kernels serve both passes and are reported as such.
KINDS = [
    ("conv (oneDNN named)", r"dnnl|mkldnn|brgemm|jit_"),
    ("batch norm backward", r"batch_norm.*backward"),
    ("batch norm forward", r"batch_norm"),
    ("avg pool backward", r"avg_pool2d_backward"),
    ("avg pool forward", r"avg_pool2d"),
    ("max pool backward", r"max_pool2d.*backward"),
    ("max pool forward", r"max_pool2d"),
    ("relu backward (threshold)", r"threshold_kernel.*|threshold_backward"),
    ("relu6 backward (hardtanh)", r"hardtanh_backward|hardtanh_"),
    ("add / sub (elementwise)", r"add_kernel|sub_kernel|add_stub"),
    ("mul (elementwise)", r"mul_kernel"),
    ("addcmul (elementwise)", r"addcmul"),
    ("div (elementwise, mean backward)", r"div_true_kernel|div_kernel"),
    ("relu forward (clamp)", r"clamp|relu"),
    ("sum / mean reductions", r"sum|reduce|mean|norm_kernel|norm_two"),
    ("copy / layout", r"copy|contiguous|permute"),
    ("fill (zeros)", r"fill"),
    ("sigmoid / SE", r"sigmoid|gemm|sgemm|addmm"),
    ("allocator (malloc/free)", r"malloc|_int_free|free|unlink_chunk|consolidate|alloc"),
    ("OS (page faults, clearing)", r"^\[k\]"),
]


def classify(dso, symbol, kernel):
    if kernel:
        return "OS (page faults, clearing)"
    if dso.startswith("[JIT]"):
        return "conv (oneDNN JIT code)"
    if dso.startswith("libgomp"):
        return "OpenMP (workers waiting, fork/join)"
    for kind, pattern in KINDS:
        if re.search(pattern, symbol):
            return kind
    return "other"


def parse_report(text):
    """Samples per op kind."""
    totals = defaultdict(int)
    for line in text.splitlines():
        m = re.match(r"\s*[0-9.]+%\s+(\d+)\s+(\[JIT\] tid \d+|\S+)\s+\[(.)\]\s+(.*?)\s*$", line)
        if not m:
            continue
        samples, dso, where, symbol = int(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        totals[classify(dso, symbol, where == "k")] += samples
    return totals


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="an existing perf.data (otherwise the command after -- is recorded)")
    ap.add_argument("--freq", type=int, default=499)
    ap.add_argument("--steps", type=int, default=0, help="steps inside the sampled window: adds CPU ms per step")
    ap.add_argument("--delay-ms", type=int, default=0,
                    help="start sampling this late, to leave out start-up and warm-up (the first step faults in all "
                         "of its memory; later steps reuse it)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    data = args.data
    if data is None:
        command = [c for c in args.command if c != "--"]
        if not command:
            sys.exit("give a command after -- or --data")
        data = tempfile.mktemp(suffix=".perf.data")
        delay = ["-D", str(args.delay_ms)] if args.delay_ms > 0 else []
        subprocess.run(["perf", "record", "-q", "-F", str(args.freq), "-o", data] + delay + ["--"] + command,
                       check=True, stdout=sys.stderr)
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "-F", "overhead,sample,dso,sym", "--stdio"],
                            capture_output=True, text=True, check=True).stdout
    totals = parse_report(report)
    all_samples = sum(totals.values()) or 1
    per_step = args.steps > 0
    print("| op kind | share of samples |" + (" CPU ms per step |" if per_step else ""))
    print("|---|---:|" + ("---:|" if per_step else ""))
    for kind, samples in sorted(totals.items(), key=lambda kv: -kv[1]):
        ms = f" {samples / args.freq * 1000 / max(args.steps, 1):.0f} |" if per_step else ""
        print(f"| {kind} | {100 * samples / all_samples:.1f} % |{ms}")
    if per_step:
        print(f"| all | 100 % | {all_samples / args.freq * 1000 / args.steps:.0f} |")


if __name__ == "__main__":
    main()
