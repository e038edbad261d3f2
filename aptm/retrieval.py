"""Retrieval engine: encode a gallery once, search it with text (cosine top-k, then ITM re-ranking), score full
query x gallery matrices for evaluation, and recognise attributes through the ITM head (or the IAC similarities).

Score fusion (`fusion=`):
  * `"cosine"`: dual-encoder only, no re-ranking (fastest).
  * `"itm"`: the top-k candidates by cosine carry their ITM logit (index 1 = match); every other image gets -1000
    (the original evaluation until July 2023). Ties among the rest follow the metric's tie policy.
  * `"aptm"` (default): the original evaluator since August 2023. ITM logits of the top-k, other entries filled with
    the row minimum, the whole matrix min-max normalised, plus `cosine_weight` (0.002) x the min-max normalised cosine
    matrix. With `world_size=W > 1` the engine reproduces what the original computes on W GPUs: queries are split
    in W row blocks; on each process the rows it did not compute still hold the 1000 sentinel when it normalises, and
    the W matrices are summed. A row owned by a process whose minimum ITM logit is m then ranks by
    logit / (1000 - m) + W x 0.002 x normalised cosine, so the cosine weighs about W x (1000 - m) / (max - min)
    times more than on one GPU (two orders of magnitude for typical logit ranges): the paper's numbers were measured
    with W = 4.
Attribute scoring (`attribute_scoring=`): each attribute has two prompts (label value 0 and 1), and the prediction is
the value whose prompt scores higher.
  * `"itm"` (default): ITM logit[1] of each (image, prompt) pair through the fusion encoder, the original PA-100K
    evaluation.
  * `"contrastive"`: the IAC logits, image feature . prompt feature / temperature (dual encoder only, no fusion).
The efficient path gives the same scores as the original one-query-at-a-time procedure (`original_procedure_scores`,
kept as the reference): each gallery image's cross-attention keys/values are computed once and reused across queries,
queries are batched, and text is padded only to the batch's longest caption. Optional bf16 autocast
(`autocast=torch.bfloat16`) is faster on GPUs but approximate.
"""

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .metrics import attribute_predictions, retrieval_metrics

SENTINEL = 1000.0
FUSIONS = ("cosine", "itm", "aptm")
ATTRIBUTE_SCORINGS = ("itm", "contrastive")


def min_max(matrix):
    """Min-max normalise a whole matrix to [0, 1] (a constant matrix becomes zeros)."""
    low, high = matrix.min(), matrix.max()
    return (matrix - low) / (high - low) if high > low else torch.zeros_like(matrix)


def fuse_scores(cosine, topk_indices, topk_itm, fusion="aptm", cosine_weight=0.002, world_size=1):
    """Final `[Q, G]` scores from the cosine matrix and the ITM logits `[Q, k]` of the top-k candidates."""
    if fusion == "cosine":
        return cosine.clone()
    if fusion == "itm":
        return torch.full_like(cosine, -SENTINEL).scatter_(1, topk_indices, topk_itm)
    if fusion != "aptm":
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    itm = torch.full_like(cosine, SENTINEL).scatter_(1, topk_indices, topk_itm)
    itm = torch.where(itm == SENTINEL, topk_itm.min(dim=1, keepdim=True).values, itm)
    cosine_term = cosine_weight * min_max(cosine)
    step = len(cosine) // world_size + 1
    final = torch.zeros_like(cosine)
    for rank in range(world_size):
        on_rank = torch.full_like(cosine, SENTINEL)
        on_rank[rank * step : (rank + 1) * step] = itm[rank * step : (rank + 1) * step]
        final += min_max(on_rank) + cosine_term
    return final


