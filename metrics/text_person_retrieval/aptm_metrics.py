"""Evaluation metrics as plain numpy functions, importing numpy alone: the `evaluate` modules in `metrics/` compute
with this very file (each metric folder holds a copy of it as `aptm_metrics.py`, written when the metric is published
and in a checkout by `make install`, so a folder copied alone or published as a metric Space carries it).

Text-to-person retrieval (the protocol of IRRA and APTM): each query is a caption, the gallery is the test images, and a
gallery image is relevant when it shows the query's person id.
  * R@K: percentage of queries with a relevant image within the top K (CMC hit rate, as the field reports it).
  * mAP: mean over queries of the average precision over the full ranking.
  * mINP: mean over queries of (number of relevant images) / (rank of the last relevant image).
Ties in a row are broken by gallery order (a stable sort; deterministic), or pessimistically (`ties="pessimistic"`:
irrelevant images first among equal scores). The ranking is computed in query chunks so a 19,848 x 19,848 (ICFG-PEDES)
matrix never needs a full int64 argsort in memory at once, and `RetrievalMetrics` takes the rows a chunk at a time, so
the matrix itself need never be whole either.

Pedestrian attributes (label-based mA as APTM reports it, plus instance-based metrics). Labels are 1 (present),
0 (absent) or -1 (unknown, ignored). Rules that avoid NaN: an attribute without positives (or without negatives) in
the evaluated set contributes only its defined half to mA; an instance with empty prediction and empty ground truth
counts as accuracy, precision and recall 1; an empty prediction (ground truth not empty) has precision 0, and an empty
ground truth (prediction not empty) has recall 0. F1 is computed from the mean precision and mean recall, as APTM.
"""

import warnings

import numpy as np

RETRIEVAL_KEYS = ("R@1", "R@5", "R@10", "mAP", "mINP")


def _as_numpy(array):
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def rank_gallery(scores, query_ids=None, gallery_ids=None, ties="stable"):
    """Gallery indices of each query row, best first. `ties="pessimistic"` needs the ids to put irrelevant images
    first among equal scores."""
    scores = _as_numpy(scores)
    if ties == "stable":
        return np.argsort(-scores, axis=1, kind="stable")
    if ties == "pessimistic":
        relevant = _as_numpy(gallery_ids)[None, :] == _as_numpy(query_ids)[:, None]
        return np.lexsort((relevant, -scores), axis=1)
    raise ValueError(f"ties must be 'stable' or 'pessimistic', got {ties!r}")


