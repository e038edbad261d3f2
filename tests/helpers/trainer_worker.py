"""Run by a launcher (2 processes on CPU, with `tests/` on PYTHONPATH) from training/test_distributed.py: one step of
`APTMTrainer` with default arguments (no `use_cpu` given) on a 4-pair dataset of the fixed global batch, 2 pairs per
process; rank 0 saves the world size the arguments see and the logged loss of that step."""

import sys

import torch
from transformers import default_data_collator

from aptm.training import APTMTrainer, APTMTrainingArguments

from helpers.models import global_batch, tiny_model

batch = {key: value for key, value in global_batch().items() if key != "itm_negatives"}
pairs = [{key: value[i] for key, value in batch.items()} for i in range(len(batch["pixel_values"]))]
args = APTMTrainingArguments(output_dir=sys.argv[2], per_device_train_batch_size=2, max_steps=1, logging_steps=1,
                             learning_rate=1e-3, warmup_steps=0, save_strategy="no", eval_strategy="no",
                             load_best_model_at_end=False, report_to=[], seed=0)
trainer = APTMTrainer(model=tiny_model(itc_gradient="global", itm_loss_weight=0.0), args=args, train_dataset=pairs,
                      data_collator=default_data_collator)
trainer.train()
if trainer.is_world_process_zero():
    torch.save({"world_size": args.world_size, "loss": trainer.state.log_history[0]["loss"]}, sys.argv[1])
