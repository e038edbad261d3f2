"""Running an APTM model's encoders in batches: image tokens and features of images (and of a whole gallery, as a
`GalleryIndex`), text embeddings and features of captions. The retrieval engine and the attribute recogniser build
on it."""

from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from .index import GalleryIndex


class Encoder:
    r"""
    Batched, gradient-free encoding with an APTM model.

    Args:
        model (`APTMModel`): the model (eval mode is set).
        processor (`APTMProcessor`): tokenizer and image processor.
        batch_size (`int`, *optional*, defaults to 32): images or texts encoded at once.
        autocast (`torch.dtype`, *optional*): e.g. `torch.bfloat16` for approximate, faster scoring.
        progress (`bool`, *optional*, defaults to `True`): show progress bars.
    """

    def __init__(self, model, processor, batch_size=32, autocast=None, progress=True):
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size
        self.autocast = autocast
        self.progress = progress

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
    def encode_text_batch(self, texts):
        """`(text_embeds, attention_mask, features)` of one batch of texts, padded to its longest."""
        inputs = self.processor.tokenize(list(texts), padding="longest")
        ids, mask = inputs["input_ids"].to(self.device), inputs["attention_mask"].to(self.device)
        with self._autocast():
            embeds = self.model.text_model(ids, mask).last_hidden_state
            return embeds.float(), mask, self.model.text_features_from_embeds(embeds).float()

    def encode_texts(self, texts):
        """Per batch of `batch_size` texts: `(text_embeds, attention_mask, features)`, padded to the batch's
        longest."""
        return [self.encode_text_batch(texts[start : start + self.batch_size])
                for start in range(0, len(texts), self.batch_size)]