class RetrievalMetrics:
    r"""
    `retrieval_metrics` over score rows given a chunk at a time, so the whole matrix is never needed: `add` each chunk
    of query rows (any order, any sizes), then `compute` returns the metrics of all rows added. Rows added apart (one
    share of the queries in each process) combine through their `totals`, which add up (`merge`).

    Args:
        gallery_ids (array-like): person id of each gallery image `[G]`.
        ks (`tuple`, *optional*, defaults to `(1, 5, 10)`), ties (`str`, *optional*, defaults to `"stable"`): as
            `retrieval_metrics`.
    """

    def __init__(self, gallery_ids, ks=(1, 5, 10), ties="stable"):
        self.gallery_ids, self.ks, self.ties = _as_numpy(gallery_ids), tuple(ks), ties
        self.hits = {k: 0 for k in self.ks}
        self.ap_sum = self.inp_sum = 0.0
        self.num_queries = 0

    def add(self, scores, query_ids):
        """Take the score rows `[q, G]` of queries with person ids `query_ids` `[q]`."""
        scores, query_ids = _as_numpy(scores), _as_numpy(query_ids)
        if scores.ndim != 2 or scores.shape != (len(query_ids), len(self.gallery_ids)):
            raise ValueError(f"scores must have shape [len(query_ids)={len(query_ids)}, len(gallery_ids)="
                             f"{len(self.gallery_ids)}], got {list(scores.shape)}")
        self.check_queries(query_ids, first=self.num_queries)
        if not np.isfinite(scores).all():
            raise ValueError("scores contain NaN or infinite values")
        order = rank_gallery(scores, query_ids, self.gallery_ids, self.ties)
        relevant = self.gallery_ids[order] == query_ids[:, None]
        first = relevant.argmax(axis=1)
        for k in self.ks:
            self.hits[k] += int((first < k).sum())
        cumulative = relevant.cumsum(axis=1)
        ranks = np.arange(1, relevant.shape[1] + 1)
        count = cumulative[:, -1]
        self.ap_sum += float((((cumulative / ranks) * relevant).sum(axis=1) / count).sum())
        last = relevant.shape[1] - 1 - relevant[:, ::-1].argmax(axis=1)
        self.inp_sum += float((count / (last + 1)).sum())
        self.num_queries += len(query_ids)

    def check_queries(self, query_ids, first=0):
        """Raise a `ValueError` naming the first of queries `query_ids` (numbered from `first`) whose person id has no
        gallery image: the metrics are undefined for it."""
        query_ids = _as_numpy(query_ids)
        without = np.flatnonzero(~np.isin(query_ids, self.gallery_ids))
        if len(without):
            raise ValueError(f"{len(without)} queries have no relevant gallery image (first: query "
                             f"{first + without[0]}, person id {query_ids[without[0]]}); the metrics are undefined for "
                             "them")

    def totals(self):
        """The sums `compute` divides, `[hits within each k..., AP sum, INP sum, number of queries]` (float64). Those
        of disjoint sets of queries against the same gallery add up to those of their union."""
        return np.array([*(self.hits[k] for k in self.ks), self.ap_sum, self.inp_sum, self.num_queries],
                        dtype=np.float64)

    def merge(self, totals):
        """Add `totals` of other queries (another `RetrievalMetrics`'s, with the same gallery, ks and ties, or a sum
        of several) to this one's."""
        totals = np.asarray(totals, dtype=np.float64)
        if totals.shape != (len(self.ks) + 3,):
            raise ValueError(f"totals must have {len(self.ks) + 3} entries (hits at {self.ks}, AP sum, INP sum, "
                             f"number of queries), got shape {list(totals.shape)}")
        for k, hits in zip(self.ks, totals):
            self.hits[k] += int(round(hits))
        self.ap_sum += float(totals[-3])
        self.inp_sum += float(totals[-2])
        self.num_queries += int(round(totals[-1]))

    def compute(self):
        """R@K, mAP and mINP (percent) of every row added."""
        if not self.num_queries:
            raise ValueError("no queries to evaluate")
        metrics = {f"R@{k}": 100.0 * self.hits[k] / self.num_queries for k in self.ks}
        metrics.update({"mAP": 100.0 * self.ap_sum / self.num_queries, "mINP": 100.0 * self.inp_sum / self.num_queries})
        return {key: float(value) for key, value in metrics.items()}


def retrieval_metrics(scores, query_ids, gallery_ids, ks=(1, 5, 10), ties="stable", chunk_size=1024):
    """R@K, mAP and mINP (percent) of a `[num_queries, num_gallery]` score matrix (higher = better match)."""
    scores, query_ids, gallery_ids = _as_numpy(scores), _as_numpy(query_ids), _as_numpy(gallery_ids)
    if scores.ndim != 2 or scores.shape != (len(query_ids), len(gallery_ids)):
        raise ValueError(f"scores must have shape [len(query_ids)={len(query_ids)}, len(gallery_ids)="
                         f"{len(gallery_ids)}], got {list(scores.shape)}")
    metrics = RetrievalMetrics(gallery_ids, ks, ties)
    for start in range(0, len(query_ids), chunk_size):
        metrics.add(scores[start : start + chunk_size], query_ids[start : start + chunk_size])
    return metrics.compute()


