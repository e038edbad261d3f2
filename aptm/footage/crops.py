"""Person crops cut from pictures, with their provenance: a picture that already is a crop is taken whole, any other
goes through a `PersonDetector`. Imports only Pillow, so the Space runs a copy of this module (`space/aptm_parts/`)."""

from dataclasses import dataclass

from PIL import Image


@dataclass
class Provenance:
    """Where a person crop came from: `source` (file path), `member` (path inside an archive), `frame` and `timestamp`
    (seconds; videos only), `box` `(left, top, right, bottom)` in the picture's pixels, `detection_score` (None for a
    picture taken whole)."""

    source: str
    member: str
    frame: int
    timestamp: float
    box: tuple
    detection_score: float

    def provenance(self):
        """The provenance fields, JSON-ready."""
        return {"source": self.source, "member": self.member, "frame": self.frame, "timestamp": self.timestamp,
                "box": list(self.box), "detection_score": self.detection_score}


@dataclass
class Crop(Provenance):
    """A person cut from a picture: the crop `image` (RGB PIL, at the picture's resolution) and its `Provenance`."""

    image: Image.Image

    def thumbnail(self, size):
        """A copy of the crop whose longest side is at most `size` pixels."""
        thumbnail = self.image.copy()
        thumbnail.thumbnail((size, size))
        return thumbnail


def is_person_crop(picture, crop_aspect):
    """Whether a picture (a `sources.Picture`) is taken whole: a photo (not a video frame) at least `crop_aspect` times
    taller than wide."""
    height, width = picture.image.shape[:2]
    return picture.frame is None and height >= crop_aspect * width


def people_in(picture, detector, crop_aspect=1.5):
    """`Crop`s of the people in a picture (a `sources.Picture`): the picture itself when `is_person_crop`, else one per
    `detector` detection, best first. `detector` may be None when the picture is a person crop."""
    height, width = picture.image.shape[:2]
    if is_person_crop(picture, crop_aspect):
        found = [((0, 0, width, height), None)]
    else:
        found = [(detection.box, detection.score) for detection in detector(picture.image)]
    crops = []
    for (left, top, right, bottom), score in found:
        crops.append(Crop(picture.source, picture.member, picture.frame, picture.timestamp, (left, top, right, bottom),
                          score, Image.fromarray(picture.image[top:bottom, left:right])))
    return crops
