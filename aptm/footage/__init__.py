"""Searching real footage: folders, zip/tar archives, photos and videos become an incremental index of people
(`FootageIndex`: detection in wide images and video frames, tracks through a video's sampled frames, provenance,
thumbnails), searched by a sentence, an
example image of the person, or both. Person detection (`PersonDetector`, OpenCV's `HOGPersonDetector` by default)
and video reading need the `footage` extra (opencv-python-headless 4.x), imported only when used.

`detection`, `sources`, `crops`, `tracking`, `ranking`, `labels` and `timeline` import nothing of this package but
each other (only numpy, torch, Pillow, tqdm, OpenCV and `aptm.images`): the Space runs copies of them
(`space/aptm_parts/`) with the model's remote code.
`parallel` (detection in worker threads, ahead of indexing) imports only the standard library. `index` (the index on
disk) and `presentation` (table and grid) build on the rest of the package."""

from .crops import Crop, people_in
from .detection import Detection, HOGPersonDetector, PersonDetector, non_max_suppression
from .index import FootageIndex, FootageMatch, IndexingReport, TrackMatch
from .labels import caption, format_time
from .presentation import matches_grid, matches_table
from .ranking import combined_scores, rank_crops
from .sources import SkipLog, SourceError, SourceReader
from .tracking import Track, Tracker

__all__ = [
    "Crop", "Detection", "FootageIndex", "FootageMatch", "HOGPersonDetector", "IndexingReport", "PersonDetector",
    "SkipLog", "SourceError", "SourceReader", "caption", "combined_scores", "format_time", "matches_grid",
    "matches_table", "non_max_suppression", "people_in", "rank_crops", "Track", "TrackMatch", "Tracker",
]
