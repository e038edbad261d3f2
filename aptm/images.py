"""Reading image files: the one decoder every reader of the package uses (gallery folders, footage sources, the
Space's uploads), the file suffixes that say what a file holds, and the check of archive member paths.

`decode_image` applies the EXIF orientation (a phone photo comes out upright) and refuses images with more pixels
than a limit before decoding them. Problems raise `SourceError`, which names the file. Imports only numpy and Pillow,
so the Space runs this module from a copy (`scripts/publish_space.py`).
"""

from __future__ import annotations

import warnings
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class SourceError(Exception):
    """A file (or archive member) that cannot be read at all: `name` says which, `reason` why (a short category
    the skip counts use), `detail` what was found."""

    def __init__(self, name: str | Path, reason: str, detail: str = ""):
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))
        self.name, self.reason, self.detail = str(name), reason, detail


def kind_of(name: str) -> str | None:
    """`"image"`, `"video"`, `"archive"` or None, from a file name's suffix."""
    name = name.lower()
    for kind, suffixes in (("archive", ARCHIVE_SUFFIXES), ("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def decode_image(data: bytes | str | Path | BinaryIO, name: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """RGB `uint8` array `[H, W, 3]` of an image file (path, bytes or binary stream), EXIF orientation applied; the
    first frame of an animation. Raises `SourceError` naming `name` when it is unreadable or has more than
    `max_pixels` pixels (default: Pillow's decompression-bomb limit, `Image.MAX_IMAGE_PIXELS`); an image over the
    limit is refused from its header, before it is decoded, and Pillow itself refuses more than twice its own limit
    whatever `max_pixels` says."""
    max_pixels = max_pixels or Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():  # Pillow warns past its own limit; the check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data) if isinstance(data, bytes) else data)
        with image:
            if image.width * image.height > max_pixels:
                raise SourceError(name, "image too large", f"{image.width}x{image.height} pixels, over the limit of "
                                  f"{max_pixels}; raise max_pixels (--max-pixels) to index it")
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Image.DecompressionBombError as error:
        raise SourceError(name, "image too large", str(error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise SourceError(name, "unreadable image", str(error)) from error


def unsafe_member_name(name: str) -> bool:
    """Whether an archive member's path is absolute or climbs out of the archive (`..`)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")
