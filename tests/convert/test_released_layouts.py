"""The converter on the layouts of the released checkpoints: the paper's geometry (Swin-B 384x128 with the window-4
last stage, BERT-base split 6 + 6) is inferred from shapes alone, and each task's saved config (CUHK, ICFG, RSTP,
PA-100K, MALS pretraining) selects the right normalisation, attribute schema and text length."""

import json

import pytest
import torch

from aptm.convert.original_checkpoint import (ConversionReport, convert_state_dict, dataset_of, infer_config,
                                              load_original_checkpoint)
from configuration_aptm import APTMConfig
from processing_aptm import DATASET_NORMALIZATION

from helpers.models import tiny_config
from helpers.original_layout import original_state_dict

# `checkpoint['config']` of the released fine-tuned models (Retrieval_cuhk.yaml): names, not numbers
CUHK_CONFIG = {"vision_config": "configs/config_swinB_384.json", "text_config": "configs/config_bert.json",
               "image_res": 384, "h": 384, "w": 128, "patch_size": 32, "embed_dim": 256, "temp": 0.07, "k_test": 128,
               "max_tokens": 56, "image_root": "images/CUHK-PEDES/", "test_file": "data/finetune/cuhk_test.json",
               "train_file": ["data/finetune/cuhk_train.json"], "eda": True, "LabelSmooth": 0}
BERT_BASE_JSON = {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "intermediate_size": 3072,
                  "hidden_act": "gelu", "layer_norm_eps": 1e-12, "vocab_size": 30522, "fusion_layer": 6,
                  "encoder_width": 1024}


@pytest.fixture(scope="module")
def paper_state_dict():
    """An original-layout state dict with the paper's shapes (zeros; the shapes are what is checked), including the
    buffers the original saves (rel-pos indices, shifted-window masks, BERT position ids)."""
    with torch.device("meta"):
        model, state = original_state_dict(APTMConfig.from_preset("aptm-base"))
    buffers = {"vision_encoder." + name[len("vision_model."):]: buffer for name, buffer in model.named_buffers()
               if name.startswith("vision_model.") and name.endswith(("relative_position_index", "attn_mask"))}
    buffers["text_encoder.bert.embeddings.position_ids"] = torch.zeros(1, 512, dtype=torch.long)
    state = {key: torch.zeros(value.shape, dtype=value.dtype) for key, value in {**state, **buffers}.items()}
    state["temp"] = torch.tensor(0.0625)
    return state


def test_paper_geometry_is_inferred_from_shapes(paper_state_dict):
    report = ConversionReport()
    config = infer_config(paper_state_dict, CUHK_CONFIG, checkpoint_dir="/nonexistent", report=report)
    base = APTMConfig.from_preset("aptm-base")
    for sub in ("vision_config", "text_config", "cross_config"):
        ours, paper = getattr(config, sub).to_dict(), getattr(base, sub).to_dict()
        differing = {key: (ours.get(key), paper[key]) for key in paper
                     if key not in ("drop_path_rate", "transformers_version") and ours.get(key) != paper[key]}
        assert not differing, (sub, differing)
    assert config.vision_config.depths == [2, 2, 18, 2] and config.vision_config.num_heads == [4, 8, 16, 32]
    assert (config.text_config.num_hidden_layers, config.cross_config.num_hidden_layers) == (6, 6)
    assert config.embed_dim == 256 and config.temp == 0.0625 and config.k_test == 128
    text = "\n".join(report.lines())
    assert "depths [2, 2, 18, 2], heads [4, 8, 16, 32], window 8" in text and "6 text + 6 fusion" in text
    assert "defaulted text num_attention_heads = 12 (paper value)" in text
    assert "config_bert.json not found next to the checkpoint" in text

    converted = convert_state_dict(paper_state_dict, config, report)
    assert converted["vision_model.layers.3.blocks.0.attn.relative_position_bias_table"].shape == (49, 32)
    assert converted["fusion_model.layer.5.crossattention.self.key.weight"].shape == (768, 1024)
    assert "mlm_head.decoder.weight" not in converted  # tied to the word embeddings, stored once
    assert report.dropped == ["text_encoder.bert.embeddings.position_ids", "text_encoder.cls.predictions.decoder.weight",
                              "vision_encoder.layers.N.blocks.N.attn.relative_position_index",
                              "vision_encoder.layers.N.blocks.N.attn_mask"]


def test_named_json_next_to_the_checkpoint_is_read(paper_state_dict, tmp_path):
    (tmp_path / "config_bert.json").write_text(json.dumps({**BERT_BASE_JSON, "num_attention_heads": 6}))
    report = ConversionReport()
    config = infer_config(paper_state_dict, CUHK_CONFIG, checkpoint_dir=tmp_path, report=report)
    assert config.text_config.num_attention_heads == 6 == config.cross_config.num_attention_heads
    assert f"text settings read from {tmp_path / 'config_bert.json'}" in "\n".join(report.lines())
    assert not any("num_attention_heads" in line for line in report.defaulted)


@pytest.mark.parametrize("overrides, dataset", [
    ({}, "cuhk-pedes"),
    ({"image_root": "images/ICFG-PEDES/", "test_file": "data/finetune/icfg_test.json"}, "icfg-pedes"),
    ({"image_root": "images/RSTPReid/", "test_file": "data/finetune/rstp_test.json"}, "rstpreid"),
    ({"image_root": "images/pa100k/release_data", "test_file": "data/finetune/PA100K_test.json"}, "pa100k"),
    # MALS pretraining evaluates on the CUHK-PEDES test set with the CUHK statistics
    ({"image_root": "images/MALS/", "train_file": ["data/gene_attrs/g_4x_attrs.json"]}, "cuhk-pedes"),
    ({"image_root": "images/MALS/", "test_file": None, "train_file": ["data/gene_attrs/g_4x_attrs.json"]}, "mals"),
])
def test_dataset_normalisation_follows_the_saved_config(overrides, dataset):
    report = ConversionReport()
    assert dataset_of({**CUHK_CONFIG, **overrides}, report) == dataset
    assert report.inferred and dataset in report.inferred[0]


def test_pa100k_and_mals_checkpoints_get_their_attribute_schema(tmp_path):
    config = tiny_config()
    _, state = original_state_dict(config)
    tasks = {
        "pa100k": {**CUHK_CONFIG, "pa100k": True, "max_tokens": 15, "image_root": "images/pa100k/release_data",
                   "test_file": "data/finetune/PA100K_test.json"},
        "mals": {**CUHK_CONFIG, "attr": True, "LabelSmooth": 0.4, "image_root": "images/MALS/"},
    }
    for name, task_config in tasks.items():
        torch.save({"model": state, "config": task_config}, tmp_path / f"{name}.pth")
    model, processor, _ = load_original_checkpoint(tmp_path / "pa100k.pth")
    assert model.config.num_attributes == 26 and len(processor.attribute_names) == 26
    assert processor.max_length == 15 and processor(text=["a man"])["input_ids"].shape == (1, 15)
    assert tuple(processor.image_processor.image_mean) == pytest.approx(DATASET_NORMALIZATION["pa100k"][0])
    model, processor, _ = load_original_checkpoint(tmp_path / "mals.pth")
    assert model.config.num_attributes == 27 and len(processor.attribute_prompts) == 27
    assert model.config.attribute_label_smoothing == 0.4
    assert tuple(processor.image_processor.image_std) == pytest.approx(DATASET_NORMALIZATION["cuhk-pedes"][1])
