"""APTM pipelines, travelling with checkpoints as remote code (they import only torch, transformers, Pillow and the
other APTM files), so that a Hub checkpoint searches a gallery with nothing but `transformers` installed:

    from transformers import pipeline

    search = pipeline("text-person-retrieval", model="<repo or folder>", trust_remote_code=True)
    gallery = search.encode_gallery(images)                  # once: features and image tokens of every image
    search("a woman in a red coat with a black backpack", gallery=gallery, top_k=5)
    # [{"index": 12, "score": 1.0, "cosine": 0.41, "itm_logit": 3.2}, ...]

    attributes = pipeline("pedestrian-attribute-recognition", model="<repo or folder>", trust_remote_code=True)
    attributes(image)   # [{"attribute": "gender", "statement": "the person is a woman", "score": 0.93}, ...]

Retrieval follows the paper's procedure (`retrieval_aptm`): cosine top-k, ITM re-ranking with each image's
cross-attention keys/values computed once, and the original score fusion (`fusion="aptm"`, `"itm"` or `"cosine"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import Pipeline

try:  # remote code (a package in the Hub module cache)
    from .retrieval_aptm import (ATTRIBUTE_SCORINGS, FUSIONS, AttributeRecognizer, EncodedGallery, TextPersonSearch,
                                 check_choice)
except ImportError:  # installed top-level module
    from retrieval_aptm import (ATTRIBUTE_SCORINGS, FUSIONS, AttributeRecognizer, EncodedGallery, TextPersonSearch,
                                check_choice)


class _APTMPipeline(Pipeline):
    """What both APTM pipelines share: the processor is loaded (not a bare tokenizer or image processor), and the whole
    input is handled in one pass by the batched code of `retrieval_aptm`."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def preprocess(self, inputs):
        return inputs

    def postprocess(self, outputs):
        return outputs


class TextPersonRetrievalPipeline(_APTMPipeline):
    r"""
    Rank a gallery of pedestrian images by a text description (task `"text-person-retrieval"`).

    Call with a text or a list of texts and `gallery=` (an `EncodedGallery` from `encode_gallery`, or a list of
    images, encoded on every call). Options: `top_k` (results per text, default 10), `k` (candidates re-ranked with
    ITM, default the checkpoint's `k_test`), `fusion` (`"aptm"`, `"itm"` or `"cosine"`), `batch_size`.
    Returns, per text, a list of `{"index", "score", "cosine", "itm_logit"}` best first (`itm_logit` is None where
    a candidate was not re-ranked).
    """

    def _search(self, batch_size: int = 32, k: int | None = None) -> TextPersonSearch:
        return TextPersonSearch(self.model, self.processor, k=k, batch_size=batch_size, progress=False)

    def encode_gallery(self, images: Sequence[Image.Image] | torch.Tensor, batch_size: int = 32) -> EncodedGallery:
        """Encode a gallery once (image features and the image tokens the fusion encoder attends to)."""
        return self._search(batch_size).encode_gallery(images)

    def _sanitize_parameters(self, gallery=None, top_k=None, k=None, fusion=None, batch_size=None, **kwargs):
        forward = {"gallery": gallery, "top_k": top_k or 10, "k": k, "fusion": fusion or "aptm",
                   "batch_size": batch_size or 32}
        if fusion is not None:
            check_choice(fusion, FUSIONS, "fusion")
        return {}, forward, {}

    def __call__(self, texts: str | Sequence[str], **kwargs: Any) -> list[dict] | list[list[dict]]:
        single = isinstance(texts, str)
        results = super().__call__({"texts": [texts] if single else list(texts)}, **kwargs)
        return results[0] if single else results

    def _forward(self, inputs, gallery=None, top_k=10, k=None, fusion="aptm", batch_size=32):
        if gallery is None:
            raise ValueError("pass gallery=: images, or the EncodedGallery of pipe.encode_gallery(images)")
        search = self._search(batch_size, k)
        if not isinstance(gallery, EncodedGallery):
            gallery = search.encode_gallery(gallery)
        ranked = []
        for result in search.search(inputs["texts"], gallery, top=top_k, fusion=fusion):
            ranked.append([{"index": index, "score": score, "cosine": cosine,
                            "itm_logit": None if logit != logit else logit}  # NaN: not re-ranked
                           for index, score, cosine, logit in zip(result.indices, result.scores, result.cosine,
                                                                   result.itm_logits)])
        return ranked


class PedestrianAttributePipeline(_APTMPipeline):
    r"""
    Recognise the attributes of pedestrian images from the checkpoint's attribute prompts (task
    `"pedestrian-attribute-recognition"`).

    Call with an image or a list of images. Options: `scoring` (`"itm"`, the paper's, or `"contrastive"`),
    `batch_size`. Returns, per image, a list of `{"attribute", "statement", "score"}`: the statement that holds
    and its probability.
    """

    def _sanitize_parameters(self, scoring=None, batch_size=None, **kwargs):
        if scoring is not None:
            check_choice(scoring, ATTRIBUTE_SCORINGS, "attribute scoring")
        return {}, {"scoring": scoring or "itm", "batch_size": batch_size or 32}, {}

    def __call__(self, images: Image.Image | Sequence[Image.Image], **kwargs: Any) -> list[dict] | list[list[dict]]:
        single = not isinstance(images, (list, tuple))
        results = super().__call__({"images": [images] if single else list(images)}, **kwargs)
        return results[0] if single else results

    def _forward(self, inputs, scoring="itm", batch_size=32):
        recognizer = AttributeRecognizer(self.model, self.processor, scoring=scoring, batch_size=batch_size,
                                         progress=False)
        return [[{"attribute": name, "statement": statement, "score": probability}
                 for name, statement, probability in described]
                for described in recognizer.describe(inputs["images"])]


PIPELINES = {
    "text-person-retrieval": TextPersonRetrievalPipeline,
    "pedestrian-attribute-recognition": PedestrianAttributePipeline,
}



def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The `custom_pipelines` entry of a checkpoint's `config.json` through which `pipeline(task, model=...,
    trust_remote_code=True)` finds the tasks of `PIPELINES` in this file (travelling with the checkpoint)."""
    return {task: {"impl": f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}", "pt": ["AutoModel"],
                   "type": "multimodal"} for task, cls in PIPELINES.items()}


__all__ = ["PIPELINES", "PedestrianAttributePipeline", "TextPersonRetrievalPipeline", "custom_pipelines"]
