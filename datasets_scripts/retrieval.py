"""Builders for the text-based person retrieval datasets CUHK-PEDES, ICFG-PEDES and RSTPReid (and the procedural
set, which is written in the same format).

Both formats users have on disk are read:
  * APTM's processed json (`<prefix>_train.json`: `{image, caption, image_id}` per pair; `<prefix>_val.json` and
    `<prefix>_test.json`: `{image, caption: [...], image_id}` per image), image paths relative to `data_dir`
    (or `data_dir/imgs`);
  * the original releases with their `split` fields: CUHK-PEDES `reid_raw.json` (`file_path`, `captions`, `id`),
    ICFG-PEDES `ICFG_PEDES.json` (`file_path`, `captions`, `id`), RSTPReid `data_captions.json` (`img_path`,
    `captions`, `id`), images under `data_dir/imgs`.

Views (builder config `view`), all with dense `person_id`s (0..K-1 per split, in order of first appearance):
  * `pairs`: one row per (image, caption): `image`, `caption`, `person_id`, `image_path` (training);
  * `gallery`: one row per image: `image`, `person_id`, `image_path`;
  * `queries`: one row per caption: `caption`, `person_id`, `image_index` (row of the caption's image in the
    gallery). Every caption is a query, except ICFG-PEDES test where only each image's first caption is, as APTM
    evaluates (`all_test_captions=True` keeps all).
A gallery image is relevant to a query when their person ids are equal (peers.md protocol).

The data cannot be redistributed: download it from the authors (CUHK-PEDES: request from the authors of "Person
Search with Natural Language Description"; ICFG-PEDES: the SSAN repository; RSTPReid: the DSSL repository; APTM's
processed json: the APTM repository's data links) and pass the folder as `data_dir`.
"""

from pathlib import Path

import datasets

from .checked_builder import CheckedBuilder
from .common import (
    GALLERY_FEATURES, QUERY_FEATURES, DatasetFormatError, DenseIds, find_image, pairs_features, read_json, require_files,
)

SOURCES = {
    "cuhk-pedes": {"prefix": "cuhk", "original": "reid_raw.json", "path_key": "file_path",
                   "help": "Request CUHK-PEDES from its authors; put reid_raw.json (or APTM's cuhk_*.json) and imgs/ in data_dir."},
    "icfg-pedes": {"prefix": "icfg", "original": "ICFG_PEDES.json", "path_key": "file_path",
                   "help": "Get ICFG-PEDES from the SSAN authors; put ICFG_PEDES.json (or APTM's icfg_*.json) and imgs/ in data_dir."},
    "rstpreid": {"prefix": "rstp", "original": "data_captions.json", "path_key": "img_path",
                 "help": "Get RSTPReid from the DSSL authors; put data_captions.json (or APTM's rstp_*.json) and imgs/ in data_dir."},
    "procedural": {"prefix": "procedural", "original": None, "path_key": "file_path",
                   "help": "Generate it with datasets_scripts.load_aptm_dataset('procedural', data_dir=...)."},
}
SPLIT_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
VIEWS = ("pairs", "gallery", "queries")
IMAGE_ROOTS = ("", "imgs")  # image paths are relative to data_dir or data_dir/imgs


class TextReIDConfig(datasets.BuilderConfig):
    """`dataset`: a key of `SOURCES`; `view`: pairs, gallery or queries; `source_format`: auto, processed or
    original; `on_error`: raise or skip (bad records are then counted in a logged summary); `num_attributes`: the
    processed train records carry a `label` vector of that length (the procedural set), kept as
    `attribute_labels` in the pairs view."""

    def __init__(self, dataset="cuhk-pedes", view="pairs", source_format="auto", on_error="raise", verify_images=True,
                 all_test_captions=False, num_attributes=None, **kwargs):
        if dataset not in SOURCES:
            raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(SOURCES)}")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        if source_format not in ("auto", "processed", "original"):
            raise ValueError(f"source_format must be auto, processed or original, got {source_format!r}")
        kwargs.setdefault("name", f"{dataset}-{view}")
        super().__init__(**kwargs)
        self.dataset, self.view, self.source_format = dataset, view, source_format
        self.on_error, self.verify_images, self.all_test_captions = on_error, verify_images, all_test_captions
        self.num_attributes = num_attributes


def read_entries(data_dir, dataset, source_format, checker, num_attributes=None):
    """`{split: [{"path", "image", "pid", "captions", "source", "index"}]}` from either format (one entry per image)."""
    source = SOURCES[dataset]
    data_dir = Path(data_dir) if data_dir is not None else None
    processed = {split: data_dir / f"{source['prefix']}_{split}.json" for split in ("train", "val", "test")} \
        if data_dir is not None else {}
    has_processed = any(path.is_file() for path in processed.values())
    if source_format == "processed" or (source_format == "auto" and has_processed):
        require_files(data_dir, [path.name for path in processed.values()], dataset, source["help"])
        return {SPLIT_NAMES[split]: _processed_entries(path, split, data_dir, checker, num_attributes)
                for split, path in processed.items() if path.is_file()}, [p for p in processed.values() if p.is_file()]
    if source["original"] is None:
        require_files(data_dir, [path.name for path in processed.values()], dataset, source["help"])
    path = require_files(data_dir, [source["original"]], dataset, source["help"])
    return _original_entries(path, data_dir, source["path_key"], checker), [path]


