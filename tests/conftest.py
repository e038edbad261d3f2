"""Shared fixtures: offline environment, a tiny APTM configuration, the real bert-base-uncased vocabulary and a few
generated pedestrian-like images (the helpers behind them live in `helpers/`)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

import aptm

from helpers.images import person_image
from helpers.models import tiny_config
from helpers.paths import load_script


def pytest_sessionstart(session):
    """The Space and the metric folders run from their own files: copy the package's current modules into them, as
    publishing does."""
    load_script("scripts/copy_library_files.py").main()


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture(scope="session")
def tokenizer():
    return aptm.load_tokenizer()


@pytest.fixture(scope="session")
def processor(tokenizer):
    return aptm.build_processor(tokenizer=tokenizer)


@pytest.fixture
def images():
    return [person_image(seed) for seed in range(3)]


@pytest.fixture
def batch(processor, images):
    texts = ["a woman in a red coat with a black backpack", "a man wearing blue jeans", "a child in a yellow dress"]
    inputs = processor(text=texts, images=images)
    torch.manual_seed(0)
    return inputs
