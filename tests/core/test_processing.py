import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from processing_aptm import (DATASET_NORMALIZATION, MALS_ATTRIBUTES, MALS_PROMPTS, PA100K_ATTRIBUTES, PA100K_PROMPTS,
                             APTMImageProcessor, APTMProcessor)


def test_text_has_cls_no_sep_and_is_padded(processor, tokenizer):
    out = processor(text=["A Woman in a RED coat.", "man"])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape == (2, 56)
    pieces = tokenizer("a woman in a red coat.", add_special_tokens=False)["input_ids"]
    assert ids[0, : len(pieces) + 1].tolist() == [tokenizer.cls_token_id] + pieces
    assert tokenizer.sep_token_id not in ids.tolist()[0] + ids.tolist()[1]
    assert mask[0].sum() == len(pieces) + 1 and ids[0, len(pieces) + 1 :].eq(tokenizer.pad_token_id).all()


def test_long_text_keeps_cls_and_55_pieces(processor, tokenizer):
    text = " ".join(["pedestrian"] * 80)
    ids = processor(text=text)["input_ids"][0]
    assert ids.tolist() == [tokenizer.cls_token_id] + [tokenizer.convert_tokens_to_ids("pedestrian")] * 55
    with pytest.raises(ValueError, match="exceed max_length"):
        processor.tokenize(text, truncation=False)


@pytest.mark.parametrize("text, error, message", [
    ("", ValueError, "text 0: empty"),
    (["a man", "   "], ValueError, "text 1: empty"),
    (["a man", 3], TypeError, "text 1: expected a string"),
    ([], TypeError, "non-empty list"),
    (None, ValueError, "pass text, images"),
])
def test_bad_text(processor, text, error, message):
    with pytest.raises(error, match=message):
        processor(text=text)


def test_pixels_are_bicubic_resized_and_normalised(processor):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 90, 3), dtype=np.uint8))
    pixels = processor(images=image)["pixel_values"]
    assert pixels.shape == (1, 3, 384, 128) and pixels.dtype == torch.float32
    mean, std = DATASET_NORMALIZATION["mals"]
    expected = np.asarray(image.resize((128, 384), Image.BICUBIC), dtype=np.float32) / 255
    expected = ((expected - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1)
    np.testing.assert_allclose(pixels[0].numpy(), expected, atol=1e-6)


def _image(mode):
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 20, 3), dtype=np.uint8))
    if mode == "I;16":
        return Image.fromarray(np.random.default_rng(1).integers(0, 65535, (40, 20), dtype=np.uint16))
    if mode == "P+transparency":
        palette = rgb.convert("P")
        palette.info["transparency"] = 0
        return palette
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "P+transparency", "RGBA", "CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_odd_image_modes_are_converted(processor, mode):
    pixels = processor(images=_image(mode))["pixel_values"]
    assert pixels.shape == (1, 3, 384, 128) and torch.isfinite(pixels).all()


def test_sixteen_bit_images_are_rescaled_not_clipped(processor):
    ramp = (np.linspace(0, 65535, 40 * 20).reshape(40, 20)).astype(np.uint16)
    as_16 = processor(images=Image.fromarray(ramp))["pixel_values"]
    as_8 = processor(images=Image.fromarray((ramp / 257).round().astype(np.uint8)))["pixel_values"]
    torch.testing.assert_close(as_16, as_8)


@pytest.mark.parametrize("array", [
    np.zeros((30, 10), dtype=np.uint8), np.zeros((30, 10, 1), dtype=np.uint8), np.ones((30, 10, 3), dtype=np.float32),
    np.zeros((30, 10, 4), dtype=np.uint16),
])
def test_numpy_images(processor, array):
    assert processor(images=array)["pixel_values"].shape == (1, 3, 384, 128)


@pytest.mark.parametrize("images, error, message", [
    ("photo.jpg", TypeError, "image 0: expected a PIL"),
    ([Image.new("RGB", (10, 10)), 5], TypeError, "image 1: expected a PIL"),
    (Image.new("RGB", (0, 10)), ValueError, "image 0: zero-size"),
    (np.zeros((0, 10, 3), dtype=np.uint8), ValueError, "zero-size"),
    (np.zeros((10, 10, 2), dtype=np.uint8), ValueError, "HxWxC"),
    ([], TypeError, "non-empty list"),
])
def test_bad_images(processor, images, error, message):
    with pytest.raises(error, match=message):
        processor(images=images)


