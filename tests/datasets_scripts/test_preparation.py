"""Preparation at scale: `num_proc` processes give the same rows, order and skips as one; each image is decoded once
for all views, captions and builders; the cache can live outside a read-only data folder."""

import json
import logging
import os
from collections import Counter

import datasets
import pytest

import datasets_scripts
from datasets_scripts import TextReIDBuilder, common, load_aptm_dataset, procedural

from helpers.dataset_files import processed_tree, write_json

PROCEDURAL = {"num_identities": 6, "views_per_identity": 2, "seed": 3}


def rows(dataset_dict):
    """Every split's rows, images as their paths (not decoded)."""
    return {name: split.cast_column("image", datasets.Image(decode=False)).to_list() if "image" in split.features
            else split.to_list() for name, split in dataset_dict.items()}


def snapshot(folder):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def mals_folder(tmp_path):
    """A procedural folder (MALS format in `gene_attrs/`: two caption records per image) with one corrupt and one
    missing image, so that `on_error="skip"` has records to count."""
    folder = tmp_path / "data"
    procedural.generate(folder, **PROCEDURAL, progress=False)
    records = json.loads((folder / "gene_attrs" / "procedural_attrs.json").read_text())
    (folder / records[2]["image"]).write_bytes(b"\xff\xd8 not a jpeg")
    records[5]["image"] = "imgs/absent.jpg"
    write_json(folder / "gene_attrs" / "procedural_attrs.json", records)
    return folder


def test_num_proc_gives_the_same_rows_order_and_skips(mals_folder, tmp_path, caplog):
    built, logs = {}, {}
    for num_proc in (1, 2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            built[num_proc] = load_aptm_dataset("mals", data_dir=mals_folder, cache_dir=tmp_path / f"c{num_proc}",
                                                on_error="skip", num_proc=num_proc)
        logs[num_proc] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert rows(built[1]) == rows(built[2]) and built[1]["train"].num_rows > 10
    assert logs[1] == logs[2] and "skipped 3 record(s)" in logs[1][0]  # both captions of the corrupt image, the absent
    reports = [json.loads(next((tmp_path / f"c{n}").rglob(datasets_scripts.SKIP_REPORT)).read_text()) for n in (1, 2)]
    assert reports[0] == reports[1] and len(reports[0]) == 3
    shards = sorted(p.name for p in (tmp_path / "c2").rglob("*train*.arrow"))
    assert len(shards) == 2, shards  # datasets wrote the split in two processes
    with pytest.raises(ValueError, match="num_proc must be a positive integer, got 0"):
        load_aptm_dataset("mals", data_dir=mals_folder, cache_dir=tmp_path / "c0", num_proc=0)


def test_image_checks_run_in_a_process_pool(mals_folder, monkeypatch):
    pools = []

    class CountingPool(common.ProcessPoolExecutor):
        def __init__(self, workers):
            pools.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(common, "ProcessPoolExecutor", CountingPool)
    checks = common.ImageChecks(mals_folder)
    paths = sorted((mals_folder / "imgs").glob("*.jpg"))
    checks.verify(paths, num_proc=2)
    one_process = common.ImageChecks(mals_folder)
    one_process.verify(paths)
    assert pools == [2] and checks.problems == one_process.problems
    assert sum(problem is not None for problem in checks.problems.values()) == 1  # the corrupt one


def test_each_image_is_decoded_once(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    procedural.generate(folder, **PROCEDURAL, progress=False)
    opened = Counter()
    real_open = common.Image.open

    def counting_open(path, *args, **kwargs):
        opened[os.path.basename(path)] += 1
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(common.Image, "open", counting_open)
    # pairs, gallery and queries views, the attribute splits, and two captions per image: each image decoded once
    load_aptm_dataset("procedural", data_dir=folder, cache_dir=tmp_path / "cache", **PROCEDURAL)
    images = {p.name for p in (folder / "imgs").glob("*.jpg")}
    assert set(opened) == images and set(opened.values()) == {1}
    opened.clear()
    load_aptm_dataset("procedural", data_dir=folder, cache_dir=tmp_path / "cache", **PROCEDURAL)
    assert not opened  # loaded from the cache
    load_aptm_dataset("procedural", data_dir=folder, cache_dir=tmp_path / "unchecked", verify_images=False,
                      **PROCEDURAL)
    assert not opened


def test_cache_outside_a_read_only_data_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    processed_tree(data, "cuhk")
    before = snapshot(data)
    os.chmod(data, 0o555)
    try:
        built = load_aptm_dataset("cuhk-pedes", data_dir=data, cache_dir=tmp_path / "cache", num_proc=2)
        assert snapshot(data) == before and built["train"].num_rows == 8  # nothing written in the data folder
        assert any((tmp_path / "cache").rglob("*.arrow"))
        monkeypatch.setattr(datasets_scripts.os, "access", lambda path, mode: False)  # read-only even for root
        with pytest.raises(PermissionError, match=rf"{data} is read-only.*pass cache_dir"):
            load_aptm_dataset("cuhk-pedes", data_dir=data)
    finally:
        os.chmod(data, 0o755)
    monkeypatch.undo()
    load_aptm_dataset("cuhk-pedes", data_dir=data)
    assert (data / ".hf_cache").is_dir()  # the default, for a writable folder


def test_shared_image_checks_must_match_the_builder(tmp_path):
    processed_tree(tmp_path / "data", "cuhk")
    other = common.ImageChecks(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=r"image_checks were made for .*elsewhere \(decode=True\), not for data_dir"):
        TextReIDBuilder(dataset="cuhk-pedes", view="gallery", data_dir=str(tmp_path / "data"),
                        cache_dir=str(tmp_path / "cache"), image_checks=other)
    shared = common.ImageChecks(tmp_path / "data", decode=False)
    builder = TextReIDBuilder(dataset="cuhk-pedes", view="gallery", data_dir=str(tmp_path / "data"), verify_images=False,
                              cache_dir=str(tmp_path / "cache"), image_checks=shared)
    builder.download_and_prepare(num_proc=2)
    assert builder.as_dataset()["test"].num_rows == 3 and len(shared.problems) == 7  # every image, checked once
