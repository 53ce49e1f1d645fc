#!/usr/bin/env python3
"""torchvision reference outputs for agnas's image transforms (crates/agnas/src/data/augment.rs).

Usage (from the repository root; needs torchvision==0.26.0 and pillow in the torch 2.11 environment):

    ~/.cache/agnas/torch-2.11.0/bin/python tools/make_transform_fixtures.py

Writes, into crates/agnas/tests/fixtures:

- ``transforms.safetensors``: the test images (``image.<name>``, uint8 HWC) and, per case, torchvision's output
  (``<case>``, float32 CHW, normalised);
- ``transforms.json``: the cases (image, the drawn parameters, the output) and the statistics of torchvision's own
  ``RandomResizedCrop.get_params`` over many draws on a few image shapes.

The rendering is torchvision's tensor path on a float image (``to_tensor`` first), ``antialias=True``:
``resized_crop``/``resize`` + ``center_crop``, ``hflip``, ``adjust_brightness|contrast|saturation|hue`` in the
case's order, ``normalize``. Each case also records how far the PIL path (uint8 between the steps, as the official
ImageNet pipelines run it) lies from it, for the fixture README; the Rust tests do not read that number.
"""

import json
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO_ROOT, "crates", "agnas", "tests", "fixtures")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
ADJUST = ["brightness", "contrast", "saturation", "hue"]
SAMPLING_DRAWS = 100_000


def images():
    g = torch.Generator().manual_seed(20261201)
    noise = torch.randint(0, 256, (37, 53, 3), generator=g, dtype=torch.uint8)
    # Smooth gradients, hard edges, grey pixels and channel ties (the hue conversion's special cases).
    y, x = torch.meshgrid(torch.arange(60.0), torch.arange(80.0), indexing="ij")
    photo = torch.stack([x * 3.2, y * 4.2, 255 - x * 2 - y], dim=-1)
    photo[(x - 50) ** 2 + (y - 25) ** 2 < 150] = torch.tensor([230.0, 40.0, 40.0])
    photo[40:50, 5:30] = 128.0
    photo[10:20, 60:75] = torch.tensor([200.0, 200.0, 30.0])
    photo = photo.clamp(0, 255).round().to(torch.uint8)
    tall = torch.randint(0, 256, (45, 20, 3), generator=g, dtype=torch.uint8)
    tall[:, :10] = tall[:, :10] // 4 + 100
    return {"noise": noise, "photo": photo, "tall": tall}


# name, image, parameters. Eval cases: Resize(resize) (0 = none) then CenterCrop(crop) (0 = none). Train cases: the
# crop box (top, left, height, width) resized to size × size, the flip, the adjustments in `order` (0 brightness,
# 1 contrast, 2 saturation, 3 hue) with `factors` (None = off).
CASES = [
    ("eval_shrink", "photo", {"resize": 32, "crop": 28}),
    ("eval_enlarge_ties", "tall", {"resize": 24, "crop": 21}),
    ("eval_crop_only", "noise", {"resize": 0, "crop": 30}),
    ("eval_same_size", "noise", {"resize": 37, "crop": 0}),
    ("train_shrink_all", "photo", {"box": [5, 7, 40, 50], "size": 24, "flip": True,
                                   "order": [2, 0, 3, 1], "factors": [1.3, 0.7, 1.4, 0.15]}),
    ("train_enlarge_hue", "noise", {"box": [3, 2, 10, 12], "size": 32, "flip": False,
                                    "order": [3, 1, 0, 2], "factors": [None, None, None, -0.2]}),
    ("train_grey_half_turn", "tall", {"box": [0, 0, 45, 20], "size": 16, "flip": True,
                                      "order": [0, 1, 2, 3], "factors": [0.6, 1.4, 0.0, -0.5]}),
    ("train_contrast_first", "photo", {"box": [20, 30, 33, 41], "size": 20, "flip": False,
                                       "order": [1, 3, 2, 0], "factors": [1.1, 0.65, 0.8, 0.5]}),
    ("train_plain_flip", "photo", {"box": [0, 0, 60, 80], "size": 60, "flip": True,
                                   "order": [0, 1, 2, 3], "factors": [None, None, None, None]}),
]


