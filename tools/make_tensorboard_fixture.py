#!/usr/bin/env python3
"""Write the TensorBoard event-file fixture that agnas's event writer is checked against, byte for byte.

Usage (from the repository root; the tools' venv needs `pip install tensorboard`):

    /root/.cache/agnas/torch-2.11.0/bin/python tools/make_tensorboard_fixture.py

PyTorch's own `SummaryWriter` writes the scalars below with fixed wall times (the file-version event takes the
clock, which is fixed here too), into `crates/agnas/tests/fixtures/tensorboard/events.out.tfevents.fixture`. The
scalars and times are repeated in `crates/agnas/src/report/tensorboard.rs`'s test.
"""

import glob
import os
import shutil
import tempfile
from unittest import mock

from torch.utils.tensorboard import SummaryWriter

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "crates", "agnas", "tests", "fixtures", "tensorboard", "events.out.tfevents.fixture")

START = 1_765_000_000.25
# (step, wall time, [(tag, value)]): a zero step and a zero value, a negative one, a grouped tag, non-ASCII.
EPOCHS = [
    (0, 1_765_000_001.5, [("train_loss", 2.25), ("lr", 0.0)]),
    (1, 1_765_000_060.125, [("train_loss", 1.75), ("valid/top1", 0.4375), ("delta", -3.5e-7)]),
    (2, 1_765_000_120.0, [("valid/top1", 0.5), ("attention/µ", 1e30)]),
]


def main():
    tmp = tempfile.mkdtemp()
    try:
        with mock.patch("time.time", return_value=START):
            writer = SummaryWriter(log_dir=tmp)
        for step, wall, scalars in EPOCHS:
            for tag, value in scalars:
                writer.add_scalar(tag, value, global_step=step, walltime=wall)
        writer.close()
        (written,) = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        shutil.copyfile(written, OUT)
    finally:
        shutil.rmtree(tmp)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
