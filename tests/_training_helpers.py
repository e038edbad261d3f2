"""A tiny model and a fixed batch for the distributed and training tests."""

import torch

from conftest import tiny_config
from modeling_aptm import APTMForPreTraining


def tiny_model():
    torch.manual_seed(0)
    return APTMForPreTraining(tiny_config())


def global_batch():
    """4 pairs of 2 people; each half of the batch (one process's share) holds both people, and the ITM negatives
    are fixed within each half so one process and two processes see the same pairs."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (4, 12), generator=generator)
    ids[:, 0] = 101
    positions = torch.tensor([[1, 3], [2, 4], [5, 6], [1, 2]])  # as many targets on each process
    labels = ids.gather(1, positions).masked_fill(positions == 0, -100)
    masked = ids.clone()
    masked[torch.arange(4)[:, None], positions] = 103
    return {"pixel_values": torch.randn(4, 3, 384, 128, generator=generator), "input_ids": ids,
            "attention_mask": torch.ones_like(ids), "person_ids": torch.tensor([0, 1, 0, 1]),
            "mlm_input_ids": masked, "mlm_positions": positions, "mlm_labels": labels,
            "itm_negatives": (torch.tensor([1, 0, 3, 2]), torch.tensor([1, 0, 3, 2]))}