@dataclass
class GalleryIndex:
    """Encoded gallery: normalised projected features `[G, E]` for ITC, the image tokens `[G, 1 + N, C]` the fusion
    encoder attends to, optional person ids and paths."""

    image_features: torch.Tensor
    image_embeds: torch.Tensor
    person_ids: torch.Tensor = None
    paths: list = field(default_factory=list)

    def __len__(self):
        return len(self.image_features)

    def save(self, folder):
        """Write `index.safetensors` and `index.json` (paths) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"image_features": self.image_features.contiguous(), "image_embeds": self.image_embeds.contiguous()}
        if self.person_ids is not None:
            tensors["person_ids"] = self.person_ids
        save_file(tensors, folder / "index.safetensors", metadata={"format": "pt"})
        (folder / "index.json").write_text(json.dumps({"size": len(self), "paths": list(self.paths)}))

    @classmethod
    def load(cls, folder):
        folder = Path(folder)
        for name in ("index.safetensors", "index.json"):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing: not a saved gallery index")
        tensors = load_file(folder / "index.safetensors")
        meta = json.loads((folder / "index.json").read_text())
        if meta["size"] != len(tensors["image_features"]):
            raise ValueError(f"{folder}: index.json describes {meta['size']} images, the tensors {len(tensors['image_features'])}")
        return cls(tensors["image_features"], tensors["image_embeds"], tensors.get("person_ids"), meta["paths"])

    def faiss_dataset(self):
        """A `datasets.Dataset` of the features with an inner-product FAISS index on column `features` (needs
        faiss-cpu); `engine.search(..., faiss=dataset)` then takes candidates from it."""
        import datasets
        import faiss

        dataset = datasets.Dataset.from_dict({"features": self.image_features.float().numpy()})
        dataset.add_faiss_index(column="features", metric_type=faiss.METRIC_INNER_PRODUCT)
        return dataset


@dataclass
class SearchResult:
    """Ranked gallery for one query: gallery indices best first, their final scores, cosine similarities and ITM
    logits (NaN where not re-ranked)."""

    query: str
    indices: list
    scores: list
    cosine: list
    itm_logits: list


class RetrievalEngine:
    r"""
    Text-to-person search and evaluation with an APTM model.

    Args:
        model (`APTMModel`): the model (eval mode is set).
        processor (`APTMProcessor`): tokenizer and image processor.
        k (`int`, *optional*): candidates re-ranked with ITM (default: `config.k_test`).
        fusion (`str`, *optional*, defaults to `"aptm"`): `"cosine"`, `"itm"` or `"aptm"` (see the module docstring).
        cosine_weight (`float`, *optional*): weight of the cosine in `"aptm"` fusion (default `config.itm_cosine_weight`).
        world_size (`int`, *optional*, defaults to 1): reproduce the original evaluator run on that many GPUs.
        batch_size (`int`, *optional*, defaults to 32): images or texts encoded at once.
        query_batch_size (`int`, *optional*, defaults to 8): queries re-ranked at once.
        autocast (`torch.dtype`, *optional*): e.g. `torch.bfloat16` for approximate, faster scoring.
        progress (`bool`, *optional*, defaults to `True`): show progress bars.
        kv_memory_limit (`int`, *optional*, defaults to 2 GiB): keep the whole gallery's cross-attention keys/values
            when they fit in this many bytes; otherwise compute them per query batch.
        attribute_scoring (`str`, *optional*, defaults to `"itm"`): `"itm"` or `"contrastive"` (see the module
            docstring).
    """

    def __init__(self, model, processor, k=None, fusion="aptm", cosine_weight=None, world_size=1, batch_size=32,
                 query_batch_size=8, autocast=None, progress=True, kv_memory_limit=2**31, attribute_scoring="itm"):
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if attribute_scoring not in ATTRIBUTE_SCORINGS:
            raise ValueError(f"attribute_scoring must be one of {ATTRIBUTE_SCORINGS}, got {attribute_scoring!r}")
        self.model = model.eval()
        self.processor = processor
        self.k = k or model.config.k_test
        self.fusion = fusion
        self.cosine_weight = model.config.itm_cosine_weight if cosine_weight is None else cosine_weight
        self.world_size = world_size
        self.batch_size = batch_size
        self.query_batch_size = query_batch_size
        self.autocast = autocast
        self.progress = progress
        self.kv_memory_limit = kv_memory_limit
        self.attribute_scoring = attribute_scoring

    @property
    def device(self):
        return self.model.device

    def _autocast(self):
        if self.autocast is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _bar(self, iterable, description, total=None):
        return tqdm(iterable, desc=description, total=total, disable=not self.progress, leave=False)

    @torch.no_grad()
    def encode_images(self, images):
        """Image tokens `[N, 1 + P, C]` and normalised features `[N, E]` of a list of images (PIL or arrays) or of
        `pixel_values`."""
        if isinstance(images, torch.Tensor):
            pixel_values = images.to(self.device)
        else:
            pixel_values = self.processor.image_processor(list(images))["pixel_values"].to(self.device)
        with self._autocast():
            embeds = self.model.vision_model(pixel_values).last_hidden_state
            return embeds.float(), self.model.image_features_from_embeds(embeds).float()

    def encode_gallery(self, images, person_ids=None, paths=None):
        """Encode a gallery once (in batches, with a progress bar). `images` is a sequence of PIL images or arrays, a
        `datasets.Dataset` with an `image` column, or a `pixel_values` tensor."""
        if hasattr(images, "column_names"):
            images = images["image"] if "image" in images.column_names else images
        total = len(images)
        if not total:
            raise ValueError("the gallery is empty")
        embeds, features = [], []
        for start in self._bar(range(0, total, self.batch_size), "encoding gallery",
                               total=(total + self.batch_size - 1) // self.batch_size):
            stop = min(start + self.batch_size, total)
            batch = images[start:stop] if isinstance(images, torch.Tensor) else [images[i] for i in range(start, stop)]
            batch_embeds, batch_features = self.encode_images(batch)
            embeds.append(batch_embeds.cpu())
            features.append(batch_features.cpu())
        if person_ids is not None and len(person_ids) != total:
            raise ValueError(f"person_ids has {len(person_ids)} entries for {total} gallery images")
        return GalleryIndex(torch.cat(features), torch.cat(embeds),
                            None if person_ids is None else torch.as_tensor(np.asarray(person_ids), dtype=torch.long),
                            list(paths or []))

    @torch.no_grad()
    def encode_texts(self, texts):
        """Per batch of texts: `(text_embeds, attention_mask, features)`, text padded to the batch's longest."""
        batches = []
        for start in range(0, len(texts), self.batch_size):
            inputs = self.processor.tokenize(texts[start : start + self.batch_size], padding="longest")
            ids, mask = inputs["input_ids"].to(self.device), inputs["attention_mask"].to(self.device)
            with self._autocast():
                embeds = self.model.text_model(ids, mask).last_hidden_state
                batches.append((embeds.float(), mask, self.model.text_features_from_embeds(embeds).float()))
        return batches

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

    def _score(self, texts, index, k):
        """Cosine matrix `[Q, G]`, top-k indices `[Q, k]` and their ITM logits `[Q, k]`."""
        if not texts:
            raise ValueError("no query texts")
        gallery_features = index.image_features.to(self.device)
        cosine_rows, topk_rows, itm_rows = [], [], []
        gallery_kv = None if self.fusion == "cosine" else self._gallery_key_values(index)
        encoded = self.encode_texts(list(texts))
        bar = self._bar(total=len(texts), iterable=None, description="re-ranking" if self.fusion != "cosine" else "scoring")
        for text_embeds, mask, features in encoded:
            cosine = features @ gallery_features.t()
            cosine_rows.append(cosine.cpu())
            if self.fusion == "cosine":
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
        if self.fusion == "cosine":
            return cosine, None, None
        return cosine, torch.cat(topk_rows), torch.cat(itm_rows)

    def score_matrix(self, texts, index):
        """Final fused scores `[len(texts), len(index)]` (the evaluation path)."""
        k = min(self.k, len(index))
        cosine, topk, itm = self._score(texts, index, k)
        return fuse_scores(cosine, topk, itm, self.fusion, self.cosine_weight, self.world_size)

    def search(self, texts, index, top=10):
        """Ranked results for each query text: the top `top` gallery images after re-ranking."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        k = min(max(self.k, top), len(index)) if self.fusion != "cosine" else len(index)
        cosine, topk, itm = self._score(texts, index, min(k, len(index)))
        final = fuse_scores(cosine, topk, itm, self.fusion, self.cosine_weight, self.world_size)
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

    @torch.no_grad()
    def prompt_scores(self, images):
        """Score of every (image, attribute prompt) pair `[N, 2A]` by `attribute_scoring`: raw ITM logit[1], as the
        original PA-100K evaluation, or the IAC logit."""
        prompts = self.processor.encode_attribute_prompts()
        ids, mask = prompts["input_ids"].to(self.device), prompts["attention_mask"].to(self.device)
        with self._autocast():
            prompt_embeds = self.model.text_model(ids, mask).last_hidden_state
            prompt_features = self.model.text_features_from_embeds(prompt_embeds).float()
        rows = []
        for start in self._bar(range(0, len(images), self.batch_size), "attributes",
                               total=(len(images) + self.batch_size - 1) // self.batch_size):
            image_embeds, image_features = self.encode_images(images[start : start + self.batch_size])
            if self.attribute_scoring == "contrastive":
                rows.extend((image_features @ prompt_features.t() / self.model.temp).cpu())
                continue
            with self._autocast():
                per_layer = self.model.fusion_model.cross_key_values(image_embeds)
                for row in range(len(image_embeds)):
                    cross = tuple((key[row : row + 1].expand(len(ids), -1, -1, -1), value[row : row + 1].expand(len(ids), -1, -1, -1))
                                  for key, value in per_layer)
                    rows.append(self.model.itm_logits(prompt_embeds, mask, cross_key_values=cross)[:, 1].float().cpu())
        return torch.stack(rows)

    def recognize_attributes(self, images):
        """Per-attribute predictions `[N, A]` (label value 1/0 of the processor's schema) and the probability of label
        value 1 (softmax over the two prompt scores) for each image."""
        scores = self.prompt_scores(images)
        predictions = torch.from_numpy(attribute_predictions(scores))
        probabilities = torch.stack([scores[:, 0::2], scores[:, 1::2]], dim=-1).softmax(-1)[..., 1]
        return predictions, probabilities

    def describe_attributes(self, images):
        """For each image, `[(attribute name, statement that holds, probability of that statement)]`."""
        predictions, probabilities = self.recognize_attributes(images)
        described = []
        for prediction, probability in zip(predictions.tolist(), probabilities.tolist()):
            described.append([
                (name, pair[value], p if value else 1 - p)
                for name, pair, value, p in zip(self.processor.attribute_names, self.processor.attribute_prompts,
                                                prediction, probability)
            ])
        return described


@torch.no_grad()
def original_procedure_scores(model, input_ids, attention_mask, image_embeds, image_features, k, cosine_weight=0.002):
    """The original evaluator, one query at a time (reference for tests and benchmarks): text padded to its full
    length, top-k images by cosine, ITM logit[1] of each (text, candidate) pair with image keys/values recomputed for
    every pair, then the single-process `"aptm"` fusion."""
    text_embeds = model.text_model(input_ids, attention_mask).last_hidden_state
    text_features = model.text_features_from_embeds(text_embeds)
    cosine = text_features @ image_features.t()
    scores = torch.full_like(cosine, SENTINEL)
    for row in range(len(cosine)):
        values, top = cosine[row].topk(k)
        logits = model.itm_logits(text_embeds[row : row + 1].repeat(k, 1, 1), attention_mask[row : row + 1].repeat(k, 1),
                                  image_embeds[top])
        scores[row, top] = logits[:, 1]
    scores = torch.where(scores == SENTINEL, scores.min(dim=1, keepdim=True).values, scores)
    return min_max(scores) + cosine_weight * min_max(cosine)
