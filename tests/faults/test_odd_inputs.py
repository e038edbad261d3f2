"""Odd but valid inputs through every door (the retrieval engine, the processor, both pipelines, and the command
lines `scripts/index_gallery.py`, `scripts/search.py`, `scripts/evaluate.py`): images of 1x1 and 10000x10 pixels,
CMYK, 16-bit grey, palette with transparency, animated GIF (its first frame), EXIF-rotated JPEG; texts of 10,000
characters, in Chinese, with emoji; galleries of 0 and 1 image and fewer images than asked for. Each is encoded or
searched; empty texts and an empty gallery or index are refused with an error that names the input, raised by this
project's code (not from deep inside torch)."""

import io
import json
import traceback

import numpy as np
import pytest
import torch
from PIL import Image

import aptm
from aptm.retrieval import RetrievalEngine

from helpers.images import person_image
from helpers.models import saved_checkpoint, tiny_config
from helpers.paths import load_script

ODD_TEXTS = ["x" * 10_000, "一个穿红色上衣的男人", "🧍 in a 👕 red shirt", "  a man  "]
EMPTY_TEXTS = ["", "   \n\t"]
FORMATS = {"CMYK": "JPEG", "animated GIF": "GIF", "EXIF-rotated": "JPEG"}  # the others as PNG


@pytest.fixture(scope="module")
def engine():
    torch.manual_seed(0)
    return RetrievalEngine(aptm.APTMModel(tiny_config()).eval(), aptm.build_processor(), k=4, progress=False)


def reopened(image, **save_options):
    buffer = io.BytesIO()
    image.save(buffer, **save_options)
    buffer.seek(0)
    return Image.open(buffer)


def odd_images():
    person = person_image(0)
    frames = [person_image(seed).convert("P") for seed in range(3)]
    palette = person.convert("P")
    orientation = Image.Exif()
    orientation[0x0112] = 6  # rotated 90 degrees clockwise
    return {"1x1": Image.new("RGB", (1, 1), (200, 10, 10)), "10000x10": Image.new("RGB", (10000, 10), (9, 9, 200)),
            "CMYK": person.convert("CMYK"),
            "16-bit": Image.fromarray(np.asarray(person.convert("L")).astype(np.uint16) * 257),
            "palette with transparency": reopened(palette, format="PNG", transparency=0),
            "animated GIF": reopened(frames[0], format="GIF", save_all=True, append_images=frames[1:]),
            "EXIF-rotated": reopened(person, format="JPEG", exif=orientation)}


