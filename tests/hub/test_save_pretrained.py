"""A checkpoint written by the model's own `save_pretrained` (and the processor's), with no library step after it,
carries the retrieval pipelines: a model loaded by id from the (fake) Hub in an environment without this project,
fine-tuned there by a loop of the user's own and saved plainly, serves `pipeline("text-person-retrieval", ...)` with
the package engine's ranking."""

import json
import shutil
import subprocess
import textwrap

import numpy as np
import torch

from aptm.retrieval import RetrievalEngine
from modeling_aptm import APTMModel
from pipeline_aptm import custom_pipelines

from helpers.bare_environment import bare_python
from helpers.fake_hub import serve
from helpers.images import saved_person_images
from helpers.models import saved_checkpoint

QUERIES = ["a man in a red jacket", "a woman with a black bag"]


def test_plain_save_pretrained_carries_the_pipelines(tmp_path, processor):
    hub = tmp_path / "hub"
    published = hub / "models" / "tester" / "aptm"
    saved_checkpoint(published, processor, k_test=3)
    images = saved_person_images(tmp_path, 5)
    out = tmp_path / "fine-tuned"
    script = textwrap.dedent(f"""
        import importlib.util, json
        import torch
        from PIL import Image
        from transformers import AutoModel, AutoProcessor
        assert all(importlib.util.find_spec(name) is None for name in ("aptm", "modeling_aptm", "pipeline_aptm"))
        images = [Image.open({str(tmp_path)!r} + f"/{{i}}.png") for i in range(5)]
        model = AutoModel.from_pretrained("tester/aptm", trust_remote_code=True)
        processor = AutoProcessor.from_pretrained("tester/aptm", trust_remote_code=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model.train()
        for _ in range(2):  # the user's own fine-tuning loop
            loss = model(**processor(text={QUERIES * 2 + QUERIES[:1]!r}, images=images), return_loss=True).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model.save_pretrained({str(out)!r})
        processor.save_pretrained({str(out)!r})
    """)
    search = textwrap.dedent(f"""
        import json
        from PIL import Image
        from transformers import pipeline
        images = [Image.open({str(tmp_path)!r} + f"/{{i}}.png") for i in range(5)]
        search = pipeline("text-person-retrieval", model={str(out)!r}, trust_remote_code=True)
        json.dump(search({QUERIES!r}, gallery=search.encode_gallery(images), top_k=5), open("ranked.json", "w"))
    """)
    server, url = serve(0, hub)
    try:
        env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": url, "HF_TOKEN": "hf_fake", "HF_HUB_DISABLE_XET": "1",
               "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
        python = bare_python(tmp_path / "venv")
        saved = subprocess.run([python, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                               timeout=600)
        assert saved.returncode == 0, saved.stderr[-3000:]
    finally:
        server.shutdown()
    shutil.rmtree(tmp_path / "home")  # the search runs from the saved folder alone, offline
    assert json.loads((out / "config.json").read_text())["custom_pipelines"] == custom_pipelines()
    assert (out / "pipeline_aptm.py").is_file() and (out / "retrieval_aptm.py").is_file()
    ranked = subprocess.run([python, "-c", search], env={**env, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    model = APTMModel.from_pretrained(out).eval()
    assert not torch.equal(model.text_proj.weight, APTMModel.from_pretrained(published).text_proj.weight)  # trained
    engine = RetrievalEngine(model, processor, progress=False)
    expected = engine.search(QUERIES, engine.encode_gallery(images), top=5)
    for got, want in zip(json.loads((tmp_path / "ranked.json").read_text()), expected):
        assert [r["index"] for r in got] == want.indices
        np.testing.assert_allclose([r["score"] for r in got], want.scores, atol=1e-5)
