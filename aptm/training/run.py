"""From typed arguments to a trained checkpoint: data, processor, model, collator, `APTMTrainer`, and the saved folder
(safetensors, remote code, processor, model card, training curves)."""

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from transformers import AutoProcessor, set_seed
from transformers.utils import CONFIG_NAME

from configuration_aptm import APTMConfig
from datasets_scripts import load_aptm_dataset
from datasets_scripts.files import atomic_folder
from modeling_aptm import APTMForImageClassification, APTMForPreTraining
from processing_aptm import ATTRIBUTE_SCHEMAS

from ..convert.backbones import from_vision_text_pretrained
from ..data.collator import APTMCollator
from ..evaluation import AttributeEvaluator, RetrievalEvaluator
from ..factory import build_processor, minilm_dir
from ..hub import add_pipelines, hub_id, write_model_card
from .matching_phase import run_matching_phase
from .trainer import APTMTrainer, last_complete_checkpoint

logger = logging.getLogger(__name__)


def hold_out_validation(train, max_size, fraction=0.05, seed=0):
    """Split training pairs by person into (train, validation gallery, validation queries) for datasets without a
    validation split (ICFG-PEDES, MALS), so checkpoints are never selected on test. A seeded sample of persons is held
    out: `fraction` of them, capped at `max_size` gallery images (at least one person); their captions are the
    queries, and every other person trains. Only the person and path columns are read, so this is quick at MALS size."""
    columns = train.select_columns(["person_id", "image_path"]).with_format("arrow")[:]  # one read, no row loop
    person_ids = columns["person_id"].to_numpy()
    people = np.unique(person_ids)
    sample = np.random.default_rng(seed).choice(people, max(1, int(len(people) * fraction)), replace=False)
    images_of = Counter(dict(zip(columns["image_path"].to_pylist(), person_ids.tolist())).values())
    sizes = np.cumsum([images_of[person] for person in sample.tolist()])
    held = sample[: max(1, int(np.searchsorted(sizes, max_size, side="right")))]
    is_held = np.isin(person_ids, held)
    rest = train.select(np.flatnonzero(~is_held))
    held_rows = train.select(np.flatnonzero(is_held))
    first = {}
    for row, path in enumerate(held_rows["image_path"]):
        first.setdefault(path, row)
    gallery = held_rows.select(list(first.values())).select_columns(["image", "person_id", "image_path"])
    position = {path: i for i, path in enumerate(first)}
    queries = held_rows.select_columns(["caption", "person_id", "image_path"]).map(
        lambda row: {"image_index": position[row["image_path"]]}).remove_columns("image_path")
    return rest, gallery, queries


def zero_shot_validation(data_args):
    """`{"gallery", "queries"}`: the `zero_shot_split` of the CUHK-PEDES-format folder `zero_shot_dir`."""
    data = load_aptm_dataset("cuhk-pedes", data_dir=data_args.zero_shot_dir, **data_args.preparation)
    split = data_args.zero_shot_split
    if f"{split}_gallery" not in data:
        raise ValueError(f"zero_shot_dir {data_args.zero_shot_dir} has no {split} split (splits: {list(data)}); "
                         "set zero_shot_split")
    return {"gallery": data[f"{split}_gallery"], "queries": data[f"{split}_queries"]}


def prepare_data(data_args, seed=0):
    """`(train_dataset, {evaluation split name: dataset})` for `DataArguments`: validation on the dataset's own
    validation split, else zero-shot on `zero_shot_dir`, else on persons held out of training (seeded by `seed`)."""
    data = load_aptm_dataset(data_args.dataset, data_dir=data_args.data_dir, **data_args.preparation,
                             **data_args.dataset_options)
    if data_args.task == "attributes":
        return data["train"], {"attributes": data.get("attributes_validation", data.get("validation"))}
    train = data["train"]
    if data_args.zero_shot_dir is not None:
        evaluation = zero_shot_validation(data_args)
    elif "validation_gallery" in data:
        evaluation = {"gallery": data["validation_gallery"], "queries": data["validation_queries"]}
    else:
        train, gallery, queries = hold_out_validation(train, data_args.validation_max_size, seed=seed)
        evaluation = {"gallery": gallery, "queries": queries}
    if "attributes_validation" in data and data_args.attributes:
        evaluation["attributes"] = data["attributes_validation"]
    return train, evaluation


