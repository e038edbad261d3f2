"""Training APTM with a `transformers.Trainer` subclass: the original optimiser groups and schedules, every loss term
logged, retrieval (R@K, mAP, mINP) or attribute (mA) evaluation on a validation split with best-checkpoint
selection on it (never on test), and training curves saved as a PNG beside the checkpoint.

Several processes: run the same script under `torchrun --nproc_per_node N` (or `accelerate launch`); ITC gathers
the features of every process (see `modeling_aptm.gather_across_processes`), the other losses use the local batch,
as the original.
"""

import json
import logging
from collections import defaultdict
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from .curves import plot_training_curves
from .metrics import attribute_metrics
from .retrieval import RetrievalEngine

logger = logging.getLogger(__name__)

NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight", "norm.bias", "norm.weight", "norm1.", "norm2.")


def fast_parameter(name, config, lr_2=False, init_cross=False):
    """Whether a parameter belongs to the original's learning-rate x `lr_mult` group: with `lr_2`, the last two Swin
    stages, the last two text and fusion layers (BERT layers 4, 5, 10, 11 of the paper model), the MLM head, the
    projections and the ITM head; with `init_cross`, the newly initialised cross-attention."""
    if init_cross and ".crossattention." in name:
        return True
    if not lr_2:
        return False
    stages = len(config.vision_config.depths)
    text, fusion = config.text_config.num_hidden_layers, config.cross_config.num_hidden_layers
    patterns = [f"vision_model.layers.{i}." for i in range(stages - 2, stages)]
    patterns += [f"text_model.encoder.layer.{i}." for i in range(text - 2, text)]
    patterns += [f"fusion_model.layer.{i}." for i in range(fusion - 2, fusion)]
    patterns += ["mlm_head.", "vision_proj.", "text_proj.", "itm_head."]
    return any(name.startswith(p) for p in patterns)


def parameter_groups(model, lr, weight_decay=0.01, lr_mult=2.0, lr_2=False, init_cross=False, text_lr=None):
    """The original four AdamW groups: (decay, no decay) x (base lr, lr x lr_mult). No-decay is a substring match on
    biases and norms, so `temp`, the relative-position tables and the ITM head's LayerNorm (`itm_head.1`) decay.
    `text_lr` (not in the original) gives the pretrained text encoder its own base rate, for recipes whose image
    encoder starts from scratch and needs a higher rate than a pretrained BERT tolerates."""
    groups = defaultdict(list)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = not any(pattern in name for pattern in NO_DECAY)
        base = text_lr if text_lr is not None and name.startswith("text_model.") else lr
        groups[(decay, fast_parameter(name, model.config, lr_2, init_cross), base)].append(parameter)
    return [{"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": base * lr_mult if fast else base}
            for (decay, fast, base), params in sorted(groups.items(), key=lambda item: (item[0][2] != lr, item[0]))]


def schedule_factor(kind, step, total, warmup):
    """Learning-rate factor at `step`: linear warm-up, then `linear` decay to 0 or the original's `step` decay
    (x1 until 4 warm-ups, x0.5 until 7, x0.2 after, on top of the linear decay). `warmup` < 1 is a fraction of
    `total`."""
    warmup = int(warmup * total) if warmup < 1 else int(warmup)
    if step < warmup:
        return step / max(1, warmup)
    decay = max(0.0, (total - step) / max(1, total - warmup))
    if kind == "linear":
        return decay
    if kind == "step":
        return decay * (1.0 if step < 4 * warmup else 0.5 if step < 7 * warmup else 0.2)
    raise ValueError(f"schedule must be 'linear' or 'step', got {kind!r}")


class RetrievalEvaluator:
    """Validation retrieval metrics of a model on a gallery and queries (`datasets` splits from
    `load_aptm_dataset`)."""

    def __init__(self, processor, gallery, queries, k=None, fusion="aptm", batch_size=32, dataset=None):
        from .augment import clean_caption

        self.processor, self.gallery, self.k, self.fusion, self.batch_size = processor, gallery, k, fusion, batch_size
        self.texts = [clean_caption(c, dataset) for c in queries["caption"]]
        self.query_ids = queries["person_id"]

    def __call__(self, model):
        engine = RetrievalEngine(model, self.processor, k=self.k, fusion=self.fusion, batch_size=self.batch_size,
                                 progress=False)
        index = engine.encode_gallery(self.gallery, person_ids=self.gallery["person_id"])
        metrics, _ = engine.evaluate(self.texts, self.query_ids, index)
        return metrics


