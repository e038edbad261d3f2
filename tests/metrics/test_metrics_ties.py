"""Tie policies against brute force on heavily tied scores, the `evaluate` wrapper's options, and bounded memory of
the chunked ranking."""

import tracemalloc

import evaluate
import numpy as np
import pytest

from aptm.metrics import rank_gallery, retrieval_metrics

from helpers.paths import REPO

METRICS = REPO / "metrics"


def brute_force(scores, query_ids, gallery_ids, pessimistic):
    """Definitions word for word, one query at a time; ties by gallery order, or irrelevant images first."""
    totals = {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "mAP": 0.0, "mINP": 0.0}
    for row, query in zip(scores.tolist(), query_ids.tolist()):
        relevant_of = [g == query for g in gallery_ids.tolist()]
        key = (lambda j: (-row[j], relevant_of[j], j)) if pessimistic else (lambda j: (-row[j], j))
        ranked = [relevant_of[j] for j in sorted(range(len(row)), key=key)]
        positions = [rank + 1 for rank, hit in enumerate(ranked) if hit]
        for k in (1, 5, 10):
            totals[f"R@{k}"] += positions[0] <= k
        totals["mAP"] += sum((n + 1) / p for n, p in enumerate(positions)) / len(positions)
        totals["mINP"] += len(positions) / positions[-1]
    return {key: 100 * value / len(query_ids) for key, value in totals.items()}


@pytest.mark.parametrize("ties", ["stable", "pessimistic"])
@pytest.mark.parametrize("seed", range(4))
def test_tie_policies_match_brute_force(ties, seed):
    rng = np.random.default_rng(seed)
    gallery_ids = rng.integers(0, 6, 30)
    query_ids = rng.choice(gallery_ids, 17)
    scores = rng.integers(0, 4, (17, 30)).astype(np.float32)  # four distinct values: ties everywhere
    expected = brute_force(scores, query_ids, gallery_ids, pessimistic=ties == "pessimistic")
    for chunk_size in (1, 5, 100):
        assert retrieval_metrics(scores, query_ids, gallery_ids, ties=ties, chunk_size=chunk_size) == \
            pytest.approx(expected)


def test_pessimistic_is_a_lower_bound_and_equal_without_ties():
    rng = np.random.default_rng(7)
    gallery_ids = np.repeat(np.arange(10), 4)
    query_ids = rng.choice(gallery_ids, 25)
    tied = rng.integers(0, 3, (25, 40)).astype(np.float64)
    stable = retrieval_metrics(tied, query_ids, gallery_ids)
    pessimistic = retrieval_metrics(tied, query_ids, gallery_ids, ties="pessimistic")
    assert all(pessimistic[key] <= stable[key] for key in stable)
    assert pessimistic["mAP"] < stable["mAP"]
    distinct = rng.permutation(25 * 40).reshape(25, 40).astype(np.float64)
    assert retrieval_metrics(distinct, query_ids, gallery_ids, ties="pessimistic") == \
        retrieval_metrics(distinct, query_ids, gallery_ids)


def test_all_tied_row_by_hand():
    """One row of equal scores, relevant images at gallery positions 2 and 4 (1-based)."""
    scores, query, gallery = np.zeros((1, 5)), np.array([1]), np.array([0, 1, 0, 1, 0])
    stable = retrieval_metrics(scores, query, gallery)
    assert stable == pytest.approx({"R@1": 0.0, "R@5": 100.0, "R@10": 100.0, "mAP": 100 * (1 / 2 + 2 / 4) / 2,
                                    "mINP": 100 * 2 / 4})
    assert rank_gallery(scores, query, gallery, ties="pessimistic").tolist() == [[0, 2, 4, 1, 3]]
    pessimistic = retrieval_metrics(scores, query, gallery, ties="pessimistic")
    assert pessimistic == pytest.approx({"R@1": 0.0, "R@5": 100.0, "R@10": 100.0,
                                         "mAP": 100 * (1 / 4 + 2 / 5) / 2, "mINP": 100 * 2 / 5})


def test_evaluate_module_passes_its_options():
    metric = evaluate.load(str(METRICS / "text_person_retrieval"))
    scores, query, gallery = np.zeros((1, 5), dtype=np.float32), [1], [0, 1, 0, 1, 0]
    assert metric.compute(predictions=scores, references=query, gallery_ids=gallery, ties="pessimistic")["mINP"] == \
        pytest.approx(40.0)
    assert metric.compute(predictions=scores, references=query, gallery_ids=gallery, chunk_size=1)["mINP"] == \
        pytest.approx(50.0)
    with pytest.raises(ValueError, match="gallery_ids"):
        metric.compute(predictions=scores, references=query)


def test_chunked_ranking_memory_is_bounded_by_the_chunk():
    """A full argsort of this matrix would need 2000 x 3000 int64 = 48 MB; ranking in chunks of 100 queries stays
    far below."""
    rng = np.random.default_rng(0)
    gallery_ids = np.repeat(np.arange(1000), 3)
    query_ids = rng.choice(1000, 2000)
    scores = rng.random((2000, 3000), dtype=np.float32)
    tracemalloc.start()
    try:
        retrieval_metrics(scores, query_ids, gallery_ids, chunk_size=100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB"