def prepare_model(model_args, loss_args, evaluation_args):
    """`(model, notes)`: see `ModelArguments` for the order of initialisation sources. Loss options become validated
    configuration fields, the attribute count is the schema's, and a set `rerank_k` becomes `k_test` and a set
    `cosine_weight` `itm_cosine_weight` (the saved checkpoint re-ranks as it was validated)."""
    overrides = {**loss_args.config_overrides(), "num_attributes": len(ATTRIBUTE_SCHEMAS[model_args.attribute_schema][0])}
    if evaluation_args.rerank_k:
        overrides["k_test"] = evaluation_args.rerank_k
    if evaluation_args.cosine_weight is not None:
        overrides["itm_cosine_weight"] = evaluation_args.cosine_weight
    model_class = APTMForImageClassification if model_args.architecture == "image_classifier" else APTMForPreTraining
    if model_args.init is not None:
        config = APTMConfig.from_dict({**APTMConfig.from_pretrained(model_args.init).to_dict(), **overrides})
        return model_class.from_pretrained(model_args.init, config=config), [f"initialised from {model_args.init}"]
    config = APTMConfig.from_preset(model_args.preset, **{**model_args.config_overrides, **overrides})
    if model_args.text_layers is not None:
        config.text_config.num_hidden_layers = model_args.text_layers
    bert = model_args.bert
    if bert is None and model_args.text_init == "minilm":
        bert = minilm_dir()
    if bert is not None and model_class is APTMForImageClassification:
        raise ValueError("the image classifier has no text encoder: bert and text_init do not apply to it")
    return from_vision_text_pretrained(config, swin=model_args.swin, bert=bert, model_class=model_class,
                                       fusion_start=model_args.fusion_init_layer)


def prepare_processor(model_args):
    """The arguments' normalisation and attribute schema, with the tokenizer of `init` when it has one."""
    tokenizer = None
    if model_args.init is not None and (Path(model_args.init) / "tokenizer.json").is_file():
        tokenizer = AutoProcessor.from_pretrained(model_args.init, trust_remote_code=True).tokenizer
    return build_processor(model_args.normalization, model_args.attribute_schema, tokenizer)


def build_collator(processor, data_args, seed, image_classifier=False):
    return APTMCollator(processor, captions=data_args.captions, attributes=data_args.attributes, mlm=data_args.mlm,
                        image_classifier=image_classifier,
                        eda=data_args.eda, dataset=data_args.dataset, mask_padding=data_args.mask_padding,
                        erasing_p=data_args.erasing_p, randaugment=data_args.randaugment,
                        mlm_probability=data_args.mlm_probability, mlm_max_masks=data_args.mlm_max_masks,
                        mlm_span_probability=data_args.mlm_span_probability, mlm_max_span=data_args.mlm_max_span,
                        seed=seed)


def build_evaluators(processor, evaluation, data_args, evaluation_args, batch_size):
    """The validation evaluators of the splits in `evaluation` (see `prepare_data`)."""
    evaluators = []
    if "gallery" in evaluation:
        evaluators.append(RetrievalEvaluator(processor, evaluation["gallery"], evaluation["queries"],
                                             dataset=data_args.validation_dataset, k=evaluation_args.rerank_k,
                                             fusion=evaluation_args.fusion, batch_size=batch_size))
    if evaluation.get("attributes") is not None:
        evaluators.append(AttributeEvaluator(processor, evaluation["attributes"], batch_size,
                                             evaluation_args.attribute_scoring))
    return evaluators


def run_training(model_args, data_args, loss_args, evaluation_args, training_args):
    """Train; save the best (validation) checkpoint, processor, model card and curves to `training_args.output_dir`.
    Returns `(trainer, validation metrics of the saved model)`."""
    output_dir = Path(training_args.output_dir)
    classifier = model_args.architecture == "image_classifier"
    if classifier and data_args.task != "attributes":
        raise ValueError(f"the image classifier trains on attribute labels only: task must be 'attributes', "
                         f"got {data_args.task!r}")
    if training_args.matching_steps and (classifier or not data_args.captions):
        raise ValueError("matching_steps trains the matching head on captions: it needs a task with captions and "
                         "the APTM architecture")
    set_seed(training_args.seed)
    train, evaluation = prepare_data(data_args, seed=training_args.seed)
    processor = prepare_processor(model_args)
    model, notes = prepare_model(model_args, loss_args, evaluation_args)
    for note in notes:
        logger.info(note)
    trainer = APTMTrainer(
        model=model, args=training_args, train_dataset=train, processing_class=processor,
        data_collator=build_collator(processor, data_args, training_args.seed, image_classifier=classifier),
        evaluators=build_evaluators(processor, evaluation, data_args, evaluation_args,
                                    training_args.per_device_eval_batch_size))
    resume = training_args.resume_from_checkpoint
    if resume == "last":  # the latest checkpoint written to the end, if any (else the run starts from step 0)
        resume = last_complete_checkpoint(training_args.output_dir)
        logger.info(f"resuming from {resume}" if resume else "no checkpoint to resume from: training from the start")
    trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate()
    if training_args.matching_steps:
        metrics, _ = run_matching_phase(trainer, train, data_args.attributes, metrics)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():  # what the save lacks, each file replacing the saved one whole
        with atomic_folder(output_dir, last=CONFIG_NAME) as folder:
            shutil.copy2(Path(output_dir) / CONFIG_NAME, folder)
            processor.save_pretrained(folder)
            if not classifier:  # the retrieval pipelines need the text and fusion encoders
                add_pipelines(folder)
            name = training_args.run_name or data_args.task
            write_model_card(folder, model.config, processor, source=f"Trained with the `{name}` recipe on "
                             f"{data_args.dataset}.", metrics={k.replace("eval_", "validation "): round(v, 2)
                                                               for k, v in metrics.items() if isinstance(v, float)},
                             dataset=data_args.dataset, base_model=hub_id(model_args.init))
    return trainer, metrics
