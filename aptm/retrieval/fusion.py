"""Score fusion of the original APTM evaluator: the final `[Q, G]` scores from the cosine matrix and the ITM logits of
each query's top-k candidates (`fusion=`):

  * `"cosine"`: dual-encoder only, no re-ranking (fastest).
  * `"itm"`: the top-k candidates by cosine carry their ITM logit (index 1 = match); every other image gets -1000
    (the original evaluation until July 2023). Ties among the rest follow the metric's tie policy.
  * `"aptm"` (default): the original evaluator since August 2023. ITM logits of the top-k, other entries filled with
    the row minimum, the whole matrix min-max normalised, plus `cosine_weight` (0.002) x the min-max normalised cosine
    matrix. With `world_size=W > 1` this reproduces what the original computes on W GPUs: queries are split in W row
    blocks; on each process the rows it did not compute still hold the 1000 sentinel when it normalises, and the W
    matrices are summed. A row owned by a process whose minimum ITM logit is m then ranks by
    logit / (1000 - m) + W x 0.002 x normalised cosine, so the cosine weighs about W x (1000 - m) / (max - min)
    times more than on one GPU (two orders of magnitude for typical logit ranges): the paper's numbers were measured
    with W = 4.
"""

import torch

SENTINEL = 1000.0
FUSIONS = ("cosine", "itm", "aptm")


def check_fusion(fusion):
    """Raise a `ValueError` naming the choices unless `fusion` is one of `FUSIONS`."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")


def min_max(matrix):
    """Min-max normalise a whole matrix to [0, 1] (a constant matrix becomes zeros)."""
    low, high = matrix.min(), matrix.max()
    return (matrix - low) / (high - low) if high > low else torch.zeros_like(matrix)


def fuse_scores(cosine, topk_indices, topk_itm, fusion="aptm", cosine_weight=0.002, world_size=1):
    """Final `[Q, G]` scores from the cosine matrix and the ITM logits `[Q, k]` of the top-k candidates."""
    check_fusion(fusion)
    if fusion == "cosine":
        return cosine.clone()
    if fusion == "itm":
        return torch.full_like(cosine, -SENTINEL).scatter_(1, topk_indices, topk_itm)
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    itm = torch.full_like(cosine, SENTINEL).scatter_(1, topk_indices, topk_itm)
    itm = torch.where(itm == SENTINEL, topk_itm.min(dim=1, keepdim=True).values, itm)
    cosine_term = cosine_weight * min_max(cosine)
    step = len(cosine) // world_size + 1
    final = torch.zeros_like(cosine)
    for rank in range(world_size):
        on_rank = torch.full_like(cosine, SENTINEL)
        on_rank[rank * step : (rank + 1) * step] = itm[rank * step : (rank + 1) * step]
        final += min_max(on_rank) + cosine_term
    return final
