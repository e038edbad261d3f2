"""Fixtures of the footage tests (they need the `footage` extra, opencv-python-headless): a saved tiny checkpoint
and a generated video of three procedural pedestrians with known boxes."""

from types import SimpleNamespace

import pytest

from helpers.footage import pedestrian_video, save_tiny_checkpoint

pytest.importorskip("cv2", reason="the footage extra (opencv-python-headless) is not installed")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("footage") / "checkpoint")


@pytest.fixture(scope="session")
def walk(tmp_path_factory):
    """A 30-frame, 10 fps video of three pedestrians walking right: `path`, `identities`, `boxes[frame][person]` and the
    empty `scene`."""
    path = tmp_path_factory.mktemp("walk") / "walk.avi"
    identities, boxes, scene = pedestrian_video(path)
    return SimpleNamespace(path=path, identities=identities, boxes=boxes, scene=scene)
