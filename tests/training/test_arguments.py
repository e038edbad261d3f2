"""Typed training arguments: every bundled recipe parses, the command line overrides a recipe, bad recipes and bad
values are errors that name the file, key or field, and the loss options become validated configuration fields."""

import json

import pytest

from aptm.data.collator import APTMCollator
from aptm.data.image_transforms import RANDOM_ERASING_P
from aptm.training import (APTMTrainingArguments, DataArguments, load_recipe, parse_training_arguments,
                           recipe_arguments)
from aptm.training.arguments import BUNDLED_RECIPES, RECIPES_DIR
from aptm.training.run import prepare_model
from configuration_aptm import APTMConfig

from helpers.models import TINY


@pytest.mark.parametrize("name", sorted(set(BUNDLED_RECIPES.values())))
def test_every_bundled_recipe_parses(name):
    model, data, loss, evaluation, training = recipe_arguments(RECIPES_DIR / name, data_dir="data", output_dir="out")
    recipe = json.loads((RECIPES_DIR / name).read_text())
    assert data.task == recipe["task"] and data.dataset == recipe["dataset"] and model.preset == recipe["preset"]
    assert training.learning_rate == recipe["learning_rate"] and training.lr_schedule == recipe["lr_schedule"]
    assert training.metric_for_best_model == ("mA" if data.task == "attributes" else "R@1")
    assert training.greater_is_better and not training.remove_unused_columns
    assert (training.adam_beta1, training.adam_beta2) == (0.9, 0.98)  # the original's betas
    if model.preset == "aptm-base" and data.task != "attributes":  # the paper recipes with ITC, as the original
        assert loss.itc_gradient == "local"


def test_command_line_overrides_the_recipe():
    model, data, loss, evaluation, training = parse_training_arguments([
        "--recipe", str(RECIPES_DIR / "tiny_procedural.json"), "--data_dir", "data", "--output_dir", "out",
        "--max_steps", "3", "--attribute_loss_weight", "0.25", "--no_randaugment", "--num_identities", "20",
        "--fusion", "cosine"])
    assert training.max_steps == 3 and training.num_train_epochs == 2.5  # the recipe's, not overridden
    assert loss.config_overrides() == {"attribute_loss_weight": 0.25, "attribute_balanced_loss": True,
                                       "num_attribute_matching_prompts": 2}
    assert data.dataset_options == {"num_identities": 20, "views_per_identity": 6, "seed": 0}
    assert not data.randaugment and data.erasing_p == 0.0 and evaluation.fusion == "cosine"
    assert model.text_init == "minilm" and evaluation.rerank_k == 16


def test_task_and_dataset_pick_the_bundled_recipe():
    *_, training = parse_training_arguments(["--task", "attributes", "--dataset", "pa100k", "--data_dir", "d",
                                             "--output_dir", "o"])
    assert training.lr_schedule == "step" and training.per_device_train_batch_size == 200


