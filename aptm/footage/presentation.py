"""Showing footage search results to people: where a result came from, a ranked table and a ranked grid of the
thumbnails (with the time stamps, spans and captions of `labels`), and a timeline of when the people found appear."""

from pathlib import Path

from PIL import Image, ImageDraw

from ..figures import BLACK, WHITE, _font, ranked_gallery_grid
from ..retrieval import SearchResult
from .labels import caption, format_time, span


def origin(match):
    """Where a match came from: its source path (relative to the working directory when inside it), with `::member`
    for an archive member."""
    source = Path(match.source)
    try:
        source = source.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"{source}::{match.member}" if match.member else str(source)


def _table(rows):
    """Rows of cells aligned in columns, numbers (the first two and `frame`/`moment` columns) to the right."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    right = {0, 1, 3}
    return "\n".join("  ".join(cell.rjust(w) if column in right else cell.ljust(w)
                               for column, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def matches_table(matches):
    """A text table of `FootageMatch`es (crops): rank, score, source, frame, time, box."""
    rows = [("rank", "score", "source", "frame", "time", "box")]
    rows += [(str(m.rank), f"{m.score:.4f}", origin(m), "-" if m.frame is None else str(m.frame),
              format_time(m.timestamp), ",".join(map(str, m.box))) for m in matches]
    return _table(rows)


def tracks_table(matches):
    """A text table of `TrackMatch`es (people): rank, score, source, sightings, time span, best moment's time and box,
    `static` when the track is."""
    rows = [("rank", "score", "source", "seen", "span", "best moment", "box", "")]
    rows += [(str(m.rank), f"{m.score:.4f}", origin(m), str(len(m.frames)), span(m.start, m.end),
              format_time(m.moment.timestamp), ",".join(map(str, m.moment.box)), "static" if m.static else "")
             for m in matches]
    return _table(rows)


def matches_grid(matches, query, path, thumb_size=(80, 192)):
    """Save a PNG of the matches (`TrackMatch`es: their best moment; or `FootageMatch`es) best first (thumbnail, rank
    and score, `caption`), after the query text. Returns `path`."""
    labels = [caption(m) for m in matches]
    result = SearchResult(query, list(range(len(matches))), [m.score for m in matches], [], [])
    return ranked_gallery_grid([result], [m.image() for m in matches], path, top=len(matches), thumb_size=thumb_size,
                               labels=[labels])


TIMELINE_COLOURS = ((200, 40, 40), (230, 130, 20), (40, 120, 200), (40, 160, 80), (140, 70, 180))


def matches_timeline(matches, query, path, width=900, lane_height=18, durations=None):
    r"""
    Save a PNG timeline of `TrackMatch`es: one band per source (video), time across, a bar per person from their
    first to their last sighting, labelled with rank and score (the best five in colour, darker for higher scores),
    the best-matching moment marked with a black tick; bars that overlap in time take separate lanes. People found in
    photos (no time) are counted under the title. Returns `path`.

    Args:
        durations (`dict`, *optional*): seconds shown per source (default: up to the last sighting in the matches).
    """
    timed = [m for m in matches if m.start is not None]
    sources = list(dict.fromkeys(m.source for m in timed))
    margin, label_height, axis_height = 12, 16, 22
    font, small = _font(13), _font(11)
    layout = []  # per source: its duration and the lane of each match
    for source in sources:
        ends, lanes = [], []
        for match in sorted((m for m in timed if m.source == source), key=lambda m: m.start):
            lane = next((i for i, end in enumerate(ends) if end < match.start), len(ends))
            ends[lane : lane + 1] = [match.end + 1e-9]
            lanes.append((lane, match))
        duration = (durations or {}).get(source) or max(m.end for _, m in lanes) or 1.0
        layout.append((source, duration, lanes, len(ends)))
    height = margin + 2 * label_height + sum(label_height + lanes * lane_height + axis_height
                                             for _, _, _, lanes in layout) + margin
    canvas = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    photos = len(matches) - len(timed)
    draw.text((margin, margin), f"{query}  ({len(timed)} people in videos" + (f", {photos} in photos)" if photos
                                                                               else ")"), fill=BLACK, font=font)
    y = margin + 2 * label_height
    right = width - margin
    for source, duration, lanes, count in layout:
        draw.text((margin, y), Path(source).name, fill=BLACK, font=font)
        y += label_height
        scale = (right - margin) / duration
        draw.rectangle([margin, y, right, y + count * lane_height], fill=(240, 240, 240))
        for lane, match in lanes:
            top = y + lane * lane_height + 2
            left, end = margin + match.start * scale, max(margin + match.end * scale, margin + match.start * scale + 3)
            colour = TIMELINE_COLOURS[match.rank - 1] if match.rank <= len(TIMELINE_COLOURS) else (150, 150, 150)
            draw.rectangle([left, top, end, top + lane_height - 4], fill=colour)
            moment = margin + match.moment.timestamp * scale
            draw.line([moment, top - 1, moment, top + lane_height - 3], fill=BLACK, width=2)
            draw.text((min(end + 3, right - 70), top), f"#{match.rank} {match.score:.2f}", fill=BLACK, font=small)
        y += count * lane_height
        for step in range(6):
            x = margin + (right - margin) * step / 5
            draw.line([x, y, x, y + 4], fill=BLACK)
            text = format_time(duration * step / 5)
            draw.text((min(x, right - 40) - (0 if step == 0 else 20), y + 5), text, fill=BLACK, font=small)
        y += axis_height
    canvas.save(path)
    return path
