"""A reduced quickstart (a tiny model, a small procedural set, a few steps): every step runs, the pictures and the
model card are written, the checkpoint reloads through the Auto classes, and the same seed gives the same numbers."""

import json

import pytest
import torch

from aptm.data.captions import clean_caption
from aptm.factory import load_checkpoint
from aptm.metrics import attribute_metrics, attribute_predictions, retrieval_metrics
from aptm.training.arguments import RECIPES_DIR
from datasets_scripts import load_aptm_dataset

from helpers.models import TINY
from helpers.paths import load_script

quickstart = load_script("scripts/quickstart.py")
format_summary, run_quickstart = quickstart.format_summary, quickstart.run_quickstart



@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    recipe = json.loads((RECIPES_DIR / "tiny_procedural.json").read_text())
    recipe.update(config_overrides=TINY, text_init=None, per_device_train_batch_size=8, logging_steps=1)
    path = tmp_path_factory.mktemp("recipe") / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def run(folder, recipe, data):
    return run_quickstart(folder, data_dir=data, recipe=recipe, seed=0, max_steps=3,
                          dataset_options={"num_identities": 15, "views_per_identity": 2, "seed": 0})


def dual_encoder_metrics(checkpoint, data_dir):
    """Cosine-only retrieval metrics and IAC-scored attribute metrics computed directly from the checkpoint's two
    encoders."""
    model, processor = load_checkpoint(checkpoint, "cpu")
    data = load_aptm_dataset("procedural", data_dir=data_dir, num_identities=15, views_per_identity=2, seed=0)
    gallery, queries, attributes = data["test_gallery"], data["test_queries"], data["attributes_test"]
    prompts = processor.encode_attribute_prompts()
    with torch.no_grad():
        images = model.get_image_features(
            processor.image_processor(list(gallery["image"]))["pixel_values"]).pooler_output
        text = processor.tokenize([clean_caption(c, "procedural") for c in queries["caption"]])
        texts = model.get_text_features(text["input_ids"], text["attention_mask"]).pooler_output
        people = model.get_image_features(
            processor.image_processor(list(attributes["image"]))["pixel_values"]).pooler_output
        statements = model.get_text_features(prompts["input_ids"], prompts["attention_mask"]).pooler_output
    attribute = attribute_metrics(attribute_predictions(people @ statements.t()), attributes["attribute_labels"])
    return (retrieval_metrics(texts @ images.t(), queries["person_id"], gallery["person_id"]),
            {k: v for k, v in attribute.items() if k != "per_attribute_mA"})


def test_reduced_quickstart(tmp_path, recipe, capfd):
    summary = run(tmp_path / "a", recipe, tmp_path / "data")
    assert "missing keys" not in capfd.readouterr().err  # the best checkpoint reloads with its tied MLM decoder
    for name in ("retrieval_grid.png", "example_queries.png", "training_curves.png", "metrics.json", "summary.json"):
        assert (tmp_path / "a" / name).is_file(), name
    assert set(summary["retrieval"]) == {"R@1", "R@5", "R@10", "mAP", "mINP"} and "mA" in summary["attributes"]
    assert 0 < summary["chance_R@1"] < 100 and len(summary["examples"]) == 4
    card = (tmp_path / "a" / "checkpoint" / "README.md").read_text()
    assert "test R@1" in card and "test mA" in card and "test mA (dual encoder)" in card
    assert "top 16 candidates" in card  # the recipe's evaluation k is the checkpoint's default (config.k_test)
    text = format_summary(summary)
    assert "chance R@1" in text and "dual encoder" in text and str(tmp_path / "a" / "checkpoint") in text
    retrieval, attributes = dual_encoder_metrics(summary["checkpoint"], tmp_path / "data")
    assert summary["retrieval_dual_encoder"] == pytest.approx(retrieval)
    assert summary["attributes_dual_encoder"] == pytest.approx(attributes)
    assert "IAC similarities" in text
    again = run(tmp_path / "b", recipe, tmp_path / "data")
    assert again["retrieval"] == summary["retrieval"] and again["attributes"] == summary["attributes"]


def test_existing_checkpoint_skips_training(tmp_path, recipe):
    first = run(tmp_path / "a", recipe, tmp_path / "data")
    summary = run_quickstart(tmp_path / "b", data_dir=tmp_path / "data", recipe=recipe, checkpoint=first["checkpoint"],
                             dataset_options={"num_identities": 15, "views_per_identity": 2, "seed": 0})
    assert "validation" not in summary and summary["retrieval"] == first["retrieval"]
    assert not (tmp_path / "b" / "checkpoint").exists()
