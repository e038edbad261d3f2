"""Shared pieces of the dataset builders: strict record checking with an explicit skip option, JSON reading with
errors that name the file, image checks (confined to the dataset folder, each image decoded once, in a process pool),
and the feature schemas.

Nothing here is a `datasets` builder: `datasets` patches the modules of builders (their `Path`, `open`, `os.path`)
for streaming, which makes each path operation there several times slower, so the per-image work lives here."""

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import datasets
from datasets.utils.tqdm import tqdm
from PIL import Image

logger = logging.getLogger(__name__)


class DatasetFormatError(ValueError):
    """A data file or record is malformed; the message names the file and the record."""


def pairs_features(num_attributes=None):
    """One row per (image, caption) pair (training)."""
    features = {"image": datasets.Image(), "caption": datasets.Value("string"), "person_id": datasets.Value("int64"),
                "image_path": datasets.Value("string")}
    if num_attributes:
        features["attribute_labels"] = datasets.List(datasets.Value("int8"), length=num_attributes)
    return datasets.Features(features)


GALLERY_FEATURES = datasets.Features(
    {"image": datasets.Image(), "person_id": datasets.Value("int64"), "image_path": datasets.Value("string")}
)
QUERY_FEATURES = datasets.Features(
    {"caption": datasets.Value("string"), "person_id": datasets.Value("int64"), "image_index": datasets.Value("int64")}
)


def attribute_features(num_attributes):
    return datasets.Features({"image": datasets.Image(), "image_path": datasets.Value("string"),
                              "attribute_labels": datasets.List(datasets.Value("int8"), length=num_attributes)})


