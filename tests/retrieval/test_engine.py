"""The retrieval engine gives the original procedure's scores, fuses them as documented, and round-trips its index."""

import weakref

import numpy as np
import pytest
import torch

import aptm
import retrieval_aptm
from aptm.figures import ranked_gallery_grid
from aptm.metrics import image_to_text_metrics, retrieval_metrics
from aptm.retrieval import SENTINEL, GalleryIndex, RetrievalEngine, fuse_scores, min_max
from aptm.retrieval.reference import original_procedure_scores

from helpers.images import person_image
from helpers.models import tiny_config
TEXTS = ["a man in a red jacket", "a woman with a black bag and blue jeans walking down the street", "a child",
         "someone wearing a green coat and white shoes", "a person with long hair", "an old man with a hat"]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = aptm.APTMModel(tiny_config()).eval()
    processor = aptm.build_processor()
    images = [person_image(i) for i in range(12)]
    engine = RetrievalEngine(model, processor, k=4, query_batch_size=4, batch_size=5, progress=False)
    index = engine.encode_gallery(images, person_ids=[i // 2 for i in range(12)], paths=[f"{i}.jpg" for i in range(12)])
    return model, processor, images, engine, index


@pytest.mark.parametrize("kv_memory_limit, query_batch_size", [(2**31, 4), (0, 4), (2**31, 1), (0, 5)])
def test_engine_equals_the_original_procedure(setup, kv_memory_limit, query_batch_size):
    model, processor, _, engine, index = setup
    engine.kv_memory_limit, engine.query_batch_size = kv_memory_limit, query_batch_size
    scores = engine.score_matrix(TEXTS, index)
    encoded = processor(text=TEXTS)
    reference = original_procedure_scores(model, encoded["input_ids"], encoded["attention_mask"], index.image_embeds,
                                          index.image_features, k=4)
    torch.testing.assert_close(scores, reference, atol=2e-5, rtol=0)
    assert torch.equal(scores.argsort(dim=1, descending=True, stable=True), reference.argsort(dim=1, descending=True, stable=True))


def simulate_original_processes(cosine, topk, itm, weight, world_size):
    """The original evaluator on `world_size` processes, written out literally: each process fills its rows, replaces
    sentinels by the row minimum of its own matrix, min-max normalises, adds the cosine term, then all are summed."""
    step = len(cosine) // world_size + 1
    total = torch.zeros_like(cosine)
    for rank in range(world_size):
        matrix = torch.full_like(cosine, SENTINEL)
        for row in range(rank * step, min((rank + 1) * step, len(cosine))):
            matrix[row, topk[row]] = itm[row]
        for row in range(len(matrix)):
            matrix[row][matrix[row] == SENTINEL] = matrix[row].min()
        total += (matrix - matrix.min()) / (matrix.max() - matrix.min()) + weight * min_max(cosine)
    return total


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_score_fusion_reproduces_the_original_for_any_process_count(world_size):
    generator = torch.Generator().manual_seed(world_size)
    cosine = torch.rand(10, 7, generator=generator)
    topk = cosine.topk(3, dim=1).indices
    itm = torch.randn(10, 3, generator=generator) * 5
    fused = fuse_scores(cosine, topk, itm, "aptm", 0.002, world_size)
    torch.testing.assert_close(fused, simulate_original_processes(cosine, topk, itm, 0.002, world_size))
    if world_size == 4:  # the cosine weighs far more than on one process, so rankings can change
        one = fuse_scores(cosine, topk, itm, "aptm", 0.002, 1)
        gap = (fused - fused.gather(1, topk[:, :1])).abs().max() / (one - one.gather(1, topk[:, :1])).abs().max()
        assert gap < 1


def test_other_fusions(setup):
    _, _, _, engine, index = setup
    cosine, topk, itm = engine.rank(TEXTS, index, k=4)
    only_itm = fuse_scores(cosine, topk, itm, "itm")
    assert torch.equal(only_itm.gather(1, topk), itm) and (only_itm == -SENTINEL).sum() == len(TEXTS) * 8
    assert torch.equal(fuse_scores(cosine, topk, itm, "cosine"), cosine)
    torch.testing.assert_close(engine.score_matrix(TEXTS, index, fusion="cosine"), cosine)
    assert engine.fusion == "aptm"  # a per-call setting leaves the engine as it was
    dual = engine.search(TEXTS[:2], index, top=3, fusion="cosine")
    assert [r.indices for r in dual] == cosine[:2].argsort(dim=1, descending=True, stable=True)[:, :3].tolist()
    assert all(np.isnan(r.itm_logits).all() for r in dual)
    with pytest.raises(ValueError, match="fusion must be"):
        fuse_scores(cosine, topk, itm, "mean")
    with pytest.raises(ValueError, match="fusion must be"):
        engine.search(TEXTS[:1], index, fusion="mean")


def test_search_results_and_grid(setup, tmp_path):
    _, _, images, engine, index = setup
    results = engine.search(["a man in a red jacket", "a child"], index, top=4)
    full = engine.score_matrix(["a man in a red jacket", "a child"], index)
    for row, result in enumerate(results):
        assert result.indices == full[row].argsort(descending=True, stable=True)[:4].tolist()
        assert result.scores == sorted(result.scores, reverse=True)
        assert sum(np.isfinite(result.itm_logits)) == 4  # k = 4 re-ranked candidates
    first_person = index.person_ids[results[0].indices[0]].item()  # so row 1 starts with a true match
    path = ranked_gallery_grid(results, images, tmp_path / "grid.png", query_ids=[first_person, -1],
                               gallery_ids=index.person_ids.tolist(), top=4)
    from PIL import Image

    grid = np.asarray(Image.open(path))
    assert grid.shape[0] > 2 * 192 and grid.shape[1] > 4 * 64
    assert ((grid == (30, 160, 60)).all(-1).sum() > 0) and ((grid == (210, 40, 40)).all(-1).sum() > 0)


def test_evaluate_and_index_round_trip(setup, tmp_path):
    _, _, _, engine, index = setup
    metrics, fused = engine.evaluate(TEXTS, [0, 1, 2, 3, 4, 5], index)
    scores = fused.matrix()
    assert set(metrics) == {"R@1", "R@5", "R@10", "mAP", "mINP"} and scores.shape == (6, 12)
    both, _ = engine.evaluate(TEXTS, [0, 1, 2, 3, 4, 5], index, image_to_text=True)
    assert both == {**metrics, **image_to_text_metrics(scores, [0, 1, 2, 3, 4, 5], index.person_ids)}
    index.save(tmp_path / "index")
    loaded = GalleryIndex.load(tmp_path / "index")
    assert torch.equal(loaded.image_embeds, index.image_embeds) and loaded.paths == index.paths
    torch.testing.assert_close(engine.score_matrix(TEXTS, loaded), scores, atol=1e-6, rtol=0)
    with pytest.raises(FileNotFoundError, match="index.safetensors is missing"):
        GalleryIndex.load(tmp_path)
    with pytest.raises(ValueError, match="person_ids"):
        engine.evaluate(TEXTS, [0] * 6, GalleryIndex(index.image_features, index.image_embeds))
    with pytest.raises(ValueError, match="query_ids has 5 entries for 6 texts"):
        engine.evaluate(TEXTS, [0] * 5, index)
    with pytest.raises(ValueError, match="person_ids has 3"):
        engine.encode_gallery([person_image(0)], person_ids=[1, 2, 3])


@pytest.mark.parametrize("fusion", ["aptm", "itm", "cosine"])
@pytest.mark.parametrize("world_size", [1, 3])
def test_evaluation_streams_the_whole_matrix_scores(setup, fusion, world_size):
    """Evaluation in query chunks (chunk size 4 over 6 queries, text batches of 5, re-rank batches of 4) gives the
    scores of the whole-matrix path and the metrics of the whole matrix; a few rows are computed alone."""
    _, _, _, engine, index = setup
    engine.fusion, engine.world_size = fusion, world_size
    try:
        fused = engine.fused_scores(TEXTS, index, chunk_size=4)
        expected = engine.score_matrix(TEXTS, index)
        torch.testing.assert_close(torch.cat([scores for _, scores in fused.chunks()]), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(fused.rows([5, 1]), expected[[5, 1]], atol=1e-6, rtol=0)
        query_ids = [0, 1, 2, 3, 4, 5]
        metrics, _ = engine.evaluate(TEXTS, query_ids, index)
        assert metrics == pytest.approx(retrieval_metrics(expected, query_ids, index.person_ids))
    finally:
        engine.fusion, engine.world_size = "aptm", 1


@pytest.mark.parametrize("fusion, world_size", [("aptm", 1), ("aptm", 3), ("itm", 1), ("cosine", 1)])
@pytest.mark.parametrize("ties", ["stable", "pessimistic"])
def test_image_to_text_is_streamed_in_column_chunks_with_the_whole_matrix_metrics(setup, monkeypatch, fusion,
                                                                                   world_size, ties):
    """The image-to-text metrics come from chunks of score columns of at most `CHUNK_SCORES` scores (here 2 images x
    6 texts), never the whole matrix, and equal those of the whole matrix."""
    import retrieval_aptm

    _, _, _, engine, index = setup
    monkeypatch.setattr(retrieval_aptm, "CHUNK_SCORES", 12)
    widths = []
    columns_of = retrieval_aptm.FusedScores.columns

    def counted(scores, columns):
        block = columns_of(scores, columns)
        widths.append(block.shape[1])
        return block

    monkeypatch.setattr(retrieval_aptm.FusedScores, "columns", counted)
    engine.fusion, engine.world_size = fusion, world_size
    query_ids = [0, 1, 2, 3, 4, 5]
    try:
        expected = image_to_text_metrics(engine.score_matrix(TEXTS, index), query_ids, index.person_ids, ties=ties)
        with monkeypatch.context() as whole:
            whole.setattr(retrieval_aptm.FusedScores, "matrix", None)  # the whole matrix is never built
            metrics, _ = engine.evaluate(TEXTS, query_ids, index, ties=ties, image_to_text=True)
    finally:
        engine.fusion, engine.world_size = "aptm", 1
    assert widths == [2] * 6
    assert {key: metrics[key] for key in expected} == pytest.approx(expected, abs=1e-9)
    assert 0 < expected["i2t_mAP"] < 100


def test_image_to_text_names_an_image_without_a_relevant_text(setup):
    _, _, _, engine, index = setup
    with pytest.raises(ValueError, match=r"first: query 10, person id 5"):
        engine.evaluate(TEXTS[:5], [0, 1, 2, 3, 4], index, image_to_text=True)


def test_text_states_are_computed_one_reranking_group_at_a_time(setup, monkeypatch):
    """Queries are encoded a re-ranking group at a time, in order of token count, each group padded to its longest:
    the text encoder never holds more than `query_batch_size` queries' token states, however many queries a batch of
    `batch_size` holds, and the scores are those of the engine encoding groups of 4 (up to float32 rounding)."""
    model, processor, _, engine, index = setup
    texts, query_ids = TEXTS * 4, [0, 1, 2, 3, 4, 5] * 4
    expected = engine.score_matrix(texts, index)
    grouped = RetrievalEngine(model, processor, k=4, query_batch_size=3, batch_size=64, progress=False)
    encoded, forward = [], model.text_model.forward

    def counted(input_ids, attention_mask=None, *args, **kwargs):
        encoded.append((len(input_ids), input_ids.shape[1], attention_mask.sum(1).tolist()))
        return forward(input_ids, attention_mask, *args, **kwargs)

    monkeypatch.setattr(model.text_model, "forward", counted)
    metrics, fused = grouped.evaluate(texts, query_ids, index)
    assert [size for size, _, _ in encoded] == [3] * 8
    assert all(length == max(counts) for _, length, counts in encoded)  # each group padded to its own longest
    group_lengths = [counts for _, _, counts in encoded]
    assert sum(group_lengths, []) == sorted(sum(group_lengths, []))  # in order of token count
    torch.testing.assert_close(fused.matrix(), expected, atol=2e-5, rtol=0)  # other padding: float32 rounding
    assert metrics == pytest.approx(retrieval_metrics(expected, query_ids, index.person_ids))


def test_faiss_candidates_match_exact_search(setup):
    pytest.importorskip("faiss")
    _, _, _, engine, index = setup
    dataset = index.faiss_dataset()
    features = engine.encode_texts(TEXTS)[0][2].numpy()
    found = dataset.get_nearest_examples_batch("features", features, k=4)
    exact = (torch.from_numpy(features) @ index.image_features.t()).topk(4).values
    np.testing.assert_allclose(np.array(found.total_scores), exact.numpy(), atol=1e-5)


def test_gallery_key_values_are_kept_for_the_same_gallery_and_weights(setup, monkeypatch):
    """A second search of the same gallery reuses its cross-attention keys/values; another gallery, a grown one or
    changed cross-attention weights compute them again, with the same scores as a fresh engine."""
    model, processor, images, _, index = setup
    engine = RetrievalEngine(model, processor, k=4, progress=False)
    computed = []
    cross_key_values = model.fusion_model.cross_key_values
    monkeypatch.setattr(model.fusion_model, "cross_key_values", lambda embeds: computed.append(len(embeds)) or
                        cross_key_values(embeds))
    first = engine.score_matrix(TEXTS, index)
    torch.testing.assert_close(engine.score_matrix(TEXTS, index), first, rtol=0, atol=0)
    assert computed == [len(index)]
    other = GalleryIndex(index.image_features[:7].clone(), index.image_embeds[:7].clone())
    engine.score_matrix(TEXTS, other)
    assert computed == [len(index), 7]
    weight = model.fusion_model.layer[0].crossattention.self.key.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(1.5)
    try:
        changed = engine.score_matrix(TEXTS, other)
        assert computed == [len(index), 7, 7]
        fresh = RetrievalEngine(model, processor, k=4, progress=False).score_matrix(TEXTS, other)
        torch.testing.assert_close(changed, fresh, rtol=0, atol=0)
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def test_candidates_key_values_are_gathered_layer_by_layer(setup, monkeypatch):
    """Re-ranking gathers the candidates' keys/values when each fusion layer needs them: when a layer asks, the ones
    of the layers before the previous one have been freed (same scores: the engine tests above)."""
    _, processor, _, _, index = setup
    torch.manual_seed(0)
    cross = {**tiny_config().cross_config.to_dict(), "num_hidden_layers": 4}
    model = aptm.APTMModel(tiny_config(cross_config=cross)).eval()
    gathered, alive_at_access = [], []
    gather = retrieval_aptm.GatheredKeyValues.__getitem__

    def recording(self, layer):
        alive_at_access.append(sum(reference() is not None for reference in gathered))
        pair = gather(self, layer)
        gathered.append(weakref.ref(pair[0]))
        return pair

    monkeypatch.setattr(retrieval_aptm.GatheredKeyValues, "__getitem__", recording)
    RetrievalEngine(model, processor, k=4, progress=False, query_batch_size=len(TEXTS)).score_matrix(TEXTS, index)
    assert alive_at_access == [0, 1, 1, 1]  # all gathered at once would be [0, 1, 2, 3]


def test_gallery_key_values_are_sized_by_the_dtype_they_are_computed_in(setup):
    """The gallery's keys/values are kept when their real size fits `kv_memory_limit`: bfloat16 autocast halves it."""
    model, processor, _, _, index = setup
    for autocast in (None, torch.bfloat16):
        engine = RetrievalEngine(model, processor, k=4, progress=False, autocast=autocast)
        kv = engine._cross_key_values(index, torch.arange(len(index)))
        size = sum(tensor.numel() * tensor.element_size() for pair in kv for tensor in pair)
        engine.kv_memory_limit = size
        assert engine._gallery_key_values(index) is not None, autocast
        engine._kv_cache, engine.kv_memory_limit = None, size - 1
        assert engine._gallery_key_values(index) is None, autocast


class RemoteCodeWithoutSharedTexts(aptm.APTMModel):
    """A model as checkpoints saved before `images_per_text` carry it: `itm_logits` takes one text per pair."""

    def itm_logits(self, text_embeds, attention_mask, image_embeds=None, cross_key_values=None):
        return super().itm_logits(text_embeds, attention_mask, image_embeds, cross_key_values)


def test_checkpoints_with_older_remote_code_rank_the_same(setup):
    model, processor, _, engine, index = setup
    older = RemoteCodeWithoutSharedTexts(model.config).eval()
    older.load_state_dict(model.state_dict())
    scores = RetrievalEngine(older, processor, k=4, progress=False).score_matrix(TEXTS, index)
    torch.testing.assert_close(scores, RetrievalEngine(model, processor, k=4, progress=False).score_matrix(TEXTS, index),
                               atol=2e-5, rtol=0)
