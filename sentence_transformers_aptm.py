"""APTM for sentence-transformers, travelling with checkpoints as remote code (it imports only torch, transformers
and Pillow, and loads the model and processor through the Auto classes; sentence-transformers calls it by duck
typing), so that a Hub checkpoint works with nothing but `sentence-transformers` installed:

    from sentence_transformers import CrossEncoder, SentenceTransformer

    embedder = SentenceTransformer("<repo or folder>", trust_remote_code=True)
    queries = embedder.encode_query(["a woman in a red coat"])      # the model's normalised text features
    gallery = embedder.encode_document(images)                       # its normalised image features (PIL images)
    embedder.similarity(queries, gallery)                            # their cosines

    reranker = CrossEncoder("<repo or folder>", trust_remote_code=True)
    reranker.rank("a woman in a red coat", images)                   # ITM match logits, best first

A folder declares one sentence-transformers model type; a checkpoint declares `CrossEncoder`, whose module
(`APTMImageTextMatching`) needs this code, since sentence-transformers' own `Transformer` module takes (text, image)
pairs only as chat messages. `SentenceTransformer` loads such a folder through its documented conversion of another
model type ("Converting CrossEncoder model ... to SentenceTransformer", logged as a warning): its `Transformer` module
calls the model's `get_text_features` / `get_image_features`, whose `pooler_output` are the normalised features.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn
from transformers import AutoModel, AutoProcessor, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

# What `CrossEncoder` reads from a checkpoint folder: the model type and the activation on its scores (none: the
# scores are the ITM match logits the retrieval engine re-ranks by), and its one module, saved in the folder's root.
CONFIG_FILE = "config_sentence_transformers.json"
MODULES_FILE = "modules.json"


def sentence_transformers_files() -> dict[str, Any]:
    """The sentence-transformers files of a checkpoint folder, as `{file name: JSON content}`."""
    module = f"{__name__.rsplit('.', 1)[-1]}.{APTMImageTextMatching.__name__}"
    return {
        MODULES_FILE: [{"idx": 0, "name": "0", "path": "", "type": module}],
        CONFIG_FILE: {"model_type": "CrossEncoder", "activation_fn": "torch.nn.modules.linear.Identity",
                      "prompts": {}, "default_prompt_name": None},
    }


def write_sentence_transformers_files(folder: str | os.PathLike) -> None:
    """Write `sentence_transformers_files()` into the checkpoint `folder`, unless it holds a
    `config_sentence_transformers.json` already: sentence-transformers writes that file first when it saves a model
    (`SentenceTransformer.save`, `CrossEncoder.save`), then its modules (the model's `save_pretrained` among them),
    then `modules.json`, so the folder it saves keeps the model type it declares."""
    if os.path.exists(os.path.join(folder, CONFIG_FILE)):
        return
    for name, content in sentence_transformers_files().items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as file:
            json.dump(content, file, indent=2)


def split_pairs(pairs: Sequence[Sequence[Any]]) -> tuple[list[str], list[Image.Image]]:
    """The texts and images of (text, image) pairs (either order), or a `ValueError` naming the first bad pair."""
    texts, images = [], []
    for index, pair in enumerate(pairs):
        items = list(pair) if isinstance(pair, (list, tuple)) else []
        text = [item for item in items if isinstance(item, str)]
        image = [item for item in items if isinstance(item, Image.Image)]
        if len(items) != 2 or len(text) != 1 or len(image) != 1:
            raise ValueError(f"APTM scores (text, image) pairs: pair {index} is {pair!r}, expected a str and a PIL "
                             "image")
        texts += text
        images += image
    return texts, images


class APTMImageTextMatching(nn.Module):
    r"""
    The sentence-transformers `CrossEncoder` module of an APTM checkpoint: the ITM match logit (`itm_logits[:, 1]`)
    of each (text, image) pair, the score by which the retrieval engine re-ranks its cosine top-k.

    Args:
        model (`APTMModel`): the retrieval model (image and text encoders, fusion encoder, ITM head).
        processor (`APTMProcessor`): its processor (caption tokenisation and image preprocessing).

    It loads them through the Auto classes (the checkpoint's own code), so that this file has no relative imports of
    its own: transformers 5.0 brings into its module cache only the direct relative imports of `modeling_aptm`.
    """

    save_in_root = True
    modalities = [("image", "text")]

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin):
        super().__init__()
        self.model = model
        self.processor = processor

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The processor's tokenizer (what sentence-transformers' `CrossEncoder.tokenizer` gives)."""
        return self.processor.tokenizer

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
             trust_remote_code: bool = False, model_kwargs: dict[str, Any] | None = None, **kwargs: Any
             ) -> "APTMImageTextMatching":
        """The module of the checkpoint `model_name_or_path` (a folder or a Hub id), as sentence-transformers loads
        it; `model_kwargs` go to `AutoModel.from_pretrained`."""
        hub = {"subfolder": subfolder, "token": token, "cache_dir": cache_folder, "revision": revision,
               "local_files_only": local_files_only, "trust_remote_code": trust_remote_code}
        model = AutoModel.from_pretrained(model_name_or_path, **hub, **(model_kwargs or {})).eval()
        return cls(model, AutoProcessor.from_pretrained(model_name_or_path, **hub))

    def save(self, output_path: str, *args: Any, **kwargs: Any) -> None:
        """Write the checkpoint (model and processor) into `output_path` (safetensors always, as transformers 5
        saves)."""
        self.model.save_pretrained(output_path)
        self.processor.save_pretrained(output_path)

    def preprocess(self, inputs: Sequence[Sequence[Any]], prompt: str | None = None, **kwargs: Any
                   ) -> dict[str, torch.Tensor]:
        """Captions and images of (text, image) pairs as the model takes them (`prompt`, if any, prefixes each
        text)."""
        texts, images = split_pairs(inputs)
        if prompt:
            texts = [prompt + text for text in texts]
        return dict(self.processor(text=texts, images=images))

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        """`features` with `scores`: the ITM match logit of each pair."""
        logits = self.model(pixel_values=features["pixel_values"], input_ids=features["input_ids"],
                            attention_mask=features["attention_mask"], return_dict=True).itm_logits
        return {**features, "scores": logits[:, 1]}


__all__ = ["APTMImageTextMatching", "sentence_transformers_files", "split_pairs", "write_sentence_transformers_files"]
