"""The options that describe an MRA checkpoint (APTM's successor), each defaulting to APTM's behaviour: per-stage
Swin windows, the pooled BatchNorm projection head, [SEP]-terminated text, the CLIP normalisation and the test-time
flip of the retrieval engine."""

import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from aptm.retrieval import RetrievalEngine
from configuration_aptm import APTMConfig, APTMVisionConfig
from modeling_aptm import APTMModel, APTMPooledProjection, APTMVisionModel, chunk_means
from processing_aptm import DATASET_NORMALIZATION, APTMImageProcessor, APTMProcessor

from helpers.images import person_image
from helpers.models import tiny_config

MRA_VISION = {"image_size": [384, 256], "stage_window_sizes": [8, 8, 8, 4]}


def mra_config(**overrides):
    config = tiny_config(projection_head="pooled_batchnorm", test_time_flip=True, **overrides)
    config.vision_config = APTMVisionConfig(**{**config.vision_config.to_dict(), **MRA_VISION})
    return APTMConfig(**config.to_dict())


def test_defaults_are_aptm_s():
    config = APTMConfig()
    assert config.projection_head == "linear" and config.test_time_flip is False
    assert config.vision_config.stage_window_sizes is None
    assert isinstance(APTMModel(tiny_config()).vision_proj, torch.nn.Linear)


@pytest.mark.parametrize("field, value", [("projection_head", "mlp"), ("projection_dropout", 1.0),
                                          ("test_time_flip", "yes")])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


@pytest.mark.parametrize("windows", [[8, 8, 4], [8, 8, 8, 0]])
def test_bad_stage_windows_name_the_field(windows):
    with pytest.raises(ValueError, match="stage_window_sizes"):
        APTMVisionConfig(depths=[2, 2, 2, 2], num_heads=[1, 1, 1, 1], stage_window_sizes=windows)


def test_stage_windows_shift_every_stage_at_384x256():
    """MRA's [8, 8, 8, 4] shifts the 12x8 last stage by 2 (one window of 8 does not tile it); APTM's 384x128 keeps
    its stages 2 and 3 unshifted."""
    base = {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2], "image_size": [384, 256]}
    mra = APTMVisionModel(APTMVisionConfig(**base, stage_window_sizes=[8, 8, 8, 4]))
    aptm = APTMVisionModel(APTMVisionConfig(**{**base, "image_size": [384, 128]}))
    assert [(stage.blocks[1].window_size, stage.blocks[1].shift_size) for stage in mra.layers] == \
        [(8, 4), (8, 4), (8, 4), (4, 2)]
    assert [(stage.blocks[1].window_size, stage.blocks[1].shift_size) for stage in aptm.layers] == \
        [(8, 4), (8, 4), (8, 0), (4, 0)]
    with pytest.raises(ValueError, match="stage 3's 12x8 grid is not divisible by its window 8"):
        APTMVisionConfig(**base)
    assert tuple(mra.layers[3].blocks[1].attn_mask.shape) == (6, 16, 16)
    assert mra.layers[3].blocks[0].attn.relative_position_bias_table.shape[0] == 49


def test_chunk_means_are_adaptive_average_pooling_bins():
    tokens = torch.randn(2, 55, 3)
    bins = [(0, 19), (18, 37), (36, 55)]  # overlapping where 3 does not divide 55
    expected = torch.cat([tokens[:, start:stop].mean(1) for start, stop in bins], dim=1)
    torch.testing.assert_close(chunk_means(tokens), expected)


def test_pooled_projection_reads_the_chunks_and_the_first_token_of_text_only():
    image_head = APTMPooledProjection(4, 5, keep_first_token=False).eval()
    text_head = APTMPooledProjection(4, 5, keep_first_token=True).eval()
    tokens = torch.randn(3, 13, 4)
    changed_first = tokens.clone()
    changed_first[:, 0] += 1
    assert torch.equal(image_head(tokens), image_head(changed_first))  # the global image token is not read
    assert not torch.allclose(text_head(tokens), text_head(changed_first))  # [CLS] is
    assert text_head.pooled(tokens).shape == (3, 16) and image_head.pooled(tokens).shape == (3, 12)


