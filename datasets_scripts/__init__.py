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
"""

import json
from pathlib import Path

import datasets

from . import procedural
from .attributes import AttributeBuilder, AttributeConfig, annotation_files
from .common import DatasetFormatError, RecordChecker, fingerprint
from .retrieval import SOURCES, TextReIDBuilder, TextReIDConfig, read_entries

RETRIEVAL = ("cuhk-pedes", "icfg-pedes", "rstpreid")
NAMES = RETRIEVAL + ("mals", "pa100k", "synth-pedes", "procedural")
SKIP_REPORT = "skipped_records.json"


def _build(builder_class, cache_dir, files, **config):
    builder = builder_class(cache_dir=cache_dir, hash=fingerprint(files), **config)
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as error:  # surface our own message, naming file and record
        if isinstance(error.__cause__, DatasetFormatError):
            raise error.__cause__ from None
        raise
    report = Path(builder.cache_dir) / SKIP_REPORT
    if hasattr(builder, "checker"):  # prepared now, each split has logged its summary: keep the skips for reloads
        report.write_text(json.dumps(builder.checker.skipped, indent=1))
    elif report.is_file():
        RecordChecker.from_skipped(json.loads(report.read_text())).log_summary(f"{builder.config.name} (from the cache)")
    return builder.as_dataset()


def _retrieval(name, data_dir, cache_dir, **options):
    files = read_entries(data_dir, name, options.get("source_format", "auto"), RecordChecker("skip", False))[1]
    pairs = _build(TextReIDBuilder, cache_dir, files, dataset=name, view="pairs", data_dir=str(data_dir), **options)
    splits = datasets.DatasetDict({"train": pairs["train"]} if "train" in pairs else {})
    for view in ("gallery", "queries"):
        built = _build(TextReIDBuilder, cache_dir, files, dataset=name, view=view, data_dir=str(data_dir), **options)
        for split in ("validation", "test"):
            if split in built:
                splits[f"{split}_{view}"] = built[split]
    return splits


def load_aptm_dataset(name, data_dir=None, cache_dir=None, on_error="raise", verify_images=True, **options):
    """Load dataset `name` from `data_dir` as a `DatasetDict` (see the module docstring for the splits).

    For `procedural`, `num_identities`, `views_per_identity`, `seed`, `test_fraction` and `validation_fraction`
    choose what is generated into `data_dir` (nothing is regenerated when it already holds those settings)."""
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {NAMES}")
    if data_dir is None:
        raise FileNotFoundError(f"{name} needs data_dir (the folder with its files)")
    data_dir = Path(data_dir)
    cache_dir = str(cache_dir or data_dir / ".hf_cache")
    common = {"on_error": on_error, "verify_images": verify_images}
    if name in RETRIEVAL:
        return _retrieval(name, data_dir, cache_dir, **common, **options)
    if name in ("mals", "pa100k", "synth-pedes"):
        kind = {"mals": "mals", "pa100k": "attributes", "synth-pedes": "synth-pedes"}[name]
        config = AttributeConfig(kind=kind, data_dir=str(data_dir), **common, **options)
        files = [f for group in annotation_files(config).values() for f in group]
        return _build(AttributeBuilder, cache_dir, files, kind=kind, data_dir=str(data_dir), **common, **options)
    settings = {"num_identities": 250, "views_per_identity": 6, "seed": 0, "test_fraction": 0.2,
                "validation_fraction": 0.1}
    unknown = set(options) - set(settings)
    if unknown:
        raise TypeError(f"unknown procedural options {sorted(unknown)}; choose from {sorted(settings)}")
    settings.update(options)
    if not procedural.is_generated(data_dir, **settings):
        procedural.generate(data_dir, **settings)
    splits = _retrieval("procedural", data_dir, cache_dir, num_attributes=27, **common)
    config = AttributeConfig(kind="attributes", prefix="procedural_attributes", num_attributes=27, data_dir=str(data_dir))
    files = [f for group in annotation_files(config).values() for f in group]
    attributes = _build(AttributeBuilder, cache_dir, files, kind="attributes", prefix="procedural_attributes",
                        num_attributes=27, data_dir=str(data_dir), **common)
    for split in ("validation", "test"):
        splits[f"attributes_{split}"] = attributes[split]
    return splits


__all__ = ["load_aptm_dataset", "TextReIDBuilder", "TextReIDConfig", "AttributeBuilder", "AttributeConfig",
           "DatasetFormatError", "SOURCES", "NAMES", "procedural"]
