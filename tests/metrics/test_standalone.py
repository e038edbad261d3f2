"""The metric folders stand alone: copied without the project into an environment without it, each loads with
`evaluate.load(folder)` and gives the package's numbers (image-to-text too), its Space app builds evaluate's widget,
and published to the (fake) Hub as a metric Space it loads by id."""

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aptm.metrics import attribute_metrics, image_to_text_metrics, retrieval_metrics

from helpers.bare_environment import bare_python
from helpers.fake_hub import serve
from helpers.paths import REPO

RNG = np.random.default_rng(0)
GALLERY_IDS = [0, 1, 2, 0, 1, 2, 3, 3, 4, 4, 0, 1]
QUERY_IDS = [0, 1, 2, 3, 4, 0, 1, 2, 3]  # every gallery person is described, so both directions are defined
SCORES = RNG.normal(size=(9, 12)).round(4).tolist()
PREDICTIONS = RNG.integers(0, 2, (6, 4)).tolist()
LABELS = RNG.integers(-1, 2, (6, 4)).tolist()

COMPUTE = f"""
import importlib.util, json, sys
import evaluate
assert all(importlib.util.find_spec(name) is None for name in ("aptm", "retrieval_aptm"))
retrieval = evaluate.load(sys.argv[1])
attributes = evaluate.load(sys.argv[2])
json.dump({{"retrieval": retrieval.compute(predictions={SCORES}, references={QUERY_IDS}, gallery_ids={GALLERY_IDS},
                                           image_to_text=True),
           "attributes": attributes.compute(predictions={PREDICTIONS}, references={LABELS})}}, open("out.json", "w"))
"""


def expected():
    retrieval = retrieval_metrics(np.float32(SCORES), QUERY_IDS, GALLERY_IDS)
    retrieval.update(image_to_text_metrics(np.float32(SCORES), QUERY_IDS, GALLERY_IDS))
    return retrieval, attribute_metrics(PREDICTIONS, LABELS)


def run_bare(tmp_path, argv, env=None):
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", COMPUTE, *argv], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "home"),
                                                        **(env or {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"})})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text())


def test_image_to_text_is_the_transposed_ranking():
    scores, query_ids, gallery_ids = np.float32(SCORES), np.asarray(QUERY_IDS), np.asarray(GALLERY_IDS)
    got = image_to_text_metrics(scores, query_ids, gallery_ids)
    hits = [query_ids[np.argmax(scores[:, image])] == gallery_ids[image] for image in range(len(gallery_ids))]
    assert got["i2t_R@1"] == pytest.approx(100 * np.mean(hits)) and set(got) == {
        "i2t_R@1", "i2t_R@5", "i2t_R@10", "i2t_mAP", "i2t_mINP"}
    with pytest.raises(ValueError, match="no relevant gallery image"):  # person 4 has images but no text
        image_to_text_metrics(scores[:4], query_ids[:4], gallery_ids)


def test_folders_copied_alone_load_without_the_project(tmp_path):
    for name in ("text_person_retrieval", "pedestrian_attribute"):
        shutil.copytree(REPO / "metrics" / name, tmp_path / "copies" / name)
        assert (tmp_path / "copies" / name / "aptm_metrics.py").read_bytes() == (REPO / "aptm" / "metrics.py").read_bytes()
    out = run_bare(tmp_path, [str(tmp_path / "copies" / "text_person_retrieval"),
                              str(tmp_path / "copies" / "pedestrian_attribute")])
    retrieval, attributes = expected()
    assert out["retrieval"] == pytest.approx(retrieval)
    assert out["attributes"].pop("per_attribute_mA") == pytest.approx(attributes.pop("per_attribute_mA"))
    assert out["attributes"] == pytest.approx(attributes)


@pytest.mark.parametrize("name", ["text_person_retrieval", "pedestrian_attribute"])
def test_space_app_builds_the_widget(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(REPO / "metrics" / name, folder)
    front = (folder / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "- evaluate" in front and "- metric" in front
    assert {line.split("==")[0] for line in (folder / "requirements.txt").read_text().split()} == {
        "evaluate", "datasets", "numpy"}
    script = ("import evaluate.utils\n"
              "evaluate.utils.launch_gradio_widget = lambda module: print('widget for', module.name)\n"
              "exec(open('app.py').read())\n")
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", script], cwd=folder, capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "home"),
                                              "HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"widget for {name}" in result.stdout


def test_published_metric_spaces_load_by_id(tmp_path):
    server, url = serve(0, tmp_path / "hub")
    env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": url, "HF_TOKEN": "hf_fake", "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    try:
        for name in ("text_person_retrieval", "pedestrian_attribute"):
            push = subprocess.run([sys.executable, str(REPO / "scripts" / "publish_metric.py"),
                                   str(REPO / "metrics" / name), f"tester/{name}"],
                                  env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
            assert push.returncode == 0, push.stderr[-3000:]
            space = tmp_path / "hub" / "spaces" / "tester" / name
            assert (space / "aptm_metrics.py").read_text() == (REPO / "aptm" / "metrics.py").read_text()
        out = run_bare(tmp_path, ["tester/text_person_retrieval", "tester/pedestrian_attribute"], env)
    finally:
        server.shutdown()
    retrieval, attributes = expected()
    assert out["retrieval"] == pytest.approx(retrieval)
    assert out["attributes"].pop("per_attribute_mA") == pytest.approx(attributes.pop("per_attribute_mA"))
    assert out["attributes"] == pytest.approx(attributes)


def test_publishing_refuses_a_space_named_otherwise(tmp_path):
    from aptm.hub import push_metric

    with pytest.raises(ValueError, match="name the Space `<owner>/text_person_retrieval`"):
        push_metric(REPO / "metrics" / "text_person_retrieval", "tester/retrieval")
    with pytest.raises(FileNotFoundError, match="not a metric folder"):
        push_metric(tmp_path, "tester/x")


def test_evaluate_module_source_has_no_project_import():
    for name in ("text_person_retrieval", "pedestrian_attribute"):
        source = (REPO / "metrics" / name / f"{name}.py").read_text()
        assert "import aptm" not in source and "from aptm" not in source
        assert textwrap.dedent(source).count("from .aptm_metrics import") == 1
