"""Retrieval and attribute metrics against brute-force references, hand-made tie cases and the original's numbers."""

import json

import evaluate
import numpy as np
import pytest

from aptm.metrics import RetrievalMetrics, attribute_metrics, attribute_predictions, rank_gallery, retrieval_metrics

from helpers.golden import GOLDEN_SETS, golden_dir
from helpers.paths import REPO

METRICS = REPO / "metrics"


def brute_force_retrieval(scores, query_ids, gallery_ids):
    """One query at a time, with Python lists, following the definitions word for word."""
    r1 = r5 = r10 = ap_total = inp_total = 0.0
    for row, query in zip(scores, query_ids):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        relevant = [gallery_ids[j] == query for j in order]
        positions = [i + 1 for i, hit in enumerate(relevant) if hit]
        r1 += positions[0] <= 1
        r5 += positions[0] <= 5
        r10 += positions[0] <= 10
        ap_total += sum((n + 1) / p for n, p in enumerate(positions)) / len(positions)
        inp_total += len(positions) / positions[-1]
    n = len(query_ids)
    return {"R@1": 100 * r1 / n, "R@5": 100 * r5 / n, "R@10": 100 * r10 / n, "mAP": 100 * ap_total / n,
            "mINP": 100 * inp_total / n}


@pytest.mark.parametrize("seed", range(5))
def test_retrieval_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    gallery_ids = rng.integers(0, 8, 40)
    query_ids = rng.choice(gallery_ids, 25)
    scores = rng.normal(size=(25, 40)).astype(np.float32)
    scores[:, ::7] = scores[:, :1]  # exact ties
    expected = brute_force_retrieval(scores.tolist(), query_ids.tolist(), gallery_ids.tolist())
    got = retrieval_metrics(scores, query_ids, gallery_ids, chunk_size=7)
    assert got == pytest.approx(expected)


def test_hand_made_ties():
    scores = np.array([[0.5, 0.5, 0.5, 0.1]])
    query, gallery = np.array([3]), np.array([1, 2, 3, 3])
    stable = retrieval_metrics(scores, query, gallery)
    assert stable["R@1"] == 0 and stable["mAP"] == pytest.approx(100 * (1 / 3 + 2 / 4) / 2)
    assert stable["mINP"] == pytest.approx(100 * 2 / 4)
    assert rank_gallery(scores).tolist() == [[0, 1, 2, 3]]
    assert rank_gallery(scores, query, gallery, ties="pessimistic").tolist() == [[0, 1, 2, 3]]
    gallery = np.array([3, 2, 1, 3])
    assert retrieval_metrics(scores, query, gallery)["R@1"] == 100
    pessimistic = retrieval_metrics(scores, query, gallery, ties="pessimistic")
    assert pessimistic["R@1"] == 0 and pessimistic["mAP"] == pytest.approx(100 * (1 / 3 + 2 / 4) / 2)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(3)
    gallery_ids = np.repeat(np.arange(50), 3)
    query_ids = rng.permutation(np.repeat(np.arange(50), 2))
    scores = rng.normal(size=(100, 150))
    assert retrieval_metrics(scores, query_ids, gallery_ids, chunk_size=1) == \
        pytest.approx(retrieval_metrics(scores, query_ids, gallery_ids, chunk_size=1000))


@pytest.mark.parametrize("ties", ["stable", "pessimistic"])
def test_streamed_chunks_give_the_whole_matrix_metrics(ties):
    """Rows added in uneven chunks and in any order give `retrieval_metrics` of the whole matrix (with ties: scores
    rounded to one decimal)."""
    rng = np.random.default_rng(4)
    gallery_ids = np.repeat(np.arange(30), 3)
    query_ids = rng.permutation(np.repeat(np.arange(30), 2))
    scores = rng.normal(size=(60, 90)).round(1)
    streamed = RetrievalMetrics(gallery_ids, ks=(1, 3, 10), ties=ties)
    bounds = [0, 7, 8, 31, 60]
    for start, stop in reversed(list(zip(bounds, bounds[1:]))):
        streamed.add(scores[start:stop], query_ids[start:stop])
    assert streamed.compute() == pytest.approx(retrieval_metrics(scores, query_ids, gallery_ids, (1, 3, 10), ties))


def test_streamed_metrics_errors():
    streamed = RetrievalMetrics([1, 2, 3])
    with pytest.raises(ValueError, match="no queries"):
        streamed.compute()
    with pytest.raises(ValueError, match="shape"):
        streamed.add(np.zeros((1, 2)), [1])
    streamed.add(np.zeros((2, 3)), [1, 2])
    with pytest.raises(ValueError, match="query 3, person id 9"):  # numbered among all rows added so far
        streamed.add(np.zeros((2, 3)), [1, 9])


