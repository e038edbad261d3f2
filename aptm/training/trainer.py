"""Training APTM with a `transformers.Trainer` subclass: the original optimiser groups and schedules (from
`APTMTrainingArguments`), every loss term logged, retrieval (R@K, mAP, mINP) or attribute (mA) evaluation on a
validation split with best-checkpoint selection on it (never on test), and training curves saved as a PNG beside the
checkpoint.

Several processes: run the same script under `torchrun --nproc_per_node N` (or `accelerate launch`); ITC gathers
the features of every process (see `modeling_aptm.gather_across_processes`; `itc_gradient` says whether the other
processes' features pass gradient back), the other losses use the local batch, as the original. Validation is split
across the processes too (`aptm.evaluation`'s evaluators: each process evaluates a share, 1/N of the work), and every
process gets the one-process metrics, so checkpoint selection agrees everywhere.

A run killed while writing a checkpoint leaves that `checkpoint-N` folder incomplete (the Trainer adds the optimiser,
scheduler and RNG states to it in place, `trainer_state.json` last): `last_complete_checkpoint` is the one to resume
from (`train(resume_from_checkpoint=True)` and the matching phase take it too). The model, processor and arguments of
a checkpoint or of the final save are written into a temporary folder and renamed into place (`APTMTrainer._save`,
`atomic_folder`), so a save killed midway leaves no folder, or the previous save's files each whole. A run resumed
from the checkpoint of its last step is complete: it loads that checkpoint and trains nothing more.
"""

import json
import logging
import re
from collections import defaultdict
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput
from transformers.utils import CONFIG_NAME

from datasets_scripts.files import atomic_folder
from ..figures import plot_training_curves
from .optimization import parameter_groups, schedule_factor

logger = logging.getLogger(__name__)