def test_odd_images_are_encoded(engine):
    images = odd_images()
    encoded = engine.encode_gallery(list(images.values()))
    assert encoded.image_features.shape[0] == len(images) and torch.isfinite(encoded.image_features).all()
    for row, image in enumerate(images.values()):  # one at a time or together: the same features
        alone = engine.encode_gallery([image]).image_features[0]
        torch.testing.assert_close(alone, encoded.image_features[row], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_odd_texts_are_searched(engine, text):
    gallery = engine.encode_gallery([person_image(seed) for seed in range(3)])
    result = engine.search(text, gallery, top=10)[0]
    assert sorted(result.indices) == [0, 1, 2]  # k and top larger than the gallery: all of it, ranked


@pytest.mark.parametrize("text", EMPTY_TEXTS)
def test_empty_texts_are_refused(engine, text):
    gallery = engine.encode_gallery([person_image(0)])
    with pytest.raises(ValueError, match="text 0: empty text"):
        engine.search(text, gallery)


def test_galleries_of_one_and_none(engine):
    one = engine.encode_gallery([person_image(0)])
    assert engine.search("a man", one, top=5)[0].indices == [0]
    with pytest.raises(ValueError, match="the gallery is empty"):
        engine.search("a man", engine.encode_gallery([]))


def saved_odd_images(folder):
    """The odd images written as files (their format kept: JPEG for CMYK and the EXIF rotation, an animated GIF)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for number, (name, image) in enumerate(odd_images().items()):
        form = FORMATS.get(name, "PNG")
        options = {"GIF": {"save_all": True}, "JPEG": {"exif": image.getexif()}}.get(form, {})
        paths[name] = folder / f"{number}.{form.lower()}"
        image.save(paths[name], format=form, **options)
    return paths


def raised_here(error):
    """Whether `error` was raised by this project's code (not inside torch or another library)."""
    frame = traceback.extract_tb(error.__traceback__)[-1].filename
    return "site-packages" not in frame and "/torch/" not in frame


def cases(*kinds):
    """`(kind, value)` parameters: "image" (a name of `odd_images`), "text" (of `ODD_TEXTS`), "empty text" (of
    `EMPTY_TEXTS`), and any other kind as itself."""
    values = {"image": list(odd_images()), "text": ODD_TEXTS, "empty text": EMPTY_TEXTS}
    return [pytest.param(kind, value, id=f"{kind} {value[:12]!r}" if kind in values else kind)
            for kind in kinds for value in values.get(kind, [None])]


@pytest.mark.parametrize(("kind", "value"), cases("image", "text", "empty text"))
def test_the_processor_takes_odd_inputs(processor, kind, value):
    if kind == "image":
        pixels = processor(images=[odd_images()[value]])["pixel_values"]
        assert pixels.shape == (1, 3, 384, 128) and torch.isfinite(pixels).all()
    elif kind == "text":
        ids = processor(text=[value])["input_ids"]
        assert ids.shape[0] == 1 and 0 < ids.shape[1] <= processor.max_length
    else:
        with pytest.raises(ValueError, match="text 0: empty text") as raised:
            processor(text=[value])
        assert raised_here(raised.value)


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    from transformers import pipeline

    folder = tmp_path_factory.mktemp("odd_pipelines")
    saved_checkpoint(folder, aptm.build_processor())
    return {task: pipeline(task, model=str(folder), trust_remote_code=True)
            for task in ("text-person-retrieval", "pedestrian-attribute-recognition")}


@pytest.mark.parametrize(("kind", "value"), cases("image", "text", "empty text", "gallery of 0", "gallery of 1",
                                                 "no images"))
def test_the_pipelines_take_odd_inputs(pipelines, kind, value):
    search, attributes = pipelines["text-person-retrieval"], pipelines["pedestrian-attribute-recognition"]
    gallery = [person_image(0), person_image(1)]
    if kind == "image":  # in a gallery, and described
        ranked = search("a man", gallery=[*gallery, odd_images()[value]], top_k=10, k=10)
        assert sorted(result["index"] for result in ranked) == [0, 1, 2]
        described = attributes(odd_images()[value])
        assert described and all(0 <= statement["score"] <= 1 for statement in described)
    elif kind == "text":
        assert sorted(result["index"] for result in search(value, gallery=gallery, top_k=50)) == [0, 1]
    elif kind == "empty text":
        with pytest.raises(ValueError, match="text 0: empty text") as raised:
            search(value, gallery=gallery)
        assert raised_here(raised.value)
    elif kind == "gallery of 0":
        with pytest.raises(ValueError, match="the gallery is empty") as raised:
            search("a man", gallery=[])
        assert raised_here(raised.value)
    elif kind == "gallery of 1":  # top_k and k above the gallery's size: all of it
        assert [result["index"] for result in search("a man", gallery=gallery[:1], top_k=5, k=10)] == [0]
    else:
        assert attributes([]) == []


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """A checkpoint, an index of the odd images (each a person crop: `--crop-aspect 0`), and an empty index."""
    pytest.importorskip("cv2", reason="the footage extra (opencv-python-headless) is not installed")
    from helpers.footage import save_tiny_checkpoint

    folder = tmp_path_factory.mktemp("odd_footage")
    checkpoint = save_tiny_checkpoint(folder / "checkpoint")
    images = saved_odd_images(folder / "images")
    index_gallery = load_script("scripts/index_gallery.py").main
    report = index_gallery([str(folder / "images"), "--model", str(checkpoint), "--out", str(folder / "index"),
                            "--crop-aspect", "0", "--no-progress"])
    assert (report.pictures, report.tracks, dict(report.skipped)) == (len(images), len(images), {})
    (folder / "nothing").mkdir()
    report = index_gallery([str(folder / "nothing"), "--model", str(checkpoint), "--out", str(folder / "empty"),
                            "--no-progress"])
    assert (report.files, report.tracks) == (0, 0)
    return folder, images


@pytest.mark.parametrize(("kind", "value"), cases("image", "text", "empty text", "index of 0", "top above the index"))
def test_the_search_command_line_takes_odd_inputs(footage, kind, value, capsys):
    folder, images = footage
    search = load_script("scripts/search.py").main
    options = ["--grid", str(folder / "grid.png"), "--json"]
    if kind == "image":  # the odd picture as the example: itself first (or tied with a near copy, as the GIF's frame)
        search([str(folder / "index"), "--image", str(images[value]), "--top", "50", "--crops", *options])
        found = json.loads(capsys.readouterr().out)
        itself = next(match for match in found if match["source"] == str(images[value].resolve()))
        assert len(found) == len(images) and itself["score"] == pytest.approx(found[0]["score"], abs=1e-4)
    elif kind in ("text", "top above the index"):
        assert len(search([str(folder / "index"), value or "a man", "--top", "50", *options])) == len(images)
    elif kind == "empty text":
        with pytest.raises(ValueError, match="text 0: empty text") as raised:
            search([str(folder / "index"), value, *options])
        assert raised_here(raised.value)
    else:
        with pytest.raises(ValueError, match=f"{folder / 'empty'} holds no people yet"):
            search([str(folder / "empty"), "a man", *options])


@pytest.mark.parametrize("size", [1, len(odd_images())])
def test_the_evaluate_command_line_takes_odd_images_and_captions(size, tmp_path):
    """A CUHK-PEDES-format test split of the odd images (1 or all) captioned with the odd texts, `--k` above the
    gallery's size: every query ranks the whole gallery."""
    saved_checkpoint(tmp_path / "model", aptm.build_processor())
    images = list(saved_odd_images(tmp_path / "data" / "imgs" / "test").values())[:size]
    person_image(0).save(tmp_path / "data" / "imgs" / "train.png")
    records = [{"file_path": "train.png", "id": 1, "split": "train", "captions": ["a man"]}]
    records += [{"file_path": f"test/{path.name}", "id": 10 + number, "split": "test",
                 "captions": ODD_TEXTS[number % 4 : number % 4 + 2]} for number, path in enumerate(images)]
    (tmp_path / "data" / "reid_raw.json").write_text(json.dumps(records))
    evaluate = load_script("scripts/evaluate.py").main
    results = evaluate(["--model", str(tmp_path / "model"), "--dataset", "cuhk-pedes", "--data-dir",
                        str(tmp_path / "data"), "--k", "1000", "--output-dir", str(tmp_path / "out")])
    assert results["retrieval"]["R@10"] == 100.0  # the gallery has at most 7 images
    assert size > 1 or results["retrieval"]["R@1"] == 100.0
