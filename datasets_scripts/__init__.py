"""Dataset builders for APTM (datasets >= 4 runs no loading scripts, so they are package code).

    from datasets_scripts import load_aptm_dataset
    data = load_aptm_dataset("cuhk-pedes", data_dir="/data/CUHK-PEDES")       # train, test_gallery, test_queries, ...
    data = load_aptm_dataset("procedural", data_dir="data/procedural")       # generated on first use

Names: `cuhk-pedes`, `icfg-pedes`, `rstpreid` (retrieval: `train` pairs and `{validation,test}_{gallery,queries}`),
`mals` (`train` pairs with 27 attribute labels), `pa100k` (`train`/`validation`/`test` images with 26 labels),
`synth-pedes` (`train` pairs), `procedural` (retrieval splits with attribute labels on `train`, plus
`attributes_{validation,test}`). The builders can also be used directly:
`TextReIDBuilder(dataset="cuhk-pedes", view="pairs", data_dir=...)`, then `download_and_prepare()` and `as_dataset()`.
Bad records raise an error naming the file and record; `on_error="skip"` skips them and logs a counted summary, again
on every load from the cache (the skips are kept beside the prepared files in `skipped_records.json`).
Preparation decodes each image once (however many views, captions and builders name it); `num_proc=N` checks the
images and writes the prepared files in N processes, with the same rows, order and skips as one. The prepared files go
to `cache_dir` (default `data_dir/.hf_cache`; a read-only data folder needs a `cache_dir` elsewhere).
"""

import json
import os
from pathlib import Path

import datasets

from . import procedural
from .attributes import AttributeBuilder, AttributeConfig, annotation_files
from .checked_builder import SKIP_REPORT
from .common import DatasetFormatError, ImageChecks, RecordChecker, fingerprint, positive_num_proc
from .retrieval import SOURCES, TextReIDBuilder, TextReIDConfig, read_entries

RETRIEVAL = ("cuhk-pedes", "icfg-pedes", "rstpreid")
NAMES = RETRIEVAL + ("mals", "pa100k", "synth-pedes", "procedural")


def _build(builder_class, cache_dir, files, image_checks, num_proc, **config):
    builder = builder_class(cache_dir=cache_dir, hash=fingerprint(files), image_checks=image_checks, **config)
    try:
        builder.download_and_prepare(num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as error:  # surface our own message, naming file and record
        if isinstance(error.__cause__, DatasetFormatError):
            raise error.__cause__ from None
        raise
    report = Path(builder.cache_dir) / SKIP_REPORT
    if not hasattr(builder, "checker") and report.is_file():  # loaded from the cache: log the skips kept there
        RecordChecker.from_skipped(json.loads(report.read_text())).log_summary(f"{builder.config.name} (from the cache)")
    return builder.as_dataset()


def _retrieval(name, data_dir, cache_dir, image_checks, num_proc, **options):
    files = read_entries(data_dir, name, options.get("source_format", "auto"), RecordChecker("skip"))[1]
    shared = (image_checks, num_proc)  # one image_checks: each image is decoded once for the three views
    pairs = _build(TextReIDBuilder, cache_dir, files, *shared, dataset=name, view="pairs", data_dir=str(data_dir),
                   **options)
    splits = datasets.DatasetDict({"train": pairs["train"]} if "train" in pairs else {})
    for view in ("gallery", "queries"):
        built = _build(TextReIDBuilder, cache_dir, files, *shared, dataset=name, view=view, data_dir=str(data_dir),
                       **options)
        for split in ("validation", "test"):
            if split in built:
                splits[f"{split}_{view}"] = built[split]
    return splits


def _cache_folder(data_dir, cache_dir):
    """`cache_dir`, or `data_dir/.hf_cache` when the data folder is writable."""
    if cache_dir is not None:
        return str(cache_dir)
    if data_dir.is_dir() and not os.access(data_dir, os.W_OK):
        raise PermissionError(f"{data_dir} is read-only, so the prepared dataset cannot be cached in it: pass "
                              "cache_dir (a writable folder; in training, --dataset_cache_dir)")
    return str(data_dir / ".hf_cache")


def load_aptm_dataset(name, data_dir=None, cache_dir=None, on_error="raise", verify_images=True, num_proc=1,
                      **options):
    """Load dataset `name` from `data_dir` as a `DatasetDict` (see the module docstring for the splits).

    The prepared dataset is cached in `cache_dir` (default: `data_dir/.hf_cache`; pass a folder elsewhere for a
    read-only data folder, nothing is then written in `data_dir`). `num_proc` processes check the images (each image
    is decoded once, however many views and captions name it) and write the prepared files; the rows, their order
    and the skipped records are the same for every `num_proc`.

    For `procedural`, `num_identities`, `views_per_identity`, `seed`, `test_fraction` and `validation_fraction`
    choose what is generated into `data_dir` (in `num_proc` processes; nothing is regenerated when it already holds
    those settings)."""
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {NAMES}")
    if data_dir is None:
        raise FileNotFoundError(f"{name} needs data_dir (the folder with its files)")
    data_dir = Path(data_dir)
    common = {"on_error": on_error, "verify_images": verify_images}
    shared = (ImageChecks(data_dir, verify_images), positive_num_proc(num_proc))  # for every builder of this call
    if name in RETRIEVAL:
        return _retrieval(name, data_dir, _cache_folder(data_dir, cache_dir), *shared, **common, **options)
    if name in ("mals", "pa100k", "synth-pedes"):
        kind = {"mals": "mals", "pa100k": "attributes", "synth-pedes": "synth-pedes"}[name]
        config = AttributeConfig(kind=kind, data_dir=str(data_dir), **common, **options)
        files = [f for group in annotation_files(config).values() for f in group]
        return _build(AttributeBuilder, _cache_folder(data_dir, cache_dir), files, *shared, kind=kind,
                      data_dir=str(data_dir), **common, **options)
    settings = procedural.default_settings()
    unknown = set(options) - set(settings)
    if unknown:
        raise TypeError(f"unknown procedural options {sorted(unknown)}; choose from {sorted(settings)}")
    settings.update(options)
    if not procedural.is_generated(data_dir, **settings):
        procedural.generate(data_dir, **settings, num_proc=num_proc)
    cache_dir = _cache_folder(data_dir, cache_dir)
    labelled = {"num_attributes": procedural.NUM_ATTRIBUTES}
    splits = _retrieval("procedural", data_dir, cache_dir, *shared, **labelled, **common)
    config = AttributeConfig(kind="attributes", prefix="procedural_attributes", data_dir=str(data_dir), **labelled)
    files = [f for group in annotation_files(config).values() for f in group]
    attributes = _build(AttributeBuilder, cache_dir, files, *shared, kind="attributes", prefix="procedural_attributes",
                        data_dir=str(data_dir), **labelled, **common)
    for split in ("validation", "test"):
        splits[f"attributes_{split}"] = attributes[split]
    return splits


__all__ = ["load_aptm_dataset", "TextReIDBuilder", "TextReIDConfig", "AttributeBuilder", "AttributeConfig",
           "DatasetFormatError", "SOURCES", "NAMES", "procedural"]
