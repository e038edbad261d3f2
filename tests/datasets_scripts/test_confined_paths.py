"""Annotations cannot reach outside their dataset folder: an absolute path, `..` or a symbolic link leading out is an
error naming the file and record, or a counted skip with `on_error="skip"`; the file outside is never opened."""

import logging

import pytest

from datasets_scripts import DatasetFormatError, load_aptm_dataset

from helpers.dataset_files import processed_tree, write_image, write_json


@pytest.fixture
def layout(tmp_path):
    """A CUHK-PEDES processed folder `data/` and, beside it, `outside/` with a file that is not an image (opening it
    would report it corrupt instead)."""
    data = tmp_path / "data"
    train, test = processed_tree(data, "cuhk")
    secret = tmp_path / "outside" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_text("not for the dataset")
    return data, secret, train, test


def escaping_paths(data, secret):
    """The three ways out, as an annotation names them (the symlink is made inside `imgs/`)."""
    link = data / "imgs" / "train" / "link.jpg"
    link.symlink_to(secret)
    return {"absolute": str(secret), "dotdot": "../outside/secret.jpg", "symlink": "train/link.jpg"}


@pytest.mark.parametrize("way", ["absolute", "dotdot", "symlink"])
def test_escaping_image_is_an_error_naming_file_and_record(layout, way):
    data, secret, train, _ = layout
    train[3]["image"] = escaping_paths(data, secret)[way]
    write_json(data / "cuhk_train.json", train)
    with pytest.raises(DatasetFormatError, match=r"cuhk_train.json, record 3: image .* outside the dataset folder"):
        load_aptm_dataset("cuhk-pedes", data_dir=data, cache_dir=data.parent / "cache", verify_images=False)


def test_escaping_images_are_counted_skips(layout, caplog):
    data, secret, train, test = layout
    for index, path in enumerate(escaping_paths(data, secret).values()):
        train[2 * index]["image"] = path
    write_json(data / "cuhk_train.json", train)
    with caplog.at_level(logging.WARNING):
        built = load_aptm_dataset("cuhk-pedes", data_dir=data, cache_dir=data.parent / "cache", on_error="skip")
    assert built["train"].num_rows == 5  # 8 pairs, 3 of them naming an image outside
    assert "cuhk-pedes train pairs: skipped 3 record(s)" in caplog.text and "corrupt" not in caplog.text
    for record in (0, 2, 4):
        assert f"cuhk_train.json, record {record}: image" in caplog.text
    assert set(built["train"]["image_path"]) == {f"train/{image}.jpg" for image in range(4)}  # the escaping ones gone
    assert built["test_gallery"].num_rows == len(test)


def test_links_inside_the_folder_are_kept(layout):
    data, _, train, _ = layout
    (data / "imgs" / "train" / "alias.jpg").symlink_to(data / "imgs" / "train" / "0.jpg")
    train[0]["image"] = "train/alias.jpg"
    train[1]["image"] = "train/../train/1.jpg"
    write_json(data / "cuhk_train.json", train)
    assert load_aptm_dataset("cuhk-pedes", data_dir=data, cache_dir=data.parent / "cache")["train"].num_rows == 8


@pytest.mark.parametrize("name, file, record", [
    ("pa100k", "PA100K_train.json", {"image": "../outside/secret.jpg", "label": [0, 1] * 13}),
    ("mals", "gene_attrs/g_0.json", {"image": "../outside/secret.jpg", "caption": "a person", "image_id": 1,
                                     "label": [0] * 27}),
    ("synth-pedes", "synthpedes_dataset.json", {"id": 1, "file_path": "../outside/secret.jpg", "captions": ["x"]}),
])
def test_attribute_family_confines_images(tmp_path, name, file, record):
    data = tmp_path / "data"
    write_image(data / "a.jpg")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_text("not for the dataset")
    (data / file).parent.mkdir(parents=True, exist_ok=True)
    write_json(data / file, [record])
    with pytest.raises(DatasetFormatError, match=rf"{file}, record 0: image .* outside the dataset folder"):
        load_aptm_dataset(name, data_dir=data, cache_dir=tmp_path / "cache")
