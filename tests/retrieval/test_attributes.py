"""Attribute recognition from prompt pairs: shapes and probabilities, the IAC logits of the contrastive scoring, and
the fused batch against the per-image loop (the original code's ITM prompt scores on the golden sets:
`tests/core/test_parity_golden.py`)."""

import pytest
import torch

import aptm
from aptm.retrieval import AttributeRecognizer
from aptm.retrieval.reference import per_image_attribute_scores

from helpers.images import person_image
from helpers.models import tiny_config


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    return aptm.APTMModel(tiny_config()).eval(), aptm.build_processor(), [person_image(i) for i in range(3)]


def test_attribute_recognition(setup):
    model, processor, images = setup
    recognizer = AttributeRecognizer(model, processor, batch_size=2, progress=False)
    scores = recognizer.prompt_scores(images[:3])
    predictions, probabilities = recognizer.recognize(images[:3])
    assert scores.shape == (3, 54) and predictions.shape == probabilities.shape == (3, 27)
    assert torch.equal(predictions.bool(), probabilities > 0.5)
    described = recognizer.describe(images[:1])[0]
    assert described[0][0] == "gender" and described[0][1] in processor.attribute_prompts[0]


def test_contrastive_attribute_scoring_is_the_iac_logit(setup):
    model, processor, images = setup
    recognizer = AttributeRecognizer(model, processor, scoring="contrastive", batch_size=2, progress=False)
    prompts = processor.encode_attribute_prompts()
    with torch.no_grad():
        prompt_features = model.get_text_features(prompts["input_ids"], prompts["attention_mask"]).pooler_output
        image_features = model.get_image_features(processor.image_processor(images[:3])["pixel_values"]).pooler_output
    expected = image_features @ prompt_features.t() / model.temp
    torch.testing.assert_close(recognizer.prompt_scores(images[:3]), expected, rtol=1e-5, atol=1e-5)
    predictions, probabilities = recognizer.recognize(images[:3])
    assert torch.equal(predictions, (expected[:, 1::2] > expected[:, 0::2]).long())
    itm = AttributeRecognizer(model, processor, progress=False)  # the ITM default, switched per call
    torch.testing.assert_close(itm.prompt_scores(images[:3], scoring="contrastive"), expected, rtol=1e-5, atol=1e-5)
    assert itm.scoring == "itm"
    with pytest.raises(ValueError, match="attribute scoring must be one of"):
        AttributeRecognizer(model, processor, scoring="cosine")
    with pytest.raises(ValueError, match="attribute scoring must be one of"):
        itm.prompt_scores(images[:1], scoring="cosine")


@pytest.mark.parametrize("batch_size", [1, 2, 32])
def test_fused_batch_equals_the_per_image_loop(setup, batch_size):
    """Scoring a batch of images against every prompt at once (keys/values once per image, prompt states shared)
    gives the per-image loop's scores, for batches that split the images or hold them all."""
    model, processor, images = setup
    recognizer = AttributeRecognizer(model, processor, batch_size=batch_size, progress=False)
    prompts = processor.encode_attribute_prompts()
    expected = per_image_attribute_scores(model, prompts["input_ids"], prompts["attention_mask"],
                                          processor.image_processor(images)["pixel_values"])
    scores = recognizer.prompt_scores(images)
    assert scores.shape == expected.shape == (3, 54)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(scores[0], scores[1])  # rows are not one image's copied


def test_fused_batch_with_remote_code_before_images_per_text(setup):
    """A checkpoint whose `itm_logits` has no `images_per_text` gets one prompt copy per pair: the same scores."""
    model, processor, images = setup

    class OlderModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def __getattr__(self, name):
            return getattr(super().__getattr__("inner"), name) if name != "inner" else super().__getattr__(name)

        def itm_logits(self, text_embeds, attention_mask, image_embeds=None, cross_key_values=None):
            return model.itm_logits(text_embeds, attention_mask, image_embeds, cross_key_values)

    older = AttributeRecognizer(OlderModel(), processor, batch_size=2, progress=False)
    assert not older._texts_shared
    expected = AttributeRecognizer(model, processor, batch_size=2, progress=False).prompt_scores(images)
    torch.testing.assert_close(older.prompt_scores(images), expected, rtol=1e-5, atol=1e-5)
