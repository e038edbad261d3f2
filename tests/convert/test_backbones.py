"""Initialisation from public backbones: Swin checkpoints (timm and Microsoft layouts, window 7 tables resized),
BERT folders (the real MiniLM-L6). The relative-position resize has its own tests."""

import pytest
import torch

from aptm.convert.backbones import from_vision_text_pretrained
from aptm.convert.relative_position import resize_relative_position_table
from aptm.factory import minilm_dir
from configuration_aptm import APTMConfig

from helpers.models import tiny_config

timm = pytest.importorskip("timm")


def timm_swin(config):
    vision = config.vision_config
    return timm.models.swin_transformer.SwinTransformer(
        img_size=224, patch_size=4, window_size=7, embed_dim=vision.embed_dim, depths=vision.depths,
        num_heads=vision.num_heads, num_classes=10)


def microsoft_layout(state):
    """timm puts each PatchMerging at the start of the next stage; the Microsoft checkpoints at the end of the stage."""
    renamed = {}
    for key, value in state.items():
        if ".downsample." in key:
            stage = int(key.split(".")[1])
            key = key.replace(f"layers.{stage}.downsample", f"layers.{stage - 1}.downsample")
        renamed[key] = value
    return {"model": renamed}


@pytest.mark.parametrize("layout", ["timm", "microsoft"])
def test_swin_checkpoints_load_with_resized_tables(tmp_path, layout):
    config = tiny_config()
    swin = timm_swin(config).state_dict()
    path = tmp_path / "swin.pth"
    torch.save(swin if layout == "timm" else microsoft_layout(swin), path)
    model, notes = from_vision_text_pretrained(config, swin=path)
    assert any("resized" in note and "(169, 1) -> (225, 1)" in note for note in notes)
    assert any("(169, 2) -> (49, 2)" in note for note in notes)  # the window-4 stage
    for stage, size in ((0, 15), (3, 7)):  # the original's geometric-offset spline resize, not a plain bicubic one
        key = f"layers.{stage}.blocks.0.attn.relative_position_bias_table"
        torch.testing.assert_close(model.vision_model.layers[stage].blocks[0].attn.relative_position_bias_table,
                                   resize_relative_position_table(swin[key], size))
    torch.testing.assert_close(model.vision_model.layers[0].blocks[0].attn.qkv.weight,
                               swin["layers.0.blocks.0.attn.qkv.weight"])
    merging = "layers.1.downsample.reduction.weight"
    torch.testing.assert_close(model.vision_model.layers[0].downsample.reduction.weight, swin[merging])
    assert any(note.startswith("dropped head") for note in notes)


def test_swin_shape_mismatch_is_named(tmp_path):
    swin = timm_swin(tiny_config()).state_dict()
    config = tiny_config(vision_config={"embed_dim": 16, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2]})
    with pytest.raises(ValueError, match="patch_embed.proj.weight"):
        from_vision_text_pretrained(config, swin=swin)


def test_bert_random_folder_and_real_minilm(tmp_path):
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                intermediate_size=64))
    bert.save_pretrained(tmp_path / "bert")
    model, notes = from_vision_text_pretrained(tiny_config(), bert=tmp_path / "bert")
    torch.testing.assert_close(model.text_model.encoder.layer[1].attention.self.query.weight,
                               bert.encoder.layer[1].attention.self.query.weight)
    torch.testing.assert_close(model.fusion_model.layer[0].intermediate.dense.weight,
                               bert.encoder.layer[2].intermediate.dense.weight)  # BERT layer 2 = fusion layer 0
    assert any("crossattention" in note for note in notes)
    model, _ = from_vision_text_pretrained(APTMConfig.from_preset("aptm-tiny"), bert=minilm_dir())
    minilm = BertModel.from_pretrained(str(minilm_dir()))
    torch.testing.assert_close(model.text_model.encoder.layer[5].output.dense.weight,
                               minilm.encoder.layer[5].output.dense.weight)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        from_vision_text_pretrained(tiny_config(), bert=tmp_path)
