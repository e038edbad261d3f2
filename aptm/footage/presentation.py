"""Showing footage search results to people: where a result came from, a ranked table and a ranked grid of the
thumbnails (with the time stamps, spans and captions of `labels`); the timeline is `timeline.matches_timeline`."""

from pathlib import Path

from ..figures import ranked_gallery_grid
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
    the calibrated match probability when known, `static` when the track is."""
    rows = [("rank", "score", "source", "seen", "span", "best moment", "box", "p(match)", "")]
    rows += [(str(m.rank), f"{m.score:.4f}", origin(m), str(len(m.frames)), span(m.start, m.end),
              format_time(m.moment.timestamp), ",".join(map(str, m.moment.box)),
              "-" if m.probability is None else f"{m.probability:.3f}", "static" if m.static else "")
             for m in matches]
    return _table(rows)


def matches_grid(matches, query, path, thumb_size=(80, 192)):
    """Save a PNG of the matches (`TrackMatch`es: their best moment; or `FootageMatch`es) best first (thumbnail, rank
    and score, `caption`), after the query text. Returns `path`."""
    labels = [caption(m) for m in matches]
    result = SearchResult(query, list(range(len(matches))), [m.score for m in matches], [], [])
    return ranked_gallery_grid([result], [m.image() for m in matches], path, top=len(matches), thumb_size=thumb_size,
                               labels=[labels])