def test_attribute_schemas():
    assert len(MALS_ATTRIBUTES) == len(MALS_PROMPTS) == 27
    assert len(PA100K_ATTRIBUTES) == len(PA100K_PROMPTS) == 26
    assert MALS_PROMPTS[3] == ("the person with a hat", "the person without a hat")
    assert PA100K_PROMPTS[19][1] == "there is stripe on the upper clothes of the person"  # the original's wording


def test_attribute_prompts(processor):
    assert len(processor.prompt_texts) == 54 and processor.prompt_texts[1] == "the person is a man"
    prompts = processor.encode_attribute_prompts()
    assert prompts["input_ids"].shape[0] == 54
    assert prompts["attention_mask"].sum(1).max() == prompts["input_ids"].shape[1]  # padded to the longest


def test_round_trip_with_auto_processor(tmp_path, tokenizer):
    processor = APTMProcessor.from_schema(APTMImageProcessor.for_dataset("pa100k"), tokenizer, "pa100k", max_length=40)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.attribute_names == list(PA100K_ATTRIBUTES) and loaded.max_length == 40
    assert loaded.image_processor.image_mean == list(DATASET_NORMALIZATION["pa100k"][0])
    text = ["a man with a shoulder bag"]
    image = Image.new("RGB", (64, 160), (10, 200, 30))
    expected, got = processor(text=text, images=image), loaded(text=text, images=image)
    assert torch.equal(expected["input_ids"], got["input_ids"])
    assert torch.equal(expected["pixel_values"], got["pixel_values"])


def test_schema_and_normalisation_errors(tokenizer):
    with pytest.raises(ValueError, match="unknown attribute schema"):
        APTMProcessor.from_schema(APTMImageProcessor(), tokenizer, "market")
    with pytest.raises(ValueError, match="unknown dataset"):
        APTMImageProcessor.for_dataset("market")
    with pytest.raises(ValueError, match="together"):
        APTMProcessor(APTMImageProcessor(), tokenizer, attribute_names=["a"])
    with pytest.raises(ValueError, match="pair per attribute"):
        APTMProcessor(APTMImageProcessor(), tokenizer, attribute_names=["a"], attribute_prompts=[["x"]])


def test_call_takes_images_then_text_and_processing_kwargs(processor):
    image = Image.new("RGB", (64, 160), (10, 200, 30))
    positional = processor(image, "a man")
    keywords = processor(text="a man", images=image)
    assert torch.equal(positional["input_ids"], keywords["input_ids"])
    assert torch.equal(positional["pixel_values"], keywords["pixel_values"])
    flat = processor(text="a man", images=image, max_length=20, do_normalize=False, return_tensors="np")
    nested = processor(text="a man", images=image, text_kwargs={"max_length": 20},
                       images_kwargs={"do_normalize": False}, return_tensors="np")
    assert isinstance(flat["input_ids"], np.ndarray) and flat["input_ids"].shape == (1, 20)
    np.testing.assert_array_equal(flat["pixel_values"], nested["pixel_values"])
    assert flat["pixel_values"].min() >= 0 and flat["pixel_values"].max() <= 1  # rescaled, not normalised
    assert processor(text="a man", padding="longest")["input_ids"].shape == (1, 3)
    assert processor.model_input_names == ["input_ids", "attention_mask", "pixel_values"]


def test_image_processor_options_and_tensor_images(processor):
    array = np.random.default_rng(0).integers(0, 256, (160, 64, 3), dtype=np.uint8)
    expected = processor.image_processor(array)["pixel_values"]
    chw = torch.from_numpy(array).permute(2, 0, 1)
    assert torch.equal(processor.image_processor(chw)["pixel_values"], expected)
    raw = processor.image_processor(array, do_resize=False, do_rescale=False, do_normalize=False)["pixel_values"]
    assert torch.equal(raw[0], torch.from_numpy(array).permute(2, 0, 1).float())
    rgba = np.dstack([array, np.full((160, 64), 255, np.uint8)])
    four = processor.image_processor(rgba, do_convert_rgb=False, image_mean=[0.5] * 4, image_std=[0.5] * 4)
    assert four["pixel_values"].shape == (1, 4, 384, 128)
    with pytest.raises(ValueError, match="image 0: 4 channels"):
        processor.image_processor(rgba, do_convert_rgb=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        processor.image_processor(array, do_sharpen=True)


def test_caption_length_is_the_tokenizers(tokenizer):
    processor = APTMProcessor.from_schema(APTMImageProcessor(), tokenizer, max_length=24)
    assert processor.tokenizer.model_max_length == processor.max_length == 24
    assert tokenizer.model_max_length != 24  # the caller's tokenizer is left as it was
    assert processor(text="a man")["input_ids"].shape == (1, 24)
