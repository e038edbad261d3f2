"""A gallery index: an encoded gallery with person ids and paths, saved to and loaded from disk.

On disk, a saved index is a folder with `index.safetensors` (features, image tokens, person ids; float32, float16 or
bfloat16) and `index.json` (size, paths), both carrying the same content id. An index built incrementally
(`RetrievalEngine.build_index`) is a folder of such shards, `shards/NNNNNN/`, with `gallery.json` (format, storage
dtype, whether it has person ids); it loads as one gallery. Loaded memory-mapped, the image tokens stay on disk and
only the rows asked for are read.

A writer killed at any moment leaves a folder that loads as before or as after (never a partial shard, never the
tensors of one save with the paths of another): every file is written whole and renamed into place (`datasets_scripts.files`),
shards are filled under a temporary name and renamed when complete, `index.json` is written after the tensors and a
pair from different saves is refused naming the files. Re-running the same build completes what was missing.
"""

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from datasets_scripts.files import atomic_path, sync_folder, sync_tree, write_json_atomically
from retrieval_aptm import EncodedGallery

from ..images import decode_image

TENSORS, PATHS, MANIFEST = "index.safetensors", "index.json", "gallery.json"
FORMAT = 1
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def storage_dtype_name(dtype):
    """The name (`"float32"`, `"float16"`, `"bfloat16"`) of a storage dtype; anything else raises a `ValueError`."""
    for name, value in STORAGE_DTYPES.items():
        if dtype == value:
            return name
    raise ValueError(f"dtype must be one of torch.float32, torch.float16, torch.bfloat16, got {dtype!r}")


class ShardedFolder:
    r"""
    Numbered shard folders `NNNNNN/` inside `folder`, each written under a temporary name (`.partial-*`) and renamed
    when complete, so a crash loses at most the shard being written. One process should write at a time.

    Args:
        folder (`str` or `Path`): holds the shards (created when the first is written).
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    @classmethod
    def of_index(cls, folder, dtype, person_ids):
        """The shards of the built index in `folder` (created, with its `gallery.json`, if new), to add to: the
        index's storage dtype and whether it has person ids must be `dtype` and `person_ids`; what a crashed writer
        left is removed."""
        folder = Path(folder)
        if (folder / TENSORS).is_file():
            raise ValueError(f"{folder} holds a saved index of one file: build into another folder")
        manifest = {"format": FORMAT, "dtype": storage_dtype_name(dtype), "person_ids": person_ids}
        if (folder / MANIFEST).is_file():
            saved = json.loads((folder / MANIFEST).read_text())
            for key, value in manifest.items():
                if saved.get(key) != value:
                    raise ValueError(f"{folder / MANIFEST}: the index has {key} {saved.get(key)!r}, this call "
                                     f"{value!r}")
        else:
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomically(folder / MANIFEST, manifest)
        shards = cls(folder / "shards")
        shards.remove_partial()
        return shards

    def shards(self):
        """The complete shard folders, in order."""
        if not self.folder.is_dir():
            return []
        return sorted(path for path in self.folder.iterdir() if not path.name.startswith("."))

    def remove_partial(self):
        """Delete what a crashed writer left (shards under their temporary name)."""
        for partial in self.folder.glob(".partial-*"):
            shutil.rmtree(partial)

    @contextmanager
    def new_shard(self):
        """A context giving the next shard's temporary folder to fill; flushed to disk and renamed to its number when
        the block ends, deleted if the block raises."""
        shards = self.shards()
        number = int(shards[-1].name) + 1 if shards else 0
        partial = self.folder / f".partial-{os.getpid()}-{number:06d}"
        partial.mkdir(parents=True)
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial)
            raise
        sync_tree(partial)
        partial.rename(self.folder / f"{number:06d}")
        sync_folder(self.folder)


class MappedImageTokens:
    r"""
    The image tokens `[G, 1 + N, C]` of saved index shards, left on disk (the safetensors files are memory-mapped):
    indexing with an int, a slice, a list or a tensor of row indices reads only those rows, in the stored dtype.

    Args:
        files (`list`): the shards' `index.safetensors` files, in gallery order.
    """

    def __init__(self, files):
        self.files = [Path(file) for file in files]
        self._tokens = [safe_open(str(file), framework="pt").get_slice("image_embeds") for file in self.files]
        shapes = [torch.Size(tokens.get_shape()) for tokens in self._tokens]
        for file, shape in zip(self.files, shapes):
            if shape[1:] != shapes[0][1:]:
                raise ValueError(f"{file}: image tokens of shape {tuple(shape[1:])}, {self.files[0]} "
                                 f"{tuple(shapes[0][1:])}")
        self._starts = torch.tensor([0] + [shape[0] for shape in shapes]).cumsum(0)
        self.shape = torch.Size([int(self._starts[-1]), *shapes[0][1:]])
        self.dtype = self._tokens[0][0:0].dtype
        self.rows_read = 0  # rows read from disk so far

    def __len__(self):
        return self.shape[0]

    def _row_indices(self, rows):
        """The gallery rows an int, slice, list, array, tensor of indices or boolean mask selects, as int64 indices in
        the shape of the result's leading dimensions."""
        if isinstance(rows, slice):
            return torch.arange(*rows.indices(len(self)))
        rows = torch.as_tensor(rows, dtype=torch.long if isinstance(rows, list) and not rows else None)
        if rows.dtype == torch.bool:
            if rows.shape != (len(self),):
                raise IndexError(f"a boolean mask of shape {tuple(rows.shape)} for {len(self)} images")
            return rows.nonzero().squeeze(1)
        if ((rows < -len(self)) | (rows >= len(self))).any():
            raise IndexError(f"row index out of range for {len(self)} images")
        return rows.long() % len(self)

    def __getitem__(self, rows):
        selected = self._row_indices(rows)
        wanted, order = selected.flatten().unique(return_inverse=True)  # sorted, so contiguous runs read at once
        parts = []
        for shard, tokens in enumerate(self._tokens):
            start, stop = self._starts[shard], self._starts[shard + 1]
            local = (wanted[(wanted >= start) & (wanted < stop)] - start).tolist()
            run_start = 0
            for position in range(1, len(local) + 1):
                if position == len(local) or local[position] != local[position - 1] + 1:
                    parts.append(tokens[local[run_start] : local[position - 1] + 1])
                    run_start = position
        self.rows_read += len(wanted)
        gathered = torch.cat(parts) if parts else torch.empty((0, *self.shape[1:]), dtype=self.dtype)
        return gathered[order.view(selected.shape)]


