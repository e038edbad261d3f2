"""Evaluation split across the processes of a launcher (`torchrun`, `accelerate launch`): each process takes a
contiguous share of the gallery images or of the queries, in rank order, and the collectives here put the shares
back together, so every process ends with what one process alone computes (see `RetrievalEngine.evaluate`)."""

import os
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist


class ProcessShards:
    r"""
    The processes a computation is split across and this process's place among them: `share` gives each process a
    contiguous block of rows (rank order is row order), `gather` concatenates every process's rows in that order on
    every process, `min`, `max` and `sum` reduce over the processes. With `group=None` it is this process alone: one
    share holding every row, and the reductions return their input.

    Args:
        group (`torch.distributed.ProcessGroup`, *optional*): the processes, e.g. `torch.distributed.group.WORLD`
            (`torch.distributed` initialised); None for this process alone.
    """

    def __init__(self, group=None):
        self.group = group
        self.rank = 0 if group is None else dist.get_rank(group)
        self.world_size = 1 if group is None else dist.get_world_size(group)

    @classmethod
    def of_launch(cls, sharded=None):
        """The processes an evaluation is split across: every process of `torch.distributed`'s default group when it
        is initialised with more than one (`sharded=None`, or `True`, which requires it), this process alone with
        `sharded=False`."""
        distributed = dist.is_available() and dist.is_initialized()
        if sharded and not distributed:
            raise ValueError("sharded=True needs torch.distributed initialised (run under torchrun or accelerate "
                             "launch, and call torch.distributed.init_process_group)")
        if sharded is False or not distributed or dist.get_world_size() == 1:
            return cls()
        return cls(dist.group.WORLD)

    def over(self, total):
        """These processes for `total` rows, or this process alone when there are fewer rows than processes (every
        process then computes all of them; tiny sets only)."""
        return self if total >= self.world_size else ProcessShards()

    def share(self, total):
        """This process's rows of `total`: a contiguous `range`, the first `total % world_size` processes one row
        longer."""
        size, longer = divmod(total, self.world_size)
        start = self.rank * size + min(self.rank, longer)
        return range(start, start + size + (self.rank < longer))

    @contextmanager
    def first_process_first(self):
        """Run the block on the first process, then on the others at once (e.g. preparing a dataset cache that the
        others then read)."""
        if self.rank > 0:
            dist.barrier(group=self.group)
        yield
        if self.rank == 0 and self.world_size > 1:
            dist.barrier(group=self.group)

    @property
    def _device(self):
        """Where the collectives run: the current GPU for NCCL, the CPU otherwise."""
        if dist.get_backend(self.group) == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def gather(self, tensor):
        """Every process's `tensor` (rows of any count, the other dimensions and dtype equal), concatenated in rank
        order, on `tensor`'s device."""
        if self.group is None:
            return tensor
        device = self._device
        sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([len(tensor)], device=device), group=self.group)
        sizes = [int(size) for size in sizes]
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]), device=device)
        padded[: len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded, group=self.group)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)]).to(tensor.device)

    def _reduce(self, values, operation):
        if self.group is None:
            return values
        reduced = torch.as_tensor(values, dtype=torch.float64).to(self._device)
        dist.all_reduce(reduced, op=operation, group=self.group)
        return reduced.cpu().numpy()

    def min(self, value):
        """The smallest of every process's `value` (a float)."""
        return float(self._reduce([value], dist.ReduceOp.MIN)[0])

    def max(self, value):
        """The largest of every process's `value` (a float)."""
        return float(self._reduce([value], dist.ReduceOp.MAX)[0])

    def sum(self, values):
        """The element-wise sum (float64) of every process's `values` (a 1-d array of equal length everywhere)."""
        return np.asarray(self._reduce(values, dist.ReduceOp.SUM), dtype=np.float64)


def init_launched_processes():
    """Join the processes of a launcher: initialise `torch.distributed` (NCCL on this process's GPU, `LOCAL_RANK`,
    when there are GPUs; gloo otherwise) when `WORLD_SIZE` says several processes run and it is not initialised yet.
    Returns the device this process computes on."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available() and world_size > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device
