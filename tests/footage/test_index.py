"""The footage index: a generated video, a wide photo and person crops become tracks (one per person, followed
through the video) whose crops are stored with provenance and thumbnails, encoded as the retrieval engine encodes
them; search of people (tracks, with their best moment) or crops by text, example image or both, with filters;
incremental indexing (re-runs skip, new sources append, a crash loses only the batch in flight); bad sources are
counted and leave the index as it was; the index refuses another model's features; calibrated match probabilities
(the checkpoint's `calibration.json`), `min_probability` and standing queries (`watch`)."""

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from aptm import load_checkpoint
from aptm.footage import FootageIndex, HOGPersonDetector, SourceError
from aptm.retrieval import RetrievalEngine, min_max
from aptm.retrieval.calibration import Calibration, itm_margins

from helpers.footage import SceneDifference, overlap, pedestrian_video, save_tiny_checkpoint
from helpers.images import person_image

TEXT = "a man in a black jacket and yellow trousers"


def frames_of(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (read := capture.read())[0]:
        frames.append(np.ascontiguousarray(read[1][:, :, ::-1]))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def sources(walk, tmp_path_factory):
    """The walking video, and a folder with two person crops and a wide street photo (the video's first frame)."""
    folder = tmp_path_factory.mktemp("photos")
    for seed in (1, 2):
        person_image(seed).save(folder / f"crop{seed}.png")
    Image.fromarray(frames_of(walk.path)[0]).save(folder / "street.png")
    return [walk.path, folder]


@pytest.fixture(scope="module")
def built(sources, checkpoint, tmp_path_factory):
    """`(index, report)`: the sources indexed with the default detector, 4 crops a shard."""
    index = FootageIndex(tmp_path_factory.mktemp("index") / "footage", checkpoint, batch_size=4)
    return index, index.add_sources(sources, progress=False)


def provenance(index):
    return [(r["source"], r["frame"], r["timestamp"], r["box"]) for r in index.records]


def test_generated_people_are_found_with_provenance(built, walk, sources):
    index, report = built
    path, boxes = walk.path, walk.boxes
    video = [r for r in index.records if r["source"] == str(path)]
    assert sorted({r["frame"] for r in video}) == [0, 10, 20]
    assert all(r["timestamp"] == r["frame"] / 10 and r["member"] is None for r in video)
    for frame in (0, 10, 20):
        found = [r["box"] for r in video if r["frame"] == frame]
        assert len(found) == 3
        for truth in boxes[frame]:
            assert max(overlap(box, truth) for box in found) > 0.25
    street = [r for r in index.records if r["source"].endswith("street.png")]
    assert len(street) == 3 and all(r["frame"] is None and r["detection_score"] > 0.5 for r in street)
    assert (report.files, report.pictures, report.detections, report.pictures_without_people) == (4, 6, 2 + 9 + 3, 0)
    assert (report.tracks, report.static_tracks, report.crops) == (2 + 3 + 3, 0, 2 + 9 + 3)
    assert len(index) == 8 and len(index.records) == 14 and not report.skipped


def test_person_crops_are_indexed_as_they_are(built, sources):
    index, _ = built
    crops = [r for r in index.records if "crop" in r["source"]]
    assert [(r["box"], r["detection_score"], r["frame"]) for r in crops] == [([0, 0, 128, 384], None, None)] * 2
    with Image.open(crops[0]["thumbnail"]) as thumbnail:
        assert thumbnail.size == (85, 256)
        difference = np.abs(np.asarray(thumbnail, int) - np.asarray(person_image(1).resize((85, 256)), int))
        assert difference.mean() < 12  # the crop itself, JPEG-compressed


def test_stored_features_are_the_engines_features_of_the_crops_at_their_boxes(built, walk, checkpoint):
    index, _ = built
    frames = frames_of(walk.path)
    crops = []
    for record in index.records:
        left, top, right, bottom = record["box"]
        if record["frame"] is not None:
            picture = frames[record["frame"]]
        else:
            picture = np.asarray(Image.open(record["source"]).convert("RGB"))
        crops.append(picture[top:bottom, left:right])
    model, processor = load_checkpoint(checkpoint, "cpu")
    engine = RetrievalEngine(model, processor, progress=False)
    expected = engine.encode_gallery(crops)
    torch.testing.assert_close(index.gallery.image_features, expected.image_features, atol=1e-5, rtol=0)
    torch.testing.assert_close(index.gallery.image_embeds, expected.image_embeds, atol=1e-5, rtol=0)
    reference = engine.search([TEXT], expected, top=5)[0]
    matches = index.search_crops(text=TEXT, top=5)
    assert [m.rank for m in matches] == [1, 2, 3, 4, 5]
    assert [provenance_of(m) for m in matches] == [provenance(index)[i] for i in reference.indices]
    assert [m.score for m in matches] == pytest.approx(reference.scores, abs=1e-5)


def provenance_of(match):
    return match.source, match.frame, match.timestamp, list(match.box)


def test_query_by_example_ranks_the_same_person_first(walk, checkpoint, tmp_path):
    # a plug-in detector with boxes that fit the figures, so that crops of one person differ only by the street
    index = FootageIndex(tmp_path / "fitted", checkpoint)
    report = index.add_sources([walk.path], detector=SceneDifference(walk.scene), frame_step=5, crops_per_track=6,
                               progress=False)
    assert (report.tracks, report.crops) == (3, 18)
    assert [r["box"] for r in index.records[::6]] == [list(box) for box in walk.boxes[0]]
    for person in range(3):  # each person, by their crop in the first frame: their 6 crops come first
        example = index.records[6 * person]["thumbnail"]
        matches = index.search_crops(image=example, top=6)
        assert [tuple(m.box) == walk.boxes[m.frame][person] for m in matches] == [True] * 6
        assert sorted(m.frame for m in matches) == [0, 5, 10, 15, 20, 25] and {m.track for m in matches} == {person}
        assert [m.score for m in matches] == sorted([m.score for m in matches], reverse=True)
        people = index.search(image=example, top=3)  # one result per person, theirs first, at their closest moment
        assert [m.track for m in people][0] == person and sorted(m.track for m in people) == [0, 1, 2]
        assert (people[0].moment.frame, people[0].moment.score) == (matches[0].frame, pytest.approx(matches[0].score))


def test_text_and_example_combined(built):
    index, _ = built
    example = index.records[0]["thumbnail"]
    features = index.engine.encode_images([Image.open(example).convert("RGB")])[1]
    cosine = (features @ index.gallery.image_features.t())[0]
    text = index.engine.score_matrix([TEXT], index.gallery)[0]
    for weight in (0.0, 0.3, 1.0):
        expected = (1 - weight) * min_max(text) + weight * min_max(cosine)
        matches = index.search_crops(text=TEXT, image=example, top=len(index.records), image_weight=weight)
        assert [m.score for m in matches] == pytest.approx(expected.sort(descending=True).values.tolist(), abs=1e-6)
    with pytest.raises(ValueError, match=r"image_weight must be in \[0, 1\], got 2"):
        index.search(text=TEXT, image=example, image_weight=2)
    with pytest.raises(ValueError, match="give a text, an image, or both"):
        index.search()


def test_an_unreadable_example_image_is_named(built, tmp_path):
    index, _ = built
    (tmp_path / "query.jpg").write_text("not a picture")
    with pytest.raises(SourceError, match=f"{tmp_path / 'query.jpg'}: unreadable image"):
        index.search(image=tmp_path / "query.jpg")


def test_search_within_one_source(built, walk, sources):
    index, _ = built
    photos = sorted(str(path.resolve()) for path in sources[1].iterdir())
    assert index.sources == [str(walk.path.resolve()), *photos]
    video = index.search_crops(text=TEXT, top=20, source=walk.path)
    assert len(video) == 9 and {m.source for m in video} == {str(walk.path)}
    engine = index.engine.search([TEXT], type(index.gallery)(index.gallery.image_features[:9],
                                                             index.gallery.image_embeds[:9]), top=9)[0]
    assert [m.score for m in video] == pytest.approx(engine.scores, abs=1e-6)
    people = index.search(text=TEXT, top=20, source=walk.path)
    assert sorted(m.track for m in people) == [0, 1, 2] and {m.source for m in people} == {str(walk.path)}
    street = index.search(image=video[0].thumbnail, top=20, source=photos[-1])
    assert [(m.source, m.start, len(m.frames)) for m in street] == [(photos[-1], None, 1)] * 3
    with pytest.raises(ValueError, match="elsewhere.avi has no people in"):
        index.search(text=TEXT, source="elsewhere.avi")


def test_detection_threads_build_the_same_index_as_one_frame_at_a_time(sources, checkpoint, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")  # a file that fails midway through the stream
    indexes, reports = [], []
    for workers in (1, 3):
        index = FootageIndex(tmp_path / f"workers{workers}", checkpoint, batch_size=4)
        reports.append(index.add_sources([sources[0], broken, sources[1]], workers=workers, progress=False))
        indexes.append(index)
    sequential, threaded = indexes
    assert reports[0].tracks > 3 and reports[0].skipped == {"unreadable image": 1}
    assert [{**vars(report), "seconds": 0} for report in reports] == [{**vars(reports[0]), "seconds": 0}] * 2
    shards = [sorted(path.name for path in (index.folder / "shards").iterdir()) for index in indexes]
    assert len(shards[0]) > 1 and shards[1] == shards[0]
    for shard in shards[0]:  # tracks, crops, pictures and completed files, shard by shard
        assert (threaded.folder / "shards" / shard / "crops.json").read_text() \
            == (sequential.folder / "shards" / shard / "crops.json").read_text()
        for thumbnail in sorted((sequential.folder / "shards" / shard / "thumbnails").iterdir()):
            assert (threaded.folder / "shards" / shard / "thumbnails" / thumbnail.name).read_bytes() \
                == thumbnail.read_bytes()
    assert torch.equal(threaded.gallery.image_features, sequential.gallery.image_features)
    assert torch.equal(threaded.gallery.image_embeds, sequential.gallery.image_embeds)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        sequential.add_sources(sources, workers=0, progress=False)


def test_reindexing_skips_and_new_sources_append(built, sources, checkpoint, tmp_path):
    index, _ = built
    folder = tmp_path / "copy"
    shutil.copytree(index.folder, folder)
    reopened = FootageIndex(folder)  # the model recorded in the index
    shards = sorted(p.name for p in (folder / "shards").iterdir())
    report = reopened.add_sources(sources, progress=False)
    assert (report.already_indexed, report.pictures, report.tracks, report.crops) == (4, 0, 0, 0)
    assert sorted(p.name for p in (folder / "shards").iterdir()) == shards
    extra = tmp_path / "extra.png"
    person_image(5).save(extra)
    report = reopened.add_sources([extra, *sources], progress=False)
    assert (report.already_indexed, report.tracks, report.crops) == (4, 1, 1)
    assert provenance(reopened)[: len(index.records)] == provenance(index)
    assert reopened.records[-1]["source"] == str(extra)


def test_a_crash_loses_only_the_batch_in_flight(walk, checkpoint, tmp_path, monkeypatch):
    videos = [walk.path, tmp_path / "again.avi"]
    shutil.copy(walk.path, videos[1])
    clean = FootageIndex(tmp_path / "clean", checkpoint, batch_size=2)
    clean.add_sources(videos, detector=SceneDifference(walk.scene), progress=False)
    write, calls = FootageIndex._write, []

    def crash_on_second_batch(self, batch, thumbnail_size):
        calls.append(batch.crops)
        if len(calls) == 2:
            (self.folder / "shards" / ".partial-1-000001").mkdir()  # what a killed process leaves
            raise KeyboardInterrupt
        write(self, batch, thumbnail_size)

    monkeypatch.setattr(FootageIndex, "_write", crash_on_second_batch)
    crashed = FootageIndex(tmp_path / "crashed", checkpoint, batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        crashed.add_sources(videos, detector=SceneDifference(walk.scene), progress=False)
    monkeypatch.setattr(FootageIndex, "_write", write)
    resumed = FootageIndex(tmp_path / "crashed")
    # the first batch: the first video's three people, written once they ended with the video
    assert [(r["track"], r["frame"]) for r in resumed.records] == [(t, f) for t in range(3) for f in (0, 10, 20)]
    assert resumed.sources == [str(walk.path)]
    assert not list((tmp_path / "crashed" / "shards").glob(".partial-*"))
    report = resumed.add_sources(videos, detector=SceneDifference(walk.scene), progress=False)
    assert (report.already_indexed, report.pictures, report.tracks, report.crops) == (1, 3, 3, 9)
    assert provenance(resumed) == provenance(clean)
    torch.testing.assert_close(resumed.gallery.image_features, clean.gallery.image_features)


def test_bad_sources_are_counted_and_leave_the_index_as_it_was(built, walk, tmp_path):
    index, _ = built
    folder = tmp_path / "copy"
    shutil.copytree(index.folder, folder)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "junk.mp4").write_text("not a video")
    (bad / "cut.avi").write_bytes(walk.path.read_bytes()[: walk.path.stat().st_size // 2])
    (bad / "notes.txt").write_text("hello")
    (bad / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    pedestrian_video(bad / "empty_street.avi", people=0, frames=20)
    reopened = FootageIndex(folder)
    report = reopened.add_sources([bad], detector=HOGPersonDetector(upscale=1.0), progress=False)
    assert dict(report.skipped) == {"unreadable video": 1, "truncated video": 1, "not an image, video or archive": 1,
                                    "unreadable image": 1}
    assert report.pictures_without_people == 2  # the empty street's frames 0 and 10
    assert report.pictures == 2 + 2  # and the cut video's frames 0 and 10
    assert provenance(reopened)[: len(index.records)] == provenance(index)
    assert len(reopened.records) == len(index.records) + report.crops
    # files that could not be read are not marked indexed: they are reported again; the rest are skipped
    again = reopened.add_sources([bad], detector=HOGPersonDetector(upscale=1.0), progress=False)
    assert (again.already_indexed, dict(again.skipped)) == (2, {"unreadable video": 1, "not an image, video or archive": 1,
                                                                "unreadable image": 1})


def test_another_models_features_are_refused(built, tmp_path):
    index, _ = built
    other = save_tiny_checkpoint(tmp_path / "other", seed=1)
    with pytest.raises(ValueError, match=f"{index.folder} was encoded with the model .*, not {other}"):
        FootageIndex(index.folder, other)


def test_loaded_model_and_missing_or_empty_index(built, checkpoint, tmp_path):
    index, _ = built
    model, processor = load_checkpoint(checkpoint, "cpu")
    same = FootageIndex(index.folder, model, processor)
    assert len(same) == len(index)
    with pytest.raises(ValueError, match="a loaded model needs its processor"):
        FootageIndex(index.folder, model)
    with pytest.raises(FileNotFoundError, match="nowhere is not a footage index"):
        FootageIndex(tmp_path / "nowhere")
    empty = FootageIndex(tmp_path / "empty", model, processor)
    assert json.loads((tmp_path / "empty" / "footage.json").read_text())["format"] == 2
    with pytest.raises(ValueError, match="holds no people yet"):
        empty.search(text=TEXT)
    with pytest.raises(FileNotFoundError, match="missing.avi does not exist"):
        empty.add_sources([tmp_path / "missing.avi"], progress=False)


def test_calibrated_probabilities_and_standing_queries(walk, checkpoint, tmp_path):
    calibrated = tmp_path / "calibrated"
    shutil.copytree(checkpoint, calibrated)
    Calibration(temperature=0.5, pairs=10, matches=5, data="made up").save(calibrated)
    index = FootageIndex(tmp_path / "watched", calibrated)
    assert index.calibration.temperature == 0.5 and not FootageIndex(tmp_path / "plain", checkpoint).calibration.fitted
    everyone = index.watch(TEXT, 0.0)
    assert everyone.poll() == []
    index.add_sources([walk.path], detector=SceneDifference(walk.scene), progress=False)
    text_embeds, mask, _ = index.engine.encode_text_batch([TEXT])
    expected = []  # per person, the best over their encoded crops of sigmoid(ITM margin / temperature)
    for track in index.tracks:
        embeds = index.gallery.image_embeds[track["crops"]]
        margins = itm_margins(index.engine.model, text_embeds.expand(len(embeds), -1, -1),
                              mask.expand(len(embeds), -1), embeds)
        expected.append(float(torch.sigmoid(margins / 0.5).max()))
    assert index.probabilities(TEXT, [0, 1, 2]) == pytest.approx(expected, abs=1e-5)
    alerts = everyone.poll()
    assert [a.track for a in alerts] == sorted(range(3), key=lambda i: -expected[i])
    assert [a.probability for a in alerts] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    assert everyone.poll() == []  # each person is reported once
    threshold = sorted(expected)[1]
    found = index.search(text=TEXT, top=3, min_probability=threshold)
    assert {m.track for m in found} == {i for i, p in enumerate(expected) if p >= threshold}
    assert all(m.probability == pytest.approx(expected[m.track], abs=1e-5) for m in found)
    assert all(m.probability is None for m in index.search(text=TEXT, top=3))
    strict = index.watch(TEXT, threshold)
    shutil.copy(walk.path, tmp_path / "again.avi")
    index.add_sources([tmp_path / "again.avi"], detector=SceneDifference(walk.scene), progress=False)
    assert sorted(a.track - 3 for a in strict.poll()) == sorted(i for i, p in enumerate(expected) if p >= threshold)
    with pytest.raises(ValueError, match="min_probability needs a text"):
        index.search(image=index.records[0]["thumbnail"], min_probability=0.5)
    with pytest.raises(ValueError, match="probability must be in"):
        index.watch(TEXT, 2)
