"""Score fusion: the closed forms of the original evaluator on one and on W processes, a hand-made case where the
process count changes the ranking, and streaming (chunks, shares merged by their totals) against the whole-matrix
formula written out here."""

import pytest
import torch

from aptm.retrieval import FUSIONS, SENTINEL, StreamingFusion, fuse_scores, min_max


def random_case(queries, gallery, k, seed, views=1):
    """Cosine `[Q, G]`, its top-k and ITM logits `[Q, k]`, or `[Q, k, views]` for several views (test-time flip)."""
    generator = torch.Generator().manual_seed(seed)
    cosine = torch.rand(queries, gallery, generator=generator, dtype=torch.float64) * 2 - 1
    topk = cosine.topk(k, dim=1).indices
    itm = torch.randn(queries, k, *([views] if views > 1 else []), generator=generator, dtype=torch.float64) * 4
    return cosine, topk, itm


def whole_matrix_fusion(cosine, topk, itm, fusion, cosine_weight, world_size):
    """The module docstring's fusions on whole matrices (the oracle of the streamed ones): for `"aptm"`, the ITM
    logits filled with each row's minimum, on each of `world_size` emulated processes its own row block with the
    others' rows at the sentinel, min-max normalised, plus the weighted normalised cosine, summed. With two ITM views
    `[Q, k, 2]` (test-time flip), each view is filled and normalised on its own and the two averaged."""
    if fusion == "cosine":
        return cosine.clone()
    views = itm.unbind(dim=-1) if itm.ndim == 3 else (itm,)
    if fusion == "itm":
        return torch.full_like(cosine, -SENTINEL).scatter_(1, topk, sum(views) / len(views))
    step = len(cosine) // world_size + 1
    final = torch.zeros_like(cosine)
    for rank in range(world_size):
        for view in views:
            on_rank = torch.full_like(cosine, SENTINEL)
            on_rank[rank * step : (rank + 1) * step] = filled_itm(cosine, topk, view)[rank * step : (rank + 1) * step]
            final += min_max(on_rank) / len(views)
        final += cosine_weight * min_max(cosine)
    return final


def filled_itm(cosine, topk, itm):
    """ITM logits of the top-k, every other entry the row's minimum logit."""
    return itm.min(dim=1, keepdim=True).values.expand_as(cosine).clone().scatter_(1, topk, itm)


def test_single_process_closed_form():
    cosine, topk, itm = random_case(7, 11, 4, seed=0)
    filled = filled_itm(cosine, topk, itm)
    expected = (filled - itm.min()) / (itm.max() - itm.min()) + 0.002 * min_max(cosine)
    torch.testing.assert_close(fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size=1), expected)


@pytest.mark.parametrize("queries, world_size", [(10, 4), (9, 2), (12, 3)])
def test_multi_process_closed_form(queries, world_size):
    """Process p owns rows [p * step, (p + 1) * step) with step = queries // W + 1 and normalises with the global max
    1000 (the sentinel of the rows it did not compute) and its own minimum m_p; every process adds the cosine term:
    final = (x - m_p) / (1000 - m_p) + (W - 1) + W * w * norm(cosine)."""
    cosine, topk, itm = random_case(queries, 9, 3, seed=queries)
    filled = filled_itm(cosine, topk, itm)
    step = queries // world_size + 1
    expected = torch.empty_like(cosine)
    for start in range(0, queries, step):
        rows = slice(start, start + step)
        low = itm[rows].min()
        expected[rows] = (filled[rows] - low) / (1000 - low) + (world_size - 1)
    expected += world_size * 0.002 * min_max(cosine)
    torch.testing.assert_close(fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size=world_size), expected)


def test_process_count_changes_the_ranking():
    """Two candidates 0.1 logit apart, the lower one with the higher cosine: on one process the ITM logit decides
    (its range is 10, so 0.01 against 0.002), on four the cosine does (1e-4 against 0.008)."""
    cosine = torch.tensor([[0.9, 0.1, 0.0]] + [[0.0, 0.5, 1.0]] * 6, dtype=torch.float64)
    topk = torch.tensor([[0, 1]] + [[2, 1]] * 6)
    itm = torch.tensor([[4.9, 5.0]] + [[-5.0, 0.0]] * 6, dtype=torch.float64)  # 7 rows: each of 4 processes owns some
    one = fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size=1)
    four = fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size=4)
    assert one[0].argsort(descending=True).tolist() == [1, 0, 2]
    assert four[0].argsort(descending=True).tolist() == [0, 1, 2]