def test_pooled_model_round_trips_with_its_batchnorm_statistics(tmp_path):
    torch.manual_seed(0)
    model = APTMModel(mra_config())
    for head in (model.vision_proj, model.text_proj):
        head.norm.running_mean.normal_()
        head.norm.running_var.uniform_(0.5, 2.0)
        head.norm.num_batches_tracked.fill_(40)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True).eval()
    assert loaded.config.projection_head == "pooled_batchnorm" and loaded.config.test_time_flip is True
    assert loaded.config.vision_config.stage_window_sizes == [8, 8, 8, 4]
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(loaded.vision_proj.norm, name), getattr(model.vision_proj.norm, name))
    pixels, ids = torch.randn(2, 3, 384, 256), torch.randint(1000, 2000, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded.get_image_features(pixels).pooler_output,
                                   model.eval().get_image_features(pixels).pooler_output)
        torch.testing.assert_close(loaded.get_text_features(ids).pooler_output,
                                   model.get_text_features(ids).pooler_output)


def test_sep_terminated_text_and_its_round_trip(tmp_path, tokenizer):
    processor = APTMProcessor.from_schema(APTMImageProcessor.for_dataset("clip"), tokenizer, max_length=8,
                                          add_sep_token=True)
    encoded = processor(text=["a man with a black backpack and red shoes walking", "a woman"])
    ids = encoded["input_ids"].tolist()
    assert ids[0][0] == tokenizer.cls_token_id and ids[0][-1] == tokenizer.sep_token_id  # 6 pieces kept of 10
    assert ids[1][:4] == [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(["a", "woman"]),
                          tokenizer.sep_token_id]
    assert encoded["attention_mask"][1].tolist() == [1] * 4 + [0] * 4
    with pytest.raises(ValueError, match="exceed max_length"):
        processor.tokenize("a man with a black backpack and red shoes", truncation=False)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.add_sep_token is True
    assert loaded.image_processor.image_mean == list(DATASET_NORMALIZATION["clip"][0])
    with pytest.raises(ValueError, match="add_sep_token"):
        APTMProcessor(APTMImageProcessor(), tokenizer, add_sep_token="yes")


def test_engine_flip_encodes_mirrored_views_and_fuses_both(tokenizer):
    torch.manual_seed(0)
    model = APTMModel(mra_config()).eval()
    processor = APTMProcessor(APTMImageProcessor.for_dataset("clip", size={"height": 384, "width": 256}), tokenizer,
                              add_sep_token=True)
    gallery_images = [person_image(seed) for seed in range(3)]
    texts = ["a woman in a red coat", "a man in blue jeans with a backpack"]
    engine = RetrievalEngine(model, processor, k=2, progress=False)
    assert engine.test_time_flip is True  # from the config
    gallery = engine.encode_gallery(gallery_images)
    pixels = processor(images=gallery_images)["pixel_values"]
    with torch.no_grad():
        plain = model.get_image_features(pixels).pooler_output
        mirrored = model.get_image_features(pixels.flip(-1)).pooler_output
        torch.testing.assert_close(gallery.flipped_image_embeds, model.vision_model(pixels.flip(-1)).last_hidden_state)
    torch.testing.assert_close(gallery.image_features, (plain + mirrored) / 2)
    cosine, topk, itm = engine.rank(texts, gallery)
    assert itm.shape == (2, 2, 2)
    no_flip = RetrievalEngine(model, processor, k=2, progress=False, test_time_flip=False)
    single = no_flip.encode_gallery(gallery_images)
    assert single.flipped_image_embeds is None
    _, plain_topk, plain_itm = no_flip.rank(texts, single)
    assert plain_itm.shape == (2, 2)
    # the plain view's logits are those of the one-view engine where the candidates agree
    same = (topk == plain_topk).all(dim=1)
    torch.testing.assert_close(itm[same][..., 0], plain_itm[same])
    with pytest.raises(ValueError, match="one view"):
        gallery.save("unused")


def test_an_image_flipped_as_a_pil_source_matches_the_flipped_pixels(tokenizer):
    """Mirroring the preprocessed pixels equals mirroring the source image before the bicubic resize (MRA's order)
    for an image whose resize is symmetric."""
    image = person_image(0)
    processor = APTMImageProcessor.for_dataset("clip", size={"height": 384, "width": 256})
    flipped_source = processor(images=image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))["pixel_values"]
    torch.testing.assert_close(processor(images=image)["pixel_values"].flip(-1), flipped_source, atol=0.02, rtol=0)
