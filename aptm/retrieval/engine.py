"""The package's retrieval engine: the remote code's text-person search (`retrieval_aptm.TextPersonSearch`, the
paper's procedure) with what a package adds, a gallery index with person ids and paths that is saved to disk, and
evaluation against person ids, split across the processes of a launcher."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retrieval_aptm import FusedScores, Images, StreamingFusion, TextPersonSearch

from ..metrics import RetrievalMetrics, image_to_text_keys
from .index import GalleryIndex
from .sharding import ProcessShards


class RetrievalEngine(TextPersonSearch):
    r"""
    Text-to-person search and evaluation with an APTM model. Arguments are those of `retrieval_aptm.TextPersonSearch`
    (`k`, `fusion`, `cosine_weight`, `world_size`, `test_time_flip`, `batch_size`, `query_batch_size`, `autocast`,
    `progress`, `kv_memory_limit`), and:

    sharded (`bool`, *optional*): split `evaluate` and `encode_gallery_sharded` across the processes of
        `torch.distributed` (every process must call them then). By default they are split when it is initialised
        with more than one process (under `torchrun` or `accelerate launch`); `False` computes everything here.
    """

    def __init__(self, model: torch.nn.Module, processor: Any, *args: Any, sharded: bool | None = None, **kwargs: Any):
        super().__init__(model, processor, *args, **kwargs)
        self.sharded = sharded

    @property
    def processes(self) -> ProcessShards:
        """The `ProcessShards` evaluation is split across (resolved when asked, as processes join later)."""
        return ProcessShards.of_launch(self.sharded)

    def encode_gallery(self, images: Images, person_ids: Sequence[int] | None = None,
                       paths: Sequence[str] | None = None) -> GalleryIndex:
        """Encode a gallery once (in batches, with a progress bar) into a `GalleryIndex`. `images` is a sequence of
        PIL images or arrays, a `datasets.Dataset` with an `image` column, or a `pixel_values` tensor."""
        if person_ids is not None and len(person_ids) != len(images):
            raise ValueError(f"person_ids has {len(person_ids)} entries for {len(images)} gallery images")
        encoded = super().encode_gallery(images)
        return GalleryIndex(encoded.image_features, encoded.image_embeds,
                            None if person_ids is None else torch.as_tensor(np.asarray(person_ids), dtype=torch.long),
                            list(paths or []), flipped_image_embeds=encoded.flipped_image_embeds)

    def build_index(self, images: Images | Sequence[str | Path], folder: str | Path,
                    person_ids: Sequence[int] | None = None, paths: Sequence[str] | None = None,
                    dtype: torch.dtype = torch.float32, shard_size: int = 1024) -> GalleryIndex:
        r"""
        Encode a gallery into the index folder `folder` a shard at a time, each written as soon as it is encoded (with
        a progress bar), and return the whole index loaded memory-mapped (`GalleryIndex.load(folder, mmap=True)`).
        Images whose path the index already holds are skipped: running it again resumes after a crash (which loses at
        most the shard being written), and new images are appended.

        Args:
            images: PIL images or arrays, a `datasets.Dataset` with an `image` column, a `pixel_values` tensor, or
                image files (paths, each read when its batch is encoded).
            folder (`str` or `Path`): the index folder (created if needed).
            person_ids (`list`, *optional*): one per image; an index has them for all its images or for none.
            paths (`list` of `str`, *optional*): one name per image, unique, identifying it in the index (default:
                the image files' paths; needed for images given otherwise).
            dtype (`torch.dtype`, *optional*, defaults to `torch.float32`): storage dtype of the features and image
                tokens, `torch.float16` or `torch.bfloat16` to halve the index; fixed when the index is created.
            shard_size (`int`, *optional*, defaults to 1024): images per shard.

        An index on disk holds one view of each image: with `test_time_flip` this raises a `ValueError`.
        """
        if self.test_time_flip:
            raise ValueError("an index on disk holds one view of each image: build it with test_time_flip=False, or "
                             "keep a test-time-flip gallery in memory (encode_gallery)")
        return GalleryIndex.build(self, images, folder, person_ids, paths, dtype, shard_size)

    def encode_gallery_sharded(self, images: Images, person_ids: Sequence[int] | None = None,
                               paths: Sequence[str] | None = None) -> GalleryIndex:
        """`encode_gallery` split across the processes (see `sharded`): each encodes a contiguous share of `images`
        (a sequence, a `datasets.Dataset` or a `pixel_values` tensor) and the shares are gathered in order, so every
        process returns the index of the whole gallery."""
        shards = self.processes.over(len(images))
        if shards.world_size == 1:
            return self.encode_gallery(images, person_ids=person_ids, paths=paths)
        if person_ids is not None and len(person_ids) != len(images):
            raise ValueError(f"person_ids has {len(person_ids)} entries for {len(images)} gallery images")
        share = shards.share(len(images))
        own = self.encode_gallery(images.select(share) if hasattr(images, "select") else images[share.start : share.stop])
        flipped = own.flipped_image_embeds
        return dataclasses.replace(
            own, image_features=shards.gather(own.image_features), image_embeds=shards.gather(own.image_embeds),
            flipped_image_embeds=None if flipped is None else shards.gather(flipped),
            person_ids=None if person_ids is None else torch.as_tensor(np.asarray(person_ids), dtype=torch.long),
            paths=list(paths or []))

    def evaluate(self, texts: Sequence[str], query_ids: Sequence[int], index: GalleryIndex, ties: str = "stable",
                 image_to_text: bool = False) -> dict[str, float]:
        """Retrieval metrics (R@1/5/10, mAP, mINP) of captions `texts` with person ids `query_ids` against a gallery
        index with person ids, in bounded memory: the fused score rows are ranked a chunk of queries at a time
        (`fused_scores`, `RetrievalMetrics`), so memory grows with queries x k plus the gallery, never with queries x
        gallery. Split across processes (see `sharded`), each process ranks and re-ranks its share of the queries and
        ranks the fused rows of that share; their top-k, ITM logits and text features are gathered, and the metrics'
        sums added, so every process returns what one process computes (the fusion's `world_size` emulation depends
        on the query order only). With `image_to_text`, also the other direction (`i2t_` keys): every gallery image
        ranks all texts, a chunk of images' score columns at a time (`FusedScores.column_chunks`), each process
        ranking its share of the images, and the metrics' sums added. Returns `(metrics, FusedScores)`, whose `rows`
        gives the final scores of any queries."""
        if index.person_ids is None:
            raise ValueError("the gallery index has no person_ids; pass them to encode_gallery")
        query_ids, gallery_ids = np.asarray(query_ids), index.person_ids.numpy()
        if len(query_ids) != len(texts):
            raise ValueError(f"query_ids has {len(query_ids)} entries for {len(texts)} texts")
        share_metrics = RetrievalMetrics(gallery_ids, ties=ties)
        share_metrics.check_queries(query_ids)  # here, not in a share: every process stops before the others wait
        if image_to_text:
            RetrievalMetrics(query_ids, ties=ties).check_queries(gallery_ids)
        shards = self.processes.over(len(texts))
        scores = self._fused_scores_of_shares(texts, index, shards)
        share = shards.share(len(texts))
        for start in range(share.start, share.stop, scores.chunk_size):
            rows = slice(start, min(start + scores.chunk_size, share.stop))
            share_metrics.add(scores.rows(rows), query_ids[rows])
        metrics = RetrievalMetrics(gallery_ids, ties=ties)
        metrics.merge(shards.sum(share_metrics.totals()))
        metrics = metrics.compute()
        if image_to_text:
            metrics.update(self._image_to_text_metrics(scores, query_ids, gallery_ids, ties))
        return metrics, scores

    def _image_to_text_metrics(self, scores, query_ids, gallery_ids, ties):
        """`i2t_` metrics of every gallery image ranking the texts of `scores` (`FusedScores`), each process ranking
        the score columns of its share of the images a chunk at a time; the shares' sums are added."""
        shards = self.processes.over(len(gallery_ids))
        share_metrics = RetrievalMetrics(query_ids, ties=ties)
        for columns, block in scores.column_chunks(shards.share(len(gallery_ids))):
            share_metrics.add(block.t(), gallery_ids[columns])
        metrics = RetrievalMetrics(query_ids, ties=ties)
        metrics.merge(shards.sum(share_metrics.totals()))
        return image_to_text_keys(metrics.compute())

    def _fused_scores_of_shares(self, texts, index, shards):
        """`fused_scores` of `texts`, each of `shards` ranking and re-ranking its share of them: the shares' text
        features and fusion totals are gathered in query order, so the result equals one process's."""
        if shards.world_size == 1:
            return self.fused_scores(texts, index)
        share = shards.share(len(texts))
        own = self.fused_scores(list(texts)[share.start : share.stop], index)
        fusion = StreamingFusion(self.fusion, self.cosine_weight, self.world_size)
        fusion.merge({name: shards.gather(rows) for name, rows in own.fusion.totals().items()})
        return FusedScores(fusion, shards.gather(own.text_features), own.gallery_features, own.chunk_size)
