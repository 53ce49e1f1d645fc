#!/usr/bin/env python3
"""Compare searches that differ only in `--precision` (issue 34's parity): per seed, the architectures, their
NAS-Bench-201 accuracies, the rank correlation of the final held-out importances and the decisions' confidence.

    python3 tools/precision_parity.py --runs DIR --modes fp32 bf16 --seeds 0 1 2 3 4

reads DIR/nb201-<mode>-s<seed>/ (result.json, importances.json) and prints a markdown table, then the decisions that
fp32 makes with confidence >= 0.9 and another mode changes.
"""

import argparse
import json
import os
import statistics


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2.0
        i = j + 1
    return out


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    spread = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / spread if spread > 0 else float("nan")


def flat(v):
    return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]


def load(run):
    with open(os.path.join(run, "result.json")) as f:
        result = json.load(f)
    with open(os.path.join(run, "importances.json")) as f:
        importances = json.load(f)
    return result, flat(importances[-1]["heldout"]["values"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--space", default="nb201")
    ap.add_argument("--modes", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    reference = args.modes[0]
    print("| seed | mode | architecture | CIFAR-10 test | held-out acc | confidence | Spearman vs "
          f"{reference} | train s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    changed = []
    for seed in args.seeds:
        base = None
        for mode in args.modes:
            run = os.path.join(args.runs, f"{args.space}-{mode}-s{seed}")
            if not os.path.exists(os.path.join(run, "result.json")):
                print(f"| {seed} | {mode} | (not finished) | | | | | |")
                continue
            result, values = load(run)
            if base is None and mode == reference:
                base = (result, values)
            rho = spearman(values, base[1]) if base is not None else float("nan")
            test = result.get("bench201", {}).get("c10_test", float("nan"))
            confidence = result.get("confidence") or {}
            conf = confidence.get("architecture", float("nan"))
            arch = result["arch"].replace("|", "\\|")  # the arch string's bars inside a table cell
            print(f"| {seed} | {mode} | `{arch}` | {test:.2f} | {100 * result['heldout_acc']:.2f} | "
                  f"{conf:.3f} | {rho:.4f} | {result['train_seconds']:.0f} |")
            if base is not None and mode != reference:
                decisions = zip((base[0].get("confidence") or {}).get("decisions", []), confidence.get("decisions", []))
                for d_ref, d in decisions:
                    if d_ref["confidence"] >= 0.9 and d_ref["choice"] != d["choice"]:
                        changed.append((seed, mode, d_ref["point"], d_ref["choice"], d_ref["confidence"],
                                        d["choice"], d["confidence"]))
    print()
    if changed:
        print(f"Decisions {reference} makes with confidence >= 0.9 that another mode changes:")
        for seed, mode, point, a, ca, b, cb in changed:
            print(f"- seed {seed}, {mode}, {point}: {reference} {a} ({ca:.2f}) -> {b} ({cb:.2f})")
    else:
        print(f"No decision that {reference} makes with confidence >= 0.9 changes in another mode.")


if __name__ == "__main__":
    main()
