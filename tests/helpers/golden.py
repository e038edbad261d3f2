"""The golden tensors produced by the original APTM code (they cannot be generated here: they are the original code's
outputs). Set C, small, is vendored in `tests/golden/C` and runs on every clone; the larger sets (A, B) are read from
`../shared/golden` beside the repository where it exists, and tests of a missing set skip."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from helpers.paths import REPO

VENDORED = REPO / "tests" / "golden"
GOLDEN = REPO.parent / "shared" / "golden"  # the larger sets, beside the clone
VENDORED_SETS = ("C",)
GOLDEN_SETS = VENDORED_SETS + tuple(name for name in ("A", "B") if (GOLDEN / name / "checkpoint.pth").is_file())


def golden_dir(name):
    """The folder of golden set `name` as the original harness wrote it (`checkpoint.pth`, its Swin/BERT json files
    and the `.npz`/`.json` records)."""
    path = (VENDORED if name in VENDORED_SETS else GOLDEN) / name
    if not (path / "checkpoint.pth").is_file():
        pytest.skip(f"golden set {name} not present at {path}")
    return path


def images_dir(folder):
    """The folder of the input PNGs `img0..3.png`: the set's own `images/` (C), else the one shared by A and B."""
    return folder / "images" if (folder / "images").is_dir() else GOLDEN / "images"


def golden_images(folder):
    """The set's input images, as PIL images."""
    count = len(np.load(folder / "inputs.npz")["image_pids"])
    return [Image.open(images_dir(folder) / f"img{i}.png") for i in range(count)]


def golden_pixels(folder):
    """The original's pixel values `[N, 3, H, W]` float32: stored in `inputs.npz` (A, B), or recomputed from the PNGs
    with the original test transform (PIL bicubic resize, /255, the set's mean/std) and checked byte for byte against
    the sha256 the set records (C)."""
    inputs = np.load(folder / "inputs.npz")
    if "pixel_values" in inputs:
        return inputs["pixel_values"]
    meta = json.loads((folder / "inputs.json").read_text())
    height, width = meta["pixel_values_shape"][2:]
    resized = np.stack([np.asarray(Image.fromarray(np.asarray(image.convert("RGB")), "RGB").resize(
        (width, height), Image.BICUBIC)) for image in golden_images(folder)])
    pixels = (resized.astype(np.float32) / 255 - inputs["norm_mean"]) / inputs["norm_std"]
    pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype="<f4")
    if hashlib.sha256(pixels.tobytes()).hexdigest() != meta["pixel_values_sha256"]:
        raise AssertionError(f"the pixels recomputed from {images_dir(folder)} are not the ones golden set "
                             f"{folder.name} records (pixel_values_sha256)")
    return pixels
