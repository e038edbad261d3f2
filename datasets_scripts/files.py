"""Writes that a killed process never leaves half done: a file is written under a temporary name beside its target,
flushed to disk, then renamed over the target (`os.replace`, atomic on one file system), so a reader sees the old
content or the new, never a part. Imports nothing from this project; the dataset builders, the gallery index and the
trainer's checkpoints use it."""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def sync_folder(folder: str | os.PathLike) -> None:
    """Flush `folder`'s entries (names created, renamed or removed in it) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_tree(folder: str | os.PathLike) -> None:
    """Flush every file under `folder`, and the folders themselves, to disk (before renaming `folder` into place)."""
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                os.fsync(file.fileno())
        sync_folder(root)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write the whole file to; when the block ends the file is flushed and renamed
    to `path` (replacing what was there), or removed if the block raises."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(descriptor)
    try:
        yield Path(temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` by `data` in one step (see the module docstring)."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_json_atomically(path: str | os.PathLike, value: Any, **dumps_options: Any) -> None:
    """Replace `path` by `value` as JSON in one step (`dumps_options` go to `json.dumps`)."""
    write_bytes_atomically(path, json.dumps(value, **dumps_options).encode())
