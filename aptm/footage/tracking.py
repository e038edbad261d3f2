"""Linking the people found in a video's sampled frames into tracks, one per person: each new frame's detections are
associated with the live tracks by the overlap of their boxes with the tracks' predicted boxes (constant velocity,
boxes widened by a buffer so that people who moved between two samples still overlap) and, where it helps, the
likeness of their colours. A track left unmatched for more than `max_gap` sampled frames ends. A track whose box
stays put for most of its life is static (a parked vehicle, a poster, a person standing still).

No tracker library fits the footage extra: `trackers` (Apache-2.0) needs the full `opencv-python` (which clashes with
the headless OpenCV the extra installs) and `supervision` brings scipy, matplotlib and PyAV. This is a small,
measured association step (`tests/footage/test_tracking.py`: identity switches, fragmentation and IDF1 on generated
walks). Imports only numpy (and `crops`), so the Space (`space/aptm_footage/`) copies this module."""

from dataclasses import dataclass, field

import numpy as np



def box_overlaps(boxes, others):
    """Intersection over union `[N, M]` of boxes `[N, 4]` and `[M, 4]` `(left, top, right, bottom)`."""
    boxes, others = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(others, np.float64).reshape(-1, 4)
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    shared = np.clip(width, 0, None) * np.clip(height, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(boxes)[:, None] + area(others)[None, :] - shared
    return np.where(union > 0, shared / np.where(union > 0, union, 1), 0.0)


def widened(boxes, buffer):
    """Boxes `[N, 4]` grown on every side by `buffer` times their width (left and right) and height (top, bottom)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    return boxes + buffer * size * np.array([-1, -1, 1, 1])


def colour_signature(image, bins=4):
    """A normalised `bins`^3 RGB histogram of the middle of a crop (its central half across, the body's height), a
    cheap appearance cue that tells a white coat from a dark jacket."""
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    middle = pixels[height // 8 : height - height // 8, width // 4 : width - width // 4].reshape(-1, 3)
    if not len(middle):
        middle = pixels.reshape(-1, 3)
    cells = (middle.astype(np.int64) * bins // 256) @ np.array([bins * bins, bins, 1])
    histogram = np.bincount(cells, minlength=bins**3).astype(np.float64)
    return histogram / max(np.linalg.norm(histogram), 1e-12)


@dataclass
class Track:
    """One person followed through a video: the `Crop`s of their sampled frames, in frame order, and how many
    sampled frames in a row missed them (`misses`)."""

    crops: list
    misses: int = 0
    signature: np.ndarray = field(default=None, repr=False)

    @property
    def boxes(self):
        return np.array([crop.box for crop in self.crops], np.float64)

    @property
    def start(self):
        """Time stamp (seconds) of the first sighting."""
        return self.crops[0].timestamp

    @property
    def end(self):
        """Time stamp (seconds) of the last sighting."""
        return self.crops[-1].timestamp

    def predicted_box(self, frame, history=4):
        """Where the box should be at `frame`: the last box moved at the mean velocity over the last `history`
        sightings (several, so that a detector's jitter does not swing it)."""
        last = np.array(self.crops[-1].box, np.float64)
        if len(self.crops) < 2 or frame is None:
            return last
        previous = self.crops[-min(history, len(self.crops))]
        velocity = (last - np.array(previous.box, np.float64)) / max(self.crops[-1].frame - previous.frame, 1)
        return last + velocity * (frame - self.crops[-1].frame)

    def best(self):
        """Index of the crop that shows the person best: the largest box, then the most confident detection."""
        return max(range(len(self.crops)), key=lambda i: (_area(self.crops[i].box), self.crops[i].detection_score or 0))

    def chosen(self, count):
        """Indices (sorted) of up to `count` crops to encode: the `best` one and others evenly spread over the track."""
        spread = np.linspace(0, len(self.crops) - 1, num=min(count, len(self.crops))).round().astype(int)
        chosen = {self.best()}
        for index in spread.tolist():
            if len(chosen) >= count:
                break
            chosen.add(index)
        return sorted(chosen)

    def is_static(self, min_sightings=3, tolerance=0.1, share=0.8):
        """Whether the box stays put: seen at least `min_sightings` times, and at least `share` of its sightings have
        their centre within `tolerance` times the median box's width (across) and height (up and down) of the median
        centre."""
        if len(self.crops) < min_sightings:
            return False
        boxes = self.boxes
        centres, sizes = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
        still = (np.abs(centres - np.median(centres, axis=0)) <= tolerance * np.median(sizes, axis=0)).all(axis=1)
        return bool(still.mean() >= share)


def _area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


class Tracker:
    r"""
    Associates the people of one video's sampled frames into `Track`s, frame by frame (`update`).

    Args:
        min_overlap (`float`, *optional*, defaults to 0.05): the least overlap (intersection over union of the
            widened boxes) between a track's predicted box and a detection for the two to be linked.
        buffer (`float`, *optional*, defaults to 0.5): boxes are widened by this fraction of their size on every side
            before their overlap is measured, so that a person who moved by up to about a box width between two sampled
            frames still overlaps their track.
        appearance_weight (`float`, *optional*, defaults to 0.3): weight of the colour likeness (cosine of
            `colour_signature`s) in the link score `(1 - w) x overlap + w x likeness`.
        max_gap (`int`, *optional*, defaults to 2): sampled frames in a row a track may miss (occlusion, a detector
            miss) and still continue.
    """

    def __init__(self, min_overlap=0.05, buffer=0.5, appearance_weight=0.3, max_gap=2):
        if not 0 <= appearance_weight <= 1:
            raise ValueError(f"appearance_weight must be in [0, 1], got {appearance_weight}")
        if max_gap < 0:
            raise ValueError(f"max_gap must be at least 0, got {max_gap}")
        self.min_overlap, self.buffer = min_overlap, buffer
        self.appearance_weight, self.max_gap = appearance_weight, max_gap
        self.live = []

    def update(self, crops: list) -> list:
        """Link the `Crop`s of the next sampled frame (all of one frame) to the live tracks; unmatched crops start
        tracks. Returns the tracks that ended (missed for more than `max_gap` sampled frames)."""
        frames = {crop.frame for crop in crops}
        if len(frames) > 1:
            raise ValueError(f"update takes the crops of one frame, got frames {sorted(frames, key=str)}")
        signatures = [colour_signature(crop.image) for crop in crops]
        matched_tracks, matched_crops = set(), set()
        if self.live and crops:
            frame = crops[0].frame
            predicted = np.array([track.predicted_box(frame) for track in self.live])
            detected = np.array([crop.box for crop in crops], np.float64)
            near = box_overlaps(widened(predicted, self.buffer), widened(detected, self.buffer))
            overlap = (near + box_overlaps(predicted, detected)) / 2
            likeness = np.array([[float(track.signature @ signature) for signature in signatures]
                                 for track in self.live])
            score = (1 - self.appearance_weight) * overlap + self.appearance_weight * likeness
            score[near < self.min_overlap] = -np.inf
            for flat in np.argsort(-score, axis=None, kind="stable"):
                t, c = np.unravel_index(flat, score.shape)
                if not np.isfinite(score[t, c]):
                    break
                if t in matched_tracks or c in matched_crops:
                    continue
                track = self.live[t]
                track.crops.append(crops[c])
                track.signature, track.misses = _blend(track.signature, signatures[c]), 0
                matched_tracks.add(t)
                matched_crops.add(c)
        ended, live = [], []
        for t, track in enumerate(self.live):
            if t not in matched_tracks:
                track.misses += 1
            (ended if track.misses > self.max_gap else live).append(track)
        live += [Track([crop], signature=signatures[c]) for c, crop in enumerate(crops) if c not in matched_crops]
        self.live = live
        return ended

    def finish(self) -> list:
        """End every live track (the video is over); returns them."""
        ended, self.live = self.live, []
        return ended


def _blend(signature, new, weight=0.3):
    """A track's colour signature after a new sighting: a running average, normalised."""
    blended = (1 - weight) * signature + weight * new
    return blended / max(np.linalg.norm(blended), 1e-12)


def single_tracks(crops: list) -> list:
    """One `Track` per crop: the people of a photo (nothing to follow them through)."""
    return [Track([crop]) for crop in crops]