def jitter(img, order, factors, functions):
    for k in order:
        if factors[k] is not None:
            img = functions[k](img, factors[k])
    return img


def render(image, p, pil):
    """Case `p` on the HWC uint8 tensor `image`: the tensor path in float, or PIL's uint8 path."""
    img = Image.fromarray(image.numpy()) if pil else F.to_tensor(image.numpy())
    adjust = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    if "box" in p:
        top, left, h, w = p["box"]
        img = F.resized_crop(img, top, left, h, w, [p["size"], p["size"]],
                             T.InterpolationMode.BILINEAR, antialias=True)
        if p["flip"]:
            img = F.hflip(img)
        img = jitter(img, p["order"], p["factors"], adjust)
    else:
        if p["resize"]:
            img = F.resize(img, p["resize"], T.InterpolationMode.BILINEAR, antialias=True)
        if p["crop"]:
            img = F.center_crop(img, p["crop"])
    if pil:
        img = F.to_tensor(img)
    return F.normalize(img, MEAN, STD)


def sampling_stats(height, width, scale, ratio):
    """Means and standard deviations of torchvision's crop boxes on a height × width image."""
    torch.manual_seed(height * 1000 + width)
    img = torch.zeros(1, height, width)
    boxes = np.array([T.RandomResizedCrop.get_params(img, scale, ratio) for _ in range(SAMPLING_DRAWS)],
                     dtype=np.float64)
    top, left, h, w = boxes.T
    columns = {"top": top, "left": left, "height": h, "width": w, "log_aspect": np.log(w / h),
               "area": h * w / (height * width)}
    return {
        "height": height, "width": width, "scale": list(scale), "ratio": list(ratio), "draws": SAMPLING_DRAWS,
        "mean": {k: float(v.mean()) for k, v in columns.items()},
        "std": {k: float(v.std()) for k, v in columns.items()},
    }


SAMPLING = [
    (375, 500, (0.08, 1.0), (3 / 4, 4 / 3)),
    (32, 32, (0.08, 1.0), (3 / 4, 4 / 3)),
    (24, 200, (0.08, 1.0), (3 / 4, 4 / 3)),
    (200, 24, (0.08, 1.0), (3 / 4, 4 / 3)),
    (10, 200, (0.08, 1.0), (3 / 4, 4 / 3)),
    (64, 48, (0.5, 0.9), (0.5, 1.0)),
]


def main():
    torch.set_num_threads(1)
    imgs = images()
    tensors = {f"image.{k}": v.contiguous() for k, v in imgs.items()}
    cases = []
    for name, image, p in CASES:
        out = render(imgs[image], p, pil=False)
        pil = render(imgs[image], p, pil=True)
        tensors[name] = out.contiguous()
        cases.append({"name": name, "image": image, **p, "mean": MEAN, "std": STD,
                      "shape": list(out.shape),
                      "pil_max_abs_diff": float((out - pil).abs().max()),
                      "pil_mean_abs_diff": float((out - pil).abs().mean())})
    doc = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "rendering": "tensor path on float images, antialias=True; outputs normalised with ImageNet mean/std",
        "cases": cases,
        "sampling": [sampling_stats(*s) for s in SAMPLING],
    }
    from safetensors.torch import save_file
    save_file(tensors, os.path.join(OUT, "transforms.safetensors"), metadata={"torch": torch.__version__})
    with open(os.path.join(OUT, "transforms.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    for c in cases:
        print(f"{c['name']:24s} {str(c['shape']):14s} PIL path differs by at most {c['pil_max_abs_diff']:.4f} "
              f"(mean {c['pil_mean_abs_diff']:.5f})")
    for s in doc["sampling"]:
        print(f"sampling {s['height']}×{s['width']}: mean box {s['mean']['height']:.2f}×{s['mean']['width']:.2f}")


if __name__ == "__main__":
    main()