def _processed_entries(path, split, data_dir, checker, num_attributes=None):
    records = read_json(path)
    if not isinstance(records, list):
        raise checker_error(path, "the file must hold a list of records")
    entries, by_path = [], {}
    for index, record in enumerate(records):
        caption_kind = str if split == "train" else list
        if not checker.fields_ok(record, {"image": str, "caption": caption_kind, "image_id": (int, str)}, path, index):
            continue
        if split == "train" and num_attributes and not checker.labels_ok(record.get("label"), num_attributes, path, index):
            continue
        captions = [record["caption"]] if split == "train" else record["caption"]
        if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
            checker.fail(path, index, "captions must be non-empty strings")
            continue
        if record["image"] in by_path:
            if split != "train":
                checker.fail(path, index, f"duplicate image {record['image']!r} (first at record {by_path[record['image']]['index']})")
                continue
            if by_path[record["image"]]["pid"] != record["image_id"]:
                checker.fail(path, index, f"image {record['image']!r} appears with two person ids")
                continue
            by_path[record["image"]]["captions"].extend(captions)
            continue
        entry = {"path": record["image"], "image": find_image(data_dir, record["image"], IMAGE_ROOTS), "pid": record["image_id"],
                 "captions": list(captions), "source": path, "index": index, "label": record.get("label")}
        by_path[record["image"]] = entry
        entries.append(entry)
    return entries


def _original_entries(path, data_dir, path_key, checker):
    records = read_json(path)
    if not isinstance(records, list):
        raise checker_error(path, "the file must hold a list of records")
    splits, seen = {}, {}
    for index, record in enumerate(records):
        if not checker.fields_ok(record, {path_key: str, "captions": list, "id": (int, str), "split": str}, path, index):
            continue
        split = SPLIT_NAMES.get(record["split"])
        if split is None:
            checker.fail(path, index, f"unknown split {record['split']!r}")
            continue
        if not record["captions"] or not all(isinstance(c, str) and c.strip() for c in record["captions"]):
            checker.fail(path, index, "captions must be non-empty strings")
            continue
        if record[path_key] in seen:
            checker.fail(path, index, f"duplicate image {record[path_key]!r} (first at record {seen[record[path_key]]})")
            continue
        seen[record[path_key]] = index
        splits.setdefault(split, []).append({
            "path": record[path_key], "image": find_image(data_dir, record[path_key], IMAGE_ROOTS), "pid": record["id"],
            "captions": list(record["captions"]), "source": path, "index": index})
    return splits


def checker_error(path, message):
    return DatasetFormatError(f"{path}: {message}")


class TextReIDBuilder(CheckedBuilder):
    """CUHK-PEDES / ICFG-PEDES / RSTPReid / procedural retrieval data (see the module docstring)."""

    BUILDER_CONFIG_CLASS = TextReIDConfig
    VERSION = datasets.Version("1.0.0")

    def _info(self):
        features = {"pairs": pairs_features(self.config.num_attributes), "gallery": GALLERY_FEATURES, "queries": QUERY_FEATURES}[self.config.view]
        return datasets.DatasetInfo(description=__doc__, features=features)

    def _read_splits(self):
        return read_entries(self.config.data_dir, self.config.dataset, self.config.source_format, self.checker,
                            self.config.num_attributes)[0]

    def _image_paths(self, entries):
        return [entry["image"] for rows in entries.values() for entry in rows]

    def _rows(self, entries, split):
        ids = DenseIds()
        view = self.config.view
        first_only = self.config.dataset == "icfg-pedes" and split == "test" and not self.config.all_test_captions
        image_row = 0
        for entry in entries:
            if not self.checker.image_ok(entry["image"], entry["source"], entry["index"]):
                continue  # the queries view skips the same images, so image_index matches the gallery rows
            person = ids(entry["pid"])
            if view == "gallery":
                yield {"image": str(entry["image"]), "person_id": person, "image_path": entry["path"]}
                continue
            for caption in entry["captions"][:1] if first_only else entry["captions"]:
                if view == "pairs":
                    example = {"image": str(entry["image"]), "caption": caption, "person_id": person,
                               "image_path": entry["path"]}
                    if self.config.num_attributes:
                        example["attribute_labels"] = entry["label"]
                    yield example
                else:
                    yield {"caption": caption, "person_id": person, "image_index": image_row}
            image_row += 1
        self.checker.log_summary(f"{self.config.dataset} {split} {view}")
