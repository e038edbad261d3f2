"""Resuming a training: `--resume_from_checkpoint last` takes the last checkpoint written to the end (skipping one a
kill left incomplete, starting from step 0 when there is none), and a run stopped after a checkpoint and resumed ends
with the uninterrupted run's weights and validation metrics on CPU: bit for bit when the two runs are alone in their
process (the seeded sampler, the restored RNG, optimiser and scheduler states and one thread count replay the same
operations in the same order), within 1e-7 (float32 rounding, seen up to 6e-9) after other tests ran in the process.
The same after a real SIGKILL: `helpers/kill_writers.py`'s training writer (bit for bit)."""

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file

from aptm.training import recipe_arguments, run_training
from aptm.training.trainer import last_complete_checkpoint
from aptm.training.arguments import RECIPES_DIR

from helpers.models import TINY


def write_state(checkpoint, step):
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_last_complete_checkpoint_skips_what_a_kill_left_incomplete(tmp_path, caplog):
    assert last_complete_checkpoint(tmp_path / "absent") is None
    assert last_complete_checkpoint(tmp_path) is None
    for step in (2, 10):
        write_state(tmp_path / f"checkpoint-{step}", step)
    (tmp_path / "checkpoint-12").mkdir()  # killed before its trainer_state.json
    write_state(tmp_path / "checkpoint-14", 14)
    (tmp_path / "checkpoint-14" / "trainer_state.json").write_text('{"global_step": 1')  # killed while writing it
    (tmp_path / "checkpoint-9.partial").mkdir()
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert "checkpoint-14 is incomplete" in caplog.text and "checkpoint-12 is incomplete" in caplog.text


def training_arguments(tmp_path, output_dir, **overrides):
    recipe = json.loads((RECIPES_DIR / "tiny_procedural.json").read_text())
    del recipe["text_init"]  # the tiny test widths do not fit the MiniLM weights
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    return recipe_arguments(
        tmp_path / "recipe.json", data_dir=str(tmp_path / "data"), config_overrides=TINY,
        dataset_options={"num_identities": 8, "views_per_identity": 2, "seed": 0}, output_dir=str(output_dir),
        max_steps=4, save_strategy="steps", save_steps=2, eval_strategy="no", matching_steps=0,
        per_device_train_batch_size=4, per_device_eval_batch_size=4, logging_steps=1, use_cpu=True,
        report_to="none", disable_tqdm=True, **overrides)


def losses(trainer):
    """Every loss term of every logged step, in order."""
    return [entry[key] for entry in trainer.state.log_history if "loss" in entry
            for key in sorted(entry) if key.startswith("loss")]


def scores(metrics):
    return {name: value for name, value in metrics.items() if "runtime" not in name and "per_second" not in name}


def test_a_run_stopped_after_a_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, caplog):
    uninterrupted, full = run_training(*training_arguments(tmp_path, tmp_path / "full"))
    killed = tmp_path / "killed"  # what a run killed while saving its step-4 checkpoint leaves
    shutil.copytree(tmp_path / "full" / "checkpoint-2", killed / "checkpoint-2")
    shutil.copytree(tmp_path / "full" / "checkpoint-4", killed / "checkpoint-4")
    (killed / "checkpoint-4" / "trainer_state.json").unlink()
    with caplog.at_level(logging.INFO, logger="aptm.training"):
        trainer, resumed = run_training(*training_arguments(tmp_path, killed, resume_from_checkpoint="last"))
    assert f"resuming from {killed / 'checkpoint-2'}" in caplog.text
    assert losses(trainer) == pytest.approx(losses(uninterrupted), rel=1e-6)
    assert scores(resumed) == pytest.approx(scores(full), rel=1e-6) and "eval_R@1" in resumed
    expected, got = load_file(tmp_path / "full" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert expected.keys() == got.keys()
    for name in expected:  # bit for bit when run alone; after other tests in the process, within float32 rounding
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-7, msg=name)
    # resumed once more: the run is complete (its last checkpoint is at max_steps), nothing is trained or saved as a
    # further step (the Trainer's own loop would take one at learning rate 0 and save it as checkpoint-5)
    with caplog.at_level(logging.INFO, logger="aptm.training"):
        trainer, again = run_training(*training_arguments(tmp_path, killed, resume_from_checkpoint="last"))
    assert "is at the last step (4 of max_steps=4): nothing left to train" in caplog.text
    assert sorted(folder.name for folder in killed.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert trainer.state.global_step == 4 and scores(again) == scores(resumed)
    for name, tensor in load_file(killed / "model.safetensors").items():
        assert torch.equal(tensor, got[name]), name


def test_resume_from_checkpoint_true_takes_the_last_complete_checkpoint_or_says_there_is_none(tmp_path):
    from aptm.training import APTMTrainer, APTMTrainingArguments
    from helpers.models import tiny_model

    args = APTMTrainingArguments(output_dir=str(tmp_path), max_steps=2, eval_strategy="no", save_strategy="no",
                                 load_best_model_at_end=False, use_cpu=True, report_to="none")
    (tmp_path / "checkpoint-3").mkdir()  # killed before its trainer_state.json
    trainer = APTMTrainer(model=tiny_model(), args=args)
    with pytest.raises(ValueError, match=f"resume_from_checkpoint=True: {tmp_path} holds no complete checkpoint"):
        trainer.train(resume_from_checkpoint=True)
