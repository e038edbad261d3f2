"""Convert PA-100K's original `annotation.mat` into the `PA100K_{train,val,test}.json` files that the `pa100k` builder
reads (APTM's format: a list of `{"image": path relative to data_dir, "label": [26 x {0, 1}]}`), without SciPy.

PA-100K comes from its authors (the HydraPlus-Net / PA-100K release): `annotation.mat` and `release_data/` images.

    python -m datasets_scripts.pa100k_annotation /data/PA-100K
    load_aptm_dataset("pa100k", data_dir="/data/PA-100K")
"""

import argparse
import json
from pathlib import Path

import numpy as np

from processing_aptm import PA100K_ATTRIBUTES

from .common import DatasetFormatError
from .matfile import read_mat

ANNOTATION_NAMES = ("annotation.mat", "annotation/annotation.mat")
IMAGE_ROOTS = ("release_data/release_data", "release_data", "data", "")
SPLITS = ("train", "val", "test")


def find_annotation(data_dir):
    data_dir = Path(data_dir)
    for name in ANNOTATION_NAMES:
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(f"PA-100K: none of {list(ANNOTATION_NAMES)} in {data_dir}. Download PA-100K from its "
                            "authors (annotation.mat and release_data/) and pass that folder.")


def _strings(cells, path, name):
    values = [cells] if isinstance(cells, str) else list(np.asarray(cells, dtype=object).ravel(order="F"))
    if not all(isinstance(value, str) for value in values):
        raise DatasetFormatError(f"{path}, variable {name!r}: expected a cell array of strings")
    return [value.strip() for value in values]


def _image_root(data_dir, first_image):
    for root in IMAGE_ROOTS:
        if (Path(data_dir) / root / first_image).is_file():
            return root
    raise FileNotFoundError(f"PA-100K: image {first_image!r} is in none of {[r or '.' for r in IMAGE_ROOTS]} under "
                            f"{data_dir}; unpack release_data there")


def read_annotation(path):
    """`{split: [(image name, 26 labels)]}` from `annotation.mat`, checked: every variable present, the attribute
    names in the standard order, one label row per image, labels in {0, 1}."""
    variables = read_mat(path)
    needed = ["attributes"] + [f"{split}_{kind}" for split in SPLITS for kind in ("images_name", "label")]
    missing = [name for name in needed if name not in variables]
    if missing:
        raise DatasetFormatError(f"{path}: missing variable(s) {missing}")
    attributes = _strings(variables["attributes"], path, "attributes")
    if attributes != list(PA100K_ATTRIBUTES):
        wrong = [(i, a) for i, a in enumerate(attributes) if i >= len(PA100K_ATTRIBUTES) or a != PA100K_ATTRIBUTES[i]]
        raise DatasetFormatError(f"{path}, variable 'attributes': expected the 26 standard PA-100K attributes in "
                                 f"order, got {len(attributes)} with differences at {wrong[:5] or 'the end'}")
    splits = {}
    for split in SPLITS:
        names = _strings(variables[f"{split}_images_name"], path, f"{split}_images_name")
        labels = np.asarray(variables[f"{split}_label"])
        if labels.ndim != 2 or labels.shape != (len(names), len(PA100K_ATTRIBUTES)):
            raise DatasetFormatError(f"{path}, variable '{split}_label': shape {labels.shape}, expected "
                                     f"({len(names)}, {len(PA100K_ATTRIBUTES)}) for {len(names)} images")
        bad = np.flatnonzero(~np.isin(labels, (0, 1)).all(axis=1))
        if bad.size:
            raise DatasetFormatError(f"{path}, variable '{split}_label', record {int(bad[0])} ({names[bad[0]]}): "
                                     f"labels must be 0 or 1, got {sorted(set(labels[bad[0]].tolist()))}")
        splits[split] = list(zip(names, labels.astype(int).tolist()))
    return splits


def convert_annotation(data_dir, annotation=None, overwrite=False):
    """Write `PA100K_{train,val,test}.json` into `data_dir` from `annotation.mat`; returns their paths. Image paths
    are written relative to `data_dir`, under the folder of the release that holds the images."""
    data_dir = Path(data_dir)
    annotation = Path(annotation) if annotation else find_annotation(data_dir)
    outputs = {split: data_dir / f"PA100K_{split}.json" for split in SPLITS}
    existing = [str(path) for path in outputs.values() if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} exist; pass overwrite=True (--overwrite) to replace them")
    splits = read_annotation(annotation)
    root = _image_root(data_dir, splits["train"][0][0])
    for split, path in outputs.items():
        records = [{"image": f"{root}/{name}" if root else name, "label": labels} for name, labels in splits[split]]
        path.write_text(json.dumps(records))
    return list(outputs.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="the PA-100K folder (annotation.mat, release_data/)")
    parser.add_argument("--annotation", help="annotation.mat elsewhere")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    for path in convert_annotation(args.data_dir, args.annotation, args.overwrite):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
