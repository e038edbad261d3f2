"""Golden set M, made by the original MRA code (APTM's successor) on a tiny model at MRA's 384x256 geometry,
vendored in the repository (`tests/golden/M/`, its README describes every array), so its tests run on any clone.
`checkpoint.pth` is read with `weights_only=True` only (through the converter)."""

import json
from functools import lru_cache

import numpy as np
from PIL import Image

from helpers.paths import REPO

MRA_DIR = REPO / "tests" / "golden" / "M"


@lru_cache(maxsize=None)
def arrays(name):
    """The arrays of `{name}.npz` (`inputs`, `outputs`, `eval`, `losses`), as a dict."""
    return dict(np.load(MRA_DIR / f"{name}.npz"))


@lru_cache(maxsize=None)
def record(name):
    """The record `{name}.json` (`inputs`, `eval`, `losses`, `manifest`)."""
    return json.loads((MRA_DIR / f"{name}.json").read_text())


def images():
    """The four source PNGs (RGB, CUHK-like sizes), in gallery order."""
    return [Image.open(MRA_DIR / name).convert("RGB") for name in record("inputs")["images"]]