def test_defaults_are_stated_once():
    data = DataArguments(task="retrieval", dataset="procedural", data_dir="d")
    assert data.erasing_p == RANDOM_ERASING_P and not data.attributes
    assert DataArguments(task="pretrain", dataset="mals", data_dir="d").attributes  # pre-training adds them
    import inspect

    assert inspect.signature(APTMCollator).parameters["erasing_p"].default == RANDOM_ERASING_P


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ('["a list"]', "must be a JSON object"),
    ('{"task": "retrieval", "learning_rat": 0.1}', r"unknown keys \['learning_rat'\]"),
])
def test_bad_recipes_name_the_file_and_key(tmp_path, content, message):
    path = tmp_path / "recipe.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        load_recipe(path)
    assert "recipe.json" in str(error.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recipe(tmp_path / "missing.json")


@pytest.mark.parametrize("argv, message", [
    (["--dataset_options", "[1, 2]"], "dataset_options must be a JSON object"),
    (["--dataset_options", "{oops"], "dataset_options is not valid JSON"),
    (["--erasing_p", "1.5"], "erasing_p must be in"),
    (["--text_layers", "0"], "text_layers must be at least 1"),
    (["--fusion_init_layer", "-1"], "fusion_init_layer must be a layer index"),
])
def test_bad_values_name_the_argument(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_training_arguments(["--task", "retrieval", "--dataset", "procedural", "--data_dir", "d"] + argv)


def test_remove_unused_columns_is_refused():
    with pytest.raises(ValueError, match="remove_unused_columns must be false"):
        APTMTrainingArguments(output_dir="o", remove_unused_columns=True)


@pytest.mark.parametrize("field, value, message", [
    ("itm_loss_weight", -1.0, "itm_loss_weight must be a non-negative number"),
    ("attribute_label_smoothing", 1.0, r"attribute_label_smoothing must be in \[0, 1\)"),
    ("num_attribute_matching_prompts", 0, "num_attribute_matching_prompts must be a positive integer"),
    ("itc_gradient", "both", r"itc_gradient must be one of \('local', 'global'\)"),
])
def test_loss_options_are_validated_config_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        APTMConfig(**TINY, **{field: value})
    model_args, _, loss, evaluation, _ = recipe_arguments(RECIPES_DIR / "tiny_procedural.json", data_dir="d",
                                                          output_dir="o", text_init=None, config_overrides=TINY,
                                                          **{field: value})
    with pytest.raises(ValueError, match=message):
        prepare_model(model_args, loss, evaluation)


def test_loss_options_reach_the_model_config_from_a_preset_and_a_checkpoint(tmp_path):
    model_args, _, loss, evaluation, _ = recipe_arguments(
        RECIPES_DIR / "retrieval_cuhk.json", data_dir="d", output_dir="o", preset="aptm-tiny", config_overrides=TINY,
        itm_loss_weight=0.5, rerank_k=7, cosine_weight=1.5, itc_gradient="global")
    model, _ = prepare_model(model_args, loss, evaluation)
    assert model.config.itm_loss_weight == 0.5 and model.config.k_test == 7 and model.config.num_attributes == 27
    assert model.config.itm_cosine_weight == 1.5
    assert model.config.itc_gradient == "global"
    model.save_pretrained(tmp_path / "init")
    model_args, _, loss, evaluation, _ = recipe_arguments(
        RECIPES_DIR / "attributes_pa100k.json", data_dir="d", output_dir="o", init=str(tmp_path / "init"),
        attribute_label_smoothing=0.1)
    loaded, notes = prepare_model(model_args, loss, evaluation)
    assert loaded.config.itm_loss_weight == 0.5 and loaded.config.attribute_label_smoothing == 0.1
    assert loaded.config.num_attributes == 26 and notes == [f"initialised from {tmp_path / 'init'}"]


def test_text_layers_and_fusion_init_layer_place_the_pretrained_text_layers():
    """`text_layers=4` on aptm-tiny: MiniLM layers 0..3 are the text encoder, layers 4..5 the fusion layers'
    self-attention and feed-forward (the paper's split of BERT); the cross-attention stays new. `fusion_init_layer=4`
    keeps the 6 text layers and starts the fusion layers as copies of layers 4..5."""
    from transformers import BertModel

    from aptm.factory import minilm_dir

    model_args, _, loss, evaluation, _ = recipe_arguments(RECIPES_DIR / "tiny_procedural.json", data_dir="d",
                                                          output_dir="o", text_layers=4)
    model, notes = prepare_model(model_args, loss, evaluation)
    minilm = BertModel.from_pretrained(str(minilm_dir()))
    assert len(model.text_model.encoder.layer) == 4 and len(model.fusion_model.layer) == 2
    fusion, text, bert = model.fusion_model.layer, model.text_model.encoder.layer, minilm.encoder.layer
    for index in (0, 1):
        assert (fusion[index].attention.self.query.weight == bert[4 + index].attention.self.query.weight).all()
        assert (fusion[index].output.dense.weight == bert[4 + index].output.dense.weight).all()
    assert (text[3].output.dense.weight == bert[3].output.dense.weight).all()
    assert "fusion_model.layer.N.crossattention" in notes[-1] and "fusion_model.layer.N.attention" not in notes[-1]
    model_args.text_layers, model_args.fusion_init_layer = None, 4  # all 6 text layers, fusion = copies of 4..5
    model, _ = prepare_model(model_args, loss, evaluation)
    fusion, text = model.fusion_model.layer, model.text_model.encoder.layer
    assert len(text) == 6 and (text[5].output.dense.weight == bert[5].output.dense.weight).all()
    assert (fusion[1].output.dense.weight == bert[5].output.dense.weight).all()
    assert (fusion[0].attention.self.key.weight == bert[4].attention.self.key.weight).all()


def test_bundled_recipes_are_named_by_their_file_name(tmp_path, monkeypatch):
    bundled = load_recipe(RECIPES_DIR / "tiny_procedural.json")
    assert load_recipe("tiny_procedural") == load_recipe("tiny_procedural.json") == bundled
    (tmp_path / "tiny_procedural.json").write_text(json.dumps({"max_steps": 3}))
    monkeypatch.chdir(tmp_path)
    assert load_recipe("tiny_procedural.json") == {"max_steps": 3}  # a file of that path wins
    with pytest.raises(FileNotFoundError, match=r"nope.json does not exist \(bundled recipes, by name: .*'tiny_procedural'"):
        load_recipe("nope")
