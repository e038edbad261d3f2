"""Validation of data without a validation split: a capped, seeded sample of held-out persons (never a 5% hold-out of
MALS evaluated in full), or zero-shot on a CUHK-PEDES-format folder."""

import datasets
import pytest

from aptm.training import DataArguments, parse_training_arguments
from aptm.training.run import hold_out_validation, prepare_data
from datasets_scripts import procedural

from helpers.dataset_files import processed_tree


def pairs(num_people=100, images_per_person=3, captions_per_image=2):
    rows = [{"image": f"{p}_{i}.jpg", "caption": f"person {p} view {i} caption {c}", "person_id": p,
             "image_path": f"{p}_{i}.jpg"}
            for p in range(num_people) for i in range(images_per_person) for c in range(captions_per_image)]
    return datasets.Dataset.from_list(rows)


def test_hold_out_is_a_capped_seeded_sample_of_persons():
    train = pairs()
    rest, gallery, queries = hold_out_validation(train, max_size=7, seed=1)
    assert gallery.num_rows == 6  # 5% of 100 persons is 5 (15 images); the cap of 7 images keeps 2 of them
    held = set(gallery["person_id"])
    assert len(held) == 2 and held.isdisjoint(rest["person_id"]) and rest.num_rows == train.num_rows - 12
    assert queries.num_rows == 12 and all(gallery[index]["person_id"] == person for index, person
                                          in zip(queries["image_index"], queries["person_id"]))
    again = hold_out_validation(train, max_size=7, seed=1)[1]
    assert again["image_path"] == gallery["image_path"]
    assert set(hold_out_validation(train, max_size=7, seed=2)[1]["person_id"]) != held
    assert hold_out_validation(train, max_size=1000, seed=1)[1].num_rows == 15  # uncapped: 5% of the persons
    assert len(set(hold_out_validation(train, max_size=1, seed=1)[1]["person_id"])) == 1  # at least one person


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A procedural folder read as MALS (one person per image, no validation split) and a CUHK-PEDES-format one."""
    root = tmp_path_factory.mktemp("validation")
    procedural.generate(root / "mals", num_identities=30, views_per_identity=2, seed=0, progress=False)
    processed_tree(root / "cuhk", "cuhk")
    return root


def data_arguments(folders, **options):
    return DataArguments(task="pretrain", dataset="mals", data_dir=str(folders / "mals"),
                         dataset_cache_dir=str(folders / "cache"), **options)


def test_pretraining_holds_out_at_most_validation_max_size_images(folders):
    whole = prepare_data(data_arguments(folders, validation_max_size=1000), seed=0)
    capped = prepare_data(data_arguments(folders, validation_max_size=1), seed=0)
    assert whole[1]["gallery"].num_rows == 2  # 5% of the 42 persons (one image each, with two captions)
    assert capped[1]["gallery"].num_rows == 1 and capped[0].num_rows == whole[0].num_rows + 2  # its two captions
    assert capped[1]["gallery"]["image_path"][0] not in capped[0]["image_path"]
    assert not (folders / "mals" / ".hf_cache").exists()  # prepared in dataset_cache_dir


def test_zero_shot_validation_on_a_cuhk_format_folder(folders):
    arguments = data_arguments(folders, zero_shot_dir=str(folders / "cuhk"), zero_shot_split="test", num_proc=2)
    train, evaluation = prepare_data(arguments, seed=0)
    held_out = prepare_data(data_arguments(folders), seed=0)  # 2 persons held out, 2 captions each
    assert train.num_rows == held_out[0].num_rows + 4  # nothing held out
    assert evaluation["gallery"]["image_path"] == ["test/0.jpg", "test/1.jpg", "test/2.jpg"]
    assert evaluation["queries"].num_rows == 6 and arguments.validation_dataset == "cuhk-pedes"
    with pytest.raises(ValueError, match=r"zero_shot_dir .*cuhk has no validation split"):
        prepare_data(data_arguments(folders, zero_shot_dir=str(folders / "cuhk")), seed=0)


def test_preparation_arguments_are_checked(folders):
    with pytest.raises(ValueError, match="num_proc must be at least 1"):
        data_arguments(folders, num_proc=0)
    with pytest.raises(ValueError, match="validation_max_size must be at least 1"):
        data_arguments(folders, validation_max_size=0)


def test_help_lists_the_preparation_and_validation_options(capsys):
    with pytest.raises(SystemExit) as exited:
        parse_training_arguments(["--help"])
    text = capsys.readouterr().out
    assert exited.value.code == 0
    for option in ("--num_proc", "--dataset_cache_dir", "--validation_max_size", "--zero_shot_dir", "--zero_shot_split"):
        assert option in text
