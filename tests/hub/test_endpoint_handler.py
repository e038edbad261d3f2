"""A checkpoint written by the model's own `save_pretrained` carries `handler.py` (with `handler_aptm.py`), which an
Inference Endpoint loads as the Hugging Face inference toolkit does (the file imported from the checkpoint folder on
`sys.path`, `EndpointHandler(folder)`, then called with each request's JSON) in an environment without this project:
base64 images and a text in, the pipeline's ranking out; bad requests get errors that name what is wrong."""

import base64
import io
import json
import subprocess
import textwrap

import pytest

from pipeline_aptm import TextPersonRetrievalPipeline

from handler_aptm import decode_image
from helpers.bare_environment import bare_python
from helpers.images import person_image
from helpers.models import saved_checkpoint

QUERIES = ["a man in a red jacket", "a woman with a black bag"]


def encoded(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_endpoint_handler_serves_the_pipelines_ranking(tmp_path, processor):
    folder = tmp_path / "checkpoint"
    model = saved_checkpoint(folder, processor, k_test=3)
    assert (folder / "handler.py").is_file() and (folder / "handler_aptm.py").is_file()
    images = [person_image(seed) for seed in range(5)]
    requests = [{"inputs": {"text": QUERIES[0], "images": [encoded(image) for image in images]},
                 "parameters": {"top_k": 4}},
                {"inputs": {"text": QUERIES, "images": ["data:image/png;base64," + encoded(images[0]),
                                                        *map(encoded, images[1:])]}},
                {"inputs": {"text": QUERIES[1], "images": [encoded(images[0]), "not an image"]}},
                {"inputs": {"text": QUERIES[1], "images": [encoded(images[0])]}, "parameters": {"top": 2}},
                {"text": QUERIES[1]}]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    script = textwrap.dedent(f"""
        import importlib.util, json, sys
        assert all(importlib.util.find_spec(name) is None for name in ("aptm", "modeling_aptm", "handler_aptm"))
        folder = {str(folder)!r}
        spec = importlib.util.spec_from_file_location("handler.EndpointHandler", folder + "/handler.py")
        sys.path.insert(0, folder)  # as the toolkit does, for the handler's own modules
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handler = module.EndpointHandler(folder)
        answers = []
        for request in json.load(open("requests.json")):
            try:
                answers.append(json.loads(json.dumps(handler(request))))  # what goes back over HTTP
            except ValueError as error:
                answers.append(str(error))
        json.dump(answers, open("answers.json", "w"))
    """)
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                                                         "HF_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads((tmp_path / "answers.json").read_text())

    search = TextPersonRetrievalPipeline(model=model.eval(), processor=processor)
    expected = [search(QUERIES[0], gallery=images, top_k=4), search(QUERIES, gallery=images)]
    for answer, ranked in zip(answers[:2], expected):
        assert json.dumps(answer) == json.dumps(ranked)
    assert len(answers[0]) == 4 and len(answers[1]) == 2 and len(answers[1][0]) == 5
    assert answers[2].startswith("inputs.images[1] is not a base64-encoded image")
    assert answers[3] == "unknown parameters ['top']; choose from ['top_k', 'k', 'fusion']"
    assert answers[4].startswith('the request must hold {"inputs"')


def test_decode_image_reads_plain_and_data_url_base64():
    image = person_image(7)
    for text in (encoded(image), "data:image/png;base64," + encoded(image)):
        assert decode_image(text, "x").tobytes() == image.convert("RGB").tobytes()
    with pytest.raises(ValueError, match="images\\[2\\] must be a base64 string, got int"):
        decode_image(3, "images[2]")
