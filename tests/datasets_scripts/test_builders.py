"""Every builder on generated fixture trees in each format, and the bad-data errors (or counted skips)."""

import logging

import pytest

from datasets_scripts import DatasetFormatError, load_aptm_dataset

from helpers.dataset_files import original_tree, processed_tree, write_image, write_json


def test_cuhk_processed_json(tmp_path):
    processed_tree(tmp_path, "cuhk")
    data = load_aptm_dataset("cuhk-pedes", data_dir=tmp_path)
    assert set(data) == {"train", "test_gallery", "test_queries"}
    assert data["train"].num_rows == 8 and data["train"]["person_id"] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert data["test_gallery"]["person_id"] == [0, 1, 0] and data["test_gallery"]["image_path"][0] == "test/0.jpg"
    queries = data["test_queries"]
    assert queries.num_rows == 6 and queries["image_index"] == [0, 0, 1, 1, 2, 2]
    assert queries["caption"][:2] == ["test caption 0", "second 0"]
    assert data["train"][0]["image"].size == (20, 60)


@pytest.mark.parametrize("name, file, path_key", [
    ("cuhk-pedes", "reid_raw.json", "file_path"), ("icfg-pedes", "ICFG_PEDES.json", "file_path"),
    ("rstpreid", "data_captions.json", "img_path"),
])
def test_original_releases(tmp_path, name, file, path_key):
    write_json(tmp_path / file, original_tree(tmp_path, path_key))
    data = load_aptm_dataset(name, data_dir=tmp_path)
    assert data["train"].num_rows == 6 and data["train"]["person_id"] == [0, 0, 0, 0, 1, 1]
    assert data["validation_gallery"].num_rows == 1 and data["test_gallery"].num_rows == 3
    first_only = name == "icfg-pedes"  # APTM evaluates ICFG-PEDES with the first caption of each test image
    assert data["test_queries"].num_rows == (3 if first_only else 6)
    assert data["test_queries"]["person_id"] == ([0, 0, 1] if first_only else [0, 0, 0, 0, 1, 1])
    if first_only:
        every = load_aptm_dataset(name, data_dir=tmp_path, all_test_captions=True, cache_dir=tmp_path / "c2")
        assert every["test_queries"].num_rows == 6


def test_mals_pa100k_synth(tmp_path):
    for index in range(3):
        write_image(tmp_path / f"gene_crop/a/{index}.jpg", index)
    write_json(tmp_path / "gene_attrs" / "g_attrs.json" if (tmp_path / "gene_attrs").mkdir() is None else None, [
        {"image": f"gene_crop/a/{i}.jpg", "caption": f"person {i}", "image_id": f"a_{i}", "label": [i % 2] * 26 + [-1]}
        for i in range(3)])
    mals = load_aptm_dataset("mals", data_dir=tmp_path)["train"]
    assert mals.num_rows == 3 and mals["attribute_labels"][0] == [0] * 26 + [-1] and mals["person_id"] == [0, 1, 2]
    for split in ("train", "val", "test"):
        write_json(tmp_path / f"PA100K_{split}.json", [{"image": f"gene_crop/a/{i}.jpg", "label": [1, 0] * 13}
                                                       for i in range(2)])
    pa100k = load_aptm_dataset("pa100k", data_dir=tmp_path)
    assert set(pa100k) == {"train", "validation", "test"} and pa100k["test"]["attribute_labels"][1] == [1, 0] * 13
    write_json(tmp_path / "synthpedes_dataset.json", [
        {"id": 5, "file_path": "gene_crop/a/0.jpg", "captions": ["a b", "c d"], "prompt_caption": ["e"]}])
    assert load_aptm_dataset("synth-pedes", data_dir=tmp_path)["train"]["caption"] == ["a b", "c d"]
    with_prompts = load_aptm_dataset("synth-pedes", data_dir=tmp_path, use_prompt_captions=True, cache_dir=tmp_path / "c")
    assert with_prompts["train"].num_rows == 3


