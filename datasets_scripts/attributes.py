"""Builders for attribute-labelled data: MALS (image-caption pairs with 27 attribute labels, APTM's pre-training
set), PA-100K-style attribute json (`{image, label}` per image) and SYNTH-PEDES (PLIP's synthetic captions).

  * MALS: `data_dir/gene_attrs/*.json`, each a list of `{"image": "gene_crop/c_g_a_0/0.jpg", "caption": str,
    "image_id": str, "label": [27 x {1, 0, -1}]}`; images relative to `data_dir`. The json files ship with the MALS
    download (see the APTM repository). One `train` split: `image`, `caption`, `person_id` (dense from `image_id`),
    `image_path`, `attribute_labels`.
  * PA-100K: `data_dir/PA100K_{train,val,test}.json`, lists of `{"image": path, "label": [26 x {0, 1}]}` (APTM's
    processed files), images relative to `data_dir` or `data_dir/release_data`; labels must be 0 or 1. The original
    `annotation.mat` converts to this json once with `python -m datasets_scripts.pa100k_annotation DATA_DIR`. Splits
    train/validation/test: `image`, `image_path`, `attribute_labels`. The same builder reads any
    `<prefix>_{train,val,test}.json` with another label length (and -1 for unknown labels).
  * SYNTH-PEDES: `data_dir/synthpedes_dataset.json`, a list of `{"id", "file_path", "captions": [...],
    "prompt_caption": [...]}` (PLIP release); one `train` split of pairs (`use_prompt_captions=True` adds the prompt
    captions).
"""

from pathlib import Path

import datasets

from .pa100k_annotation import ANNOTATION_NAMES
from .checked_builder import CheckedBuilder
from .common import DenseIds, attribute_features, find_image, pairs_features, read_json, require_files
from processing_aptm import MALS_ATTRIBUTES, PA100K_ATTRIBUTES

from .retrieval import SPLIT_NAMES, checker_error


class AttributeConfig(datasets.BuilderConfig):
    def __init__(self, kind="mals", prefix="PA100K", num_attributes=None, on_error="raise", verify_images=True,
                 use_prompt_captions=False, **kwargs):
        if kind not in ("mals", "attributes", "synth-pedes"):
            raise ValueError(f"kind must be mals, attributes or synth-pedes, got {kind!r}")
        kwargs.setdefault("name", kind if kind != "attributes" else f"attributes-{prefix}")
        super().__init__(**kwargs)
        self.kind, self.prefix = kind, prefix
        schema = {"mals": MALS_ATTRIBUTES, "attributes": PA100K_ATTRIBUTES, "synth-pedes": None}[kind]
        self.num_attributes = num_attributes or (schema and len(schema))
        self.on_error, self.verify_images, self.use_prompt_captions = on_error, verify_images, use_prompt_captions
        # PA-100K labels every attribute; other attribute json may mark a label unknown (-1)
        self.label_values = (0, 1) if kind == "attributes" and prefix == "PA100K" else (-1, 0, 1)


