"""Evaluation split across the processes of a launcher (`torchrun`, `accelerate launch`) through accelerate's
`PartialState`: each process takes a contiguous share of the gallery images or of the queries, in rank order
(`split_between_processes`), and accelerate's collectives put the shares back together, so every process ends with
what one process alone computes (see `RetrievalEngine.evaluate`).

What stays here, and why:
  * Which processes: `PartialState` is one state per program that transformers' `TrainingArguments` resets and sets
    up again with its own options. Set up without `use_cpu` on CPUs (measured: plain `TrainingArguments` in each of 2
    gloo processes under `torchrun`, torch 2.14, transformers 5.23, accelerate 1.15), it reports one process and no
    distributed run while `torch.distributed` runs two: its splits would then give every process all the rows and
    its gathers return the input. `ProcessShards.of_launch` therefore asks `torch.distributed`
    whether to split, and stops with an error naming the cause when `PartialState` disagrees with it.
  * Sets smaller than the process count are computed by every process alone (`over`); accelerate would leave some
    processes without rows.
  * Gathers of shares of different lengths: accelerate's `gather` needs equal shapes (`gather_for_metrics` evens them
    out only for an `Accelerator`'s data loaders), so shares are padded with `pad_across_processes`, gathered and cut
    back to their lengths.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import gather, pad_across_processes, reduce


def launched_state() -> PartialState:
    """accelerate's state of the processes a launcher started (its environment variables), joining them when
    `torch.distributed` is not initialised yet: NCCL on this process's GPU when there are GPUs, gloo otherwise. A group
    initialised before keeps its backend (gloo: collectives on the CPU). Without a launcher, this process alone on
    the default device."""
    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
    cpu = backend != "nccl" if backend else not torch.cuda.is_available()
    return PartialState(cpu=cpu, backend=backend)


class ProcessShards:
    r"""
    The processes a computation is split across and this process's place among them: `share` gives each process a
    contiguous block of rows (rank order is row order), `gather` concatenates every process's rows in that order on
    every process, `sum` adds over the processes. With `state=None` it is this process alone: one share holding
    every row, and `gather` and `sum` return their input.

    Args:
        state (`accelerate.PartialState`, *optional*): the launched processes (`launched_state()`); None for this
            process alone.
    """

    def __init__(self, state: PartialState | None = None):
        self.state = state
        self.rank = 0 if state is None else state.process_index
        self.world_size = 1 if state is None else state.num_processes

    @classmethod
    def of_launch(cls, sharded: bool | None = None) -> ProcessShards:
        """The processes an evaluation is split across: every process of `torch.distributed`'s default group when it
        is initialised with more than one (`sharded=None`, or `True`, which requires it), this process alone with
        `sharded=False`."""
        distributed = dist.is_available() and dist.is_initialized()
        if sharded and not distributed:
            raise ValueError("sharded=True needs torch.distributed initialised (run under torchrun or accelerate "
                             "launch, and call torch.distributed.init_process_group)")
        if sharded is False or not distributed or dist.get_world_size() == 1:
            return cls()
        state = launched_state()
        if (state.num_processes, state.process_index) != (dist.get_world_size(), dist.get_rank()):
            raise RuntimeError(
                f"accelerate's PartialState sees process {state.process_index} of {state.num_processes} "
                f"({state.distributed_type}) but torch.distributed runs process {dist.get_rank()} of "
                f"{dist.get_world_size()}: the state was set up for another run (without GPUs, transformers' "
                "TrainingArguments needs use_cpu=True under a launcher, as APTMTrainingArguments sets it)")
        return cls(state)

    def over(self, total: int) -> ProcessShards:
        """These processes for `total` rows, or this process alone when there are fewer rows than processes (every
        process then computes all of them; tiny sets only)."""
        return self if total >= self.world_size else ProcessShards()

    def share(self, total: int) -> range:
        """This process's rows of `total`: a contiguous `range` (accelerate's split: the first `total % world_size`
        processes one row longer)."""
        if self.state is None:
            return range(total)
        with self.state.split_between_processes(torch.arange(total)) as rows:
            return range(int(rows[0]), int(rows[0]) + len(rows)) if len(rows) else range(0)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's `tensor` (rows of any count, the other dimensions and dtype equal), concatenated in rank
        order, on `tensor`'s device."""
        if self.state is None:
            return tensor
        on_device = tensor.to(self.state.device)
        lengths = gather(torch.tensor([len(tensor)], device=self.state.device)).tolist()
        parts = gather(pad_across_processes(on_device, dim=0)).split(max(lengths))
        return torch.cat([part[:length] for part, length in zip(parts, lengths)]).to(tensor.device)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum (float64) of every process's `values` (a 1-d array of equal length everywhere)."""
        if self.state is None:
            return np.asarray(values, dtype=np.float64)
        summed = reduce(torch.as_tensor(np.asarray(values), dtype=torch.float64, device=self.state.device), "sum")
        return summed.cpu().numpy()