@pytest.mark.parametrize("kwargs, message", [
    ({"scores": np.zeros((2, 3)), "query_ids": [1], "gallery_ids": [1, 2, 3]}, "shape"),
    ({"scores": np.zeros((1, 2)), "query_ids": [9], "gallery_ids": [1, 2]}, "no relevant gallery image"),
    ({"scores": np.array([[np.nan, 1.0]]), "query_ids": [1], "gallery_ids": [1, 2]}, "NaN"),
    ({"scores": np.zeros((1, 2)), "query_ids": [1], "gallery_ids": [1, 2], "ties": "random"}, "ties"),
])
def test_retrieval_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(**kwargs)


def brute_force_attributes(predictions, labels):
    tprs, tnrs = [], []
    for a in range(labels.shape[1]):
        pos = [i for i in range(len(labels)) if labels[i, a] == 1]
        neg = [i for i in range(len(labels)) if labels[i, a] == 0]
        tprs.append(sum(predictions[i, a] == 1 for i in pos) / len(pos))
        tnrs.append(sum(predictions[i, a] == 0 for i in neg) / len(neg))
    acc, prec, rec = [], [], []
    for p, g in zip(predictions, labels):
        inter = sum(1 for x, y in zip(p, g) if x == 1 and y == 1)
        acc.append(inter / sum(1 for x, y in zip(p, g) if x == 1 or y == 1))
        prec.append(inter / sum(p))
        rec.append(inter / sum(g))
    precision, recall = np.mean(prec), np.mean(rec)
    return {"mA": 100 * np.mean([(t + n) / 2 for t, n in zip(tprs, tnrs)]), "accuracy": 100 * np.mean(acc),
            "precision": 100 * precision, "recall": 100 * recall,
            "F1": 100 * 2 * precision * recall / (precision + recall)}


@pytest.mark.parametrize("seed", range(4))
def test_attributes_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    while True:  # the brute force needs positives and negatives everywhere (its divisions have no guards)
        labels, predictions = rng.integers(0, 2, (30, 6)), rng.integers(0, 2, (30, 6))
        if all(x.min() > 0 for x in (labels.sum(1), predictions.sum(1), labels.sum(0), (1 - labels).sum(0))):
            break
    got = attribute_metrics(predictions, labels)
    expected = brute_force_attributes(predictions, labels)
    assert {k: got[k] for k in expected} == pytest.approx(expected)


def test_attribute_edge_cases_give_no_nan():
    predictions = np.array([[0, 0], [1, 0]])
    labels = np.array([[0, 0], [1, -1]])
    got = attribute_metrics(predictions, labels)
    assert all(np.isfinite(v) for k, v in got.items() if k != "per_attribute_mA")
    assert got["accuracy"] == 100 and got["precision"] == 100 and got["recall"] == 100
    assert got["per_attribute_mA"] == [100.0, 100.0]
    with pytest.raises(ValueError, match="labels must be"):
        attribute_metrics(predictions, np.array([[2, 0], [0, 0]]))
    with pytest.raises(ValueError, match="must be equal"):
        attribute_metrics(predictions, labels[:1])


@pytest.mark.parametrize("name", GOLDEN_SETS)
def test_original_numbers_are_reproduced(name):
    folder = golden_dir(name)
    scores = np.load(folder / "eval.npz")
    original = json.loads((folder / "eval.json").read_text())
    got = retrieval_metrics(scores["score_t2i"], original["query_pids"], original["gallery_pids"])
    # the original's R@5/R@10 equal recall@4 here (4 gallery images, see the golden README)
    assert got == pytest.approx({k.replace("R", "R@") if k[1:].isdigit() else k: v
                                 for k, v in original["mAP_metrics"].items()}, abs=1e-4)
    assert np.array_equal(rank_gallery(scores["score_t2i"]), scores["ranking_t2i"])
    pa100k = np.load(folder / "pa100k_attr.npz")
    metrics = attribute_metrics(attribute_predictions(pa100k["score_i2t"]), pa100k["labels"])
    expected = original["pa100k_attr_eval"]["metrics"]
    for ours, theirs in (("mA", "label_mA"), ("accuracy", "ins_acc"), ("precision", "ins_prec"),
                         ("recall", "ins_rec"), ("F1", "ins_f1")):
        assert round(metrics[ours] / 100, 4) == expected[theirs], ours


def test_evaluate_modules_load_offline_and_match():
    retrieval = evaluate.load(str(METRICS / "text_person_retrieval"))
    rng = np.random.default_rng(0)
    gallery_ids = rng.integers(0, 5, 12)
    query_ids = rng.choice(gallery_ids, 9)
    scores = rng.normal(size=(9, 12)).astype(np.float32)
    expected = retrieval_metrics(scores, query_ids, gallery_ids)
    assert retrieval.compute(predictions=scores, references=query_ids, gallery_ids=gallery_ids) == pytest.approx(expected)
    retrieval.add_batch(predictions=scores[:4], references=query_ids[:4])
    retrieval.add_batch(predictions=scores[4:], references=query_ids[4:])
    assert retrieval.compute(gallery_ids=gallery_ids) == pytest.approx(expected)
    attributes = evaluate.load(str(METRICS / "pedestrian_attribute"))
    assert attributes.compute(predictions=[[1, 0], [0, 1]], references=[[1, 0], [1, 1]])["mA"] == 75.0
