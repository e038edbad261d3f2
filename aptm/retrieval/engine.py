"""Text-to-person search: encode a gallery once, rank it for each text by cosine similarity, re-rank each query's
top-k candidates with the ITM head, and fuse the two scores as the original evaluator (see `fusion`).

The scores equal the original one-query-at-a-time procedure's (the reference lives in `scripts/benchmark.py` and the
tests), computed faster: each gallery image's cross-attention keys/values are computed once and reused across
queries, queries are batched, and text is padded only to the batch's longest caption. Optional bf16 autocast
(`autocast=torch.bfloat16`) is faster on GPUs but approximate.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import retrieval_metrics
from .encoding import Encoder
from .fusion import check_fusion, fuse_scores


@dataclass
class SearchResult:
    """Ranked gallery for one query: gallery indices best first, their final scores, cosine similarities and ITM
    logits (NaN where not re-ranked)."""

    query: str
    indices: list
    scores: list
    cosine: list
    itm_logits: list


class RetrievalEngine(Encoder):
    r"""
    Text-to-person search and evaluation with an APTM model.

    Args:
        model (`APTMModel`): the model (eval mode is set).
        processor (`APTMProcessor`): tokenizer and image processor.
        k (`int`, *optional*): candidates re-ranked with ITM (default: `config.k_test`).
        fusion (`str`, *optional*, defaults to `"aptm"`): `"cosine"`, `"itm"` or `"aptm"` (see `aptm.retrieval.fusion`);
            `search` and `score_matrix` also take it per call.
        cosine_weight (`float`, *optional*): weight of the cosine in `"aptm"` fusion (default `config.itm_cosine_weight`).
        world_size (`int`, *optional*, defaults to 1): reproduce the original evaluator run on that many GPUs.
        batch_size (`int`, *optional*, defaults to 32): images or texts encoded at once.
        query_batch_size (`int`, *optional*, defaults to 8): queries re-ranked at once.
        autocast (`torch.dtype`, *optional*): e.g. `torch.bfloat16` for approximate, faster scoring.
        progress (`bool`, *optional*, defaults to `True`): show progress bars.
        kv_memory_limit (`int`, *optional*, defaults to 2 GiB): keep the whole gallery's cross-attention keys/values
            when they fit in this many bytes; otherwise compute them per query batch.
    """

    def __init__(self, model, processor, k=None, fusion="aptm", cosine_weight=None, world_size=1, batch_size=32,
                 query_batch_size=8, autocast=None, progress=True, kv_memory_limit=2**31):
        check_fusion(fusion)
        super().__init__(model, processor, batch_size=batch_size, autocast=autocast, progress=progress)
        self.k = k or model.config.k_test
        self.fusion = fusion
        self.cosine_weight = model.config.itm_cosine_weight if cosine_weight is None else cosine_weight
        self.world_size = world_size
        self.query_batch_size = query_batch_size
        self.kv_memory_limit = kv_memory_limit

    @torch.no_grad()
    def _cross_key_values(self, index, images):
        """Per fusion layer `(key, value)` `[len(images), heads, N, head_dim]` of gallery images."""
        with self._autocast():
            return self.model.fusion_model.cross_key_values(index.image_embeds[images].to(self.device))

    def _gallery_key_values(self, index):
        """Keys/values of the whole gallery when they fit in `kv_memory_limit` bytes, else None."""
        config = self.model.config.cross_config
        per_image = 2 * config.num_hidden_layers * index.image_embeds.shape[1] * config.hidden_size * 4
        if per_image * len(index) > self.kv_memory_limit:
            return None
        return self._cross_key_values(index, torch.arange(len(index)))

    @torch.no_grad()
    def _rerank(self, text_embeds, mask, candidates, index, gallery_kv):
        """ITM logits `[q, k]` of each query's candidates. Image keys/values come from `gallery_kv` (computed once for
        the gallery) or are computed once per query batch for its distinct candidates."""
        queries, k = candidates.shape
        if gallery_kv is None:
            images, slots = candidates.flatten().unique(return_inverse=True)
            kv = self._cross_key_values(index, images.cpu())
        else:
            slots, kv = candidates.flatten(), gallery_kv
        cross = tuple((key[slots], value[slots]) for key, value in kv)
        length = int(mask.sum(1).max())
        texts = text_embeds[:, :length].repeat_interleave(k, dim=0)
        with self._autocast():
            logits = self.model.itm_logits(texts, mask[:, :length].repeat_interleave(k, dim=0), cross_key_values=cross)
        return logits[:, 1].float().view(queries, k)

    def _score(self, texts, index, k, fusion):
        """Cosine matrix `[Q, G]`, top-k indices `[Q, k]` and their ITM logits `[Q, k]` (None without re-ranking)."""
        if not texts:
            raise ValueError("no query texts")
        gallery_features = index.image_features.to(self.device)
        cosine_rows, topk_rows, itm_rows = [], [], []
        rerank = fusion != "cosine"
        gallery_kv = self._gallery_key_values(index) if rerank else None
        encoded = self.encode_texts(list(texts))
        bar = self._bar(total=len(texts), iterable=None, description="re-ranking" if rerank else "scoring")
        for text_embeds, mask, features in encoded:
            cosine = features @ gallery_features.t()
            cosine_rows.append(cosine.cpu())
            if not rerank:
                bar.update(len(features))
                continue
            for start in range(0, len(features), self.query_batch_size):
                rows = slice(start, start + self.query_batch_size)
                top = cosine[rows].topk(k, dim=1).indices
                topk_rows.append(top.cpu())
                itm_rows.append(self._rerank(text_embeds[rows], mask[rows], top, index, gallery_kv).cpu())
                bar.update(top.shape[0])
        bar.close()
        cosine = torch.cat(cosine_rows)
        if not rerank:
            return cosine, None, None
        return cosine, torch.cat(topk_rows), torch.cat(itm_rows)

    def score_matrix(self, texts, index, fusion=None):
        """Final fused scores `[len(texts), len(index)]` (the evaluation path); `fusion` defaults to the engine's."""
        fusion = fusion or self.fusion
        check_fusion(fusion)
        k = min(self.k, len(index))
        cosine, topk, itm = self._score(texts, index, k, fusion)
        return fuse_scores(cosine, topk, itm, fusion, self.cosine_weight, self.world_size)

    def search(self, texts, index, top=10, fusion=None):
        """Ranked results for each query text: the top `top` gallery images after re-ranking. `fusion` (default: the
        engine's) is a setting of this call only."""
        fusion = fusion or self.fusion
        check_fusion(fusion)
        texts = [texts] if isinstance(texts, str) else list(texts)
        k = min(max(self.k, top), len(index)) if fusion != "cosine" else len(index)
        cosine, topk, itm = self._score(texts, index, k, fusion)
        final = fuse_scores(cosine, topk, itm, fusion, self.cosine_weight, self.world_size)
        logits = torch.full_like(cosine, float("nan"))
        if topk is not None:
            logits.scatter_(1, topk, itm)
        results = []
        for row, text in enumerate(texts):
            order = final[row].argsort(descending=True, stable=True)[:top]
            results.append(SearchResult(text, order.tolist(), final[row, order].tolist(), cosine[row, order].tolist(),
                                        logits[row, order].tolist()))
        return results

    def evaluate(self, texts, query_ids, index, ties="stable"):
        """Retrieval metrics (R@1/5/10, mAP, mINP) of captions `texts` with person ids `query_ids` against a gallery
        index with person ids. Returns `(metrics, score_matrix)`."""
        if index.person_ids is None:
            raise ValueError("the gallery index has no person_ids; pass them to encode_gallery")
        scores = self.score_matrix(texts, index)
        return retrieval_metrics(scores, np.asarray(query_ids), index.person_ids.numpy(), ties=ties), scores
