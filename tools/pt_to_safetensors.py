#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (e.g. the official AGNAS `best_weights_seed0.pt`) to safetensors for `agnas eval`.

    ~/.cache/agnas/torch-2.11.0/bin/python tools/pt_to_safetensors.py best_weights_seed0.pt weights.safetensors
    agnas eval --run weights.safetensors --genotype agnas --data cifar-10-batches-bin

Accepts a bare state_dict or a dict holding one under `state_dict`/`model`; a DataParallel `module.` prefix is kept
(agnas strips it when loading).
"""
import argparse

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    args = ap.parse_args()
    obj = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise SystemExit(f"{args.checkpoint}: no state_dict of tensors found")
    save_file({k: v.contiguous() for k, v in obj.items()}, args.out)
    print(f"{len(obj)} tensors -> {args.out}")


if __name__ == "__main__":
    main()
