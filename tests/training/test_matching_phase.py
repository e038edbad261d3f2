"""The matching phase (`matching_steps`): the cache holds what the frozen encoders compute, only the fusion encoder
and ITM head learn and their losses fall, the phase's Trainer resumes from its checkpoints, and `run_training` keeps
the better head on validation (the phase on two processes: training/test_distributed.py)."""

import json

import pytest
import torch

from aptm.training import APTMTrainer, APTMTrainingArguments, recipe_arguments, run_training
from aptm.training.arguments import RECIPES_DIR
from aptm.training.matching_phase import (cache_size, encode_training_set, matching_phase_arguments,
                                          run_matching_phase, train_matching_head)
from datasets_scripts import load_aptm_dataset
from modeling_aptm import prompt_targets

from helpers.models import TINY, tiny_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("procedural")
    return load_aptm_dataset("procedural", data_dir=folder, num_identities=8, views_per_identity=2, seed=0)


@pytest.fixture(scope="module")
def encoded(data, tokenizer):
    import aptm

    return encode_training_set(tiny_model().eval(), aptm.build_processor(tokenizer=tokenizer), data["train"],
                               attributes=True, batch_size=3)


def test_the_cache_holds_the_encoders_outputs_once_per_image(data, processor, encoded):
    model, train = tiny_model().eval(), data["train"]
    paths = train["image_path"]
    assert len(encoded.image_embeds) == len(set(paths)) < len(train)  # two captions per image, one encoding
    with torch.no_grad():
        for row in (0, len(train) - 1):
            image = encoded.text_image[row]
            first = paths.index(paths[row])
            assert encoded.text_image[first] == image
            pixels = processor(images=[train[row]["image"]])["pixel_values"]
            embeds = model.vision_model(pixels).last_hidden_state[0]
            assert torch.allclose(encoded.image_embeds[image], embeds, atol=1e-5)
            assert torch.allclose(encoded.image_features[image], model.image_features_from_embeds(embeds[None])[0],
                                  atol=1e-5)
            assert encoded.attribute_labels[image].tolist() == train[row]["attribute_labels"]
            assert encoded.person_ids[row] == train[row]["person_id"]
            text = processor.tokenize([train[row]["caption"]], padding="longest")
            length = text["input_ids"].shape[1]
            assert encoded.text_mask[row].sum() == length
            states = model.text_model(text["input_ids"], text["attention_mask"]).last_hidden_state[0]
            assert torch.allclose(encoded.text_embeds[row, :length], states, atol=1e-5)
    prompts = processor.encode_attribute_prompts()
    assert encoded.prompt_embeds.shape[:2] == prompts["input_ids"].shape and torch.equal(encoded.prompt_mask,
                                                                                         prompts["attention_mask"])


def test_the_cache_limit_stops_before_encoding(data, processor, encoded):
    held = sum(getattr(encoded, name).nbytes for name in ("image_embeds", "image_features", "text_embeds",
                                                          "text_mask", "text_features"))
    assert cache_size(tiny_model(), len(encoded.image_embeds), len(encoded.text_embeds),
                      encoded.text_embeds.shape[1]) == held
    with pytest.raises(ValueError, match=r"images and \d+ captions take .* over matching_cache_gb=1e-06"):
        encode_training_set(tiny_model(), processor, data["train"], attributes=True, limit_gb=1e-6)


def phase_arguments(output_dir, steps, **overrides):
    """The phase's arguments of a joint run with batches of 8 captions at learning rate 1e-3, nothing saved."""
    joint = APTMTrainingArguments(**{
        "output_dir": str(output_dir), "per_device_train_batch_size": 8, "use_cpu": True, "save_strategy": "no",
        "eval_strategy": "no", "load_best_model_at_end": False, "report_to": [], "matching_steps": steps,
        "matching_learning_rate": 1e-3, **overrides})
    return matching_phase_arguments(joint)


def phase_losses(trainer):
    """The logged phase losses, one dict per logging step."""
    return [{k: v for k, v in entry.items() if k.startswith("loss_") or k == "step"}
            for entry in trainer.state.log_history if "loss_itm" in entry]


def attribute_matching_on_every_prompt(model, encoded):
    """IAM of every prompt against every cached image (no random prompt draw)."""
    with torch.no_grad():
        return model.attribute_matching_loss(encoded.image_embeds, encoded.prompt_embeds, encoded.prompt_mask,
                                             prompt_targets(encoded.attribute_labels),
                                             torch.arange(len(encoded.prompt_embeds))).item()


def test_only_the_matching_head_learns_and_its_losses_fall(encoded, tmp_path):
    model = tiny_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    args = phase_arguments(tmp_path, 30, logging_steps=10)
    assert (args.max_steps, args.learning_rate, args.warmup_steps, args.output_dir) == (
        30, 1e-3, 0.1, str(tmp_path / "matching_phase"))
    log = phase_losses(train_matching_head(model, encoded, args))
    assert [entry["step"] for entry in log] == [10, 20, 30] and all("loss_iam" in entry for entry in log)
    assert log[-1]["loss_itm"] < log[0]["loss_itm"], log
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed and all(name.startswith(("fusion_model.", "itm_head.")) for name in changed), changed
    assert "itm_head.0.weight" in changed and any(name.startswith("fusion_model.") for name in changed)
    assert all(parameter.requires_grad for parameter in model.parameters())
    assert "forward" not in vars(model)  # the model's own forward again
    with pytest.raises(ValueError, match="steps >= 1"):
        train_matching_head(model, encoded, phase_arguments(tmp_path, 0))


