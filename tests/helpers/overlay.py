"""Package overlays for bare-environment tests: a folder filled once with `pip install --no-deps --target` and cached
outside the repository (`~/.cache/aptm/overlays/<name>-<hash>`, or under `$APTM_OVERLAY_CACHE`), put on the
`PYTHONPATH` of a bare environment (`helpers.bare_environment`), before the test environment's packages, so that a
subprocess runs other versions of a few packages (an older transformers) or extra ones (onnxruntime) without touching
the shared venv."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("APTM_OVERLAY_CACHE", Path.home() / ".cache" / "aptm" / "overlays"))
# onnxruntime and onnx (torch's exporter writes with it, the int8 quantisation reads with it) with their requirements
# that the test environment lacks
ONNX_OVERLAY = ["onnx==1.23.2", "onnxruntime==1.32.0", "ml_dtypes==0.7.0", "protobuf==7.36.2", "flatbuffers==25.12.19"]


def overlay(name: str, requirements: list[str]) -> Path:
    """The cached overlay `name` holding exactly `requirements` (pip specifiers, installed without dependencies),
    built on first use; the test is skipped, saying why, when PyPI cannot be reached to build it."""
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    folder = CACHE / f"{name}-{key}"
    if (folder / ".complete").is_file():
        return folder
    building = CACHE / f".{folder.name}.{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             "--no-deps", "--target", str(building), *requirements],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        pytest.skip(f"cannot build the overlay {name} ({' '.join(requirements)}) from PyPI: {result.stderr[-500:]}")
    (building / ".complete").write_text("\n".join(requirements) + "\n")
    try:
        building.rename(folder)
    except OSError:  # another process finished the same overlay first
        shutil.rmtree(building, ignore_errors=True)
    return folder



def onnx_overlay() -> Path:
    """The cached overlay of onnxruntime and onnx (`ONNX_OVERLAY`)."""
    return overlay("onnxruntime", ONNX_OVERLAY)