def read_json(path):
    """Parse a JSON file; malformed JSON or non-UTF-8 bytes raise `DatasetFormatError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path} is not UTF-8 text (byte {error.start}): {error.reason}") from error
    except json.JSONDecodeError as error:
        raise DatasetFormatError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from error


def require_files(data_dir, names, dataset, instructions):
    """The first of `names` (alternatives) that exists under `data_dir`, else a FileNotFoundError that says where the
    data is obtained."""
    if data_dir is None:
        raise FileNotFoundError(f"{dataset} needs data_dir: the folder holding its files. {instructions}")
    data_dir = Path(data_dir)
    for name in names:
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(f"{dataset}: none of {list(names)} found in {data_dir}. {instructions}")


def fingerprint(paths):
    """A short hash of annotation files (path, size, modification time) so a changed file invalidates the cache."""
    digest = hashlib.sha1()
    for path in sorted(str(p) for p in paths):
        stat = Path(path).stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def find_image(data_dir, relative, roots=("",)):
    """`data_dir/root/relative` for the first of `roots` where that file exists, else for the first root (as text)."""
    candidates = [os.path.join(data_dir, root, relative) for root in roots]
    return next((path for path in candidates if os.path.isfile(path)), candidates[0])


def image_problem(path, root, decode=True):
    """Why the image at `path` is not usable, or None: it must lie inside the dataset folder `root` (an absolute
    path; once absolute paths, `..` and symbolic links are resolved, nothing outside is opened), exist, and with
    `decode` decode in full with a non-zero size."""
    path = Path(path)
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        return f"image {path} resolves to {resolved}, outside the dataset folder {root}"
    if not path.is_file():
        return f"image file {path} does not exist"
    if decode:
        try:
            with Image.open(path) as image:
                image.load()
                if image.width == 0 or image.height == 0:
                    return f"image {path} has zero size"
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return f"image {path} is corrupt or truncated ({error})"
    return None


def positive_num_proc(num_proc):
    """`num_proc`, when it is a positive integer; else a ValueError naming the argument."""
    if not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"num_proc must be a positive integer, got {num_proc!r}")
    return num_proc


def process_map(function, *iterables, num_proc=1, chunksize=1):
    """`map(function, *iterables)` run in a pool of `num_proc` processes (in this process when 1): lazy, in order."""
    if num_proc <= 1:
        yield from map(function, *iterables)
        return
    with ProcessPoolExecutor(num_proc) as pool:
        yield from pool.map(function, *iterables, chunksize=chunksize)


class ImageChecks:
    """The `image_problem` of each image under `data_dir`, computed once however many records, splits and builders
    name it (`decode=False`: the folder and existence checks only). `verify(paths, num_proc)` checks a batch in a
    pool of `num_proc` processes; `problem(path)` answers from it (checking a path not seen yet in this process)."""

    def __init__(self, data_dir, decode=True):
        self.root, self.decode = Path(data_dir).resolve(), decode
        self.problems = {}

    def verify(self, paths, num_proc=1):
        """Check each path of `paths` not checked yet (once, however often it is listed), in `num_proc` processes."""
        new = list(dict.fromkeys(key for key in map(str, paths) if key not in self.problems))
        check = partial(image_problem, root=self.root, decode=self.decode)
        progress = {"total": len(new), "desc": "Checking images", "unit": " images", "disable": len(new) < 2}
        checked = process_map(check, new, num_proc=min(num_proc, len(new)),
                              chunksize=max(1, min(256, len(new) // (4 * num_proc))))
        self.problems.update(zip(new, tqdm(checked, **progress)))

    def problem(self, path):
        key = str(path)
        if key not in self.problems:
            self.verify([key])
        return self.problems[key]


class RecordChecker:
    """Validates records. With `on_error="raise"` (default) the first problem raises `DatasetFormatError` naming the
    file and record; with `on_error="skip"` the record is skipped and counted, and `summary()` lists every skip.
    `images` (an `ImageChecks`) answers `image_ok`."""

    def __init__(self, on_error="raise", images=None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.images = images
        self.skipped = []

    def fail(self, source, index, message):
        """Report a bad record; returns False (skip) or raises."""
        text = f"{source}, record {index}: {message}"
        if self.on_error == "raise":
            raise DatasetFormatError(text + " (pass on_error='skip' to skip such records and count them)")
        self.skipped.append(text)
        return False

    def image_ok(self, path, source, index):
        """Whether the image at `path` is usable (see `ImageChecks`); its check runs once, however many records name
        it."""
        problem = self.images.problem(path)
        return True if problem is None else self.fail(source, index, problem)

    def labels_ok(self, labels, length, source, index, allowed=(-1, 0, 1)):
        if not isinstance(labels, list) or len(labels) != length:
            size = len(labels) if isinstance(labels, list) else type(labels).__name__
            return self.fail(source, index, f"label vector must have {length} entries, got {size}")
        if any(value not in allowed for value in labels):
            return self.fail(source, index, f"label values must be in {allowed}, got {sorted(set(labels))}")
        return True

    def fields_ok(self, record, fields, source, index):
        if not isinstance(record, dict):
            return self.fail(source, index, f"expected an object, got {type(record).__name__}")
        for name, kinds in fields.items():
            if name not in record:
                return self.fail(source, index, f"missing field {name!r}")
            if not isinstance(record[name], kinds):
                return self.fail(source, index, f"field {name!r} has type {type(record[name]).__name__}")
        return True

    def summary(self):
        if not self.skipped:
            return "no records skipped"
        return f"skipped {len(self.skipped)} record(s):\n" + "\n".join(f"  {line}" for line in self.skipped)

    @classmethod
    def from_skipped(cls, skipped):
        """A checker holding the skips recorded by an earlier build (to log them again)."""
        checker = cls("skip")
        checker.skipped = list(skipped)
        return checker

    def log_summary(self, dataset):
        if self.skipped:
            logger.warning("%s: %s", dataset, self.summary())


class DenseIds:
    """Maps raw person ids to 0..K-1 in order of first appearance (APTM's idx)."""

    def __init__(self):
        self.mapping = {}

    def __call__(self, raw):
        return self.mapping.setdefault(str(raw), len(self.mapping))
