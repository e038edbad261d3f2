"""The converter's handling of checkpoint layouts and bad input."""

import pickle
import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer

from aptm.convert.original_checkpoint import (ConversionError, convert_state_dict, infer_config,
                                              load_original_checkpoint, map_key)

from helpers.golden import golden_dir
from helpers.models import tiny_config
from helpers.original_layout import original_state_dict
from helpers.paths import REPO


def test_round_trip_of_a_bare_bert_checkpoint(tmp_path):
    config = tiny_config()
    model, state = original_state_dict(config, bare_bert=True)
    torch.save({"model": state, "config": {"test_file": "data/finetune/rstp_test.json", "k_test": 7}}, tmp_path / "c.pth")
    loaded, processor, report = load_original_checkpoint(tmp_path / "c.pth")
    assert loaded.config.k_test == 7
    assert processor.image_processor.image_mean[0] == pytest.approx(0.27722597)  # RSTPReid statistics
    assert any("num_attention_heads" in line for line in report.defaulted)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


@pytest.mark.parametrize("payload, message", [
    ([1, 2, 3], "holds a list"),
    ({"model": {"a": 1}}, "map names to tensors"),
    ({"conv1.weight": torch.zeros(2), "fc.bias": torch.zeros(2)}, "not an APTM checkpoint"),
])
def test_bad_payloads(tmp_path, payload, message):
    torch.save(payload, tmp_path / "bad.pth")
    with pytest.raises(ConversionError, match=message):
        load_original_checkpoint(tmp_path / "bad.pth")


def test_truncated_and_foreign_pickles(tmp_path):
    golden = golden_dir("C") / "checkpoint.pth"
    (tmp_path / "truncated.pth").write_bytes(golden.read_bytes()[:100_000])
    with pytest.raises(ConversionError, match="truncated"):
        load_original_checkpoint(tmp_path / "truncated.pth")
    (tmp_path / "object.pth").write_bytes(pickle.dumps(ConversionError("x")))
    with pytest.raises(ConversionError, match="could not read"):
        load_original_checkpoint(tmp_path / "object.pth")
    with pytest.raises(FileNotFoundError):
        load_original_checkpoint(tmp_path / "missing.pth")


def test_unmapped_missing_and_misshaped_tensors_are_named():
    config = tiny_config()
    _, state = original_state_dict(config)
    with pytest.raises(ConversionError, match="text_encoder.bert.pooler.dense.weight"):
        convert_state_dict({**state, "text_encoder.bert.pooler.dense.weight": torch.zeros(2)}, config)
    partial = {k: v for k, v in state.items() if not k.startswith("itm_head.3")}
    with pytest.raises(ConversionError, match="itm_head.3.bias"):
        convert_state_dict(partial, config)
    state["vision_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(ConversionError, match="vision_proj.weight"):
        convert_state_dict(state, config)


def test_config_is_inferred_from_shapes():
    config = tiny_config()
    _, state = original_state_dict(config)
    inferred = infer_config(state)
    assert inferred.vision_config.depths == config.vision_config.depths
    assert inferred.vision_config.num_heads == config.vision_config.num_heads
    assert inferred.text_config.num_hidden_layers == 2 and inferred.cross_config.num_hidden_layers == 2
    assert inferred.embed_dim == 16 and map_key("vision_encoder.layers.0.blocks.1.attn_mask", 2) is None


def test_cli_writes_a_folder(tmp_path):
    source = golden_dir("C") / "checkpoint.pth"
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_original_checkpoint.py"), str(source),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inferred  vision" in result.stdout
    assert f"tokenizer read from {source.parent / 'tokenizer'}" in result.stdout  # the config's text_encoder folder
    assert len(AutoTokenizer.from_pretrained(tmp_path / "out")) == 600
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "processor_config.json").is_file()


def test_checkpoint_without_mlm_head_gets_a_fresh_tied_head(tmp_path):
    config = tiny_config()
    model, state = original_state_dict(config)
    state = {k: v for k, v in state.items() if not k.startswith("text_encoder.cls.")}
    torch.save({"model": state}, tmp_path / "no_head.pth")
    loaded, _, report = load_original_checkpoint(tmp_path / "no_head.pth")
    assert any(line.startswith("mlm_head.* newly initialised") for line in report.defaulted)
    for name, tensor in model.state_dict().items():
        if not name.startswith("mlm_head."):
            assert torch.equal(loaded.state_dict()[name], tensor), name
    assert loaded.mlm_head.decoder.weight.data_ptr() == loaded.text_model.embeddings.word_embeddings.weight.data_ptr()
    partial = {k: v for k, v in state.items() if not k.startswith("itm_head.")}
    with pytest.raises(ConversionError, match="itm_head"):  # other missing tensors are still errors
        convert_state_dict(partial, config)


def test_folders_and_already_converted_checkpoints_are_named(tmp_path):
    from safetensors.torch import save_file

    config = tiny_config()
    model, state = original_state_dict(config)
    (tmp_path / "run").mkdir()
    torch.save({"model": state}, tmp_path / "run" / "checkpoint_best.pth")
    with pytest.raises(ConversionError, match=r"is a folder.*checkpoint_best\.pth"):
        load_original_checkpoint(tmp_path / "run")
    with pytest.raises(ConversionError, match="holds no .pth"):
        load_original_checkpoint(tmp_path)
    model.save_pretrained(tmp_path / "converted")
    with pytest.raises(ConversionError, match="already a converted APTM folder"):
        load_original_checkpoint(tmp_path / "converted")
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "mlm_head.decoder.weight"},
              tmp_path / "ours.safetensors")
    with pytest.raises(ConversionError, match="already has this project's tensor names"):
        load_original_checkpoint(tmp_path / "ours.safetensors")