def image_to_text_metrics(scores, query_ids, gallery_ids, ks=(1, 5, 10), ties="stable", chunk_size=1024):
    """The other direction of a text x image score matrix, as IRRA reports it: each gallery image is a query over the
    texts, and a text is relevant when it describes the image's person. Keys get an `i2t_` prefix."""
    scores = _as_numpy(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a [texts, images] matrix, got shape {list(scores.shape)}")
    return image_to_text_keys(retrieval_metrics(scores.T, gallery_ids, query_ids, ks, ties, chunk_size))


def image_to_text_keys(metrics):
    """Retrieval metrics of the image-to-text direction under their `i2t_` keys."""
    return {f"i2t_{key}": value for key, value in metrics.items()}


def attribute_predictions(prompt_scores):
    """Per-attribute predictions from prompt scores `[N, 2A]` (prompt `2i` = label 0, `2i+1` = label 1): 1 where the
    label-1 prompt scores strictly higher, as the original argmax (ties go to label 0)."""
    scores = _as_numpy(prompt_scores)
    if scores.ndim != 2 or scores.shape[1] % 2:
        raise ValueError(f"prompt scores must have shape [N, 2 * num_attributes], got {list(scores.shape)}")
    return (scores[:, 1::2] > scores[:, 0::2]).astype(np.int64)


def attribute_metrics(predictions, labels):
    """Label-based mA and instance accuracy/precision/recall/F1 (percent) of binary predictions `[N, A]` against
    labels `[N, A]` in {1, 0, -1 (unknown, ignored)}."""
    predictions, labels = _as_numpy(predictions).astype(np.int64), _as_numpy(labels).astype(np.int64)
    if predictions.shape != labels.shape or predictions.ndim != 2:
        raise ValueError(f"predictions {list(predictions.shape)} and labels {list(labels.shape)} must be equal [N, A]")
    if not np.isin(predictions, (0, 1)).all():
        raise ValueError("predictions must be 0 or 1")
    if not np.isin(labels, (-1, 0, 1)).all():
        raise ValueError("labels must be 1, 0 or -1 (unknown)")
    known = labels >= 0
    positive, negative = (labels == 1), (labels == 0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tpr = ((predictions == 1) & positive).sum(0) / positive.sum(0)
        tnr = ((predictions == 0) & negative).sum(0) / negative.sum(0)
        per_attribute = np.nanmean(np.stack([tpr, tnr]), axis=0)
    predicted = (predictions == 1) & known
    truth = positive
    intersection = (predicted & truth).sum(1)
    union = (predicted | truth).sum(1)
    n_predicted, n_truth = predicted.sum(1), truth.sum(1)
    accuracy = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    precision = np.where(n_predicted > 0, intersection / np.maximum(n_predicted, 1), (n_truth == 0).astype(float))
    recall = np.where(n_truth > 0, intersection / np.maximum(n_truth, 1), (n_predicted == 0).astype(float))
    mean_precision, mean_recall = precision.mean(), recall.mean()
    f1 = 2 * mean_precision * mean_recall / (mean_precision + mean_recall) if mean_precision + mean_recall else 0.0
    return {
        "mA": 100.0 * float(per_attribute[np.isfinite(per_attribute)].mean()) if np.isfinite(per_attribute).any() else 0.0,
        "accuracy": 100.0 * float(accuracy.mean()),
        "precision": 100.0 * float(mean_precision),
        "recall": 100.0 * float(mean_recall),
        "F1": 100.0 * float(f1),
        "per_attribute_mA": [100.0 * float(v) for v in per_attribute],
    }


def chance_recall_at_1(query_ids, gallery_ids):
    """Expected R@1 (percent) of a random ranking: the mean over queries of the fraction of relevant gallery images."""
    query_ids, gallery_ids = _as_numpy(query_ids), _as_numpy(gallery_ids)
    return 100.0 * float(np.mean([(gallery_ids == query).mean() for query in query_ids]))
