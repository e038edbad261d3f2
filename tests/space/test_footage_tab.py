"""The Space's footage tab, function by function: a generated video of pedestrians is indexed (one track per person)
and searched by a description, an example image and both, with the results of the package's `FootageIndex` (one
card per person: best moment, time span, score) and a timeline; bad videos (not a video,
unreadable, truncated, without people, too long, too large) get a message, never a traceback; each session keeps its
own videos. The gallery tab reads uploads as the package does. The modules the Space runs are the package's files,
importing nothing of the package but each other."""

import ast
import re
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Dataset
from PIL import Image

from aptm.footage import FootageIndex, SkipLog, SourceReader, caption
from aptm.footage.timeline import timeline_image
from aptm.hub import SPACE_LIBRARY_FILES, add_pipelines

from helpers.footage import pedestrian_video, save_tiny_checkpoint
from helpers.images import person_image
from helpers.paths import REPO, load_script

pytest.importorskip("cv2", reason="the footage extra (opencv-python-headless) is not installed")
pytest.importorskip("gradio")
TEXT = "a man in a black jacket and yellow trousers"
STANDALONE = {"numpy", "PIL", "tqdm", "cv2", "torch"}  # what the copied modules may import besides the standard library


@pytest.fixture(scope="module")
def app():
    sys.path.insert(0, str(REPO / "space"))  # as `python app.py` in the Space's folder
    try:
        yield load_script("space/app.py")
    finally:
        sys.path.remove(str(REPO / "space"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = save_tiny_checkpoint(tmp_path_factory.mktemp("space-footage") / "checkpoint")
    add_pipelines(folder)
    return folder


@pytest.fixture(scope="module")
def demo(app, checkpoint):
    return app.Demo(str(checkpoint), Dataset.from_dict({"image": [person_image(seed) for seed in range(3)]}))


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    path = tmp_path_factory.mktemp("walk") / "walk.avi"
    pedestrian_video(path)
    return path


@pytest.fixture(scope="module")
def indexed(demo, walk):
    """The session's videos after indexing `walk.avi`, the message and the choice."""
    return demo.index_video(str(walk), 10, None)


def test_a_video_is_indexed_and_searched_as_the_package_does(demo, indexed, walk, checkpoint, tmp_path):
    videos, message, choice = indexed
    index = FootageIndex(tmp_path / "index", checkpoint)
    index.add_sources([walk], frame_step=10, progress=False)
    assert (len(index), len(index.records)) == (3, 9)  # three people, each seen in frames 0, 10 and 20
    assert message == "Indexed 3 people (0 static, left out of results; 9 sightings) in 3 frames of walk.avi (one " \
                      "frame in 10)."
    assert list(videos) == ["walk.avi"] and choice.value == "walk.avi"
    example = index.records[4]["thumbnail"]
    for text, image, weight in ((TEXT, None, 0.5), ("", example, 0.5), (TEXT, example, 0.3), (TEXT, example, 1.0)):
        results, timeline = demo.search_footage(text, image and Image.open(image), weight, 5, "walk.avi", videos)
        matches = index.search(text=text or None, image=image, top=5, image_weight=weight)
        assert [label for _, label in results] == [f"#{m.rank} {caption(m)} score {m.score:.3f}" for m in matches]
        assert [thumbnail.size for thumbnail, _ in results] == [m.image().size for m in matches]
        expected = np.asarray(timeline_image(matches, text or "the example image"))
        np.testing.assert_array_equal(np.asarray(timeline), expected)  # the package's timeline of the same people
    assert re.fullmatch(r"#1 0:00\.0-0:02\.0 score \d\.\d{3}", results[0][1])  # time span, score


def test_a_clicked_result_becomes_the_example(app, demo, indexed):
    results, _ = demo.search_footage(TEXT, None, 0.5, 3, "walk.avi", indexed[0])
    example = app.example_from_results(results, SimpleNamespace(index=2))
    assert example is results[2][0]
    assert demo.search_footage("", example, 0.5, 1, "walk.avi", indexed[0])[0][0][0] is example  # itself first


def test_bad_videos_get_a_message(app, demo, walk, tmp_path, monkeypatch):
    def refused(path, match, step=10):
        with pytest.raises(app.gr.Error, match=match):
            demo.index_video(path and str(path), step, None)

    refused(None, "Upload a video")
    (tmp_path / "notes.txt").write_text("hello")
    refused(tmp_path / "notes.txt", r"notes.txt is not a video \(allowed: .avi, .mp4")
    (tmp_path / "junk.mp4").write_text("not a video")
    refused(tmp_path / "junk.mp4", r"junk.mp4: unreadable video \(OpenCV cannot open it\)")
    pedestrian_video(tmp_path / "street.avi", people=0, frames=12)
    refused(tmp_path / "street.avi", r"No person was found in the 2 frames read from street.avi \(one in 10\)")
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(walk.read_bytes()[: walk.stat().st_size // 2])
    _, message, _ = demo.index_video(str(truncated), 5, None)
    assert message.startswith("Indexed ") and message.endswith(
        "Note: the video stops before its announced end: only its start was indexed.")
    monkeypatch.setattr(app, "MAX_VIDEO_FRAMES", 2)
    monkeypatch.setattr(app, "MAX_VIDEO_CROPS", 4)
    videos, message, _ = demo.index_video(str(walk), 10, None)
    assert message == ("Indexed 3 people (0 static, left out of results; 4 sightings) in 2 frames of walk.avi (one "
                       "frame in 10). Note: the video is longer than the limit: only its first 2 sampled frames were "
                       "read. Note: only the first 4 of 6 sightings of people are indexed.")
    assert len(videos["walk.avi"]["thumbnails"]) == len(videos["walk.avi"]["gallery"]) == 4
    monkeypatch.setattr(app, "MAX_IMAGE_PIXELS", 1000)
    refused(walk, r"walk.avi: video frames too large \(640x360 pixels, over the limit of 1000\)")


def test_bad_searches_get_a_message(app, demo, indexed):
    videos = indexed[0]
    for query, example, choice, state, match in (
            ("a man", None, None, None, "Index a video first"), ("a man", None, "other.avi", videos, "Index a video"),
            ("", None, "walk.avi", videos, "Type a description"), ("x" * 301, None, "walk.avi", videos, "longer than")):
        with pytest.raises(app.gr.Error, match=match):
            demo.search_footage(query, example, 0.5, 5, choice, state)


def test_each_session_keeps_its_own_videos(app, demo, indexed, walk, tmp_path, monkeypatch):
    first = indexed[0]
    shutil.copy(walk, tmp_path / "again.avi")
    second, _, choice = demo.index_video(str(tmp_path / "again.avi"), 20, first)
    assert list(first) == ["walk.avi"]  # the other session's videos are left as they were
    assert list(second) == ["walk.avi", "again.avi"] and choice.value == "again.avi"
    assert len(second["again.avi"]["gallery"]) == 6 and second["walk.avi"] is first["walk.avi"]
    assert demo.search_footage(TEXT, None, 0.5, 3, "walk.avi", second)[0][0][1] == \
        demo.search_footage(TEXT, None, 0.5, 3, "walk.avi", first)[0][0][1]
    monkeypatch.setattr(app, "MAX_SESSION_VIDEOS", 2)
    shutil.copy(walk, tmp_path / "third.avi")
    third, _, _ = demo.index_video(str(tmp_path / "third.avi"), 20, second)
    assert list(third) == ["again.avi", "third.avi"]  # the oldest is dropped
    monkeypatch.setattr(app, "MAX_SESSION_VIDEOS", 1)
    assert list(demo.index_video(str(walk), 20, third)[0]) == ["walk.avi"]


def test_the_modules_the_space_runs_are_the_package_files_and_stand_alone():
    allowed = STANDALONE | set(sys.stdlib_module_names)
    for name, source in SPACE_LIBRARY_FILES:
        copy = REPO / "space" / name
        assert not copy.is_symlink() and copy.read_bytes() == (REPO / "aptm" / source).read_bytes(), name
        for node in ast.walk(ast.parse(copy.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module]  # relative: within the copied layout
            else:
                continue
            assert {name.split(".")[0] for name in names} <= allowed, (copy.name, names)


def test_the_gallery_tab_reads_uploads_as_the_package_does(demo, tmp_path):
    """A phone photo (EXIF orientation 6: stored sideways) comes out upright, and a TIFF is read: in the Space's
    gallery tab as in the package's reader (footage index, gallery folders)."""
    photo = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8)[None, :, None], (120, 1, 3)))  # 40 wide, 120 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    photo.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", exif=exif, quality=95)  # stored sideways
    person_image(7).save(tmp_path / "scan.tif")
    files = [str(tmp_path / "phone.jpg"), str(tmp_path / "scan.tif")]
    state, message = demo.index_uploads(files)
    assert message == "Indexed 2 images."
    assert state["names"] == ["phone.jpg", "scan.tif"]
    package = [picture.image for path in files for picture in SourceReader().read(path, set(), SkipLog())]
    assert package[0].shape == (120, 40, 3) and package[0][:, 0].max() < package[0][:, -1].min()  # upright
    assert package[1].shape == np.asarray(person_image(7)).shape
    for image, expected in zip(state["images"], package, strict=True):
        assert np.array_equal(np.asarray(image), expected)
