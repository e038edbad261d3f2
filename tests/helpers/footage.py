"""Footage for the footage tests: a saved tiny checkpoint, Debian's real `vtest.avi` when installed, and generated
videos of procedural pedestrians walking across a street scene, whose boxes are known."""

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aptm
from aptm.footage import PersonDetector
from datasets_scripts import procedural

from helpers.models import tiny_config

VTEST_DEFAULT = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VTEST_MISSING = "vtest.avi not found: `apt-get install opencv-doc` (make test installs it where apt-get is available)"


def vtest_path():
    """Path of the `vtest.avi` that Debian's `opencv-doc` ships (a real campus scene with walking people), or None."""
    if VTEST_DEFAULT.is_file():
        return VTEST_DEFAULT
    if shutil.which("dpkg"):
        listing = subprocess.run(["dpkg", "-L", "opencv-doc"], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            if line.endswith("/vtest.avi") and Path(line).is_file():
                return Path(line)
    return None


def save_tiny_checkpoint(folder, seed=0):
    """A random tiny APTM model and the processor saved as a checkpoint folder; returns the folder."""
    torch.manual_seed(seed)
    aptm.APTMModel(tiny_config()).save_pretrained(folder)
    aptm.build_processor().save_pretrained(folder)
    return Path(folder)


def pedestrian_cutout(identity, seed, height=192):
    """A procedural pedestrian without its background: RGB image and mask, scaled to `height` pixels, cropped to the
    figure."""
    person, _ = procedural.render(identity, np.random.default_rng(seed))
    background, _ = procedural._background(np.random.default_rng(seed))  # same draws: the scene the figure stands on
    mask = np.abs(np.asarray(person, int) - np.asarray(background, int)).sum(-1) > 0
    rows, columns = np.nonzero(mask)
    box = (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1)
    scale = height / (box[3] - box[1])
    size = (max(1, round((box[2] - box[0]) * scale)), height)
    mask_image = Image.fromarray((mask * 255).astype(np.uint8)).crop(box).resize(size)
    return person.crop(box).resize(size, Image.BICUBIC), mask_image


def street_scene(width=640, height=360, seed=0):
    """A muted street background: a grey gradient, a ground band and sensor noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(150, 105, height)[:, None, None]
    pixels = np.repeat(ramp, width, axis=1).repeat(3, axis=2)
    pixels[int(height * 0.8):] = 95
    pixels += rng.normal(0, 3, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


CLOTHES = (("white", "white"), ("black", "black"), ("red", "blue"))  # far apart, even for a random model's features


def pedestrian_video(path, people=3, frames=30, fps=10, speed=2, seed=7, paths=None):
    """Write an MJPG AVI of up to three procedural pedestrians (in `CLOTHES`' colours, trousers) walking across a
    street scene: by default all right at `speed` pixels a frame, side by side; `paths` gives each person's
    `(left, top, pixels per frame)` instead (0: standing still; later people are drawn in front). Returns
    `(identities, boxes, scene)`: `boxes[frame][person]` is `(left, top, right, bottom)`, `scene` the empty street."""
    import cv2

    rng = np.random.default_rng(seed)
    identities = [replace(procedural.sample_identity(rng), upper_colour=upper, lower_colour=lower,
                          lower_type="trousers", lower_long=True) for upper, lower in CLOTHES[:people]]
    cutouts = [pedestrian_cutout(identity, [seed, k]) for k, identity in enumerate(identities)]
    scene = street_scene(seed=seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (scene.shape[1], scene.shape[0]))
    boxes = []
    for frame in range(frames):
        picture = Image.fromarray(scene)
        frame_boxes = []
        for k, (figure, mask) in enumerate(cutouts):
            start, top, step = paths[k] if paths else (60 + 210 * k, 100, speed)
            left = start + step * frame
            picture.paste(figure, (left, top), mask)
            frame_boxes.append((left, top, left + figure.width, top + figure.height))
        writer.write(np.asarray(picture)[:, :, ::-1].copy())
        boxes.append(frame_boxes)
    writer.release()
    return identities, boxes, scene


class SceneDifference(PersonDetector):
    """A plug-in detector for a fixed camera: people are where a frame differs from the empty scene, one box per run
    of changed columns (the generated pedestrians never overlap horizontally). Its boxes fit the figures tightly."""

    def __init__(self, scene, threshold=60, **kwargs):
        super().__init__(**kwargs)
        self.scene, self.threshold = scene.astype(int), threshold

    def propose(self, image):
        changed = np.abs(image.astype(int) - self.scene).sum(-1) > self.threshold
        columns = np.flatnonzero(changed.sum(0) > 3)
        runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if len(columns) else []
        boxes = []
        for run in runs:
            rows = np.flatnonzero(changed[:, run[0] : run[-1] + 1].sum(1) > 1)
            boxes.append((run[0], rows[0], run[-1] + 1, rows[-1] + 1))
        return np.array(boxes).reshape(-1, 4), np.ones(len(boxes))


def overlap(box, other):
    """Intersection over union of two `(left, top, right, bottom)` boxes."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    shared = max(0, width) * max(0, height)
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    return shared / (area(box) + area(other) - shared)
