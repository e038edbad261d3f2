"""A checkpoint pushed to the (fake) Hub searches a gallery and recognises attributes by id in an environment that
has transformers, torch and Pillow but none of this project's code: the retrieval pipelines travel as remote code and
give the package engine's ranking."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aptm.retrieval import AttributeRecognizer, RetrievalEngine

from helpers.bare_environment import bare_python
from helpers.fake_hub import serve
from helpers.images import saved_person_images
from helpers.models import saved_checkpoint
from helpers.paths import REPO

QUERIES = ["a man in a red jacket", "a woman with a black bag"]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, processor):
    root = tmp_path_factory.mktemp("bare")
    folder = root / "checkpoint"
    model = saved_checkpoint(folder, processor, k_test=3)
    images = saved_person_images(root, 6)
    server, url = serve(0, root / "hub")
    env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": url, "HF_TOKEN": "hf_fake", "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(root / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(REPO)}
    push = subprocess.run([sys.executable, str(REPO / "scripts" / "push_to_hub.py"), str(folder), "tester/aptm-bare"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert push.returncode == 0, push.stderr[-3000:]
    yield root, env, model, images
    server.shutdown()


def test_pipelines_by_id_without_the_project(pushed, processor, tmp_path):
    root, env, model, images = pushed
    script = textwrap.dedent(f"""
        import importlib.util, json
        from PIL import Image
        from transformers import pipeline
        assert all(importlib.util.find_spec(name) is None for name in ("aptm", "retrieval_aptm", "modeling_aptm"))
        images = [Image.open({str(root)!r} + f"/{{i}}.png") for i in range(6)]
        search = pipeline("text-person-retrieval", model="tester/aptm-bare", trust_remote_code=True)
        gallery = search.encode_gallery(images)
        ranked = search({QUERIES!r}, gallery=gallery, top_k=6)
        dual = search({QUERIES[0]!r}, gallery=images, top_k=6, fusion="cosine")
        attributes = pipeline("pedestrian-attribute-recognition", model="tester/aptm-bare", trust_remote_code=True)
        json.dump({{"ranked": ranked, "dual": dual, "attributes": attributes(images[0], scoring="contrastive")}},
                  open("out.json", "w"))
    """)
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", script], env={**env, "PYTHONPATH": ""},
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    engine = RetrievalEngine(model, processor, progress=False)
    index = engine.encode_gallery(images)
    for got, expected in zip(out["ranked"], engine.search(QUERIES, index, top=6)):
        assert [r["index"] for r in got] == expected.indices
        np.testing.assert_allclose([r["score"] for r in got], expected.scores, atol=1e-5)
        assert all(r["itm_logit"] is not None for r in got)  # at least top_k candidates are re-ranked
    expected = engine.search(QUERIES[0], index, top=6, fusion="cosine")[0]
    assert [r["index"] for r in out["dual"]] == expected.indices and all(r["itm_logit"] is None for r in out["dual"])
    described = AttributeRecognizer(model, processor, scoring="contrastive", progress=False).describe(images[:1])[0]
    assert [(a["attribute"], a["statement"]) for a in out["attributes"]] == [(n, s) for n, s, _ in described]
    np.testing.assert_allclose([a["score"] for a in out["attributes"]], [p for *_, p in described], atol=1e-5)


def test_pipeline_arguments_are_checked(pushed):
    from pipeline_aptm import PedestrianAttributePipeline, TextPersonRetrievalPipeline

    _, _, model, images = pushed
    from aptm import build_processor

    search = TextPersonRetrievalPipeline(model=model, processor=build_processor())
    with pytest.raises(ValueError, match="pass gallery="):
        search("a man")
    with pytest.raises(ValueError, match="fusion must be one of"):
        search("a man", gallery=images, fusion="mean")
    attributes = PedestrianAttributePipeline(model=model, processor=build_processor())
    with pytest.raises(ValueError, match="scoring must be one of"):
        attributes(images[0], scoring="cosine")
    assert len(attributes(images[:2])) == 2 and len(attributes(images[0])) == 27
