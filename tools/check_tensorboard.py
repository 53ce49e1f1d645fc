#!/usr/bin/env python3
"""Read a run folder's TensorBoard event files with TensorBoard's own reader and check them against metrics.jsonl.

Usage (the tools' venv needs `pip install tensorboard`):

    /root/.cache/agnas/torch-2.11.0/bin/python tools/check_tensorboard.py RUN_DIR
"""

import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def flat(row, prefix=""):
    for key, value in row.items():
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            yield from flat(value, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
            yield path, float(value)


def main(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    expected = {(tag, row["epoch"]): value for row in rows for tag, value in flat(row)}
    events = EventAccumulator(run)
    events.Reload()
    found = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    assert found.keys() == expected.keys(), f"tags/steps differ: {sorted(found.keys() ^ expected.keys())}"
    for key, value in expected.items():
        assert abs(found[key] - value) <= 1e-6 * max(1.0, abs(value)), (key, found[key], value)
    print(f"{run}: {len(found)} scalars over {len(rows)} epochs match metrics.jsonl")


if __name__ == "__main__":
    main(sys.argv[1])
