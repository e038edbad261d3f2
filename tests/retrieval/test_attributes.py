"""Attribute recognition from prompt pairs: shapes and probabilities, and the IAC logits of the contrastive scoring
(the original code's ITM prompt scores on the golden sets: `tests/core/test_parity_golden.py`)."""

import pytest
import torch

import aptm
from aptm.retrieval import AttributeRecognizer

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
