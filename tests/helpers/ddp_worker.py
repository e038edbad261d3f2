"""Run by torchrun (2 processes, gloo, with `tests/` on PYTHONPATH) from training/test_run.py: one training step of the tiny model on half of a
fixed global batch under DDP; rank 0 saves the loss and the averaged gradients."""

import sys

import torch
import torch.distributed as dist

from helpers.models import global_batch, tiny_model

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
model = torch.nn.parallel.DistributedDataParallel(tiny_model())
batch = global_batch()
half = len(batch["pixel_values"]) // world
local = {k: v[rank * half : (rank + 1) * half] if k not in ("itm_negatives",) else v for k, v in batch.items()}
local["itm_negatives"] = tuple(n[rank * half : (rank + 1) * half] - rank * half for n in batch["itm_negatives"])
out = model(**local)
out.loss.backward()
loss = out.loss.detach().clone()
dist.all_reduce(loss)
if rank == 0:
    grads = {n: p.grad for n, p in model.module.named_parameters() if p.grad is not None}
    torch.save({"loss": loss / world, "grads": grads}, sys.argv[1])
dist.barrier()  # tear down together: gloo can abort a rank that destroys its group while the other still works
dist.destroy_process_group()
