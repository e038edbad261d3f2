"""The package's retrieval engine: the remote code's text-person search (`retrieval_aptm.TextPersonSearch`, the
paper's procedure) with what a package adds, a gallery index with person ids and paths that is saved to disk, and
evaluation against person ids."""

import numpy as np
import torch

from retrieval_aptm import TextPersonSearch

from ..metrics import RetrievalMetrics, image_to_text_metrics
from .index import GalleryIndex


class RetrievalEngine(TextPersonSearch):
    r"""
    Text-to-person search and evaluation with an APTM model. Arguments are those of `retrieval_aptm.TextPersonSearch`
    (`k`, `fusion`, `cosine_weight`, `world_size`, `batch_size`, `query_batch_size`, `autocast`, `progress`,
    `kv_memory_limit`).
    """

    def encode_gallery(self, images, person_ids=None, paths=None):
        """Encode a gallery once (in batches, with a progress bar) into a `GalleryIndex`. `images` is a sequence of
        PIL images or arrays, a `datasets.Dataset` with an `image` column, or a `pixel_values` tensor."""
        if person_ids is not None and len(person_ids) != len(images):
            raise ValueError(f"person_ids has {len(person_ids)} entries for {len(images)} gallery images")
        encoded = super().encode_gallery(images)
        return GalleryIndex(encoded.image_features, encoded.image_embeds,
                            None if person_ids is None else torch.as_tensor(np.asarray(person_ids), dtype=torch.long),
                            list(paths or []))

    def evaluate(self, texts, query_ids, index, ties="stable", image_to_text=False):
        """Retrieval metrics (R@1/5/10, mAP, mINP) of captions `texts` with person ids `query_ids` against a gallery
        index with person ids, in bounded memory: the fused score rows are ranked a chunk of queries at a time
        (`fused_scores`, `RetrievalMetrics`), so memory grows with queries x k plus the gallery, never with queries x
        gallery. With `image_to_text`, also the other direction (`i2t_` keys), which ranks every gallery image over
        all texts and so holds the whole score matrix. Returns `(metrics, FusedScores)`, whose `rows` gives the final
        scores of any queries."""
        if index.person_ids is None:
            raise ValueError("the gallery index has no person_ids; pass them to encode_gallery")
        query_ids, gallery_ids = np.asarray(query_ids), index.person_ids.numpy()
        if len(query_ids) != len(texts):
            raise ValueError(f"query_ids has {len(query_ids)} entries for {len(texts)} texts")
        scores = self.fused_scores(texts, index)
        metrics = RetrievalMetrics(gallery_ids, ties=ties)
        for rows, chunk in scores.chunks():
            metrics.add(chunk, query_ids[rows])
        metrics = metrics.compute()
        if image_to_text:
            metrics.update(image_to_text_metrics(scores.matrix(), query_ids, gallery_ids, ties=ties))
        return metrics, scores
