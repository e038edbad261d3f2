"""Odd but valid inputs through the retrieval engine: images of 1x1 and 10000x10 pixels, CMYK, 16-bit grey, palette
with transparency, animated GIF (its first frame), EXIF-rotated JPEG; texts of 10,000 characters, in Chinese, with
emoji; galleries of 1 image and fewer images than asked for. Each is encoded or searched; empty texts and an empty
gallery are refused with an error that says so."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import aptm
from aptm.retrieval import RetrievalEngine

from helpers.images import person_image
from helpers.models import tiny_config


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return RetrievalEngine(aptm.APTMModel(tiny_config()).eval(), aptm.build_processor(), k=4, progress=False)


def reopened(image, **save_options):
    buffer = io.BytesIO()
    image.save(buffer, **save_options)
    buffer.seek(0)
    return Image.open(buffer)


def odd_images():
    person = person_image(0)
    frames = [person_image(seed).convert("P") for seed in range(3)]
    palette = person.convert("P")
    orientation = Image.Exif()
    orientation[0x0112] = 6  # rotated 90 degrees clockwise
    return {"1x1": Image.new("RGB", (1, 1), (200, 10, 10)), "10000x10": Image.new("RGB", (10000, 10), (9, 9, 200)),
            "CMYK": person.convert("CMYK"),
            "16-bit": Image.fromarray(np.asarray(person.convert("L")).astype(np.uint16) * 257),
            "palette with transparency": reopened(palette, format="PNG", transparency=0),
            "animated GIF": reopened(frames[0], format="GIF", save_all=True, append_images=frames[1:]),
            "EXIF-rotated": reopened(person, format="JPEG", exif=orientation)}


def test_odd_images_are_encoded(engine):
    images = odd_images()
    encoded = engine.encode_gallery(list(images.values()))
    assert encoded.image_features.shape[0] == len(images) and torch.isfinite(encoded.image_features).all()
    for row, image in enumerate(images.values()):  # one at a time or together: the same features
        alone = engine.encode_gallery([image]).image_features[0]
        torch.testing.assert_close(alone, encoded.image_features[row], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("text", ["x" * 10_000, "一个穿红色上衣的男人", "🧍 in a 👕 red shirt", "  a man  "])
def test_odd_texts_are_searched(engine, text):
    gallery = engine.encode_gallery([person_image(seed) for seed in range(3)])
    result = engine.search(text, gallery, top=10)[0]
    assert sorted(result.indices) == [0, 1, 2]  # k and top larger than the gallery: all of it, ranked


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_texts_are_refused(engine, text):
    gallery = engine.encode_gallery([person_image(0)])
    with pytest.raises(ValueError, match="text 0: empty text"):
        engine.search(text, gallery)


def test_galleries_of_one_and_none(engine):
    one = engine.encode_gallery([person_image(0)])
    assert engine.search("a man", one, top=5)[0].indices == [0]
    with pytest.raises(ValueError, match="the gallery is empty"):
        engine.search("a man", engine.encode_gallery([]))
