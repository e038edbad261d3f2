"""A tiny APTM configuration at the full 384x128 geometry, a tiny model, and a fixed batch for the distributed and
training tests."""

import torch

from configuration_aptm import APTMConfig
from modeling_aptm import APTMForPreTraining

TINY = {
    "vision_config": {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2], "drop_path_rate": 0.0},
    "text_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    "cross_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                     "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    "embed_dim": 16,
}


def tiny_config(**overrides):
    """A full-geometry (384x128) APTM configuration small enough to run in milliseconds."""
    return APTMConfig(**{**TINY, **overrides})


def tiny_model(**overrides):
    """The tiny pre-training model, always with the same weights (seed 0); `overrides` change config fields."""
    torch.manual_seed(0)
    return APTMForPreTraining(tiny_config(**overrides))


def saved_checkpoint(folder, processor, **overrides):
    """A tiny pre-training checkpoint (seed 0) and `processor` written into `folder` by their own `save_pretrained`;
    returns the model, in eval mode."""
    model = tiny_model(**overrides).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model


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
