"""Searching real footage: folders, zip/tar archives, photos and videos become an incremental index of person crops
(`FootageIndex`: detection in wide images and video frames, provenance, thumbnails), searched by a sentence, an
example image of the person, or both. Person detection (`PersonDetector`, OpenCV's `HOGPersonDetector` by default)
and video reading need the `footage` extra (opencv-python-headless 4.x), imported only when used."""

from .detection import Detection, HOGPersonDetector, PersonDetector, non_max_suppression
from .index import FootageIndex, FootageMatch, IndexingReport
from .presentation import caption, format_time, matches_grid, matches_table
from .sources import SkipLog, SourceError, SourceReader

__all__ = [
    "Detection", "FootageIndex", "FootageMatch", "HOGPersonDetector", "IndexingReport", "PersonDetector", "SkipLog",
    "SourceError", "SourceReader", "caption", "format_time", "matches_grid", "matches_table", "non_max_suppression",
]
