"""The formats and failure modes not covered in test_datasets_builders: ICFG-PEDES and RSTPReid processed json,
builders used directly, non-UTF-8 and malformed files of every family, counted skips of several problems at once,
and identical output from two independent builds."""

import logging

import datasets
import pytest

from datasets_scripts import AttributeBuilder, DatasetFormatError, TextReIDBuilder, load_aptm_dataset
from datasets_scripts.common import RecordChecker

from helpers.dataset_files import original_tree, processed_tree, write_image, write_json


def test_icfg_and_rstp_processed_json(tmp_path):
    processed_tree(tmp_path / "icfg", "icfg")
    icfg = load_aptm_dataset("icfg-pedes", data_dir=tmp_path / "icfg")
    assert icfg["test_queries"]["caption"] == ["test caption 0", "test caption 1", "test caption 2"]  # first only
    assert icfg["test_gallery"].num_rows == 3 and icfg["train"].num_rows == 8
    processed_tree(tmp_path / "rstp", "rstp")
    write_json(tmp_path / "rstp" / "rstp_val.json", [{"image": "test/2.jpg", "caption": ["v0", "v1", "v2"], "image_id": 3}])
    rstp = load_aptm_dataset("rstpreid", data_dir=tmp_path / "rstp")
    assert set(rstp) == {"train", "validation_gallery", "validation_queries", "test_gallery", "test_queries"}
    assert rstp["validation_queries"]["caption"] == ["v0", "v1", "v2"]
    assert rstp["validation_queries"]["image_index"] == [0, 0, 0] and rstp["test_queries"].num_rows == 6


def test_builders_used_directly(tmp_path):
    write_json(tmp_path / "data_captions.json", original_tree(tmp_path, "img_path"))
    builder = TextReIDBuilder(dataset="rstpreid", view="gallery", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    gallery = builder.as_dataset()
    assert sorted(gallery) == ["test", "train", "validation"] and list(gallery["test"]["person_id"]) == [0, 0, 1]
    assert gallery["train"].features["image"] == datasets.Image()
    for split in ("train", "val", "test"):
        write_json(tmp_path / f"attrs_{split}.json", [{"image": "imgs/train/0.jpg", "label": [1, 0, -1]}])
    builder = AttributeBuilder(kind="attributes", prefix="attrs", num_attributes=3, data_dir=str(tmp_path),
                               cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    labels = builder.as_dataset()["validation"]
    assert labels["attribute_labels"] == [[1, 0, -1]]
    assert labels.features["attribute_labels"] == datasets.List(datasets.Value("int8"), length=3)


@pytest.mark.parametrize("name, file", [
    ("cuhk-pedes", "reid_raw.json"), ("icfg-pedes", "ICFG_PEDES.json"), ("rstpreid", "data_captions.json"),
    ("mals", "gene_attrs/x.json"), ("pa100k", "PA100K_train.json"), ("synth-pedes", "synthpedes_dataset.json"),
])
def test_non_utf8_and_malformed_files_name_the_file(tmp_path, name, file):
    (tmp_path / file).parent.mkdir(exist_ok=True)
    (tmp_path / file).write_bytes('[{"caption": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(DatasetFormatError, match=f"{file} is not UTF-8 text"):
        load_aptm_dataset(name, data_dir=tmp_path)
    (tmp_path / file).write_text('{"not": "a list"}')
    with pytest.raises(DatasetFormatError, match=f"{file}: the file must hold a list of records"):
        load_aptm_dataset(name, data_dir=tmp_path, cache_dir=tmp_path / "c2")


def test_original_release_bad_records(tmp_path):
    records = original_tree(tmp_path)
    records[1]["split"] = "query"
    write_json(tmp_path / "reid_raw.json", records)
    with pytest.raises(DatasetFormatError, match=r"reid_raw.json, record 1: unknown split 'query'"):
        load_aptm_dataset("cuhk-pedes", data_dir=tmp_path)
    records = original_tree(tmp_path)
    records[4]["file_path"] = records[3]["file_path"]
    write_json(tmp_path / "reid_raw.json", records)
    with pytest.raises(DatasetFormatError, match=r"record 4: duplicate image 'val/3.jpg' \(first at record 3\)"):
        load_aptm_dataset("cuhk-pedes", data_dir=tmp_path, cache_dir=tmp_path / "c2")


def test_attribute_family_bad_records(tmp_path):
    write_image(tmp_path / "a.jpg")
    write_json(tmp_path / "PA100K_train.json", [{"image": "a.jpg", "label": [0, 1] * 13}, {"image": "a.jpg", "label": [1] * 25}])
    with pytest.raises(DatasetFormatError, match="PA100K_train.json, record 1: label vector must have 26 entries, got 25"):
        load_aptm_dataset("pa100k", data_dir=tmp_path)
    write_json(tmp_path / "PA100K_train.json", [{"image": "a.jpg", "label": [0, -1] * 13}])
    with pytest.raises(DatasetFormatError, match=r"record 0: label values must be in \(0, 1\), got \[-1, 0\]"):
        load_aptm_dataset("pa100k", data_dir=tmp_path, cache_dir=tmp_path / "c3")
    write_json(tmp_path / "synthpedes_dataset.json", [{"id": 1, "captions": ["x"]}])
    with pytest.raises(DatasetFormatError, match="synthpedes_dataset.json, record 0: missing field 'file_path'"):
        load_aptm_dataset("synth-pedes", data_dir=tmp_path)
    write_json(tmp_path / "synthpedes_dataset.json", [{"id": 1, "file_path": "a.jpg", "captions": [" "]}])
    with pytest.raises(DatasetFormatError, match="record 0: captions must be non-empty strings"):
        load_aptm_dataset("synth-pedes", data_dir=tmp_path, cache_dir=tmp_path / "c2")


def test_skip_counts_every_problem(tmp_path, caplog):
    train, test = processed_tree(tmp_path, "cuhk")
    (tmp_path / "imgs/train/3.jpg").write_bytes(b"\x89PNG broken")
    train[0].pop("image_id")
    train[1]["caption"] = ""
    write_json(tmp_path / "cuhk_train.json", train)
    with caplog.at_level(logging.WARNING):
        data = load_aptm_dataset("cuhk-pedes", data_dir=tmp_path, on_error="skip")
    assert data["train"].num_rows == 4  # 8 pairs - 2 bad records - the 2 captions of the corrupt image
    assert "cuhk-pedes train pairs: skipped 3 record(s)" in caplog.text  # the corrupt image once, at its first record
    for problem in ("record 0: missing field 'image_id'", "record 1: captions must be non-empty strings",
                    "record 6: image", "3.jpg is corrupt or truncated"):
        assert problem in caplog.text
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        RecordChecker(on_error="ignore")


def test_two_builds_give_identical_rows(tmp_path):
    write_json(tmp_path / "reid_raw.json", original_tree(tmp_path))
    first = load_aptm_dataset("cuhk-pedes", data_dir=tmp_path, cache_dir=tmp_path / "a")
    second = load_aptm_dataset("cuhk-pedes", data_dir=tmp_path, cache_dir=tmp_path / "b")
    for split in first:
        assert first[split].features == second[split].features
        assert first[split].remove_columns([c for c in ("image",) if c in first[split].column_names]).to_list() == \
            second[split].remove_columns([c for c in ("image",) if c in second[split].column_names]).to_list()
