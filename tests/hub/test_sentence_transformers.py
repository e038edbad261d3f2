"""A checkpoint written by the model's own `save_pretrained` serves sentence-transformers in an environment with only
sentence-transformers and what it installs (a bare environment with a cached overlay of it, without this project):
`SentenceTransformer` encodes queries and documents (images) as the model's normalised features and `similarity` gives
their cosines; `CrossEncoder` scores (text, image) pairs with the ITM match logit, and `util.semantic_search` then
`CrossEncoder.rank` orders the top k as the engine's ITM re-ranking does; from the folder and by id from the (fake)
Hub. What sentence-transformers' own `save` writes loads again as the model type it saved."""

import json
import subprocess
import textwrap

import numpy as np
import pytest
import torch

from aptm.retrieval import RetrievalEngine
from modeling_aptm import APTMModel
from sentence_transformers_aptm import sentence_transformers_files, split_pairs

from helpers.bare_environment import bare_python
from helpers.fake_hub import serve
from helpers.images import person_image, saved_person_images
from helpers.models import saved_checkpoint
from helpers.sentence_transformers_overlay import sentence_transformers_packages

QUERIES = ["a man in a red jacket", "a woman with a black bag"]
GALLERY = 5
K = 3  # the checkpoint's k_test: candidates re-ranked by ITM

SCRIPT = """
import importlib.util, json, sys
import numpy as np
from PIL import Image
from sentence_transformers import CrossEncoder, SentenceTransformer, util
assert all(importlib.util.find_spec(name) is None for name in ("aptm", "modeling_aptm", "sentence_transformers_aptm"))
source, queries, k = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
images = [Image.open(f"{{i}}.png") for i in range({gallery})]
embedder = SentenceTransformer(source, trust_remote_code=True, device="cpu")
query_embeddings = embedder.encode_query(queries, convert_to_tensor=True)
image_embeddings = embedder.encode_document(images, convert_to_tensor=True)
reranker = CrossEncoder(source, trust_remote_code=True, device="cpu")
ranked = []
for query, hits in zip(queries, util.semantic_search(query_embeddings, image_embeddings, top_k=k)):
    candidates = [hit["corpus_id"] for hit in hits]
    ranked.append([{{"index": candidates[r["corpus_id"]], "score": r["score"]}}
                   for r in reranker.rank(query, [images[c] for c in candidates])])
pairs = [(query, image) for query in queries for image in images]
embedder.save("saved-embedder")  # sentence-transformers' own saves keep the model type each declares
reranker.save("saved-reranker")
resaved_embedder = SentenceTransformer("saved-embedder", trust_remote_code=True, device="cpu")
resaved_reranker = CrossEncoder("saved-reranker", trust_remote_code=True, device="cpu")
shape = (len(queries), len(images))
np.savez("outputs.npz", text=query_embeddings.numpy(), image=image_embeddings.numpy(),
         similarity=embedder.similarity(query_embeddings, image_embeddings).numpy(),
         pair_scores=reranker.predict(pairs).reshape(shape), resaved_image=resaved_embedder.encode_document(images),
         resaved_pair_scores=resaved_reranker.predict(pairs).reshape(shape))
types = {{name: json.load(open(f"{{name}}/config_sentence_transformers.json"))["model_type"]
         for name in ("saved-embedder", "saved-reranker")}}
json.dump({{"ranked": ranked, "saved_types": types}}, open("ranked.json", "w"))
"""


@pytest.mark.parametrize("source", ["folder", "hub"])
def test_sentence_transformers_alone_match_the_model(tmp_path, processor, source):
    hub = tmp_path / "hub"
    folder = hub / "models" / "tester" / "aptm"
    saved_checkpoint(folder, processor, k_test=K)
    images = saved_person_images(tmp_path, GALLERY)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(sentence_transformers_packages()),
           "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    server = None
    if source == "hub":
        server, url = serve(0, hub)
        env.update(HF_ENDPOINT=url, HF_TOKEN="hf_fake", HF_HUB_DISABLE_XET="1")
    else:
        env["HF_HUB_OFFLINE"] = "1"
    try:
        result = subprocess.run(
            [bare_python(tmp_path / "venv"), "-c", SCRIPT.format(gallery=GALLERY),
             "tester/aptm" if source == "hub" else str(folder), json.dumps(QUERIES), str(K)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    finally:
        if server is not None:
            server.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")

    model = APTMModel.from_pretrained(folder).eval()
    with torch.no_grad():
        text = model.get_text_features(**processor(text=QUERIES)).pooler_output
        image = model.get_image_features(**processor(images=images)).pooler_output
        pairs = processor(text=[q for q in QUERIES for _ in images], images=images * len(QUERIES))
        itm = model(**pairs).itm_logits[:, 1].view(len(QUERIES), GALLERY)
    np.testing.assert_allclose(outputs["text"], text.numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["image"], image.numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["similarity"], (text @ image.T).numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["pair_scores"], itm.numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["resaved_image"], image.numpy(), atol=1e-5)
    np.testing.assert_allclose(outputs["resaved_pair_scores"], itm.numpy(), atol=1e-5)
    ranked = json.loads((tmp_path / "ranked.json").read_text())
    assert ranked["saved_types"] == {"saved-embedder": "SentenceTransformer", "saved-reranker": "CrossEncoder"}

    engine = RetrievalEngine(model, processor, progress=False)
    expected = engine.search(QUERIES, engine.encode_gallery(images), top=K, fusion="itm")
    assert len(ranked["ranked"]) == len(expected) == len(QUERIES)
    for got, want in zip(ranked["ranked"], expected):
        assert [r["index"] for r in got] == want.indices
        np.testing.assert_allclose([r["score"] for r in got], want.itm_logits, atol=1e-5)


def test_checkpoint_declares_the_cross_encoder_module(tmp_path, processor):
    saved_checkpoint(tmp_path, processor)
    for name, content in sentence_transformers_files().items():
        assert json.loads((tmp_path / name).read_text()) == content
    assert json.loads((tmp_path / "modules.json").read_text())[0]["type"] == \
        "sentence_transformers_aptm.APTMImageTextMatching"
    assert (tmp_path / "sentence_transformers_aptm.py").is_file()


def test_save_leaves_the_model_type_sentence_transformers_declared(tmp_path, processor):
    """sentence-transformers writes `config_sentence_transformers.json` before saving its modules."""
    (tmp_path / "config_sentence_transformers.json").write_text('{"model_type": "SentenceTransformer"}')
    saved_checkpoint(tmp_path, processor)
    assert json.loads((tmp_path / "config_sentence_transformers.json").read_text()) == \
        {"model_type": "SentenceTransformer"}
    assert not (tmp_path / "modules.json").exists()


def test_pairs_must_hold_a_text_and_an_image():
    image = person_image(0)
    assert split_pairs([("a man", image), (image, "a woman")]) == (["a man", "a woman"], [image, image])
    with pytest.raises(ValueError, match="pair 1 is .* expected a str and a PIL image"):
        split_pairs([("a man", image), ("a man", "a woman")])
