"""The dataset command lines: generate_procedural (data and contact sheet) and publish_dataset (Parquet files)."""

import json
import runpy

import datasets
import pytest
from PIL import Image

from helpers.dataset_files import processed_tree
from helpers.paths import REPO


def script(name):
    return runpy.run_path(str(REPO / "scripts" / f"{name}.py"))["main"]


def test_generate_procedural(tmp_path, capsys):
    script("generate_procedural")(["--data-dir", str(tmp_path), "--num-identities", "5", "--views-per-identity", "2",
                                   "--seed", "7", "--contact-sheet", str(tmp_path / "sheet.png"), "--sheet-count", "3",
                                   "--num-proc", "2"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["num_identities"], manifest["views_per_identity"], manifest["seed"]) == (5, 2, 7)
    assert len(list((tmp_path / "imgs").glob("*.jpg"))) == 10
    assert Image.open(tmp_path / "sheet.png").size[0] > 3 * 128
    assert "wrote 10 images" in capsys.readouterr().out


def test_publish_writes_parquet(tmp_path):
    processed_tree(tmp_path / "data", "cuhk")
    publish = script("publish_dataset")
    publish(["--dataset", "cuhk-pedes", "--data-dir", str(tmp_path / "data"), "--parquet-dir", str(tmp_path / "out")])
    written = sorted(path.name for path in (tmp_path / "out").glob("*.parquet"))
    assert written == ["test_gallery.parquet", "test_queries.parquet", "train.parquet"]
    queries = datasets.Dataset.from_parquet(str(tmp_path / "out" / "test_queries.parquet"))
    assert queries.column_names == ["caption", "person_id", "image_index"] and queries.num_rows == 6
    gallery = datasets.Dataset.from_parquet(str(tmp_path / "out" / "test_gallery.parquet"))
    assert gallery[0]["image"].size == (20, 60)
    with pytest.raises(SystemExit):
        publish(["--dataset", "cuhk-pedes", "--data-dir", str(tmp_path / "data")])  # neither --repo-id nor --parquet-dir
