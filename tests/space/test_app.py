"""The Space stands alone: `scripts/publish_space.py` pushes the model, a gallery dataset and the Space to the (fake)
Hub; a fresh process in a folder holding only the files downloaded from the Space repository, in a Python without the
project, boots `app.py` from `APTM_MODEL`/`APTM_GALLERY`; every endpoint answers through gradio_client with the
package engine's results; concurrent requests keep their own settings; hostile uploads get messages and nothing is
written outside the temporary folder; a video is indexed and searched as the package's `FootageIndex` does; a real
browser types a query, presses Search and sees ranked images, and in the footage tab uploads a video, indexes it,
sees its ranked people with their time stamps, and searches again with a clicked result as the example."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aptm.factory import load_checkpoint
from aptm.footage import FootageIndex, caption
from aptm.hub import SPACE_LIBRARY_FILES, add_pipelines
from aptm.retrieval import AttributeRecognizer, RetrievalEngine
from datasets_scripts import load_aptm_dataset
from modeling_aptm import APTMForPreTraining

from helpers.bare_environment import bare_python
from helpers.browser import Browser
from helpers.fake_hub import serve
from helpers.footage import pedestrian_video
from helpers.models import tiny_config
from helpers.paths import REPO, load_script

gradio_client = pytest.importorskip("gradio_client")
DATA = {"num_identities": 40, "views_per_identity": 2, "seed": 0}  # 16 test gallery images


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url, process, log, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"app.py did not serve {url} in {timeout} s")


@pytest.fixture(scope="module")
def space(tmp_path_factory, processor):
    root = tmp_path_factory.mktemp("space")
    torch.manual_seed(0)
    APTMForPreTraining(tiny_config()).save_pretrained(root / "checkpoint")
    processor.save_pretrained(root / "checkpoint")
    add_pipelines(root / "checkpoint")
    load_aptm_dataset("procedural", data_dir=root / "data", **DATA)
    server, url = serve(0, root / "hub")
    hub_env = {"PATH": "/usr/bin:/bin", "HF_ENDPOINT": url, "HF_TOKEN": "hf_fake", "HF_HUB_DISABLE_XET": "1",
               "HF_HOME": str(root / "home"), "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    publish = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "publish_space.py"), "--model", str(root / "checkpoint"),
         "--model-repo", "tester/aptm-tiny", "--dataset", "procedural", "--data-dir", str(root / "data"),
         "--dataset-options", json.dumps(DATA), "--gallery-repo", "tester/aptm-gallery", "--space-repo",
         "tester/aptm-demo"], env={**hub_env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
    assert publish.returncode == 0, publish.stderr[-3000:]
    variables = json.loads((root / "hub" / "space-variables" / "tester--aptm-demo.json").read_text())
    assert {k: v["value"] for k, v in variables.items()} == {"APTM_MODEL": "tester/aptm-tiny",
                                                             "APTM_GALLERY": "tester/aptm-gallery"}
    python = bare_python(root / "venv")  # no project code on its path
    run = root / "space-run"
    run.mkdir()
    download = subprocess.run([python, "-c", "from huggingface_hub import snapshot_download; snapshot_download("
                               "'tester/aptm-demo', repo_type='space', local_dir='.')"],
                              cwd=run, env=hub_env, capture_output=True, text=True, timeout=300)
    assert download.returncode == 0, download.stderr[-3000:]
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and not p.relative_to(run).parts[0].startswith("."))
    copied = dict(SPACE_LIBRARY_FILES)
    assert files == sorted(["README.md", "app.py", "requirements.txt", "aptm_parts/__init__.py",
                            "aptm_parts/footage/__init__.py", *copied])
    for name, source in copied.items():  # the package's own modules, as files
        assert (run / name).read_bytes() == (REPO / "aptm" / source).read_bytes()
    port = free_port()
    app_env = {**hub_env, **{k: v["value"] for k, v in variables.items()}, "GRADIO_SERVER_PORT": str(port),
               "GRADIO_TEMP_DIR": str(root / "gradio-tmp"), "OMP_NUM_THREADS": "1"}
    log = open(root / "app.log", "w")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen([python, "app.py"], cwd=run, env=app_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/", process, root / "app.log")
        model, _ = load_checkpoint(root / "checkpoint", "cpu")
        gallery = load_aptm_dataset("procedural", data_dir=root / "data", **DATA)["test_gallery"]
        yield f"http://127.0.0.1:{port}/", root, run, model, gallery
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
        server.shutdown()


def expected_captions(model, processor, gallery, query, top, fusion):
    engine = RetrievalEngine(model, processor, k=16, progress=False)
    result = engine.search(query, engine.encode_gallery(gallery["image"]), top=top, fusion=fusion)[0]
    return [f"#{rank + 1} person {gallery['person_id'][i]} score {s:.3f}"
            for rank, (i, s) in enumerate(zip(result.indices, result.scores))]


def test_search_and_attributes_equal_the_package(space, processor, tmp_path):
    url, _, _, model, gallery = space
    client = gradio_client.Client(url, verbose=False)
    for dual, fusion in ((False, "aptm"), (True, "cosine")):
        results = client.predict("a man in a red shirt", 5, dual, api_name="/search")
        assert [r["caption"] for r in results] == expected_captions(model, processor, gallery, "a man in a red shirt",
                                                                    5, fusion)
    Image.fromarray(np.full((200, 80, 3), 120, dtype=np.uint8)).save(tmp_path / "q.png")
    image = Image.open(tmp_path / "q.png").convert("RGB")
    for dual, scoring in ((False, "itm"), (True, "contrastive")):
        labels = client.predict(gradio_client.handle_file(str(tmp_path / "q.png")), dual, api_name="/attributes")
        described = AttributeRecognizer(model, processor, scoring=scoring, progress=False).describe([image])[0]
        expected = {f"{name}: {statement}": p for name, statement, p in described}
        assert {item["label"]: item["confidence"] for item in labels["confidences"]} == pytest.approx(expected, abs=1e-4)


def test_concurrent_requests_keep_their_own_settings(space, processor):
    url, _, _, model, gallery = space
    expected = {dual: expected_captions(model, processor, gallery, "a woman with long hair", 6,
                                        "cosine" if dual else "aptm") for dual in (False, True)}
    assert expected[False] != expected[True]  # the two settings rank differently here

    clients = [gradio_client.Client(url, verbose=False, download_files=False) for _ in range(2)]  # captions suffice
    flags = [False, True] * 4
    jobs = [clients[i % 2].submit("a woman with long hair", 6, dual, api_name="/search") for i, dual in enumerate(flags)]
    for dual, job in zip(flags, jobs):  # the queue runs two at once (default_concurrency_limit=2)
        assert [r["caption"] for r in job.result(timeout=300)] == expected[dual], dual


def test_concurrent_clients_download_every_result_image_whole(space, tmp_path):
    """8 clients search at once (both settings, 3 searches each) and download every result image: each arrives
    complete (no client error, every file decodes to the gallery image's size). Gradio's cache used to write a
    returned image in place while another request served it (truncated or 0-byte downloads)."""
    url, _, _, _, gallery = space
    sizes = {image.size for image in gallery["image"]}
    queries = ["a man in a red shirt", "a woman with long hair", "a person with a black bag"]

    def client_searches(number):
        client = gradio_client.Client(url, verbose=False, download_files=str(tmp_path / f"client-{number}"))
        return [client.predict(query, 10, number % 2 == 1, api_name="/search") for query in queries]

    with ThreadPoolExecutor(8) as pool:
        answers = [result for results in pool.map(client_searches, range(8)) for result in results]
    files = [Path(item["image"]) for result in answers for item in result]
    assert len(answers) == 24 and len(files) == 240
    for file in files:
        with Image.open(file) as image:
            image.load()  # raises on a truncated file
            assert image.size in sizes and np.asarray(image).std() > 0, file


def files_under(root):
    """Every file under `root` but gradio's temporary folder, with its modification time."""
    return {path: path.stat().st_mtime_ns for path in root.rglob("*")
            if path.is_file() and not path.is_relative_to(root / "gradio-tmp")}


def write_uploads(folder):
    """Hostile and ordinary uploads: good images, a truncated JPEG, a decompression bomb, a text file, and a zip with
    a nested zip, a huge member, a non-image member, an unreadable image and more images than the limit."""
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((120, 40, 3), 60 * i + 30, dtype=np.uint8)).save(folder / f"p{i}.png")
    Image.fromarray(np.zeros((300, 100, 3), dtype=np.uint8)).save(folder / "full.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "full.jpg").read_bytes()[:200])
    Image.new("1", (8000, 8000)).save(folder / "bomb.png")  # 64 megapixels in a few kB
    (folder / "notes.txt").write_text("hello")
    with zipfile.ZipFile(folder / "many.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("inner.zip", (folder / "notes.txt").read_bytes())
        archive.writestr("huge.png", b"\0" * (21 * 2**20))
        archive.writestr("readme.md", "junk")
        archive.writestr("bad.png", b"not a png")
        for i in range(201):
            archive.write(folder / "p0.png", f"people/{i}.png")


def test_uploads_are_safe(space, tmp_path):
    url, root, run, _, _ = space
    write_uploads(tmp_path / "uploads")
    before = files_under(root)
    client = gradio_client.Client(url, verbose=False)
    names = ["p0.png", "p1.png", "truncated.jpg", "bomb.png", "notes.txt", "many.zip"]
    message = client.predict([gradio_client.handle_file(str(tmp_path / "uploads" / n)) for n in names],
                             api_name="/index_uploads")
    assert "Indexed 200 images" in message
    for reason in ("truncated.jpg: unreadable image", "bomb.png: image too large (8000x8000 pixels, over the limit "
                   "of 25000000", "notes.txt: not an image file (allowed: .jpg", "inner.zip: not an image",
                   "huge.png: member too large (22020096 bytes, over the limit of 20971520)",
                   "readme.md: not an image", "bad.png: unreadable image", "only the first 200 images are indexed"):
        assert reason in message, reason
    with pytest.raises(Exception, match="No readable image"):
        client.predict([gradio_client.handle_file(str(tmp_path / "uploads" / "notes.txt"))], api_name="/index_uploads")
    assert len(client.predict("a man", 3, None, api_name="/search_uploads")) == 3  # this session's uploads
    with pytest.raises(Exception, match="Index some images first"):  # another session has none
        gradio_client.Client(url, verbose=False).predict("a man", 3, None, api_name="/search_uploads")
    for query in ("", "x" * 400):
        with pytest.raises(Exception, match="description|longer than"):
            client.predict(query, 3, False, api_name="/search")
    assert len(client.predict("a man in a red shirt", 2, False, api_name="/search")) == 2  # still serving
    changed = {path for path, stamp in files_under(root).items() if before.get(path) != stamp}
    assert changed <= {root / "app.log"}, changed  # nothing written outside gradio's temporary folder
    assert any((root / "gradio-tmp").rglob("*.zip"))  # where the uploads went


def test_own_gallery_search(space, tmp_path):
    url, _, _, _, _ = space
    for i in range(3):
        Image.fromarray(np.full((120, 40, 3), 60 * i, dtype=np.uint8)).save(tmp_path / f"p{i}.png")
    client = gradio_client.Client(url, verbose=False)
    files = [gradio_client.handle_file(str(tmp_path / f"p{i}.png")) for i in range(3)]
    assert "Indexed 3 images" in client.predict(files, api_name="/index_uploads")


def test_footage_is_indexed_and_searched_as_the_package_does(space, tmp_path):
    url, root, _, _, _ = space
    pedestrian_video(tmp_path / "walk.avi")
    index = FootageIndex(tmp_path / "index", root / "checkpoint")
    report = index.add_sources([tmp_path / "walk.avi"], frame_step=10, progress=False)
    client = gradio_client.Client(url, verbose=False)
    message, choice = client.predict(gradio_client.handle_file(str(tmp_path / "walk.avi")), 10, api_name="/index_video")
    assert message == (f"Indexed {len(index)} people (0 static, left out of results; {report.detections} sightings) "
                       "in 3 frames of walk.avi (one frame in 10).")
    assert choice["value"] == "walk.avi"  # the choice of videos now holds it
    results, timeline = client.predict("a woman in a white coat", None, 0.5, 4, "walk.avi",
                                       api_name="/search_footage")
    matches = index.search(text="a woman in a white coat", top=4)
    assert [r["caption"] for r in results] == [f"#{m.rank} {caption(m)} score {m.score:.3f}" for m in matches]
    assert Image.open(timeline).width == 900  # the timeline of the people found
    (tmp_path / "junk.mp4").write_text("not a video")
    with pytest.raises(Exception, match="junk.mp4: unreadable video"):
        client.predict(gradio_client.handle_file(str(tmp_path / "junk.mp4")), 10, api_name="/index_video")
    other = gradio_client.Client(url, verbose=False)  # another session: no video to choose, none to search
    with pytest.raises(Exception, match="walk.avi is not in the list of choices"):
        other.predict("a man", None, 0.5, 4, "walk.avi", api_name="/search_footage")
    with pytest.raises(Exception, match="Index a video first"):
        other.predict("a man", None, 0.5, 4, None, api_name="/search_footage")


def test_missing_or_unreachable_configuration_is_explained(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "space"))  # as `python app.py` in the Space's folder
    app = load_script("space/app.py")
    page = app.app_from_environment({})
    text = " ".join(str(block.value) for block in page.blocks.values() if hasattr(block, "value"))
    assert "Set `APTM_MODEL` and `APTM_GALLERY`" in text
    page = app.app_from_environment({"APTM_MODEL": "tester/none", "APTM_GALLERY": str(tmp_path / "missing")})
    text = " ".join(str(block.value) for block in page.blocks.values() if hasattr(block, "value"))
    assert f"The gallery `{tmp_path / 'missing'}` could not be loaded" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (Debian package chromium)")
def test_a_browser_searches(space, tmp_path):
    url, root, _, _, _ = space
    browser = Browser(tmp_path / "chrome")
    try:
        browser.open(url)
        browser.wait_for("document.querySelector('#query textarea') !== null && document.querySelector('#search') !== null")
        browser.evaluate("""(() => { const box = document.querySelector('#query textarea');
            box.value = 'a woman in a yellow dress'; box.dispatchEvent(new Event('input', {bubbles: true})); })()""")
        browser.evaluate("document.querySelector('#search').click()")
        count = browser.wait_for("document.querySelectorAll('#results img').length", timeout=120)
        assert count == 10  # the slider's default number of results
        browser.wait_for_drawn_images("#results img", 10)  # every thumbnail decoded and drawn, not a placeholder
        shot = browser.screenshot(tmp_path / "space.png")
    finally:
        browser.close()
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (900, 1280) and pixels.std() > 10  # a rendered page, not a blank one
    if os.environ.get("APTM_SCREENSHOT_DIR"):  # keep the picture for a person to look at
        shutil.copy(shot, Path(os.environ["APTM_SCREENSHOT_DIR"]) / "space.png")


def upload(browser, selector, path):
    """Give the page's file input `selector` the file `path`, as a person choosing it would."""
    document = browser.command("DOM.getDocument", depth=-1, pierce=True)["root"]["nodeId"]
    node = browser.command("DOM.querySelector", nodeId=document, selector=selector)["nodeId"]
    browser.command("DOM.setFileInputFiles", nodeId=node, files=[str(path)])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (Debian package chromium)")
def test_a_browser_searches_a_video(space, tmp_path):
    url = space[0]
    pedestrian_video(tmp_path / "walk.avi")
    tab = "[...document.querySelectorAll('button[role=tab]')].find(b => b.textContent.trim() === 'Footage')"
    browser = Browser(tmp_path / "chrome")
    try:
        browser.open(url)
        browser.wait_for(f"{tab} !== undefined")
        browser.evaluate(f"{tab}.click()")
        browser.wait_for("document.querySelector('#video input[type=file]') !== null")
        upload(browser, "#video input[type=file]", tmp_path / "walk.avi")
        browser.wait_for("document.querySelector('#video').textContent.includes('walk.avi')")
        browser.evaluate("document.querySelector('#index-video').click()")
        message = browser.wait_for("document.querySelector('#video-status').textContent.includes('Indexed') && "
                                   "document.querySelector('#video-status').textContent.trim()", timeout=180)
        assert message == "Indexed 3 people (0 static, left out of results; 9 sightings) in 3 frames of walk.avi (one " \
                          "frame in 10)."
        browser.evaluate("""(() => { const box = document.querySelector('#footage-query textarea');
            box.value = 'a man in a red shirt and blue trousers';
            box.dispatchEvent(new Event('input', {bubbles: true})); })()""")
        browser.evaluate("document.querySelector('#search-footage').click()")
        count = browser.wait_for("document.querySelectorAll('#footage-results img').length", timeout=120)
        assert count == 3  # one card per person (fewer than the slider's default of 8)
        captions = browser.evaluate("document.querySelector('#footage-results').textContent")
        assert re.search(r"#1 0:00\.0-0:02\.0 score \d\.\d{3}", captions)  # time span and score shown
        browser.wait_for("document.querySelector('#footage-timeline img') !== null")  # and the timeline
        browser.evaluate("document.querySelector('#search-footage').scrollIntoView()")  # the results in the picture
        browser.wait_for_drawn_images("#footage-results img", count)
        shot = browser.screenshot(tmp_path / "footage.png")
        browser.evaluate("document.querySelectorAll('#footage-results img')[1].click()")  # query by this example
        browser.wait_for("document.querySelector('#footage-example img') !== null")
        browser.evaluate("document.querySelector('#search-footage').click()")  # the description and the example
        browser.wait_for(f"document.querySelector('#footage-results').textContent !== {json.dumps(captions)}",
                         timeout=120)
    finally:
        browser.close()
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (900, 1280) and pixels.std() > 10
    if os.environ.get("APTM_SCREENSHOT_DIR"):  # keep the picture for a person to look at
        shutil.copy(shot, Path(os.environ["APTM_SCREENSHOT_DIR"]) / "footage.png")


def test_space_requirements_are_public_and_pinned_as_ci():
    """Every Space requirement is a public package with an exact version, the one CI's constraints file installs."""
    pins = dict(line.split("==") for line in (REPO / "constraints" / "ci.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {name.lower().strip(): version.strip() for name, version in pins.items()}
    names = []
    for line in (REPO / "space" / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        assert "==" in line, f"space/requirements.txt: {line!r} is not pinned"
        name, version = line.split("==")
        assert pins.get(name.lower()) == version, f"space/requirements.txt pins {line!r}, CI installs {pins.get(name.lower())}"
        names.append(name.lower())
    assert not {"aptm-hf", "aptm"} & set(names)
    source = (REPO / "space" / "app.py").read_text()
    assert not re.search(r"^\s*(import|from) aptm[\s.]", source, re.MULTILINE) and "sys.path" not in source
    assert "from aptm_parts" in source  # the package's modules, copied into the Space's folder
