"""Training runs: losses go down, resume continues the same trajectory, the same seed gives the same result, bf16
autocast runs, and the CLI writes a loadable checkpoint with curves from a recipe overridden on the command line
(several processes: training/test_distributed.py)."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, TrainerCallback

from aptm import load_checkpoint
from aptm.data.collator import APTMCollator
from aptm.evaluation import AttributeEvaluator, RetrievalEvaluator, evaluate_dataset
from aptm.metrics import attribute_metrics
from aptm.training import APTMTrainer, APTMTrainingArguments, recipe_arguments, run_training
from aptm.training.arguments import RECIPES_DIR
from aptm.training.run import prepare_model
from aptm.training.trainer import other_person_negatives
from datasets_scripts import load_aptm_dataset
from modeling_aptm import APTMForImageClassification

from helpers.models import TINY, tiny_model
from helpers.paths import REPO

TRAINING = {"learning_rate": 1e-3, "warmup_steps": 0, "per_device_train_batch_size": 4, "logging_steps": 1,
            "save_strategy": "no", "eval_strategy": "no", "load_best_model_at_end": False, "seed": 0, "use_cpu": True}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("procedural")
    return load_aptm_dataset("procedural", data_dir=folder, num_identities=8, views_per_identity=2, seed=0)


def trainer_for(data, processor, output_dir, callbacks=(), evaluators=(), attributes=True, **overrides):
    args = APTMTrainingArguments(output_dir=str(output_dir), **{**TRAINING, **overrides})
    collator = APTMCollator(processor, attributes=attributes, mlm=attributes, erasing_p=0.0)
    return APTMTrainer(model=tiny_model(), args=args, train_dataset=data["train"], data_collator=collator,
                       evaluators=evaluators, callbacks=list(callbacks))


def losses(trainer, name="loss"):
    return [entry[name] for entry in trainer.state.log_history if name in entry and "train_runtime" not in entry]


def test_training_lowers_every_loss(data, processor, tmp_path):
    trainer = trainer_for(data, processor, tmp_path, max_steps=32, per_device_train_batch_size=8)
    trainer.train()
    for name in ("loss", "loss_itc", "loss_itm", "loss_mlm", "loss_iac", "loss_iam", "loss_mam"):
        values = losses(trainer, name)
        assert len(values) == 32, name
        assert sum(values[-8:]) / 8 < sum(values[:8]) / 8, (name, values)  # IAM draws 2 random prompts a step: average


def test_same_seed_same_result_and_resume(data, processor, tmp_path):
    full = trainer_for(data, processor, tmp_path / "full", max_steps=6, save_strategy="steps", save_steps=3)
    full.train()
    again = trainer_for(data, processor, tmp_path / "again", max_steps=6)
    again.train()
    assert losses(again) == pytest.approx(losses(full), rel=1e-6)

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            control.should_training_stop = True

    killed = trainer_for(data, processor, tmp_path / "killed", callbacks=[Kill()], max_steps=6, save_strategy="steps",
                         save_steps=3)
    killed.train()
    assert len(losses(killed)) == 3
    resumed = trainer_for(data, processor, tmp_path / "killed", max_steps=6, save_strategy="steps", save_steps=3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "killed" / "checkpoint-3"))
    assert losses(resumed)[-3:] == pytest.approx(losses(full)[3:], rel=1e-5)


def test_bf16_autocast_and_evaluation(data, processor, tmp_path):
    evaluators = [RetrievalEvaluator(processor, data["validation_gallery"], data["validation_queries"], k=2),
                  AttributeEvaluator(processor, data["attributes_validation"])]
    trainer = trainer_for(data, processor, tmp_path, evaluators=evaluators, max_steps=2, bf16=True)
    trainer.train()
    assert all(torch.isfinite(torch.tensor(losses(trainer))))
    metrics = trainer.evaluate()
    assert {"eval_R@1", "eval_mAP", "eval_mA"} <= set(metrics)


def test_itm_warmup_steps_keep_the_itm_loss_out_of_the_first_steps(data, processor, tmp_path):
    """Captions only (IAM would train the ITM head too): no gradient reaches the ITM head during the warm-up, then it
    does; the configured weight is what the model keeps."""
    head_gradients = []

    class HeadGradient(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            head_gradients.append(model.itm_head[0].weight.grad.abs().sum().item())

    trainer = trainer_for(data, processor, tmp_path, [HeadGradient()], attributes=False, max_steps=4,
                          itm_warmup_steps=2)
    trainer.train()
    assert head_gradients[:2] == [0.0, 0.0] and all(g > 0 for g in head_gradients[2:]), head_gradients
    assert trainer.model.config.itm_loss_weight == 1.0 and len(losses(trainer, "loss_itm")) == 4


def test_itm_negatives_are_uniform_before_itm_hard_negatives_from(data, processor, tmp_path, monkeypatch):
    import modeling_aptm

    drawn_by_similarity = []
    original = modeling_aptm.sample_hard_negatives
    monkeypatch.setattr(modeling_aptm, "sample_hard_negatives",
                        lambda *args: drawn_by_similarity.append(1) or original(*args))
    trainer_for(data, processor, tmp_path, attributes=False, max_steps=3, itm_hard_negatives_from=2).train()
    assert len(drawn_by_similarity) == 1  # step 2 only
    person_ids = torch.tensor([0, 0, 1, 2, 2, 2])
    for _ in range(20):
        for negatives in other_person_negatives(person_ids):
            assert (person_ids[negatives] != person_ids).all()
    assert [n.tolist() for n in other_person_negatives(torch.tensor([3, 3]))] == [[-1, -1], [-1, -1]]
    with pytest.raises(ValueError, match="itm_warmup_steps must be a non-negative"):
        APTMTrainingArguments(output_dir=str(tmp_path), itm_warmup_steps=-1)


def test_cli_trains_and_saves_a_loadable_checkpoint(tmp_path):
    recipe = json.loads((RECIPES_DIR / "tiny_procedural.json").read_text())
    del recipe["text_init"]  # the tiny test widths do not fit the MiniLM weights
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--recipe", str(tmp_path / "recipe.json"),
                             "--dataset_options", json.dumps({"num_identities": 8, "views_per_identity": 2, "seed": 0}),
                             "--config_overrides", json.dumps(TINY), "--data_dir", str(tmp_path / "data"),
                             "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--matching_steps", "2",
                             "--per_device_train_batch_size", "4", "--attribute_loss_weight", "0.5"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.rindex('{\n  "output_dir"'):])
    assert "eval_R@1" in summary["validation"] and "eval_mA" in summary["validation"]
    out = tmp_path / "out"
    for name in ("model.safetensors", "config.json", "modeling_aptm.py", "processor_config.json", "README.md",
                 "training_curves.png"):
        assert (out / name).is_file(), name
    loaded = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert isinstance(loaded, torch.nn.Module)
    assert loaded.config.attribute_loss_weight == 0.5 and loaded.config.k_test == 16  # command line, then recipe
    assert loaded.config.text_config.hidden_size == TINY["text_config"]["hidden_size"]


def test_image_classifier_baseline_trains_saves_and_evaluates(tmp_path):
    """The PA-100K image-only baseline recipe, on a small procedural set with the tiny widths: labels-only batches,
    BCE training, the validation mA from its own 0.5-threshold predictions, a checkpoint that loads as the
    classifier."""
    arguments = recipe_arguments(
        RECIPES_DIR / "attributes_pa100k_image_classifier.json", dataset="procedural", data_dir=str(tmp_path / "data"),
        dataset_options={"num_identities": 8, "views_per_identity": 2, "seed": 0}, normalization="mals",
        attribute_schema="mals", preset="aptm-tiny", config_overrides=TINY, output_dir=str(tmp_path / "out"),
        **{**TRAINING, "max_steps": 2, "per_device_eval_batch_size": 3, "dataloader_num_workers": 0})
    trainer, metrics = run_training(*arguments)
    assert isinstance(trainer.model, APTMForImageClassification) and len(losses(trainer)) == 2
    model, processor = load_checkpoint(tmp_path / "out", device="cpu")
    assert type(model).__name__ == "APTMForImageClassification" and model.config.num_attributes == 27
    assert "custom_pipelines" not in json.loads((tmp_path / "out" / "config.json").read_text())
    data = load_aptm_dataset("procedural", data_dir=tmp_path / "data", num_identities=8, views_per_identity=2, seed=0)
    split = data["attributes_validation"]
    with torch.no_grad():
        predictions, _ = model.eval().classify_attributes(processor(images=list(split["image"]))["pixel_values"])
    expected = attribute_metrics(predictions.numpy(), split["attribute_labels"])
    assert metrics["eval_mA"] == pytest.approx(expected["mA"], abs=1e-6)
    results = evaluate_dataset(model, processor, data, "procedural", "validation", batch_size=3)  # in 3 + 1 images
    assert set(results) == {"attributes", "attributes_per_attribute_mA"}  # no retrieval without a text encoder
    assert results["attributes"]["mA"] == pytest.approx(expected["mA"], abs=1e-6)


def test_image_classifier_needs_the_attributes_task_and_no_text_encoder(tmp_path):
    recipe = RECIPES_DIR / "attributes_pa100k_image_classifier.json"
    arguments = recipe_arguments(recipe, task="retrieval", data_dir="d", output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="task must be 'attributes'"):
        run_training(*arguments)
    model_args, _, loss_args, evaluation_args, _ = recipe_arguments(
        recipe, data_dir="d", output_dir=str(tmp_path), preset="aptm-tiny", text_init="minilm")
    with pytest.raises(ValueError, match="no text encoder"):
        prepare_model(model_args, loss_args, evaluation_args)
