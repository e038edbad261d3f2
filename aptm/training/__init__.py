"""Training: typed arguments (recipes are their JSON), the original optimiser groups and schedules, the `Trainer`
subclass, and the run from arguments to a saved checkpoint."""

from .arguments import (APTMTrainingArguments, DataArguments, EvaluationArguments, LossArguments, ModelArguments,
                        load_recipe, parse_training_arguments, recipe_arguments)
from .optimization import parameter_groups, schedule_factor
from .run import run_training
from .trainer import APTMTrainer

__all__ = [
    "APTMTrainer", "APTMTrainingArguments", "DataArguments", "EvaluationArguments", "LossArguments", "ModelArguments",
    "load_recipe", "parameter_groups", "parse_training_arguments", "recipe_arguments", "run_training",
    "schedule_factor",
]
