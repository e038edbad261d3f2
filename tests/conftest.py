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


if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the suite in one pytest-xdist worker per core: each worker, and the processes its tests start,
    # computes on one thread, so that the workers do not fight over the cores
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_sessionstart(session):
    """The Space and the metric folders run from their own files: copy the package's current modules into them, as
    publishing does (once, before pytest-xdist's workers start)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
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
