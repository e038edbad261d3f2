"""Short texts that say where a person crop came from: time stamps and the caption under a crop. Imports only the
standard library, so the Space runs a copy of this module (`space/aptm_parts/`)."""

import os


def format_time(seconds):
    """`m:ss.s` (or `h:mm:ss.s`) of a time stamp in seconds; `-` for None."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def caption(match):
    """A short line under a crop (anything with `timestamp`, `frame`, `member` and `source`: a `FootageMatch`, a
    `Crop`): time stamp and frame number of a video frame, else the image's file name."""
    if match.timestamp is not None:
        return f"{format_time(match.timestamp)} f{match.frame}"
    return os.path.basename(match.member or match.source)[:14]
