"""Run by a launcher (`torchrun` or `accelerate launch`: 2 processes, gloo, with `tests/` on PYTHONPATH) from
training/test_distributed.py: for each tiny-model configuration given (a JSON list of `tiny_config` overrides; by
default one default configuration), one training step under DDP on this process's half of a fixed global batch;
rank 0 saves the mean loss and the averaged gradients of each, as a list in that order."""

import json
import sys

import torch
import torch.distributed as dist

from helpers.models import global_batch, tiny_model

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
batch = global_batch()
half = len(batch["pixel_values"]) // world
local = {k: v[rank * half : (rank + 1) * half] if k not in ("itm_negatives",) else v for k, v in batch.items()}
local["itm_negatives"] = tuple(n[rank * half : (rank + 1) * half] - rank * half for n in batch["itm_negatives"])
runs = []
for overrides in json.loads(sys.argv[2]) if len(sys.argv) > 2 else [{}]:
    model = torch.nn.parallel.DistributedDataParallel(tiny_model(**overrides))
    out = model(**local)
    out.loss.backward()
    loss = out.loss.detach().clone()
    dist.all_reduce(loss)
    runs.append({"loss": loss / world, "grads": {n: p.grad for n, p in model.module.named_parameters()
                                                 if p.grad is not None}})
if rank == 0:
    torch.save(runs, sys.argv[1])
dist.barrier()  # tear down together: gloo can abort a rank that destroys its group while the other still works
dist.destroy_process_group()
