"""`scripts/evaluate.py` end to end on a small procedural dataset and a saved tiny checkpoint: the printed table,
metrics.json and the grid, with numbers equal to an independent computation from the same weights."""

import functools
import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

import aptm
from aptm.metrics import attribute_metrics, attribute_predictions, retrieval_metrics
from aptm.retrieval.reference import original_procedure_scores
from datasets_scripts import load_aptm_dataset

from helpers.models import tiny_config
from helpers.paths import REPO

SCRIPT = REPO / "scripts" / "evaluate.py"
SMALL = {"num_identities": 10, "views_per_identity": 2, "test_fraction": 0.3}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate_cli")
    torch.manual_seed(0)
    model = aptm.APTMModel(tiny_config()).eval()
    processor = aptm.build_processor()
    model.save_pretrained(folder / "model")
    processor.save_pretrained(folder / "model")
    data = load_aptm_dataset("procedural", data_dir=folder / "data", **SMALL)
    spec = importlib.util.spec_from_file_location("evaluate_cli", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.load_aptm_dataset = functools.partial(load_aptm_dataset, **SMALL)  # the CLI would generate the full size
    return folder, model, processor, data, script


def columns(dataset):
    """Every column of a split as a list (images decoded)."""
    return {name: list(dataset[name]) for name in dataset.column_names}


def run(setup, capsys, *options):
    folder, _, _, _, script = setup
    output = folder / "out-{}".format("-".join(options).replace("--", ""))
    results = script.main(["--model", str(folder / "model"), "--dataset", "procedural", "--data-dir",
                           str(folder / "data"), "--output-dir", str(output), *options])
    return results, output, capsys.readouterr().out


def test_cli_reports_the_original_procedure(setup, capsys):
    _, model, processor, data, _ = setup
    results, output, printed = run(setup, capsys, "--k", "3")
    gallery, queries = columns(data["test_gallery"]), columns(data["test_queries"])
    assert len(gallery["image"]) == 6 and len(queries["caption"]) == 12
    pixel_values = processor.image_processor(gallery["image"])["pixel_values"]
    with torch.no_grad():
        image_embeds = model.vision_model(pixel_values).last_hidden_state
    encoded = processor(text=queries["caption"])
    scores = original_procedure_scores(model, encoded["input_ids"], encoded["attention_mask"], image_embeds,
                                       model.image_features_from_embeds(image_embeds), k=3)
    expected = retrieval_metrics(scores, queries["person_id"], gallery["person_id"])
    assert results["retrieval"] == pytest.approx(expected, abs=1e-6)
    for key in ("R@1", "R@5", "R@10", "mAP", "mINP"):
        assert key in printed
    assert f"{expected['mAP']:.2f}" in printed
    assert json.loads((output / "metrics.json").read_text()) == results
    grid = Image.open(output / "retrieval_grid.png")
    assert grid.format == "PNG" and grid.width > 10 * 64 and grid.height > 6 * 192


def test_cli_attributes_and_fusion_option(setup, capsys):
    _, model, processor, data, _ = setup
    results, _, _ = run(setup, capsys, "--fusion", "cosine")
    gallery, queries = columns(data["test_gallery"]), columns(data["test_queries"])
    with torch.no_grad():
        image_features = model.get_image_features(
            processor.image_processor(gallery["image"])["pixel_values"]).pooler_output
        encoded = processor(text=queries["caption"])
        text_features = model.get_text_features(encoded["input_ids"], encoded["attention_mask"]).pooler_output
    expected = retrieval_metrics(text_features @ image_features.t(), queries["person_id"], gallery["person_id"])
    assert results["retrieval"] == pytest.approx(expected, abs=1e-6)
    attributes = columns(data["attributes_test"])
    prompts = processor.encode_attribute_prompts()
    with torch.no_grad():
        prompt_embeds = model.text_model(prompts["input_ids"], prompts["attention_mask"]).last_hidden_state
        image_embeds = model.vision_model(processor.image_processor(attributes["image"])["pixel_values"]).last_hidden_state
        prompt_scores = torch.stack([
            model.itm_logits(prompt_embeds, prompts["attention_mask"], image.expand(len(prompt_embeds), -1, -1))[:, 1]
            for image in image_embeds])
    expected = attribute_metrics(attribute_predictions(prompt_scores), np.asarray(attributes["attribute_labels"]))
    assert results["attributes"] == pytest.approx({k: v for k, v in expected.items() if k != "per_attribute_mA"})
    assert list(results["attributes_per_attribute_mA"]) == processor.attribute_names


def test_cli_test_time_flip_ranks_by_the_mean_of_plain_and_mirrored_features(setup, capsys):
    _, model, processor, data, _ = setup
    results, _, _ = run(setup, capsys, "--fusion", "cosine", "--test-time-flip")
    gallery, queries = columns(data["test_gallery"]), columns(data["test_queries"])
    pixel_values = processor.image_processor(gallery["image"])["pixel_values"]
    with torch.no_grad():
        image_features = (model.get_image_features(pixel_values).pooler_output
                          + model.get_image_features(pixel_values.flip(-1)).pooler_output) / 2
        encoded = processor(text=queries["caption"])
        text_features = model.get_text_features(encoded["input_ids"], encoded["attention_mask"]).pooler_output
    expected = retrieval_metrics(text_features @ image_features.t(), queries["person_id"], gallery["person_id"])
    assert results["retrieval"] == pytest.approx(expected, abs=1e-6)
    plain, _, _ = run(setup, capsys, "--fusion", "cosine", "--no-test-time-flip")
    assert plain["retrieval"] != pytest.approx(expected, abs=1e-6)  # the flip changes these metrics


def test_cli_contrastive_attribute_scoring(setup, capsys):
    _, model, processor, data, _ = setup
    results, _, _ = run(setup, capsys, "--attribute-scoring", "contrastive")
    attributes = columns(data["attributes_test"])
    prompts = processor.encode_attribute_prompts()
    with torch.no_grad():
        prompt_features = model.get_text_features(prompts["input_ids"], prompts["attention_mask"]).pooler_output
        image_features = model.get_image_features(
            processor.image_processor(attributes["image"])["pixel_values"]).pooler_output
    expected = attribute_metrics(attribute_predictions(image_features @ prompt_features.t()),
                                 np.asarray(attributes["attribute_labels"]))
    assert results["attributes"] == pytest.approx({k: v for k, v in expected.items() if k != "per_attribute_mA"})


def test_cli_rejects_unknown_options(setup, capsys):
    with pytest.raises(SystemExit):
        run(setup, capsys, "--fusion", "mean")
    assert "invalid choice" in capsys.readouterr().err
