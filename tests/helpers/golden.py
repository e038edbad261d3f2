"""The golden tensors produced by the original APTM code. Set A travels with the repository (`tests/data_files/golden`,
its checkpoint in a compact lossless form, see the README there), so the parity tests run on every clone; other sets
are read from `../shared/golden` beside the repository when present."""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.paths import REPO

SHARED = REPO.parent / "shared" / "golden"
BUNDLED = REPO / "tests" / "data_files" / "golden"
IMAGES = BUNDLED / "images"  # img0..3.png, the inputs of every set
BUNDLED_SETS = sorted(p.name for p in BUNDLED.iterdir() if (p / "checkpoint_fp16.npz").is_file())
SHARED_SETS = sorted(p.name for p in SHARED.iterdir() if (p / "checkpoint.pth").is_file()) if SHARED.is_dir() else []
GOLDEN_SETS = sorted(set(BUNDLED_SETS) | set(SHARED_SETS))


def golden_dir(name):
    """The folder of golden set `name` as the original harness wrote it (`checkpoint.pth`, its Swin/BERT json files
    and the `.npz`/`.json` records): the bundled copy restored into a temporary folder, else the shared set."""
    if name in BUNDLED_SETS:
        return restore_bundled(name)
    path = SHARED / name
    if not (path / "checkpoint.pth").is_file():
        pytest.skip(f"golden set {name} is neither bundled nor present at {SHARED}")
    return path


def restore_bundled(name):
    """Write the bundled set `name` out as the original files, once per content (the folder name carries a hash
    of the bundled files): `checkpoint.pth` = `{'model': fp32 state dict, 'config': ...}` with the original's key
    order and tied tensors sharing storage, beside copies of the other files."""
    source = BUNDLED / name
    files = sorted(p for p in source.iterdir() if p.is_file())
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"aptm-golden-{digest}" / name
    if (target / "checkpoint.pth").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent))
    for path in files:
        if path.name not in ("checkpoint_fp16.npz", "checkpoint.json"):
            shutil.copyfile(path, staging / path.name)
    torch.save(bundled_checkpoint(source), staging / "checkpoint.pth")
    try:
        staging.rename(target)
    except OSError:  # another test process restored it first
        shutil.rmtree(staging)
    return target


def bundled_checkpoint(folder):
    """The original checkpoint dict from `checkpoint_fp16.npz` (every float on the fp16 grid, so `.float()` is exact)
    and `checkpoint.json` (config, key order, tied keys)."""
    meta = json.loads((folder / "checkpoint.json").read_text())
    arrays = np.load(folder / "checkpoint_fp16.npz")
    tensors = {key: torch.from_numpy(arrays[key]) for key in arrays.files}
    tensors = {key: t.float() if t.is_floating_point() else t for key, t in tensors.items()}
    state = {key: tensors[meta["aliases"].get(key, key)] for key in meta["keys"]}
    return {"model": state, "config": meta["config"]}
