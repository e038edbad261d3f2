"""MRA's test-time-flip score fusion: each view's ITM matrix normalised on its own (per emulated process), averaged,
plus the cosine term; two equal views score as one view, APTM's rule (the streamed fusion of two views:
`test_fusion.py`)."""

import pytest
import torch

from aptm.retrieval import fuse_scores, min_max


def flip_case(queries, gallery, k, seed):
    generator = torch.Generator().manual_seed(seed)
    cosine = torch.rand(queries, gallery, generator=generator, dtype=torch.float64) * 2 - 1
    topk = cosine.topk(k, dim=1).indices
    itm = torch.randn(queries, k, 2, generator=generator, dtype=torch.float64) * 4
    return cosine, topk, itm


def test_one_process_closed_form_is_mra_s_rule():
    cosine, topk, itm = flip_case(7, 11, 4, seed=0)
    normalised = []
    for view in itm.unbind(-1):
        filled = view.min(dim=1, keepdim=True).values.expand_as(cosine).clone().scatter_(1, topk, view)
        normalised.append((filled - view.min()) / (view.max() - view.min()))
    expected = (normalised[0] + normalised[1]) / 2 + 0.002 * min_max(cosine)
    torch.testing.assert_close(fuse_scores(cosine, topk, itm, "aptm", 0.002), expected)


def test_two_equal_views_score_as_one_view():
    cosine, topk, itm = flip_case(9, 8, 3, seed=1)
    plain = itm[..., 0]
    for world_size in (1, 2, 3):
        two_views = torch.stack([plain, plain], -1)
        torch.testing.assert_close(fuse_scores(cosine, topk, two_views, "aptm", 0.002, world_size),
                                   fuse_scores(cosine, topk, plain, "aptm", 0.002, world_size))


def test_each_process_normalises_each_view_on_its_own():
    """Row i of process r: the mean over views of (s - m_r) / (1000 - m_r) plus W - 1 plus W x 0.002 x cosine."""
    cosine, topk, itm = flip_case(10, 9, 3, seed=2)
    world_size, step = 2, 10 // 2 + 1
    final = fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size)
    for rank, rows in enumerate((slice(0, step), slice(step, 10))):
        terms = []
        for view in itm.unbind(-1):
            filled = view.min(dim=1, keepdim=True).values.expand_as(cosine).clone().scatter_(1, topk, view)
            low = view[rows].min()
            terms.append((filled[rows] - low) / (1000 - low))
        expected = (terms[0] + terms[1]) / 2 + (world_size - 1) + world_size * 0.002 * min_max(cosine)[rows]
        torch.testing.assert_close(final[rows], expected)
