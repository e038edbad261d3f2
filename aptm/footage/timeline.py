"""A timeline of the people a query found: per video, when each appears (first to last sighting), with rank and score
and the best-matching moment. Imports only Pillow and `labels`, so the Space (`space/aptm_footage/`) links this
module; it draws anything with `rank`, `score`, `source`, `start`, `end` and `moment.timestamp` (a `TrackMatch`, or
the Space's tracks)."""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .labels import format_time

COLOURS = ((200, 40, 40), (230, 130, 20), (40, 120, 200), (40, 160, 80), (140, 70, 180))  # ranks 1 to 5
OTHERS, BAND, BLACK, WHITE = (150, 150, 150), (238, 238, 238), (20, 20, 20), (255, 255, 255)
TICKS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)  # seconds between axis marks


def tick_step(duration, most=8):
    """The smallest of `TICKS` that puts at most `most` marks on `duration` seconds."""
    return next((step for step in TICKS if duration / step <= most), TICKS[-1] * (int(duration / TICKS[-1] / most) + 1))


def lanes_of(matches, label=0.0):
    """`(lane, match)` of matches of one video, sorted by start: a match takes the first lane free at its start, so
    bars (each followed by its label, `label` seconds wide) never overlap in a lane. Returns the pairs and the number
    of lanes."""
    ends, placed = [], []
    for match in sorted(matches, key=lambda m: (m.start, m.rank)):
        lane = next((i for i, end in enumerate(ends) if end < match.start), len(ends))
        ends[lane : lane + 1] = [match.end + label + 1e-9]
        placed.append((lane, match))
    return placed, len(ends)


def matches_timeline(matches, query, path, width=900, lane_height=18, durations=None):
    """Save `timeline_image` (same arguments) as a PNG at `path`; returns `path`."""
    timeline_image(matches, query, width, lane_height, durations).save(path)
    return path


def timeline_image(matches, query, width=900, lane_height=18, durations=None):
    r"""
    A timeline as an RGB PIL image: a band per video, time across, a bar per person from their first to their last
    sighting (the best five by rank in colour, the rest grey) labelled with rank and score, the best-matching moment
    marked by a black tick. People found in photos (no time) are counted under the title.

    Args:
        matches: `TrackMatch`es (anything with their `rank`, `score`, `source`, `start`, `end`, `moment.timestamp`).
        query (`str`): the title.
        width (`int`, *optional*, defaults to 900), lane_height (`int`, *optional*, defaults to 18): pixels.
        durations (`dict`, *optional*): seconds shown per source (default: up to the last sighting among `matches`).
    """
    timed = [m for m in matches if m.start is not None]
    font = ImageFont.load_default()
    margin, line, axis, label = 12, 16, 24, 64
    bands = []
    for source in dict.fromkeys(m.source for m in timed):
        mine = [m for m in timed if m.source == source]
        duration = max((durations or {}).get(source) or 0, max(m.end for m in mine)) or 1.0
        placed, count = lanes_of(mine, label * duration / (width - 2 * margin))
        bands.append((source, duration, placed, count))
    height = margin + 2 * line + sum(line + count * lane_height + axis for _, _, _, count in bands) + margin
    canvas = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    photos = len(matches) - len(timed)
    title = f"{query}  ({len(timed)} people in videos" + (f", {photos} in photos)" if photos else ")")
    draw.text((margin, margin), title, fill=BLACK, font=font)
    y, right = margin + 2 * line, width - margin
    for source, duration, placed, count in bands:
        draw.text((margin, y), Path(source).name, fill=BLACK, font=font)
        y += line
        scale = (right - margin) / duration
        draw.rectangle([margin, y, right, y + count * lane_height], fill=BAND)
        for lane, match in placed:
            top, left = y + lane * lane_height + 2, margin + match.start * scale
            end = max(margin + match.end * scale, left + 3)
            draw.rectangle([left, top, end, top + lane_height - 4], fill=COLOURS[match.rank - 1]
                           if match.rank <= len(COLOURS) else OTHERS)
            moment = margin + match.moment.timestamp * scale
            draw.line([moment, top - 1, moment, top + lane_height - 3], fill=BLACK, width=2)
            draw.text((min(end + 3, right - 60), top), f"#{match.rank} {match.score:.2f}", fill=BLACK, font=font)
        y += count * lane_height
        step = tick_step(duration)
        for mark in range(int(duration // step) + 1):
            x = margin + mark * step * scale
            draw.line([x, y, x, y + 4], fill=BLACK)
            draw.text((min(x, right - 40), y + 6), format_time(mark * step), fill=BLACK, font=font)
        y += axis
    return canvas
