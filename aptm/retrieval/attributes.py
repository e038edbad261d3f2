"""Pedestrian attribute recognition with attribute prompts: each attribute of the processor's schema has two
prompts (label value 0 and 1), and the prediction is the value whose prompt scores higher (`scoring=`):

  * `"itm"` (default): ITM logit[1] of each (image, prompt) pair through the fusion encoder, the original PA-100K
    evaluation.
  * `"contrastive"`: the IAC logits, image feature . prompt feature / temperature (dual encoder only, no fusion).
"""

import torch

from ..metrics import attribute_predictions
from .encoding import Encoder

ATTRIBUTE_SCORINGS = ("itm", "contrastive")


def check_scoring(scoring):
    """Raise a `ValueError` naming the choices unless `scoring` is one of `ATTRIBUTE_SCORINGS`."""
    if scoring not in ATTRIBUTE_SCORINGS:
        raise ValueError(f"attribute scoring must be one of {ATTRIBUTE_SCORINGS}, got {scoring!r}")


class AttributeRecognizer(Encoder):
    r"""
    Attribute recognition with an APTM model and its processor's prompt schema.

    Args:
        model (`APTMModel`), processor (`APTMProcessor`), batch_size, autocast, progress: as `Encoder`.
        scoring (`str`, *optional*, defaults to `"itm"`): `"itm"` or `"contrastive"` (see the module docstring);
            every method also takes it per call.
    """

    def __init__(self, model, processor, scoring="itm", batch_size=32, autocast=None, progress=True):
        check_scoring(scoring)
        super().__init__(model, processor, batch_size=batch_size, autocast=autocast, progress=progress)
        self.scoring = scoring

    @torch.no_grad()
    def prompt_scores(self, images, scoring=None):
        """Score of every (image, attribute prompt) pair `[N, 2A]`: raw ITM logit[1], as the original PA-100K
        evaluation, or the IAC logit."""
        scoring = scoring or self.scoring
        check_scoring(scoring)
        prompts = self.processor.encode_attribute_prompts()
        ids, mask = prompts["input_ids"].to(self.device), prompts["attention_mask"].to(self.device)
        with self._autocast():
            prompt_embeds = self.model.text_model(ids, mask).last_hidden_state
            prompt_features = self.model.text_features_from_embeds(prompt_embeds).float()
        rows = []
        for start in self._bar(range(0, len(images), self.batch_size), "attributes",
                               total=(len(images) + self.batch_size - 1) // self.batch_size):
            image_embeds, image_features = self.encode_images(images[start : start + self.batch_size])
            if scoring == "contrastive":
                rows.extend((image_features @ prompt_features.t() / self.model.temp).cpu())
                continue
            with self._autocast():
                per_layer = self.model.fusion_model.cross_key_values(image_embeds)
                for row in range(len(image_embeds)):
                    cross = tuple((key[row : row + 1].expand(len(ids), -1, -1, -1),
                                   value[row : row + 1].expand(len(ids), -1, -1, -1)) for key, value in per_layer)
                    rows.append(self.model.itm_logits(prompt_embeds, mask, cross_key_values=cross)[:, 1].float().cpu())
        return torch.stack(rows)

    def recognize(self, images, scoring=None):
        """Per-attribute predictions `[N, A]` (label value 1/0 of the processor's schema) and the probability of label
        value 1 (softmax over the two prompt scores) for each image."""
        scores = self.prompt_scores(images, scoring)
        predictions = torch.from_numpy(attribute_predictions(scores))
        probabilities = torch.stack([scores[:, 0::2], scores[:, 1::2]], dim=-1).softmax(-1)[..., 1]
        return predictions, probabilities

    def describe(self, images, scoring=None):
        """For each image, `[(attribute name, statement that holds, probability of that statement)]`."""
        predictions, probabilities = self.recognize(images, scoring)
        described = []
        for prediction, probability in zip(predictions.tolist(), probabilities.tolist()):
            described.append([
                (name, pair[value], p if value else 1 - p)
                for name, pair, value, p in zip(self.processor.attribute_names, self.processor.attribute_prompts,
                                                prediction, probability)
            ])
        return described
