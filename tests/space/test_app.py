"""The Gradio Space: launched in-process on 127.0.0.1, every endpoint called through gradio_client, bad inputs
answered with messages while the app keeps working, and a headless-Chromium screenshot when Chromium exists."""

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aptm.factory import load_checkpoint
from aptm.retrieval import AttributeRecognizer
from datasets_scripts import load_aptm_dataset
from modeling_aptm import APTMForPreTraining

from helpers.models import tiny_config
from helpers.paths import REPO, load_script

app_module = load_script("space/app.py")
Demo, build_demo = app_module.Demo, app_module.build_demo

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, processor):
    root = tmp_path_factory.mktemp("space")
    torch.manual_seed(0)
    APTMForPreTraining(tiny_config()).save_pretrained(root / "checkpoint")
    processor.save_pretrained(root / "checkpoint")
    gallery = load_aptm_dataset("procedural", data_dir=root / "data", num_identities=15, views_per_identity=2)["test_gallery"]
    demo = Demo(root / "checkpoint", gallery, cache_dir=root / "index")
    assert (root / "index" / "index.safetensors").is_file()
    app = build_demo(demo)
    app.queue()
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                           max_file_size="5mb")
    yield url, root
    app.close()


def test_search_and_attributes(app_url, tmp_path):
    url, root = app_url
    client = gradio_client.Client(url, verbose=False)
    results = client.predict("a man in a red shirt", 3, False, api_name="/search")
    assert len(results) == 3 and results[0]["caption"].startswith("#1 person")
    assert len(client.predict("a man in a red shirt", 2, True, api_name="/search")) == 2
    Image.fromarray(np.full((200, 80, 3), 120, dtype=np.uint8)).save(tmp_path / "q.png")
    image = Image.open(tmp_path / "q.png").convert("RGB")
    model, processor = load_checkpoint(root / "checkpoint", "cpu")
    for dual, scoring in ((False, "itm"), (True, "contrastive")):
        labels = client.predict(gradio_client.handle_file(str(tmp_path / "q.png")), dual, api_name="/attributes")
        assert len(labels["confidences"]) == 27 and labels["label"].startswith(
            tuple(["gender", "age", "hair", "hat", "backpack", "handbag", "bag", "sleeve", "lower", "upper"]))
        recognizer = AttributeRecognizer(model, processor, progress=False, scoring=scoring)
        expected = {f"{name}: {statement}": p for name, statement, p in recognizer.describe([image])[0]}
        got = {item["label"]: item["confidence"] for item in labels["confidences"]}
        assert got == pytest.approx(expected, abs=1e-4), scoring


def test_bad_inputs_get_messages_and_the_app_keeps_answering(app_url, tmp_path):
    url, _ = app_url
    client = gradio_client.Client(url, verbose=False)
    for query in ("", "x" * 400):
        with pytest.raises(Exception, match="description|longer than"):
            client.predict(query, 3, False, api_name="/search")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "notes.txt").write_text("hello")
    with zipfile.ZipFile(tmp_path / "junk.zip", "w") as archive:
        archive.writestr("readme.md", "junk")
        archive.writestr("bad.png", b"nope")
    with pytest.raises(Exception, match="No readable image"):
        client.predict([gradio_client.handle_file(str(tmp_path / name)) for name in ("broken.jpg", "notes.txt", "junk.zip")],
                       api_name="/index_uploads")
    with pytest.raises(Exception, match="Index some images first"):
        client.predict("a man", 3, None, api_name="/search_uploads")
    assert len(client.predict("a man in a red shirt", 2, False, api_name="/search")) == 2


def test_own_gallery(app_url, tmp_path):
    url, _ = app_url
    for i in range(3):
        Image.fromarray(np.full((120, 40, 3), 60 * i, dtype=np.uint8)).save(tmp_path / f"p{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    client = gradio_client.Client(url, verbose=False)
    files = [gradio_client.handle_file(str(tmp_path / name)) for name in ("p0.png", "p1.png", "p2.png", "broken.png")]
    message = client.predict(files, api_name="/index_uploads")
    assert "Indexed 3 images" in message and "broken.png" in message


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (Debian package chromium)")
def test_screenshot(app_url):
    url, root = app_url
    shot = root / "space.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={root / 'chrome'}", "--virtual-time-budget=8000", f"--screenshot={shot}",
                    "--window-size=1280,900", url], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (900, 1280) and pixels.std() > 10  # a rendered page, not a blank one
    if os.environ.get("APTM_SCREENSHOT_DIR"):  # keep the picture for a person to look at
        shutil.copy(shot, Path(os.environ["APTM_SCREENSHOT_DIR"]) / "space.png")


def test_space_requirements_pin_what_ci_tests():
    """Every Space requirement carries an exact version, the one CI's constraints file installs."""
    pins = dict(line.split("==") for line in (REPO / "constraints" / "ci.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {name.lower().strip(): version.strip() for name, version in pins.items()}
    for line in (REPO / "space" / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        assert "==" in line, f"space/requirements.txt: {line!r} is not pinned"
        name, version = line.split("==")
        assert pins.get(name.lower()) == version, f"space/requirements.txt pins {line!r}, CI installs {pins.get(name.lower())}"