def _cuhk(tmp_path, mutate):
    train, test = processed_tree(tmp_path, "cuhk")
    mutate(tmp_path, train, test)
    write_json(tmp_path / "cuhk_train.json", train)
    write_json(tmp_path / "cuhk_test.json", test)


BAD_DATA = {
    "missing image": (lambda root, train, test: (root / "imgs/train/1.jpg").unlink(), "does not exist"),
    "corrupt image": (lambda root, train, test: (root / "imgs/train/1.jpg").write_bytes(b"not an image"), "corrupt"),
    "truncated image": (lambda root, train, test: (root / "imgs/train/1.jpg").write_bytes(
        (root / "imgs/train/1.jpg").read_bytes()[:200]), "corrupt or truncated"),
    "malformed record": (lambda root, train, test: train[2].pop("caption"), "missing field 'caption'"),
    "wrong type": (lambda root, train, test: train[2].update(caption=5), "field 'caption' has type int"),
    "duplicate id": (lambda root, train, test: test.append(dict(test[0])), "duplicate image"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_raises_naming_file_and_record(tmp_path, case):
    mutate, message = BAD_DATA[case]
    _cuhk(tmp_path, mutate)
    with pytest.raises(DatasetFormatError, match=message) as error:
        load_aptm_dataset("cuhk-pedes", data_dir=tmp_path)
    assert "cuhk_t" in str(error.value) and "record" in str(error.value)


def test_skip_option_counts_what_it_skips(tmp_path, caplog):
    _cuhk(tmp_path, lambda root, train, test: (root / "imgs/train/1.jpg").unlink())
    with caplog.at_level(logging.WARNING):
        data = load_aptm_dataset("cuhk-pedes", data_dir=tmp_path, on_error="skip")
    assert data["train"].num_rows == 6
    assert "skipped 1 record(s)" in caplog.text and "train/1.jpg does not exist" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = load_aptm_dataset("cuhk-pedes", data_dir=tmp_path, on_error="skip")  # from the cache
    assert again["train"].num_rows == 6
    assert "(from the cache): skipped 1 record(s)" in caplog.text and "train/1.jpg does not exist" in caplog.text


def test_file_level_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Request CUHK-PEDES"):
        load_aptm_dataset("cuhk-pedes", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="needs data_dir"):
        load_aptm_dataset("cuhk-pedes")
    (tmp_path / "cuhk_train.json").write_bytes(b"[{\"image\": \"a\xff\"}]")
    with pytest.raises(DatasetFormatError, match="not UTF-8"):
        load_aptm_dataset("cuhk-pedes", data_dir=tmp_path)
    (tmp_path / "cuhk_train.json").write_text('[{"image": "a.jpg",]')
    with pytest.raises(DatasetFormatError, match="not valid JSON.*line 1"):
        load_aptm_dataset("cuhk-pedes", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_aptm_dataset("market1501", data_dir=tmp_path)


def test_label_length_and_values(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "gene_attrs").mkdir()
    write_json(tmp_path / "gene_attrs" / "x.json", [{"image": "a.jpg", "caption": "c", "image_id": "1", "label": [1] * 26}])
    with pytest.raises(DatasetFormatError, match="must have 27 entries, got 26"):
        load_aptm_dataset("mals", data_dir=tmp_path)
    write_json(tmp_path / "gene_attrs" / "x.json", [{"image": "a.jpg", "caption": "c", "image_id": "1", "label": [2] * 27}])
    with pytest.raises(DatasetFormatError, match="label values"):
        load_aptm_dataset("mals", data_dir=tmp_path, cache_dir=tmp_path / "c2")
    write_image(tmp_path / "b.jpg")
    write_json(tmp_path / "gene_attrs" / "x.json", [
        {"image": "a.jpg", "caption": "c", "image_id": "1", "label": [1] * 27},
        {"image": "b.jpg", "caption": "c", "image_id": "1", "label": [1] * 27}])
    with pytest.raises(DatasetFormatError, match="duplicate image_id '1'"):
        load_aptm_dataset("mals", data_dir=tmp_path, cache_dir=tmp_path / "c3")
