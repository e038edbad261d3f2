"""Writes that a killed process never leaves half done: a file is written under a temporary name beside its target,
flushed to disk, then renamed over the target (`os.replace`, atomic on one file system), so a reader sees the old
content or the new, never a part. Imports nothing from this project; the dataset builders, the gallery index and the
trainer's checkpoints use it."""

import glob
import json
import os
import shutil
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


@contextmanager
def atomic_folder(path: str | os.PathLike, last: str | None = None) -> Iterator[Path]:
    """A temporary folder beside `path` to write a whole save into (a model's, a checkpoint's). When the block ends
    its files are flushed, then: where `path` does not exist (or is empty) the folder is renamed `path`, so the save
    appears whole or not at all; where `path` holds something, its files replace those of `path` one by one, `last`
    last, each whole (what else `path` holds, such as a training's checkpoints, stays). The temporary folder is
    removed if the block raises; those that killed saves left beside `path` are removed before."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for leftover in glob.glob(os.path.join(glob.escape(str(path.parent)), glob.escape(prefix) + "*.partial")):
        shutil.rmtree(leftover, ignore_errors=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=".partial"))
    try:
        yield temporary
        sync_tree(temporary)
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            os.rename(temporary, path)
        else:
            for file in sorted(temporary.iterdir(), key=lambda file: file.name == last):
                os.replace(file, path / file.name)
            sync_folder(path)
        sync_folder(path.parent)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` by `data` in one step (see the module docstring)."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_json_atomically(path: str | os.PathLike, value: Any, **dumps_options: Any) -> None:
    """Replace `path` by `value` as JSON in one step (`dumps_options` go to `json.dumps`)."""
    write_bytes_atomically(path, json.dumps(value, **dumps_options).encode())
