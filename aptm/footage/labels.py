"""Short texts that say where a person was seen: time stamps, time spans and the caption under a result. Imports only
the standard library, so the Space runs a copy of this module (`space/aptm_parts/`)."""

import os


def format_time(seconds):
    """`m:ss.s` (or `h:mm:ss.s`) of a time stamp in seconds; `-` for None."""
    if seconds is None:
        return "-"
    minutes, rest = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def parse_time(text):
    """Seconds of a time given as `s`, `m:ss` or `h:mm:ss` (fractions allowed): `"1:10"` is 70."""
    try:
        parts = [float(part) for part in str(text).split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(part < 0 for part in parts) or any(part >= 60 for part in parts[1:]):
        raise ValueError(f"{text!r} is not a time: give seconds, m:ss or h:mm:ss")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def span(start, end):
    """`m:ss.s-m:ss.s` of a track's time span; `-` for a photo (no time)."""
    return "-" if start is None else f"{format_time(start)}-{format_time(end)}"


def caption(match):
    """A short line under a result: the time span of a track (anything with `start` and `end`: a `TrackMatch`); for
    a crop (anything with `timestamp`, `frame`, `member` and `source`: a `FootageMatch`, a `Crop`) the time stamp
    and frame number of a video frame, else the image's file name."""
    if hasattr(match, "start"):
        return span(match.start, match.end) if match.start is not None else caption(match.moment)
    if match.timestamp is not None:
        return f"{format_time(match.timestamp)} f{match.frame}"
    return os.path.basename(match.member or match.source)[:14]
