"""The golden tensors produced by the original APTM code, read from `../shared/golden` beside the repository (they
cannot be generated here: they are the original code's outputs); tests that need a missing set skip."""

import pytest

from helpers.paths import REPO

GOLDEN = REPO.parent / "shared" / "golden"
IMAGES = GOLDEN / "images"  # img0..3.png, the inputs of every set
GOLDEN_SETS = sorted(p.name for p in GOLDEN.iterdir() if (p / "checkpoint.pth").is_file()) if GOLDEN.is_dir() else []


def golden_dir(name):
    """The folder of golden set `name` as the original harness wrote it (`checkpoint.pth`, its Swin/BERT json files
    and the `.npz`/`.json` records)."""
    path = GOLDEN / name
    if not (path / "checkpoint.pth").is_file():
        pytest.skip(f"golden set {name} not present at {GOLDEN}")
    return path
