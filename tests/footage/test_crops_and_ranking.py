"""The pieces the Space links: person crops with provenance (`crops`) and the rule combining a sentence with an
example image (`ranking`)."""

import numpy as np
import pytest

from aptm.footage import PersonDetector, combined_scores, people_in
from aptm.footage.sources import Picture


class FixedBoxes(PersonDetector):
    def propose(self, image):
        return np.array([[10, 5, 40, 95], [50, 0, 90, 100]]), np.array([0.5, 2.0])


def test_a_tall_photo_is_taken_whole_and_a_frame_is_cut_at_its_detections():
    pixels = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    tall = Picture("a.jpg", "/footage/a.jpg", None, None, None, pixels[:, :60])
    (whole,) = people_in(tall, detector=None)
    assert (whole.box, whole.detection_score, whole.image.size) == ((0, 0, 60, 100), None, (60, 100))
    frame = Picture("v.avi#30", "/footage/v.avi", None, 30, 1.2, pixels)
    crops = people_in(frame, FixedBoxes())
    assert [(c.box, c.detection_score) for c in crops] == [((50, 0, 90, 100), 2.0), ((10, 5, 40, 95), 0.5)]
    np.testing.assert_array_equal(np.asarray(crops[1].image), pixels[5:95, 10:40])
    assert crops[0].provenance() == {"source": "/footage/v.avi", "member": None, "frame": 30, "timestamp": 1.2,
                                     "box": [50, 0, 90, 100], "detection_score": 2.0}
    assert crops[0].thumbnail(50).size == (20, 50) and crops[0].image.size == (40, 100)
    assert len(people_in(Picture("w.jpg", "/w.jpg", None, None, None, pixels), FixedBoxes(), crop_aspect=0.5)) == 1


def test_combined_scores_weigh_min_max_normalised_scores():
    text, image = np.array([2.0, 4.0, 3.0]), np.array([0.1, 0.2, 0.5])
    np.testing.assert_allclose(combined_scores(text, image, 0.25), 0.75 * np.array([0, 1, 0.5]) + 0.25 *
                               np.array([0, 0.25, 1]))
    np.testing.assert_allclose(combined_scores(np.full(3, 7.0), image, 0.5), 0.5 * np.array([0, 0.25, 1]))
    assert combined_scores(text, image, 0.0) == pytest.approx([0, 1, 0.5])
