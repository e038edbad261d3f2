"""The remote code across the transformers versions `setup.cfg` allows: a checkpoint saved with the pinned version
loads and runs (AutoModel, AutoProcessor, the retrieval pipeline, all with trust_remote_code) under the lowest
allowed version, in a bare environment with a cached overlay of that version, and gives the pinned version's
features, ITM logits and search within 1e-5; the model card states the tested range."""

import configparser
import json
import re
import subprocess
import textwrap

import numpy as np
import torch
import transformers

from aptm.hub import TESTED_TRANSFORMERS, model_card
from modeling_aptm import APTMModel
from pipeline_aptm import TextPersonRetrievalPipeline

from helpers.bare_environment import bare_python
from helpers.images import saved_person_images
from helpers.models import saved_checkpoint, tiny_config
from helpers.overlay import overlay
from helpers.paths import REPO

LOWEST, PINNED = TESTED_TRANSFORMERS
# transformers' own requirements at its lowest allowed version, where the test environment's differ
LOWEST_OVERLAY = [f"transformers=={LOWEST}", "huggingface-hub>=1.3,<2", "tokenizers==0.22.2", "typer-slim"]
TEXTS = ["a man in a red jacket", "a woman with a black bag", "a child in a yellow dress"]


def test_tested_range_is_the_allowed_range_and_the_card_states_it(processor):
    options = configparser.ConfigParser()
    options.read(REPO / "setup.cfg")
    requirement = next(line for line in options["options"]["install_requires"].split("\n")
                       if line.startswith("transformers"))
    lower = re.search(r">=\s*([\d.]+)", requirement).group(1)
    assert tuple(map(int, LOWEST.split("."))) == tuple(map(int, (lower + ".0.0").split(".")[:3]))
    pinned = re.search(r"^transformers==(\S+)$", (REPO / "constraints" / "ci.txt").read_text(), re.M).group(1)
    assert PINNED == pinned == transformers.__version__
    assert f"transformers {LOWEST} to {PINNED}" in model_card(tiny_config(), processor)


def test_lowest_allowed_transformers_gives_the_pinned_outputs(tmp_path, processor):
    folder = tmp_path / "checkpoint"
    saved_checkpoint(folder, processor, k_test=3)
    images = saved_person_images(tmp_path, 4)
    script = textwrap.dedent(f"""
        import importlib.util, json
        import torch, transformers
        from PIL import Image
        from transformers import AutoModel, AutoProcessor, pipeline
        assert transformers.__version__ == {LOWEST!r}, transformers.__version__
        assert all(importlib.util.find_spec(name) is None for name in ("aptm", "modeling_aptm", "retrieval_aptm"))
        images = [Image.open({str(tmp_path)!r} + f"/{{i}}.png") for i in range(4)]
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        with torch.no_grad():
            outputs = model(**processor(text={TEXTS[:3]!r}, images=images[:3]))
        search = pipeline("text-person-retrieval", model={str(folder)!r}, trust_remote_code=True)
        ranked = search({TEXTS!r}, gallery=search.encode_gallery(images), top_k=4)
        json.dump({{"image_features": outputs.image_features.tolist(), "text_features": outputs.text_features.tolist(),
                    "itm_logits": outputs.itm_logits.tolist(), "ranked": ranked}}, open("out.json", "w"))
    """)
    lowest = overlay(f"transformers-{LOWEST}", LOWEST_OVERLAY)
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(lowest), "HF_HOME": str(tmp_path / "home"),
                                 "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    model = APTMModel.from_pretrained(folder).eval()  # what AutoModel loads, under the pinned version
    with torch.no_grad():
        expected = model(**processor(text=TEXTS[:3], images=images[:3]))
    for name in ("image_features", "text_features", "itm_logits"):
        np.testing.assert_allclose(out[name], getattr(expected, name).numpy(), atol=1e-5, err_msg=name)
    search = TextPersonRetrievalPipeline(model=model, processor=processor)
    for got, want in zip(out["ranked"], search(TEXTS, gallery=search.encode_gallery(images), top_k=4)):
        assert [r["index"] for r in got] == [r["index"] for r in want]
        np.testing.assert_allclose([[r["score"], r["cosine"]] for r in got],
                                   [[r["score"], r["cosine"]] for r in want], atol=1e-5)
        assert all(r["itm_logit"] is not None for r in got)