def annotation_files(config):
    """The annotation files a config reads, `{split: path}`."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    if config.kind == "mals":
        if data_dir is None or not sorted((data_dir / "gene_attrs").glob("*.json")):
            raise FileNotFoundError(f"MALS needs data_dir with gene_attrs/*.json (got {data_dir}); the files ship with "
                                    "the MALS download linked from the APTM repository")
        return {"train": sorted((data_dir / "gene_attrs").glob("*.json"))}
    if config.kind == "synth-pedes":
        return {"train": [require_files(data_dir, ["synthpedes_dataset.json"], "SYNTH-PEDES",
                                        "Download SYNTH-PEDES from the PLIP repository.")]}
    names = [f"{config.prefix}_{split}.json" for split in ("train", "val", "test")]
    if config.prefix == "PA100K" and data_dir is not None and not (data_dir / names[0]).is_file():
        found = [data_dir / name for name in ANNOTATION_NAMES if (data_dir / name).is_file()]
        if found:
            raise FileNotFoundError(f"PA-100K: {data_dir} holds the original {found[0].name} but not {names}; convert "
                                    f"it once with `python -m datasets_scripts.pa100k_annotation {data_dir}`")
    require_files(data_dir, names, config.prefix, "For PA-100K use APTM's PA100K_{train,val,test}.json and the "
                  "release_data images.")
    return {SPLIT_NAMES[split]: [data_dir / f"{config.prefix}_{split}.json"]
            for split in ("train", "val", "test") if (data_dir / f"{config.prefix}_{split}.json").is_file()}


class AttributeBuilder(CheckedBuilder):
    """MALS, PA-100K-style attribute json and SYNTH-PEDES (see the module docstring)."""

    BUILDER_CONFIG_CLASS = AttributeConfig
    VERSION = datasets.Version("1.0.0")
    IMAGE_FIELDS = {"mals": "image", "attributes": "image", "synth-pedes": "file_path"}  # the record's image path

    def _info(self):
        if self.config.kind == "attributes":
            features = attribute_features(self.config.num_attributes)
        else:
            features = pairs_features(self.config.num_attributes)
        return datasets.DatasetInfo(description=__doc__, features=features)

    def _read_splits(self):
        """`{split: [(annotation file, its records)]}`."""
        return {split: [(path, self._records(path)) for path in files]
                for split, files in annotation_files(self.config).items()}

    def _image_paths(self, sources):
        key = self.IMAGE_FIELDS[self.config.kind]
        return [self._image_path(record[key]) for files in sources.values() for _, records in files
                for record in records if isinstance(record, dict) and isinstance(record.get(key), str)]

    def _rows(self, files, split):
        generate = {"mals": self._mals, "attributes": self._attributes, "synth-pedes": self._synth}[self.config.kind]
        yield from generate(files)
        self.checker.log_summary(f"{self.config.name} {split}")

    def _image_path(self, relative):
        return find_image(self.config.data_dir, relative, ("", "release_data"))

    def _image(self, relative, path, index):
        image = self._image_path(relative)
        return image if self.checker.image_ok(image, path, index) else None

    def _records(self, path):
        records = read_json(path)
        if not isinstance(records, list):
            raise checker_error(path, "the file must hold a list of records")
        return records

    def _mals(self, files):
        ids, images_of_id = DenseIds(), {}
        for path, records in files:
            for index, record in enumerate(records):
                fields = {"image": str, "caption": str, "image_id": (str, int), "label": list}
                if not self.checker.fields_ok(record, fields, path, index) or \
                        not self.checker.labels_ok(record["label"], self.config.num_attributes, path, index):
                    continue
                key = str(record["image_id"])
                if images_of_id.setdefault(key, record["image"]) != record["image"]:
                    self.checker.fail(path, index, f"duplicate image_id {key!r} for two images "
                                                   f"({images_of_id[key]!r} and {record['image']!r})")
                    continue
                image = self._image(record["image"], path, index)
                if image is None:
                    continue
                yield {"image": str(image), "caption": record["caption"], "person_id": ids(key),
                       "image_path": record["image"], "attribute_labels": record["label"]}

    def _attributes(self, files):
        seen = {}
        for path, records in files:
            for index, record in enumerate(records):
                if not self.checker.fields_ok(record, {"image": str, "label": list}, path, index) or \
                        not self.checker.labels_ok(record["label"], self.config.num_attributes, path, index,
                                                   allowed=self.config.label_values):
                    continue
                if record["image"] in seen:
                    self.checker.fail(path, index, f"duplicate image {record['image']!r} (first at record {seen[record['image']]})")
                    continue
                seen[record["image"]] = index
                image = self._image(record["image"], path, index)
                if image is None:
                    continue
                yield {"image": str(image), "image_path": record["image"], "attribute_labels": record["label"]}

    def _synth(self, files):
        ids = DenseIds()
        for path, records in files:
            for index, record in enumerate(records):
                if not self.checker.fields_ok(record, {"id": (int, str), "file_path": str, "captions": list}, path, index):
                    continue
                captions = list(record["captions"])
                if self.config.use_prompt_captions:
                    captions += list(record.get("prompt_caption") or [])
                if not captions or not all(isinstance(c, str) and c.strip() for c in captions):
                    self.checker.fail(path, index, "captions must be non-empty strings")
                    continue
                image = self._image(record["file_path"], path, index)
                if image is None:
                    continue
                for caption in captions:
                    yield {"image": str(image), "caption": caption, "person_id": ids(record["id"]),
                           "image_path": record["file_path"]}
