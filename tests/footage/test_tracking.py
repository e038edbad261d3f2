"""Tracking: on a generated video whose people cross each other and one stands still, detections at the known boxes
(jittered by a few pixels, one in ten missed) are linked into tracks, measured against the true identities
(identity switches, fragmentations, IDF1, tracks per person); the person standing still is static, the walkers are
not; a track survives `max_gap` missed frames and no more; the figures themselves are checked on known cases."""

from dataclasses import astuple

import cv2
import numpy as np
import pytest
from PIL import Image

from aptm.footage import Crop, Tracker
from aptm.footage.tracking import Track, box_overlaps, colour_signature

from helpers.footage import pedestrian_video
from helpers.tracking import tracking_figures

FRAMES = 60
PATHS = [(20, 100, 8), (560, 110, -8), (300, 90, 0)]  # two walkers crossing in front of a third standing still


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    """`(frames, boxes)` of the crossing video."""
    path = tmp_path_factory.mktemp("crossing") / "crossing.avi"
    _, boxes, _ = pedestrian_video(path, frames=FRAMES, paths=PATHS)
    capture, frames = cv2.VideoCapture(str(path)), []
    while (read := capture.read())[0]:
        frames.append(np.ascontiguousarray(read[1][:, :, ::-1]))
    return frames, boxes


def detections(frames, boxes, frame, rng, jitter=3, miss=0.1):
    """Crops of `frame` at its true boxes moved by up to `jitter` pixels, each missed with probability `miss`."""
    crops = []
    for box in boxes[frame]:
        if rng.random() < miss:
            continue
        moved = np.clip(np.round(np.array(box) + rng.normal(0, jitter, 4)).astype(int), 0, [640, 360, 640, 360])
        left, top, right, bottom = moved.tolist()
        crops.append(Crop("crossing.avi", None, frame, frame / 10, (left, top, right, bottom), 1.0,
                          Image.fromarray(frames[frame][top:bottom, left:right])))
    return crops


def tracked(frames, boxes, step, seed=0, **options):
    """`(tracks, figures)` of the tracker on the video sampled every `step` frames."""
    rng, tracker, tracks = np.random.default_rng(seed), Tracker(**options), []
    for frame in range(0, FRAMES, step):
        tracks += tracker.update(detections(frames, boxes, frame, rng))
    tracks += tracker.finish()
    found = {}
    for number, track in enumerate(tracks):
        for crop in track.crops:
            found.setdefault(crop.frame, {})[number] = crop.box
    truth = {frame: dict(enumerate(boxes[frame])) for frame in range(0, FRAMES, step)}
    return tracks, tracking_figures(truth, found)


@pytest.mark.parametrize("step", [2, 5])
def test_people_crossing_keep_their_tracks(crossing, step):
    tracks, figures = tracked(*crossing, step)
    assert len(tracks) == 3 and figures.tracks_per_person == 1.0
    assert figures.identity_switches == 0 and figures.idf1 > 0.9
    by_start = {round(track.crops[0].box[0], -2): track for track in tracks}  # 0, 600 (the walkers), 300
    assert [by_start[x].is_static() for x in (0, 600, 300)] == [False, False, True]
    assert by_start[0].start == 0 and by_start[0].end >= (FRAMES - 2 * step) / 10


def test_without_colours_or_motion_buffer_tracks_break(crossing):
    """The measured baseline: plain overlap of unwidened boxes (at least 0.3) loses walkers 40 pixels apart between
    samples, so some are cut into several tracks."""
    _, figures = tracked(*crossing, 5, buffer=0.0, appearance_weight=0.0, min_overlap=0.3)
    _, full = tracked(*crossing, 5)
    assert figures.tracks_per_person > 1.5 and full.tracks_per_person == 1 and figures.idf1 < full.idf1 - 0.05


def test_a_track_survives_max_gap_missed_frames(crossing):
    frames, boxes = crossing
    rng = np.random.default_rng(0)
    for gap in (1, 2):
        tracker, ended = Tracker(max_gap=gap), []
        tracker.update([crop for crop in detections(frames, boxes, 0, rng, miss=0) if crop.box[0] < 200])
        for frame in (2, 4, 6)[: gap + 1]:
            ended += tracker.update([])
        assert len(ended) == 1 and len(ended[0].crops) == 1 and not tracker.live
    tracker = Tracker(max_gap=2)
    tracker.update([crop for crop in detections(frames, boxes, 0, rng, miss=0) if crop.box[0] < 200])
    assert tracker.update([]) == [] and tracker.update([]) == []
    assert tracker.update([crop for crop in detections(frames, boxes, 6, rng, miss=0) if crop.box[0] < 200]) == []
    assert [len(track.crops) for track in tracker.finish()] == [2]


def test_bad_updates_and_options_are_refused(crossing):
    frames, boxes = crossing
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"crops of one frame, got frames \[0, 2\]"):
        Tracker().update(detections(frames, boxes, 0, rng, miss=0)[:1] + detections(frames, boxes, 2, rng, miss=0))
    with pytest.raises(ValueError, match="appearance_weight must be in"):
        Tracker(appearance_weight=2)
    with pytest.raises(ValueError, match="max_gap must be at least 0"):
        Tracker(max_gap=-1)


def test_best_and_chosen_crops():
    image = Image.new("RGB", (10, 10))
    sizes = [(10, 30), (20, 50), (12, 40), (20, 50), (8, 20)]
    track = Track([Crop("v", None, 2 * i, i / 5, (0, 0, w, h), score, image)
                   for i, ((w, h), score) in enumerate(zip(sizes, (1, 1, 1, 2, 1)))])
    assert track.best() == 3  # the largest; of the two largest, the more confident
    assert track.chosen(1) == [3] and track.chosen(3) == [0, 2, 3] and track.chosen(9) == [0, 1, 2, 3, 4]
    assert Track(track.crops[:1]).chosen(3) == [0]


def test_overlaps_and_colours():
    np.testing.assert_allclose(box_overlaps([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]),
                               [[1 / 3, 0, 1]])
    red, blue = Image.new("RGB", (20, 40), (200, 20, 20)), Image.new("RGB", (20, 40), (20, 20, 200))
    assert colour_signature(red) @ colour_signature(red) == pytest.approx(1)
    assert colour_signature(red) @ colour_signature(blue) == pytest.approx(0)


def test_the_figures_on_known_cases():
    truth = {f: {"a": (10 * f, 0, 10 * f + 20, 50), "b": (200, 0, 220, 50)} for f in range(6)}
    perfect = {f: {1: people["a"], 2: people["b"]} for f, people in truth.items()}
    assert astuple(tracking_figures(truth, perfect)) == (0, 0, 1.0, 1.0)
    switched = {f: {1 if f < 3 else 3: people["a"], 2: people["b"]} for f, people in truth.items()}
    figures = tracking_figures(truth, switched)  # "a" is followed by 1, then by 3: one switch, IDF1 (3 + 6) / 12
    assert (figures.identity_switches, figures.fragmentations, figures.tracks_per_person) == (1, 0, 1.5)
    assert figures.idf1 == pytest.approx(2 * 9 / 24)
    gap = {f: {1: people["a"], 2: people["b"]} if f != 2 else {2: people["b"]} for f, people in truth.items()}
    figures = tracking_figures(truth, gap)  # "a" missed once: one fragmentation, no switch
    assert (figures.identity_switches, figures.fragmentations) == (0, 1)
    assert figures.idf1 == pytest.approx(2 * 11 / (12 + 11))
