"""Run by `torchrun` (2 processes, gloo, with `tests/` on PYTHONPATH) from retrieval/test_sharded_evaluation.py:
`evaluate_all` with evaluation split across the processes; each process saves its results to `rank<r>.pt` in the
folder given (the trainer's output folder is `trainer` there)."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from helpers.sharded_evaluation import evaluate_all

dist.init_process_group("gloo")
results = evaluate_all(sharded=True, folder=Path(sys.argv[1]) / "trainer")
torch.save(results, Path(sys.argv[1]) / f"rank{dist.get_rank()}.pt")
dist.barrier()  # tear down together: gloo can abort a rank that destroys its group while the other still works
dist.destroy_process_group()
