"""Publishing: Parquet with embedded images that survive moving the source files, and a push to the fake Hub that
`load_dataset` reads back."""

import os
import shutil
import subprocess
import sys
import textwrap

import datasets

from datasets_scripts import load_aptm_dataset
from datasets_scripts.publish import to_parquet

from helpers.fake_hub import serve
from helpers.paths import REPO


def test_parquet_embeds_the_images(tmp_path):
    data = load_aptm_dataset("procedural", data_dir=tmp_path / "data", num_identities=4, views_per_identity=1)
    paths = to_parquet(data, tmp_path / "parquet")
    shutil.rmtree(tmp_path / "data")  # the images are gone from disk; the Parquet still has them
    gallery = datasets.Dataset.from_parquet(str(tmp_path / "parquet" / "test_gallery.parquet"))
    assert len(paths) == len(data) and gallery[0]["image"].size == (128, 384)


def test_push_to_the_fake_hub_and_load_back(tmp_path):
    server, url = serve(0, tmp_path / "hub")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=url, HF_TOKEN="hf_fake", HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO))
    try:
        push = subprocess.run([sys.executable, str(REPO / "scripts" / "publish_dataset.py"), "--dataset", "procedural",
                               "--data-dir", str(tmp_path / "data"), "--repo-id", "tester/procedural"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert push.returncode == 0, push.stderr[-3000:]
        script = textwrap.dedent("""
            import datasets
            gallery = datasets.load_dataset("tester/procedural", "gallery")
            pairs = datasets.load_dataset("tester/procedural", "pairs")
            print(sorted(gallery), gallery["test"][0]["image"].size, pairs["train"].num_rows)
        """)
        load = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert load.returncode == 0, load.stderr[-3000:]
        assert "['test', 'validation'] (128, 384)" in load.stdout
    finally:
        server.shutdown()
