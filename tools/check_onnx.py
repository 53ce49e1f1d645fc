"""Checks agnas's ONNX exports with the reference tools: `onnx.checker` (full check, with shape inference) and
onnxruntime, whose logits are compared with torch running the PyTorch export of the same network.

    python tools/check_onnx.py --agnas target/release/agnas --out target/onnx-check

For each space it exports the paper's evaluation network (fresh weights, a fixed seed) both ways, plus an ONNX file
with batch norms folded, and prints one line per file; it exits non-zero when a check fails or a difference
exceeds --tolerance. Needs onnx and onnxruntime (`make check-onnx` installs them into the project's environment).
"""
import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

NETWORKS = [("nb201", "6111", 32), ("darts", "agnas", 32), ("proxyless", "released", 224)]


def export(agnas, space, genotype, out, *extra):
    cmd = [agnas, "export", "--space", space, "--genotype", genotype, "--out", str(out), "--force", *extra]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def torch_logits(py_file, x):
    spec = importlib.util.spec_from_file_location(py_file.stem, py_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.no_grad():
        return module.load()(torch.from_numpy(x)).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agnas", default="target/release/agnas")
    ap.add_argument("--out", type=Path, default=Path("target/onnx-check"))
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    rng = np.random.default_rng(0)
    for space, genotype, side in NETWORKS:
        py = args.out / f"{space}.py"
        export(args.agnas, space, genotype, py, "--to", "pytorch")
        x = rng.standard_normal((2, 3, side, side), dtype=np.float32)
        want = torch_logits(py, x)
        for fold in (False, True):
            path = args.out / f"{space}{'-folded' if fold else ''}.onnx"
            info = export(args.agnas, space, genotype, path, *(["--fold-bn"] if fold else []))
            model = onnx.load(str(path))
            onnx.checker.check_model(model, full_check=True)
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {session.get_inputs()[0].name: x})[0]
            diff = float(np.abs(got - want).max())
            ok = diff <= args.tolerance
            failed |= not ok
            print(f"{path.name}: onnx checker ok, opset {model.opset_import[0].version}, {info['bytes']} bytes; "
                  f"onnxruntime {onnxruntime.__version__} vs torch {torch.__version__}: max |logit diff| "
                  f"{diff:.2e} {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
