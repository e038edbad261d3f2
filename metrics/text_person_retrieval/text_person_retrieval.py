"""Text-to-person retrieval metrics: R@1/R@5/R@10 (CMC hit rate), mAP and mINP, in percent, text-to-image and
optionally image-to-text. Needs only evaluate, datasets and numpy; the computation is `aptm_metrics.py` beside this
file, the same code the aptm package evaluates with."""

import datasets
import evaluate
import numpy as np

from .aptm_metrics import image_to_text_metrics, retrieval_metrics

_DESCRIPTION = """
Each prediction is one query's row of scores over the gallery (higher = better); each reference is the query's person
id; `gallery_ids` gives the gallery images' person ids. A gallery image is relevant when its person id equals the
query's. R@K is the percentage of queries with a relevant image in the top K; mAP averages the average precision over
the full ranking; mINP averages (number of relevant) / (rank of the last relevant). Ties are broken by gallery order
(`ties="stable"`) or pessimistically (`ties="pessimistic"`). With `image_to_text=True` the other direction is added
(`i2t_` keys, as IRRA reports): each gallery image ranks the queries' texts by the transposed scores, and a text is
relevant when it describes the image's person.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): one row of gallery scores per query.
    references (`list[int]`): the person id of each query.
    gallery_ids (`list[int]`): the person id of each gallery image.
    ties (`str`, *optional*, defaults to `"stable"`): `"stable"` or `"pessimistic"`.
    chunk_size (`int`, *optional*, defaults to 1024): queries ranked at once.
    image_to_text (`bool`, *optional*, defaults to `False`): also the image-to-text metrics.
Returns:
    `dict` with `R@1`, `R@5`, `R@10`, `mAP`, `mINP` in percent (and `i2t_R@1`, ... with `image_to_text`).
Example:
    >>> metric = evaluate.load("metrics/text_person_retrieval")
    >>> metric.compute(predictions=[[0.9, 0.1, 0.3], [0.2, 0.8, 0.1]], references=[7, 8], gallery_ids=[7, 8, 7])
    {'R@1': 100.0, 'R@5': 100.0, 'R@10': 100.0, 'mAP': 100.0, 'mINP': 100.0}
"""

_CITATION = """
@inproceedings{yang2023towards,
  title={Towards Unified Text-based Person Retrieval: A Large-scale Multi-Attribute and Language Search Benchmark},
  author={Yang, Shuyu and Zhou, Yinan and Zheng, Zhedong and Wang, Yaxiong and Zhu, Li and Wu, Yujiao},
  booktitle={Proceedings of the 31st ACM International Conference on Multimedia}, year={2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TextPersonRetrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, gallery_ids=None, ties="stable", chunk_size=1024, image_to_text=False):
        if gallery_ids is None:
            raise ValueError("pass gallery_ids, the person id of each gallery image")
        scores, query_ids, gallery_ids = np.asarray(predictions, dtype=np.float32), np.asarray(references), np.asarray(gallery_ids)
        metrics = retrieval_metrics(scores, query_ids, gallery_ids, ties=ties, chunk_size=chunk_size)
        if image_to_text:
            metrics.update(image_to_text_metrics(scores, query_ids, gallery_ids, ties=ties, chunk_size=chunk_size))
        return metrics