@dataclass
class GalleryIndex(EncodedGallery):
    """Encoded gallery (normalised projected features `[G, E]` for ITC, the image tokens `[G, 1 + N, C]` the fusion
    encoder attends to: a tensor, or `MappedImageTokens` when loaded memory-mapped) with optional person ids and
    paths."""

    person_ids: torch.Tensor = None
    paths: list = field(default_factory=list)

    def save(self, folder: str | Path, dtype: torch.dtype = torch.float32) -> None:
        """Write `index.safetensors` (features and image tokens in `dtype`: `torch.float32`, `torch.float16` or
        `torch.bfloat16`) and then `index.json` (paths) into `folder`, each replaced whole (a save killed midway
        leaves the previous index, or a pair that `load` refuses until the index is saved again)."""
        storage_dtype_name(dtype)
        if self.flipped_image_embeds is not None:
            raise ValueError("a test-time-flip gallery (with flipped_image_embeds) cannot be saved: an index holds one "
                             "view of each image")
        if not isinstance(self.image_embeds, torch.Tensor):
            raise ValueError("the image tokens of a memory-mapped index are already saved (in "
                             f"{', '.join(map(str, self.image_embeds.files))}); load it without mmap to save a copy")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"image_features": self.image_features.to(dtype).contiguous(),
                   "image_embeds": self.image_embeds.to(dtype).contiguous()}
        if self.person_ids is not None:
            tensors["person_ids"] = self.person_ids
        paths = list(self.paths)
        content_id = _content_id(tensors["image_features"], paths)
        with atomic_path(folder / TENSORS) as temporary:
            save_file(tensors, temporary, metadata={"format": "pt", "content_id": content_id})
        write_json_atomically(folder / PATHS, {"size": len(self), "paths": paths, "content_id": content_id})

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = False) -> "GalleryIndex":
        """Load a saved index (one `index.safetensors`) or a built one (`gallery.json` and its shards) as one
        gallery. Features come back in float32; image tokens stay in their stored dtype, in RAM, or on disk with
        `mmap=True` (`MappedImageTokens`: only the rows asked for are read)."""
        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            return cls.load_shards([folder], mmap)
        shards = ShardedFolder(folder / "shards").shards()
        if not shards:
            raise ValueError(f"{folder} holds no images yet")
        return cls.load_shards(shards, mmap)

    @classmethod
    def load_shards(cls, folders: Sequence[str | Path], mmap: bool = False) -> "GalleryIndex":
        """One gallery from saved index folders (shards), in order; `mmap` as `load`."""
        features, embeds, person_ids, paths = [], [], [], []
        for folder in folders:
            folder = Path(folder)
            for name in (TENSORS, PATHS):
                if not (folder / name).is_file():
                    raise FileNotFoundError(f"{folder / name} is missing: not a saved gallery index")
            meta = json.loads((folder / PATHS).read_text())
            with safe_open(str(folder / TENSORS), framework="pt") as tensors:
                saved_id = (tensors.metadata() or {}).get("content_id")
                if saved_id != meta.get("content_id"):
                    raise ValueError(f"{folder / TENSORS} and {folder / PATHS} come from different saves (one was "
                                     "interrupted): save or build the index again")
                features.append(tensors.get_tensor("image_features").float())
                person_ids.append(tensors.get_tensor("person_ids") if "person_ids" in tensors.keys() else None)
                if not mmap:
                    embeds.append(tensors.get_tensor("image_embeds"))
            if meta["size"] != len(features[-1]):
                raise ValueError(f"{folder}: {PATHS} describes {meta['size']} images, the tensors "
                                 f"{len(features[-1])}")
            if (person_ids[-1] is None) != (person_ids[0] is None):
                raise ValueError(f"{folder}: person ids in some shards only ({folders[0]} "
                                 f"{'lacks' if person_ids[0] is None else 'has'} them)")
            paths += meta["paths"]
        if mmap:
            image_embeds = MappedImageTokens([Path(folder) / TENSORS for folder in folders])
        else:
            image_embeds = embeds[0] if len(embeds) == 1 else torch.cat(embeds)
        return cls(torch.cat(features), image_embeds, None if person_ids[0] is None else torch.cat(person_ids), paths)

    @classmethod
    def build(cls, engine: Any, images: Any, folder: str | Path, person_ids: Sequence[int] | None = None,
              paths: Sequence[str] | None = None, dtype: torch.dtype = torch.float32,
              shard_size: int = 1024) -> "GalleryIndex":
        """See `RetrievalEngine.build_index`."""
        folder = Path(folder)
        files = isinstance(images, (list, tuple)) and all(isinstance(image, (str, Path)) for image in images)
        if paths is None and not files:
            raise ValueError("building an index needs paths, one name per image that identifies it (what is already "
                             "saved is skipped by path), unless the images are given as files")
        paths = [str(path) for path in (images if paths is None else paths)]
        for name, values in (("paths", paths), ("person_ids", person_ids)):
            if values is not None and len(values) != len(images):
                raise ValueError(f"{name} has {len(values)} entries for {len(images)} gallery images")
        repeated = [path for path, count in Counter(paths).items() if count > 1]
        if repeated:
            raise ValueError(f"paths must be unique: {repeated[0]!r} is repeated")
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        store = ShardedFolder.of_index(folder, dtype, person_ids is not None)
        saved = {path for shard in store.shards() for path in json.loads((shard / PATHS).read_text())["paths"]}
        missing = [row for row, path in enumerate(paths) if path not in saved]
        person_ids = None if person_ids is None else np.asarray(person_ids)
        images = _ImageFiles(images) if files else images
        bar = tqdm(total=len(missing), desc="indexing gallery", unit="image", disable=not engine.progress)
        for start in range(0, len(missing), shard_size):
            rows = missing[start : start + shard_size]
            if isinstance(images, torch.Tensor):
                shard_images = images[rows]
            else:  # a datasets.Dataset or image files, or a sequence of images
                shard_images = images.select(rows) if hasattr(images, "select") else [images[row] for row in rows]
            encoded = engine.encode_gallery(shard_images, None if person_ids is None else person_ids[rows],
                                            [paths[row] for row in rows])
            with store.new_shard() as shard:
                encoded.save(shard, dtype)
            bar.update(len(rows))
        bar.close()
        return cls.load(folder, mmap=True)

    def faiss_dataset(self):
        """A `datasets.Dataset` of the features with an inner-product FAISS index on column `features` (needs
        faiss-cpu), for nearest-neighbour candidates (`get_nearest_examples_batch("features", text_features, k)`)."""
        import datasets
        import faiss

        dataset = datasets.Dataset.from_dict({"features": self.image_features.float().numpy()})
        dataset.add_faiss_index(column="features", metric_type=faiss.METRIC_INNER_PRODUCT)
        return dataset



def _content_id(features, paths):
    """What pairs a saved index's two files: a hash of its stored features and paths."""
    digest = hashlib.sha256(features.view(torch.uint8).numpy().tobytes() if features.numel() else b"")
    digest.update(json.dumps(paths).encode())
    return digest.hexdigest()[:32]


class _ImageFiles:
    """Image files decoded when indexed (item `i`: file `i` as an RGB array, EXIF orientation applied); an unreadable
    file raises naming it."""

    def __init__(self, files):
        self.files = [Path(file) for file in files]

    def __len__(self):
        return len(self.files)

    def __getitem__(self, row):
        return decode_image(self.files[row], self.files[row])

    def select(self, rows):
        return _ImageFiles([self.files[row] for row in rows])