def test_itm_and_cosine_fusions_ignore_the_weight_and_process_count():
    cosine, topk, itm = random_case(5, 8, 3, seed=1)
    for world_size in (1, 4):
        assert torch.equal(fuse_scores(cosine, topk, itm, "cosine", 0.5, world_size), cosine)
        only_itm = fuse_scores(cosine, topk, itm, "itm", 0.5, world_size)
        assert torch.equal(only_itm.gather(1, topk), itm)
        assert (only_itm == -1000).sum() == 5 * (8 - 3)
    with pytest.raises(ValueError, match="world_size"):
        fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size=0)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("queries, chunk", [(10, 3), (7, 1), (5, 16), (1, 1)])
@pytest.mark.parametrize("views", [1, 2])
def test_streaming_fusion_equals_the_whole_matrix_fusion(fusion, world_size, queries, chunk, views):
    """Rows observed and fused a chunk at a time (chunks crossing the emulated processes' row blocks, some processes
    owning no row) equal the whole-matrix formula, as `fuse_scores` does, with one ITM view or two (test-time flip);
    any rows can be asked for once all are observed."""
    cosine, topk, itm = random_case(queries, 9, 3, seed=queries + world_size, views=views)
    cosine, itm = cosine.float(), itm.float()
    streaming = StreamingFusion(fusion, 0.002, world_size)
    chunks = [slice(start, start + chunk) for start in range(0, queries, chunk)]
    for rows in chunks:
        streaming.observe(cosine[rows], topk[rows], itm[rows])
    expected = whole_matrix_fusion(cosine, topk, itm, fusion, 0.002, world_size)
    torch.testing.assert_close(fuse_scores(cosine, topk, itm, fusion, 0.002, world_size), expected, atol=1e-6,
                               rtol=1e-6)
    streamed = torch.cat([streaming.scores(rows, cosine[rows]) for rows in chunks])
    torch.testing.assert_close(streamed, expected, atol=1e-6, rtol=1e-6)
    picked = [queries - 1, 0]
    torch.testing.assert_close(streaming.scores(picked, cosine[picked]), expected[picked], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_shares_merged_by_their_totals_fuse_as_one_stream(fusion):
    """Shares of the queries observed apart (as processes do), their totals concatenated in query order and merged
    into a fresh fusion, give the scores of one fusion observing every row: the same numbers, bit for bit."""
    cosine, topk, itm = random_case(10, 9, 3, seed=5)
    cosine, itm = cosine.float(), itm.float()
    one = StreamingFusion(fusion, 0.002, world_size=4)
    one.observe(cosine, topk, itm)
    shares = []
    for rows in (slice(0, 4), slice(4, 7), slice(7, 10)):
        share = StreamingFusion(fusion, 0.002, world_size=4)
        share.observe(cosine[rows], topk[rows], itm[rows])
        shares.append(share.totals())
    merged = StreamingFusion(fusion, 0.002, world_size=4)
    merged.merge({name: torch.cat([totals[name] for totals in shares]) for name in shares[0]})
    assert {name: tensor.shape[0] for name, tensor in merged.totals().items()} == {
        name: 10 if name != "cosine_extremes" else 1 for name in shares[0]}
    assert torch.equal(merged.scores(slice(None), cosine), one.scores(slice(None), cosine))


def test_merge_names_what_totals_lack():
    fusion = StreamingFusion("aptm")
    with pytest.raises(ValueError, match=r"totals of a 'aptm' fusion hold \['cosine_extremes', 'topk_indices', "
                                         r"'topk_itm'\], got \['cosine_extremes'\]"):
        fusion.merge(StreamingFusion("cosine").totals())
    with pytest.raises(ValueError, match=r"must share their shape \[q, k\]"):
        fusion.merge({"cosine_extremes": torch.zeros(1, 2), "topk_indices": torch.zeros(2, 3, dtype=torch.long),
                      "topk_itm": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="needs the top-k indices"):
        fusion.observe(torch.zeros(2, 3))


def test_streaming_fusion_of_constant_matrices_is_zero():
    """A constant ITM-filled or cosine matrix normalises to zeros, as `min_max` does."""
    cosine, topk = torch.full((4, 5), 0.5), torch.tensor([[0, 1]] * 4)
    itm = torch.full((4, 2), 2.0)
    streaming = StreamingFusion("aptm", 0.002, 1)
    streaming.observe(cosine, topk, itm)
    assert torch.equal(streaming.scores(slice(None), cosine), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="world_size"):
        StreamingFusion("aptm", 0.002, world_size=0)
    with pytest.raises(ValueError, match="fusion must be"):
        StreamingFusion("mean")


def test_streamed_chunks_hold_a_fixed_number_of_scores_whatever_the_gallery(monkeypatch):
    """By default a chunk has as many query rows as make `CHUNK_SCORES` scores (at least one): its size, and what is
    computed from it, does not grow with the gallery; the chunks cover every row in order."""
    import retrieval_aptm

    monkeypatch.setattr(retrieval_aptm, "CHUNK_SCORES", 60)
    generator = torch.Generator().manual_seed(0)
    for gallery, rows_per_chunk in ((10, 6), (30, 2), (100, 1)):
        features = torch.nn.functional.normalize(torch.randn(13, 4, generator=generator), dim=-1)
        images = torch.nn.functional.normalize(torch.randn(gallery, 4, generator=generator), dim=-1)
        fusion = StreamingFusion("cosine")
        fusion.observe(features @ images.t())
        scores = retrieval_aptm.FusedScores(fusion, features, images)
        chunks = list(scores.chunks())
        assert scores.chunk_size == rows_per_chunk
        assert all(chunk.shape[0] <= rows_per_chunk for _, chunk in chunks)
        torch.testing.assert_close(torch.cat([chunk for _, chunk in chunks]), features @ images.t())


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("views", [1, 2])
def test_score_columns_equal_the_whole_matrix_columns(fusion, world_size, views):
    """Scores of every query against a block of gallery images, from that block's cosine columns alone, are the
    whole matrix's columns: blocks at either end, in the middle, of one image, and of images no query re-ranks."""
    cosine, topk, itm = random_case(7, 12, 3, seed=world_size, views=views)
    cosine, itm = cosine.float(), itm.float()
    cosine[:, 10:] -= 3  # images 10 and 11 are in no query's top-k
    topk = cosine.topk(3, dim=1).indices
    streaming = StreamingFusion(fusion, 0.002, world_size)
    streaming.observe(cosine, topk, itm)
    expected = whole_matrix_fusion(cosine, topk, itm, fusion, 0.002, world_size)
    for columns in (slice(0, 4), slice(4, 5), slice(5, 10), slice(10, 12), slice(None)):
        scores = streaming.scores(slice(None), cosine[:, columns], columns)
        torch.testing.assert_close(scores, expected[:, columns], atol=1e-6, rtol=1e-6)


def test_column_chunks_hold_a_fixed_number_of_scores_whatever_the_query_count(monkeypatch):
    """Column chunks hold as many gallery images as make `CHUNK_SCORES` scores with every query (at least one), cover
    the images asked for in order, and are the whole matrix's columns."""
    import retrieval_aptm

    monkeypatch.setattr(retrieval_aptm, "CHUNK_SCORES", 60)
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(25, 4, generator=generator), dim=-1)
    for queries, images_per_chunk in ((10, 6), (30, 2), (100, 1)):
        features = torch.nn.functional.normalize(torch.randn(queries, 4, generator=generator), dim=-1)
        cosine = features @ images.t()
        topk = cosine.topk(3, dim=1).indices
        fusion = StreamingFusion("aptm", 0.002)
        fusion.observe(cosine, topk, torch.randn(queries, 3, generator=generator))
        scores = retrieval_aptm.FusedScores(fusion, features, images)
        chunks = list(scores.column_chunks())
        assert [columns.start for columns, _ in chunks] == list(range(0, 25, images_per_chunk))
        assert all(block.shape == (queries, columns.stop - columns.start) for columns, block in chunks)
        assert all(block.shape[1] <= images_per_chunk for _, block in chunks)
        torch.testing.assert_close(torch.cat([block for _, block in chunks], dim=1), scores.matrix())
        share = list(scores.column_chunks(range(7, 20)))
        assert share[0][0].start == 7 and share[-1][0].stop == 20
        torch.testing.assert_close(torch.cat([block for _, block in share], dim=1), scores.matrix()[:, 7:20])