def test_the_phase_trains_attribute_matching(encoded, tmp_path):
    """With the ITM weight at 0 the phase learns from IAM alone: IAM on every prompt falls (the logged IAM draws
    random prompts each step, too noisy to compare)."""
    model = tiny_model(itm_loss_weight=0.0)
    before = attribute_matching_on_every_prompt(model, encoded)
    train_matching_head(model, encoded, phase_arguments(tmp_path, 20, logging_steps=10))
    assert attribute_matching_on_every_prompt(model, encoded) < before


def test_the_phase_resumes_from_its_checkpoints(encoded, tmp_path):
    """Four steps, or two then a fresh model resumed from the phase's checkpoint-2 for the other two: the same head
    and the same log (weights, optimiser, schedule, random state and log history come back with the checkpoint)."""
    args = phase_arguments(tmp_path, 4, logging_steps=1, save_strategy="steps", save_steps=2)
    whole = tiny_model()
    log = phase_losses(train_matching_head(whole, encoded, args))
    assert (tmp_path / "matching_phase" / "checkpoint-2").is_dir()
    resumed = tiny_model()
    again = phase_losses(train_matching_head(resumed, encoded, args, str(tmp_path / "matching_phase" / "checkpoint-2")))
    assert again == log and [entry["step"] for entry in log] == [1, 2, 3, 4]  # steps 1-2 from the checkpoint
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)


class ScriptedValidation:
    """An evaluator returning the next scripted R@1 (the joint training's, then the phase's)."""

    def __init__(self, *values):
        self.values = list(values)

    def __call__(self, model):
        return {"R@1": self.values.pop(0)}


@pytest.mark.parametrize("phase_r1, kept", [(60.0, "phase"), (50.0, "phase"), (40.0, "joint")])
def test_the_better_head_on_validation_is_kept(data, processor, tmp_path, phase_r1, kept):
    args = APTMTrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4,
                                 save_strategy="no", eval_strategy="no", load_best_model_at_end=False, use_cpu=True,
                                 logging_steps=0.5, matching_steps=4, matching_learning_rate=1e-3)
    trainer = APTMTrainer(model=tiny_model(), args=args, train_dataset=data["train"], processing_class=processor,
                          evaluators=[ScriptedValidation(50.0, phase_r1)])
    metrics = trainer.evaluate()
    joint = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    result, phase = run_matching_phase(trainer, data["train"], attributes=True, metrics=metrics)
    assert result["eval_R@1"] == max(50.0, phase_r1)
    same = all(torch.equal(value, joint[name]) for name, value in trainer.model.state_dict().items())
    assert same == (kept == "joint")
    assert [entry["step"] for entry in phase_losses(phase)] == [2, 4]  # logging_steps 0.5 of the phase's 4
    assert phase.state.global_step == 4 and trainer.state.global_step == 0  # the joint trainer's count untouched
    assert trainer.model.config.itm_loss_weight == 1.0
    saved = json.loads((tmp_path / "matching_phase" / "trainer_state.json").read_text())
    assert saved["log_history"][-1]["eval_R@1"] == phase_r1
    assert (tmp_path / "matching_phase" / "training_curves.png").is_file()


def test_run_training_runs_the_phase_after_the_joint_steps(tmp_path):
    recipe = json.loads((RECIPES_DIR / "tiny_procedural.json").read_text())
    del recipe["text_init"]  # the tiny test widths do not fit the MiniLM weights
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    arguments = recipe_arguments(
        tmp_path / "recipe.json", data_dir=str(tmp_path / "data"),
        dataset_options={"num_identities": 8, "views_per_identity": 2, "seed": 0}, config_overrides=TINY,
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4, per_device_eval_batch_size=8,
        matching_steps=3, matching_learning_rate=1e-3, logging_steps=1, save_strategy="no", eval_strategy="no",
        load_best_model_at_end=False)
    trainer, metrics = run_training(*arguments)
    phase_log = json.loads((tmp_path / "out" / "matching_phase" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in phase_log if "loss_itm" in entry] == [1, 2, 3]
    assert "eval_R@1" in metrics and "eval_mA" in metrics and trainer.state.global_step == 2
    assert (tmp_path / "out" / "training_curves.png").is_file()
    assert (tmp_path / "out" / "matching_phase" / "training_curves.png").is_file()


def test_the_phase_needs_captions_and_the_fusion_encoder(tmp_path):
    with pytest.raises(ValueError, match="matching_steps must be a non-negative"):
        APTMTrainingArguments(output_dir=str(tmp_path), matching_steps=-1)
    with pytest.raises(ValueError, match="matching_learning_rate must be positive"):
        APTMTrainingArguments(output_dir=str(tmp_path), matching_learning_rate=0)
    arguments = recipe_arguments(RECIPES_DIR / "attributes_pa100k_image_classifier.json", data_dir="d",
                                 output_dir=str(tmp_path), matching_steps=2)
    with pytest.raises(ValueError, match="matching_steps trains the matching head on captions"):
        run_training(*arguments)
