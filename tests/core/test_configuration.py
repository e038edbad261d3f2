import pytest
import torch

from configuration_aptm import APTMConfig, APTMTextConfig, APTMVisionConfig
from modeling_aptm import APTMForPreTraining, APTMModel


def test_paper_preset_matches_the_original_geometry():
    config = APTMConfig.from_preset("aptm-base")
    vision = config.vision_config
    assert vision.image_size == [384, 128] and vision.patch_size == 4 and vision.embed_dim == 128
    assert vision.depths == [2, 2, 18, 2] and vision.num_heads == [4, 8, 16, 32] and vision.window_size == 8
    assert vision.drop_path_rate == 0.1 and vision.hidden_size == 1024 and vision.num_patches == 48
    assert config.text_config.num_hidden_layers == 6 and config.cross_config.num_hidden_layers == 6
    assert config.cross_config.encoder_hidden_size == 1024
    assert (config.embed_dim, config.temp, config.k_test, config.num_attributes) == (256, 0.07, 128, 27)
    assert not hasattr(config, "fusion_config")


def test_paper_size_parameter_count():
    with torch.device("meta"):
        model = APTMForPreTraining(APTMConfig.from_preset("aptm-base"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"aptm-base trainable parameters: {trainable / 1e6:.2f}M (paper: 214.5M)")
    assert abs(trainable / 1e6 - 214.5) < 0.1


def test_tiny_preset_builds_a_small_model():
    config = APTMConfig.from_preset("aptm-tiny")
    with torch.device("meta"):
        model = APTMModel(config)
    assert sum(p.numel() for p in model.parameters()) < 40e6
    assert config.text_config.hidden_size == 384  # MiniLM-L6 shaped, so its weights can initialise it


def test_round_trip_keeps_sub_configs(tmp_path):
    config = APTMConfig.from_preset("aptm-tiny", k_test=16)
    config.save_pretrained(tmp_path)
    loaded = APTMConfig.from_pretrained(tmp_path)
    assert isinstance(loaded.vision_config, APTMVisionConfig) and isinstance(loaded.cross_config, APTMTextConfig)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.k_test == 16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cross_config": {"hidden_size": 64, "num_attention_heads": 2}}, "cross_config.hidden_size"),
        ({"vision_config": {"image_size": (300, 128)}}, "divisible"),
        ({"vision_config": {"depths": [2, 2], "num_heads": [1]}}, "same length"),
        ({"text_config": {"hidden_size": 30, "num_attention_heads": 4}}, "multiple"),
        ({"text_config": 3}, "text_config must be"),
    ],
)
def test_invalid_configs_are_rejected(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        APTMConfig(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="aptm-tiny"):
        APTMConfig.from_preset("aptm-huge")