class AttributeEvaluator:
    """Validation attribute metrics (mA, accuracy, precision, recall, F1) from prompt-pair scores: through the ITM
    head (`scoring="itm"`, the paper's) or the IAC similarities (`"contrastive"`)."""

    def __init__(self, processor, dataset, batch_size=32, scoring="itm"):
        self.processor, self.dataset, self.batch_size, self.scoring = processor, dataset, batch_size, scoring

    def __call__(self, model):
        engine = RetrievalEngine(model, self.processor, batch_size=self.batch_size, progress=False,
                                 attribute_scoring=self.scoring)
        predictions, _ = engine.recognize_attributes(self.dataset["image"])
        metrics = attribute_metrics(predictions.numpy(), self.dataset["attribute_labels"])
        return {key: value for key, value in metrics.items() if key != "per_attribute_mA"}


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
        evaluators (`list`, *optional*): callables `model -> dict of metrics` run by `evaluate()` (e.g.
            `RetrievalEvaluator` on the validation split); their metrics get the `eval_` prefix, so
            `metric_for_best_model="R@1"` selects checkpoints on validation R@1.
        lr_mult, lr_2, init_cross, text_lr: the optimiser groups (see `parameter_groups`).
        schedule (`str`, *optional*, defaults to `"linear"`): `"linear"` or `"step"`; `warmup` steps (or fraction).
    Other arguments are `Trainer`'s. Use `remove_unused_columns=False` (the collator needs the raw columns).
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, evaluators=(), lr_mult=2.0, lr_2=False, init_cross=False, text_lr=None,
                 schedule="linear", warmup=0.1, **kwargs):
        if evaluators and kwargs.get("eval_dataset") is None:  # Trainer requires one to schedule evaluations
            kwargs["eval_dataset"] = {"evaluators": list(evaluators)}
        super().__init__(*args, **kwargs)
        self.evaluators = list(evaluators)
        self.lr_mult, self.lr_2, self.init_cross, self.text_lr = lr_mult, lr_2, init_cross, text_lr
        self.schedule, self.warmup = schedule, warmup
        self._term_sums, self._term_count = defaultdict(float), 0
        self.add_callback(CurvesCallback())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            for name, value in outputs.items():
                if name.startswith("loss_") and value is not None:
                    self._term_sums[name] += value.detach().float()
            self._term_count += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

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
            groups = parameter_groups(model, self.args.learning_rate, self.args.weight_decay, self.lr_mult, self.lr_2,
                                      self.init_cross, self.text_lr)
            self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-8)
        return self.optimizer

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lr_scheduler is None:
            optimizer = optimizer or self.optimizer
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: schedule_factor(self.schedule, step, num_training_steps, self.warmup))
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


def load_recipe(path):
    """A training recipe (json): model, data and optimisation settings; see `recipes/`."""
    path = Path(path)
    try:
        recipe = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"recipe {path} is not valid JSON: {error}") from error
    for key in ("task", "dataset", "model", "optimizer", "schedule", "training"):
        if key not in recipe:
            raise ValueError(f"recipe {path} lacks the {key!r} section")
    if recipe["task"] not in ("pretrain", "retrieval", "attributes"):
        raise ValueError(f"recipe {path}: task must be pretrain, retrieval or attributes, got {recipe['task']!r}")
    return recipe


def training_arguments(recipe, output_dir, **overrides):
    """`TrainingArguments` from a recipe's `training` section (overrides win), with what APTM needs set."""
    training = {"dataloader_pin_memory": torch.cuda.is_available(), **recipe["training"],
                **{k: v for k, v in overrides.items() if v is not None}}
    optimizer = recipe["optimizer"]
    best = training.pop("metric_for_best_model", "R@1" if recipe["task"] != "attributes" else "mA")
    return TrainingArguments(
        output_dir=str(output_dir), learning_rate=optimizer["lr"], weight_decay=optimizer.get("weight_decay", 0.01),
        remove_unused_columns=False, report_to="none", metric_for_best_model=best, greater_is_better=True,
        load_best_model_at_end=training.pop("load_best_model_at_end", True), **training)
