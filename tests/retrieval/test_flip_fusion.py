"""MRA's test-time-flip score fusion: each view's ITM matrix normalised on its own (per emulated process), averaged,
plus the cosine term; the streamed fusion equals the whole-matrix one; a single view is APTM's rule."""

import pytest
import torch

from aptm.retrieval import FUSIONS, StreamingFusion, fuse_scores, min_max


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


@pytest.mark.parametrize("world_size", [1, 2, 4])
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("queries, chunk", [(10, 3), (5, 16), (1, 1)])
def test_streaming_fusion_of_two_views_equals_the_whole_matrix_fusion(fusion, world_size, queries, chunk):
    cosine, topk, itm = flip_case(queries, 9, 3, seed=queries + world_size)
    cosine, itm = cosine.float(), itm.float()
    streaming = StreamingFusion(fusion, 0.002, world_size)
    chunks = [slice(start, start + chunk) for start in range(0, queries, chunk)]
    for rows in chunks:
        streaming.observe(cosine[rows], topk[rows], itm[rows])
    expected = fuse_scores(cosine, topk, itm, fusion, 0.002, world_size)
    streamed = torch.cat([streaming.scores(rows, cosine[rows]) for rows in chunks])
    torch.testing.assert_close(streamed, expected, atol=1e-6, rtol=1e-6)
