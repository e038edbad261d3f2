"""Person detection: non-maximum suppression, the detector interface's clipping and minimum size, OpenCV's HOG
detector on generated pedestrians, and OpenCV imported only when used (with a clear error without it)."""

import subprocess
import sys
import types

import cv2
import numpy as np
import pytest

from aptm.footage import HOGPersonDetector, PersonDetector, non_max_suppression
from aptm.footage.detection import import_opencv

from helpers.footage import overlap
from helpers.paths import REPO


def test_non_max_suppression_keeps_the_best_of_overlapping_and_nested_boxes():
    boxes = [[0, 0, 50, 100], [5, 5, 55, 105], [200, 0, 250, 100], [210, 20, 230, 60], [100, 0, 150, 100]]
    scores = [0.9, 1.2, 0.5, 0.8, 0.1]
    # box 0 overlaps box 1 (better); box 2 holds box 3 (better) entirely; box 4 stands alone
    assert non_max_suppression(boxes, scores) == [1, 3, 4]
    assert non_max_suppression(boxes, scores, overlap=1.0) == [1, 0, 3, 2, 4]
    assert non_max_suppression(np.zeros((0, 4)), []) == []


class FixedDetector(PersonDetector):
    """Proposes the same boxes whatever the image."""

    def __init__(self, boxes, scores, **kwargs):
        super().__init__(**kwargs)
        self.boxes, self.scores = boxes, scores

    def propose(self, image):
        return self.boxes, self.scores


def test_detector_clips_boxes_and_drops_small_low_scoring_and_overlapping_ones():
    image = np.zeros((200, 300, 3), np.uint8)
    detector = FixedDetector([[-10, -5, 40, 120], [250, 100, 330, 260], [100, 10, 110, 150], [120, 10, 180, 40],
                              [0, 0, 45, 110], [150, 20, 200, 150]], [2.0, 1.0, 3.0, 3.0, 1.5, 0.2],
                             min_size=(24, 64), min_score=0.5)
    found = detector(image)
    # clipped to the image; 10 px wide and 30 px high boxes are too small; 0.2 is below min_score; the fifth box
    # overlaps the first, which scores higher
    assert [d.box for d in found] == [(0, 0, 40, 120), (250, 100, 300, 200)]
    assert [d.score for d in found] == [2.0, 1.0]


def test_detector_names_itself_when_proposals_do_not_match():
    with pytest.raises(ValueError, match="FixedDetector.propose returned 2 boxes and 1 scores"):
        FixedDetector([[0, 0, 30, 90], [40, 0, 70, 90]], [1.0])(np.zeros((100, 100, 3), np.uint8))


def test_hog_finds_each_generated_pedestrian(walk):
    path, boxes = walk.path, walk.boxes
    capture = cv2.VideoCapture(str(path))
    frame = capture.read()[1][:, :, ::-1]
    capture.release()
    found = HOGPersonDetector(upscale=1.0)(np.ascontiguousarray(frame))
    assert len(found) == len(boxes[0])
    for truth in boxes[0]:  # HOG boxes carry the detection window's margins around the person
        best = max(found, key=lambda d: overlap(d.box, truth))
        assert overlap(best.box, truth) > 0.25
        assert best.box[0] <= (truth[0] + truth[2]) / 2 <= best.box[2]


def test_hog_maps_boxes_back_to_the_image_when_it_resizes(walk):
    capture = cv2.VideoCapture(str(walk.path))
    frame = np.ascontiguousarray(capture.read()[1][:, :, ::-1])
    capture.release()
    small = HOGPersonDetector(upscale=1.0)(frame)
    detector, shapes = HOGPersonDetector(upscale=2.0, max_side=960), []
    hog = detector.hog  # this thread's descriptor, replaced by one that records the image sizes it sees
    detector._threads.hog = types.SimpleNamespace(
        detectMultiScale=lambda image, **kw: (shapes.append(image.shape), hog.detectMultiScale(image, **kw))[1])
    large = detector(frame)
    assert shapes == [(540, 960, 3)]  # max_side caps the factor at 1.5
    assert len(large) == len(small)
    for detection in small:
        assert max(overlap(detection.box, other.box) for other in large) > 0.5


def test_missing_or_too_new_opencv_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"aptm-hf\[footage\]"):
        import_opencv()
    monkeypatch.setitem(sys.modules, "cv2", types.SimpleNamespace(__version__="5.0.0"))
    with pytest.raises(ImportError, match="5.0.0 has no HOGDescriptor"):
        HOGPersonDetector()


def test_importing_the_footage_package_leaves_opencv_alone():
    code = "import sys, aptm.footage; assert 'cv2' not in sys.modules, 'cv2 imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
