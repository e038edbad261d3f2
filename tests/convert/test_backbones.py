"""Initialisation from public backbones: Swin checkpoints (timm and Microsoft layouts, window 7 tables resized),
BERT folders (the real MiniLM-L6), and both by Hub id (tiny random repositories served by the fake Hub). The
relative-position resize has its own tests."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import BertConfig, BertModel

from aptm.convert.backbones import from_vision_text_pretrained
from aptm.convert.relative_position import resize_relative_position_table
from aptm.factory import minilm_dir
from configuration_aptm import APTMConfig

from helpers.fake_hub import serve
from helpers.models import tiny_config
from helpers.paths import REPO

timm = pytest.importorskip("timm")


def timm_swin_arguments(config):
    """timm Swin arguments (window 7, 224 px) matching the widths of `config`'s image encoder."""
    vision = config.vision_config
    return {"embed_dim": vision.embed_dim, "depths": list(vision.depths), "num_heads": list(vision.num_heads),
            "num_classes": 10}


def timm_swin(config):
    return timm.create_model("swin_tiny_patch4_window7_224", **timm_swin_arguments(config))


def tiny_bert():
    return BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                                intermediate_size=64))


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
    bert = tiny_bert()
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


HUB_CLIENT = textwrap.dedent("""
    import sys
    import torch
    from aptm.convert.backbones import from_vision_text_pretrained
    from helpers.models import tiny_config

    model, notes = from_vision_text_pretrained(tiny_config(), swin="tester/tiny-swin", bert="tester/tiny-bert")
    torch.save({"state": model.state_dict(), "notes": notes}, sys.argv[1])
""")


def test_backbones_by_hub_id(tmp_path):
    """A Swin repository as timm publishes them (config.json with the architecture and arguments, safetensors)
    loaded with timm's Hub support, and a BERT repository loaded with transformers; offline but for the fake Hub."""
    config = tiny_config()
    swin, bert = timm_swin(config), tiny_bert()
    timm.models.save_for_hf(swin, tmp_path / "hub" / "models" / "tester" / "tiny-swin",
                            model_args=timm_swin_arguments(config), safe_serialization=True)
    bert.save_pretrained(tmp_path / "hub" / "models" / "tester" / "tiny-bert")
    server, url = serve(0, tmp_path / "hub")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=url, HF_HOME=str(tmp_path / "home"), HF_HUB_DISABLE_XET="1",
               PYTHONPATH=f"{REPO}:{REPO / 'tests'}")
    try:
        result = subprocess.run([sys.executable, "-c", HUB_CLIENT, str(tmp_path / "model.pt")], env=env,
                                capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    state = loaded["state"]
    torch.testing.assert_close(state["vision_model.layers.0.blocks.0.attn.qkv.weight"],
                               swin.state_dict()["layers.0.blocks.0.attn.qkv.weight"])
    assert any("(169, 1) -> (225, 1)" in note for note in loaded["notes"])  # the window-7 tables resized
    torch.testing.assert_close(state["text_model.encoder.layer.1.attention.self.query.weight"],
                               bert.encoder.layer[1].attention.self.query.weight)
    torch.testing.assert_close(state["fusion_model.layer.0.intermediate.dense.weight"],
                               bert.encoder.layer[2].intermediate.dense.weight)
