"""Run from training/test_distributed.py, by `torchrun` (2 processes on CPU) or by plain python (one process), with
`tests/` on PYTHONPATH: two steps of the matching phase of the tiny model on the cached encoder outputs of the fixed
global batch (4 captions), 4 captions a step in all (2 per process under torchrun). The hard negatives are each
caption's partner within its pair of the step's batch (positions 0-1, 2-3), so one process and two see the same pairs.
Rank 0 saves the matching head's gradients at the first step (as the optimiser gets them) and every process's head
after the second step."""

import os
import sys

import torch
import torch.distributed as dist
from transformers import TrainerCallback

import modeling_aptm
from aptm.training import APTMTrainingArguments
from aptm.training.matching_phase import (TRAINED_PREFIXES, EncodedTrainingSet, matching_phase_arguments,
                                          train_matching_head)

from helpers.models import global_batch, tiny_model

GLOBAL_BATCH = 4


def partners(image_features, text_features, temp, person_ids):
    partner = torch.arange(len(person_ids)) ^ 1
    return partner, partner


class FirstGradients(TrainerCallback):
    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def encoded_batch(model):
    batch = global_batch()
    with torch.no_grad():
        image_embeds = model.vision_model(batch["pixel_values"]).last_hidden_state
        text_embeds = model.text_model(batch["input_ids"], batch["attention_mask"]).last_hidden_state
        return EncodedTrainingSet(
            image_embeds=image_embeds, image_features=model.image_features_from_embeds(image_embeds),
            attribute_labels=None, text_embeds=text_embeds, text_mask=batch["attention_mask"],
            text_features=model.text_features_from_embeds(text_embeds), text_image=torch.arange(GLOBAL_BATCH),
            person_ids=batch["person_ids"])


modeling_aptm.sample_hard_negatives = partners
world = int(os.environ.get("WORLD_SIZE", "1"))
model = tiny_model()
args = matching_phase_arguments(APTMTrainingArguments(
    output_dir=sys.argv[2], per_device_train_batch_size=GLOBAL_BATCH // world, use_cpu=True, save_strategy="no",
    eval_strategy="no", load_best_model_at_end=False, report_to=[], logging_steps=1, seed=0, matching_steps=2,
    matching_learning_rate=1e-3))
gradients = FirstGradients()
trainer = train_matching_head(model, encoded_batch(model), args, callbacks=[gradients])
head = {name: value for name, value in model.state_dict().items() if name.startswith(TRAINED_PREFIXES)}
heads = [head]
if world > 1:
    heads = [None] * world
    dist.all_gather_object(heads, head)
if trainer.is_world_process_zero():
    torch.save({"world_size": trainer.args.world_size, "grads": gradients.grads, "heads": heads}, sys.argv[1])
if world > 1:
    dist.barrier()
