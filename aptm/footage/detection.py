"""Finding people in wide images and video frames: the `PersonDetector` interface (a detector proposes boxes, the
interface keeps those large enough and suppresses overlaps), non-maximum suppression, and OpenCV's HOG people
detector as the offline default.

OpenCV is optional (`pip install "aptm-hf[footage]"`) and imported only when a detector or a video reader is built.
"""

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


def import_opencv():
    """The `cv2` module, or an `ImportError` saying what to install (OpenCV 4.x: 5.0 removed `HOGDescriptor`)."""
    try:
        import cv2
    except ImportError as error:
        raise ImportError('person detection and video reading need OpenCV 4.x: pip install "aptm-hf[footage]" '
                          "(opencv-python-headless)") from error
    if not hasattr(cv2, "HOGDescriptor"):
        raise ImportError(f"OpenCV {cv2.__version__} has no HOGDescriptor (removed in 5.0): install opencv-python-headless<5")
    return cv2


@dataclass(frozen=True)
class Detection:
    """A person found in an image: `box` `(left, top, right, bottom)` in pixels of the image, and the detector's
    confidence (its own scale)."""

    box: tuple
    score: float


def non_max_suppression(boxes, scores, overlap=0.5):
    """Indices of the boxes to keep, best score first: a box is dropped when its intersection with a kept box covers
    more than `overlap` of the smaller of the two, so a box nested inside a stronger one goes too (HOG often returns
    a person and a larger box around them).

    Args:
        boxes (`np.ndarray`): `[N, 4]` boxes `(left, top, right, bottom)`.
        scores (`np.ndarray`): `[N]` confidences.
        overlap (`float`, *optional*, defaults to 0.5): the largest shared fraction of the smaller box that two kept
            boxes may have.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    for candidate in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if keep:
            kept = boxes[keep]
            width = np.minimum(kept[:, 2], boxes[candidate, 2]) - np.maximum(kept[:, 0], boxes[candidate, 0])
            height = np.minimum(kept[:, 3], boxes[candidate, 3]) - np.maximum(kept[:, 1], boxes[candidate, 1])
            shared = np.clip(width, 0, None) * np.clip(height, 0, None)
            if (shared > overlap * np.minimum(areas[keep], areas[candidate])).any():
                continue
        keep.append(int(candidate))
    return keep


class PersonDetector(ABC):
    r"""
    Finds people in an RGB image. A detector implements `propose` (raw boxes and scores); calling it clips the boxes
    to the image, drops those below the minimum crop size or score, and suppresses overlaps. Plug in a stronger
    detector by subclassing and implementing `propose`; `FootageIndex.add_sources` calls it from several threads at
    once unless given `workers=1`.

    Args:
        min_size (`tuple[int, int]`, *optional*, defaults to `(24, 64)`): smallest crop `(width, height)` in pixels
            of the image; smaller people are too blurred to describe.
        min_score (`float`, *optional*, defaults to 0.0): lowest detector score kept.
        overlap (`float`, *optional*, defaults to 0.5): see `non_max_suppression`.
    """

    def __init__(self, min_size=(24, 64), min_score=0.0, overlap=0.5):
        self.min_size = tuple(min_size)
        self.min_score = min_score
        self.overlap = overlap

    @abstractmethod
    def propose(self, image):
        """Candidate boxes `[N, 4]` `(left, top, right, bottom)` and scores `[N]` of an RGB `uint8` array
        `[H, W, 3]`."""

    def __call__(self, image):
        """`Detection`s of the people in an RGB `uint8` array `[H, W, 3]`, best first."""
        height, width = image.shape[:2]
        boxes, scores = self.propose(image)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"{type(self).__name__}.propose returned {len(boxes)} boxes and {len(scores)} scores")
        boxes = np.round(np.clip(boxes, 0, [width, height, width, height])).astype(int)
        large = ((boxes[:, 2] - boxes[:, 0] >= self.min_size[0]) & (boxes[:, 3] - boxes[:, 1] >= self.min_size[1])
                 & (scores >= self.min_score))
        boxes, scores = boxes[large], scores[large]
        return [Detection(tuple(int(v) for v in boxes[i]), float(scores[i]))
                for i in non_max_suppression(boxes, scores, self.overlap)]


class HOGPersonDetector(PersonDetector):
    r"""
    OpenCV's HOG + linear SVM people detector (Dalal and Triggs), offline and CPU-only. It sees people about 100
    pixels tall or more, so images are upscaled first (`upscale`), within `max_side`.

    Args:
        upscale (`float`, *optional*, defaults to 1.5): resize factor before detection (people shorter than about
            100 / `upscale` pixels are missed).
        max_side (`int`, *optional*, defaults to 1600): longest side detection runs at; larger images are shrunk.
        win_stride (`int`, *optional*, defaults to 8): window step in pixels (smaller finds more, slower).
        pyramid_scale (`float`, *optional*, defaults to 1.05): scale step between pyramid levels.
        min_size, overlap: see `PersonDetector`.
        min_score (`float`, *optional*, defaults to 0.5): lowest SVM margin kept.

    Safe to call from several threads at once (`FootageIndex.add_sources`'s workers): each thread detects with its
    own OpenCV `HOGDescriptor`, which OpenCV does not document as safe to share.
    """

    def __init__(self, upscale=1.5, max_side=1600, win_stride=8, pyramid_scale=1.05, min_size=(24, 64), min_score=0.5,
                 overlap=0.5):
        super().__init__(min_size=min_size, min_score=min_score, overlap=overlap)
        self.cv2 = import_opencv()
        self.upscale, self.max_side = upscale, max_side
        self.win_stride, self.pyramid_scale = win_stride, pyramid_scale
        self._threads = threading.local()

    @property
    def hog(self):
        """The calling thread's HOG descriptor with OpenCV's default people detector (built on its first use)."""
        hog = getattr(self._threads, "hog", None)
        if hog is None:
            hog = self._threads.hog = self.cv2.HOGDescriptor()
            hog.setSVMDetector(self.cv2.HOGDescriptor_getDefaultPeopleDetector())
        return hog

    def propose(self, image):
        factor = min(self.upscale, self.max_side / max(image.shape[:2]))
        if factor != 1:
            image = self.cv2.resize(image, None, fx=factor, fy=factor, interpolation=self.cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(np.ascontiguousarray(image), winStride=(self.win_stride,) * 2,
                                                   padding=(8, 8), scale=self.pyramid_scale)
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) / factor
        return boxes, np.asarray(weights, dtype=np.float64).reshape(-1)
