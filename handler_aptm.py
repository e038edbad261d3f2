"""The Inference Endpoints handler of an APTM checkpoint, travelling with it as remote code (it imports only
transformers, Pillow and the standard library). The model's `save_pretrained` writes it beside the model code with
`handler.py`, the file an endpoint looks for, which imports `EndpointHandler` from here. An endpoint builds
`EndpointHandler(path)` once on the checkpoint's folder and calls it with each request's JSON:

    {"inputs": {"text": "a woman in a red coat", "images": ["<base64 PNG/JPEG>", ...]},
     "parameters": {"top_k": 5}}

and answers the ranked images, best first: `[{"index", "score", "cosine", "itm_logit"}, ...]` (a list of them per
text when `text` is a list), `index` the position in `images`. Parameters: `top_k` (default 10), `k` (candidates
re-ranked by ITM, default the checkpoint's `k_test`) and `fusion` (`"aptm"`, `"itm"` or `"cosine"`), as the
`text-person-retrieval` pipeline takes them."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from transformers import pipeline

PARAMETERS = ("top_k", "k", "fusion")
ENTRY_POINT = "handler.py"


def decode_image(data: str, name: str) -> Image.Image:
    """The RGB image of base64 text `data` (a bare base64 string or a `data:image/...;base64,` URL); errors name the
    input `name`."""
    if not isinstance(data, str):
        raise ValueError(f"{name} must be a base64 string, got {type(data).__name__}")
    try:
        raw = base64.b64decode(data.split(",", 1)[1] if data.startswith("data:") else data, validate=True)
        return Image.open(io.BytesIO(raw)).convert("RGB")
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{name} is not a base64-encoded image: {error}") from error


class EndpointHandler:
    """Text-to-person search over the request's images with the checkpoint in `path` (the paper's procedure: cosine
    top-k re-ranked by the ITM head)."""

    def __init__(self, path: str = ""):
        self.search = pipeline("text-person-retrieval", model=str(path or "."), trust_remote_code=True)

    def __call__(self, data: dict[str, Any]) -> list[dict] | list[list[dict]]:
        inputs = data.get("inputs") if isinstance(data, dict) else None
        if not isinstance(inputs, dict) or "text" not in inputs or "images" not in inputs:
            raise ValueError('the request must hold {"inputs": {"text": ..., "images": [base64 images]}}')
        text, images = inputs["text"], inputs["images"]
        if not (isinstance(text, str) or isinstance(text, list) and text and all(isinstance(t, str) for t in text)):
            raise ValueError("inputs.text must be a string or a non-empty list of strings")
        if not isinstance(images, list) or not images:
            raise ValueError("inputs.images must be a non-empty list of base64-encoded images")
        parameters = data.get("parameters") or {}
        unknown = sorted(set(parameters) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; choose from {list(PARAMETERS)}")
        gallery = [decode_image(image, f"inputs.images[{index}]") for index, image in enumerate(images)]
        return self.search(text, gallery=gallery, **parameters)


def write_entry_point(folder: str | Path) -> Path:
    """Write `handler.py`, the file Inference Endpoints import from a checkpoint folder, into `folder`: it takes
    `EndpointHandler` from this module (copied beside it with the model code)."""
    path = Path(folder) / ENTRY_POINT
    path.write_text('"""Inference Endpoints entry point of this APTM checkpoint (see handler_aptm.py)."""\n\n'
                    "from handler_aptm import EndpointHandler  # noqa: F401\n")
    return path


__all__ = ["EndpointHandler", "decode_image", "write_entry_point"]