def checkpoint_step(checkpoint: str | Path) -> int | None:
    """The step a checkpoint's `trainer_state.json` records; `None` if that file is missing or cut short (the
    checkpoint is incomplete)."""
    try:
        return json.loads((Path(checkpoint) / TRAINER_STATE_NAME).read_text()).get("global_step")
    except (OSError, ValueError):
        return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The latest `checkpoint-N` in `output_dir` that was written to the end (`None` if there is none). Newer ones
    left incomplete by a killed run are skipped with a warning naming them (the resumed run writes them again)."""
    numbered = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    folders = Path(output_dir).iterdir() if Path(output_dir).is_dir() else []
    checkpoints = sorted((int(match.group(1)), folder) for folder in folders
                         if folder.is_dir() and (match := numbered.match(folder.name)))
    for step, checkpoint in reversed(checkpoints):
        if checkpoint_step(checkpoint) == step:
            return str(checkpoint)
        logger.warning(f"{checkpoint} is incomplete (its run was stopped while saving it): not resuming from it")
    return None


def other_person_negatives(person_ids):
    """`itm_negatives` drawn uniformly: for each pair a negative image and a negative text of another person of the
    batch (-1 where there is none), instead of by similarity."""
    other = (person_ids[:, None] != person_ids[None, :]).float()
    negatives = []
    for _ in range(2):
        drawn = torch.full_like(person_ids, -1)
        rows = other.sum(dim=1) > 0
        if rows.any():
            drawn[rows] = torch.multinomial(other[rows], 1).flatten()
        negatives.append(drawn)
    return tuple(negatives)


ITM_TERMS = ("loss_itm", "loss_itm_eda")


def loss_without_itm(model, outputs, captions):
    """The total loss of `outputs` (`APTMForPreTrainingOutput`) with the ITM terms weighed 0, the model's
    configuration untouched (they stay in the graph with zero gradients); `captions`: whether the batch had them."""
    terms = {name: value * 0.0 if name in ITM_TERMS else value for name, value in outputs.items()
             if name.startswith("loss_") and value is not None}
    return model.total_loss(terms, captions=captions)


class CurvesCallback(TrainerCallback):
    """Write `training_curves.png` into the output folder at every save and at the end."""

    def _plot(self, args, state):
        if state.is_world_process_zero and state.log_history:
            plot_training_curves(state.log_history, Path(args.output_dir) / "training_curves.png")

    def on_save(self, args, state, control, **kwargs):
        self._plot(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._plot(args, state)


class APTMTrainer(Trainer):
    r"""
    `Trainer` for `APTMForPreTraining`.

    Args:
        args (`APTMTrainingArguments`): `TrainingArguments` with the optimiser groups (`lr_mult`, `lr_2`,
            `init_cross`, `text_lr`; see `parameter_groups`), the schedule (`lr_schedule`, `warmup_steps`) and that
            of ITM (`itm_warmup_steps`: steps with its weight at 0; `itm_hard_negatives_from`: steps with
            `other_person_negatives` instead of the similarity-drawn ones).
        evaluators (`list`, *optional*): callables `model -> dict of metrics` run by `evaluate()` (e.g.
            `aptm.evaluation.RetrievalEvaluator` on the validation split); their metrics get the `eval_` prefix, so
            `metric_for_best_model="R@1"` selects checkpoints on validation R@1.
    Other arguments are `Trainer`'s.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, evaluators=(), **kwargs):
        if evaluators and kwargs.get("eval_dataset") is None:  # Trainer requires one to schedule evaluations
            kwargs["eval_dataset"] = {"evaluators": list(evaluators)}
        super().__init__(*args, **kwargs)
        self.evaluators = list(evaluators)
        self._term_sums, self._term_count = defaultdict(float), 0
        self.add_callback(CurvesCallback())

    def train(self, resume_from_checkpoint: str | bool | None = None, trial=None, ignore_keys_for_eval=None,
              **kwargs) -> TrainOutput:
        """`Trainer.train`, where `resume_from_checkpoint=True` takes `last_complete_checkpoint` (not merely the
        newest folder), and a run resumed from a checkpoint at `max_steps` is complete: its weights (or the best
        checkpoint's, with `load_best_model_at_end`) and state are loaded and nothing is trained or saved (the Trainer
        would take one more step, at learning rate 0, and save it as `checkpoint-<max_steps + 1>`)."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"resume_from_checkpoint=True: {self.args.output_dir} holds no complete checkpoint")
        step = checkpoint_step(resume_from_checkpoint) if resume_from_checkpoint else None
        if step is None or not 0 < self.args.max_steps <= step:
            return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval, **kwargs)
        logger.info(f"{resume_from_checkpoint} is at the last step ({step} of max_steps={self.args.max_steps}): "
                    "nothing left to train")
        self._load_from_checkpoint(resume_from_checkpoint)
        self.state = TrainerState.load_from_json(str(Path(resume_from_checkpoint) / TRAINER_STATE_NAME))
        if self.args.load_best_model_at_end and self.state.best_model_checkpoint is not None:
            self._load_best_model()
        return TrainOutput(self.state.global_step, 0.0, {})

    def _save(self, output_dir=None, state_dict=None):
        """`Trainer._save` (weights, config, processor, arguments) through `atomic_folder`: a new folder appears
        whole, an existing one's files are replaced each whole, `config.json` last."""
        if not self.args.should_save:
            return super()._save(output_dir, state_dict)
        with atomic_folder(output_dir if output_dir is not None else self.args.output_dir, last=CONFIG_NAME) as partial:
            super()._save(str(partial), state_dict)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        step = self.state.global_step if model.training else None
        if step is not None and step < self.args.itm_hard_negatives_from and "input_ids" in inputs:
            inputs = {**inputs, "itm_negatives": other_person_negatives(inputs["person_ids"])}
        outputs = model(**inputs)
        loss = outputs.loss
        if step is not None and step < self.args.itm_warmup_steps:
            loss = loss_without_itm(self.accelerator.unwrap_model(model), outputs, captions="input_ids" in inputs)
        if model.training:
            for name, value in outputs.items():
                if name.startswith("loss_") and value is not None:
                    self._term_sums[name] += value.detach().float()
            self._term_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, start_time=None):
        if "loss" in logs and self._term_count:
            for name, total in self._term_sums.items():
                value = self.accelerator.reduce(torch.as_tensor(total / self._term_count, device=self.args.device),
                                                reduction="mean")
                logs[name] = round(value.item(), 4)
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.accelerator.unwrap_model(model or self.model)
            args = self.args
            groups = parameter_groups(model, args.learning_rate, args.weight_decay, args.lr_mult, args.lr_2,
                                      args.init_cross, args.text_lr)
            self.optimizer = torch.optim.AdamW(groups, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
        return self.optimizer

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            optimizer = optimizer or self.optimizer
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: schedule_factor(self.args.lr_schedule, step, num_training_steps, self.args.warmup_steps))
        return self.lr_scheduler

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        model = self.accelerator.unwrap_model(self.model)
        metrics = {}
        with torch.no_grad():
            for evaluator in self.evaluators:
                metrics.update(evaluator(model))
        model.train()
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in metrics.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics
