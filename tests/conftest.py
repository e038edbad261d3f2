"""Shared fixtures: offline environment, a tiny APTM configuration, the real bert-base-uncased vocabulary and a few
generated pedestrian-like images."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest
import torch
from PIL import Image

import aptm
from configuration_aptm import APTMConfig

TINY = {
    "vision_config": {"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 2, 2], "drop_path_rate": 0.0},
    "text_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    "cross_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                     "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
    "embed_dim": 16,
}


def tiny_config(**overrides):
    """A full-geometry (384x128) APTM configuration small enough to run in milliseconds."""
    return APTMConfig(**{**TINY, **overrides})


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture(scope="session")
def tokenizer():
    return aptm.load_tokenizer()


@pytest.fixture(scope="session")
def processor(tokenizer):
    return aptm.build_processor(tokenizer=tokenizer)


def person_image(seed, size=(128, 384)):
    """A simple figure (head, torso, legs) in random colours on a noisy background."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(60, 200, (height, width, 3), dtype=np.uint8)
    torso, legs = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    pixels[height // 10 : height // 4, width // 3 : 2 * width // 3] = (230, 190, 160)
    pixels[height // 4 : height // 2 + 20, width // 4 : 3 * width // 4] = torso
    pixels[height // 2 + 20 : 9 * height // 10, width // 4 : 3 * width // 4] = legs
    return Image.fromarray(pixels)


@pytest.fixture
def images():
    return [person_image(seed) for seed in range(3)]


@pytest.fixture
def batch(processor, images):
    texts = ["a woman in a red coat with a black backpack", "a man wearing blue jeans", "a child in a yellow dress"]
    inputs = processor(text=texts, images=images)
    torch.manual_seed(0)
    return inputs
