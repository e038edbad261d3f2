"""Locate the golden tensors produced by the original APTM code (`../shared/golden` beside the repository)."""

import pytest

from helpers.paths import REPO

GOLDEN = REPO.parent / "shared" / "golden"
GOLDEN_SETS = sorted(p.name for p in GOLDEN.iterdir() if (p / "checkpoint.pth").is_file()) if GOLDEN.is_dir() else []


def golden_dir(name):
    path = GOLDEN / name
    if not (path / "checkpoint.pth").is_file():
        pytest.skip(f"golden set {name} not present at {GOLDEN}")
    return path
