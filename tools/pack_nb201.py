#!/usr/bin/env python3
"""Pack the NAS-Bench-201 200-epoch table into the compact form embedded by agnas.

Usage (from the workspace root):
    python3 tools/pack_nb201.py /work/shared/data/nb201/nb201_200ep.csv crates/agnas/data/nb201.cols.gz

Output: gzip of UTF-8 text. Line 1 is "agnas-nb201-cols 1 <rows>". Each following line is one
column, "<name>=<v0>,<v1>,...", where value k belongs to the architecture whose base-5 op code
is k (see crates/agnas/src/space/nb201/arch.rs). Storing columns in code order instead of rows
in benchmark order lets gzip exploit that neighbouring codes share ops (params_mb is a pure
function of the ops), which saves about 20 KiB. The benchmark index becomes an ordinary column.
The metric values are copied as the CSV's decimal text, so every number survives byte for byte.

Only the Python standard library is used, and the output is deterministic (gzip mtime 0).
"""

import csv
import gzip
import sys

MAGIC = "agnas-nb201-cols 1"
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
HEADER = ["index", "arch", "c10_test", "c10v_valid", "c10v_test", "c100_valid",
          "c100_test", "in16_valid", "in16_test", "params_mb"]
METRICS = HEADER[2:]
NUM_ARCHS = 5 ** 6


def arch_code(text):
    """Base-5 code of an NB201 arch string, first edge most significant; strict like the Rust parser."""
    groups = text.strip().split("+")
    if len(groups) != 3:
        raise ValueError(f"expected 3 node groups in {text!r}")
    code = 0
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ValueError(f"bad framing of node {node} in {text!r}")
        entries = group[1:-1].split("|")
        if len(entries) != node:
            raise ValueError(f"node {node} has {len(entries)} inputs in {text!r}")
        for position, entry in enumerate(entries):
            name, sep, source = entry.partition("~")
            if not sep or source != str(position) or name not in OPS:
                raise ValueError(f"bad entry {entry!r} of node {node} in {text!r}")
            code = code * 5 + OPS.index(name)
    return code


def check_number(text, where):
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{where}: non-finite value {text!r}")
    if "," in text or "\n" in text or text != text.strip():
        raise ValueError(f"{where}: value {text!r} would break the packed format")


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} INPUT.csv OUTPUT.gz")
    src, dst = argv[1], argv[2]
    with open(src, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header != HEADER:
            sys.exit(f"unexpected header {header}, want {HEADER}")
        rows = list(reader)

    by_code = [None] * NUM_ARCHS
    for position, row in enumerate(rows):
        where = f"row {position + 2}"
        if len(row) != len(HEADER):
            sys.exit(f"{where}: {len(row)} fields, want {len(HEADER)}")
        # The index column must be the row order so that readers can index by it directly.
        if row[0] != str(position):
            sys.exit(f"{where}: index {row[0]!r}, want {position}")
        code = arch_code(row[1])
        if by_code[code] is not None:
            sys.exit(f"{where}: arch {row[1]} already seen at index {by_code[code][0]}")
        for name, value in zip(METRICS, row[2:]):
            check_number(value, f"{where} {name}")
        by_code[code] = row
    missing = [code for code, row in enumerate(by_code) if row is None]
    if missing:
        sys.exit(f"{len(missing)} architectures missing, e.g. code {missing[0]}")

    lines = [f"{MAGIC} {NUM_ARCHS}", "index=" + ",".join(row[0] for row in by_code)]
    for column, name in enumerate(METRICS, start=2):
        lines.append(name + "=" + ",".join(row[column] for row in by_code))
    text = ("\n".join(lines) + "\n").encode("utf-8")
    packed = gzip.compress(text, compresslevel=9, mtime=0)
    with open(dst, "wb") as f:
        f.write(packed)
    print(f"wrote {dst}: {NUM_ARCHS} rows, {len(text)} bytes of text packed into {len(packed)} bytes")


if __name__ == "__main__":
    main(sys.argv)
