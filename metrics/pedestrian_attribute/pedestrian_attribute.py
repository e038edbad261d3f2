"""Pedestrian attribute recognition metrics as APTM reports them: label-based mA and instance accuracy, precision,
recall and F1, in percent. Needs only evaluate, datasets and numpy; the computation is `aptm_metrics.py` beside this
file, the same code the aptm package evaluates with."""

import datasets
import evaluate
import numpy as np

from .aptm_metrics import attribute_metrics

_DESCRIPTION = """
Predictions and references are one binary vector per image (1 = attribute present). References may hold -1 for
unknown labels, which are ignored. mA is the mean over attributes of (TPR + TNR) / 2; an attribute without positives
(or negatives) contributes its defined half. Instance accuracy is |pred AND gt| / |pred OR gt|, precision
|pred AND gt| / |pred|, recall |pred AND gt| / |gt|, averaged over images; F1 comes from the mean precision and recall.
Empty prediction and empty truth count as 1; an empty prediction has precision 0 and an empty truth recall 0 (no NaN).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`): predicted 0/1 per attribute, one row per image.
    references (`list[list[int]]`): labels 1/0/-1 per attribute, one row per image.
Returns:
    `dict` with `mA`, `accuracy`, `precision`, `recall`, `F1` (percent) and `per_attribute_mA`.
Example:
    >>> metric = evaluate.load("metrics/pedestrian_attribute")
    >>> metric.compute(predictions=[[1, 0], [0, 1]], references=[[1, 0], [1, 1]])["mA"]
    75.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PedestrianAttribute(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int64")),
                 "references": datasets.Sequence(datasets.Value("int64"))}
            ),
        )

    def _compute(self, predictions, references):
        return attribute_metrics(np.asarray(predictions), np.asarray(references))
