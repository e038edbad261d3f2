"""A converted original checkpoint, loaded through `AutoModel`/`AutoProcessor` with the folder's own remote code in a
fresh process, runs retrieval from the raw PNGs and raw captions and reproduces the original evaluator's score
matrix (1e-4), ranking and metrics."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aptm.convert.original_checkpoint import convert_checkpoint

from helpers.golden import GOLDEN_SETS, golden_dir, images_dir
from helpers.paths import REPO


RETRIEVAL = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    folder, golden, images, out = sys.argv[1:]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
    from aptm.retrieval import RetrievalEngine  # imported after loading, so the remote classes stay in use

    inputs, meta = np.load(f"{golden}/inputs.npz"), json.load(open(f"{golden}/inputs.json"))
    pictures = [Image.open(f"{images}/img{i}.png") for i in range(len(inputs["image_pids"]))]
    engine = RetrievalEngine(model, processor, progress=False, batch_size=3)
    index = engine.encode_gallery(pictures, person_ids=inputs["image_pids"])
    metrics, scores = engine.evaluate(meta["captions_raw"], inputs["caption_pids"], index)
    np.save(f"{out}/scores.npy", scores.matrix().numpy())
    json.dump({"metrics": metrics, "k": engine.k}, open(f"{out}/result.json", "w"))
""")


@pytest.mark.parametrize("name", GOLDEN_SETS)
def test_converted_folder_retrieves_like_the_original_evaluator(name, tmp_path):
    folder = golden_dir(name)
    convert_checkpoint(folder / "checkpoint.pth", tmp_path / "converted")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", RETRIEVAL, str(tmp_path / "converted"), str(folder),
                          str(images_dir(folder)), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    scores, expected = np.load(tmp_path / "scores.npy"), np.load(folder / "eval.npz")
    assert result["k"] == 2  # k_test of the original config travels with the converted checkpoint
    np.testing.assert_allclose(scores, expected["score_t2i"], atol=1e-4, rtol=0)
    assert np.array_equal(np.argsort(-scores, axis=1, kind="stable"), expected["ranking_t2i"])
    original = json.loads((folder / "eval.json").read_text())["mAP_metrics"]
    # 4 gallery images: the original's R5 and R10 are recall@4 (see the golden README, section 5)
    for ours, theirs in (("R@1", "R1"), ("R@5", "R5"), ("R@10", "R10"), ("mAP", "mAP"), ("mINP", "mINP")):
        assert result["metrics"][ours] == pytest.approx(original[theirs], abs=1e-4), ours
