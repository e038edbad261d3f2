"""Showing results: time stamps and spans (and reading times), the tables of crops and of people, the ranked grid
with a time stamp, span or file name under each result, and the timeline of the people found."""

import numpy as np
from PIL import Image

from aptm.figures import ranked_gallery_grid
import pytest

from aptm.footage import caption, format_time, matches_grid, matches_table
from aptm.footage.index import FootageMatch, TrackMatch
from aptm.footage.labels import parse_time, span
from aptm.footage.presentation import tracks_table
from aptm.footage.timeline import lanes_of, matches_timeline, tick_step
from aptm.retrieval import SearchResult


def test_time_stamps_and_the_table():
    assert [format_time(s) for s in (None, 0, 9.96, 61.25, 3725.5)] == ["-", "0:00.0", "0:10.0", "1:01.2", "1:02:05.5"]
    match = FootageMatch("/nowhere/photos.zip", "a/b.jpg", None, None, (0, 0, 10, 30), None, 4, 1, 0.5, "t.jpg")
    assert matches_table([match]).splitlines()[1].split() == ["1", "0.5000", "/nowhere/photos.zip::a/b.jpg", "-", "-",
                                                             "0,0,10,30"]


def test_the_grid_labels_each_crop(tmp_path):
    Image.new("RGB", (40, 100), (200, 30, 30)).save(tmp_path / "crop.jpg")
    matches = [FootageMatch("/v/street.avi", None, 120, 12.0, (0, 0, 40, 100), 1.5, 0, 1, 0.9, tmp_path / "crop.jpg"),
               FootageMatch("/p/photos.zip", "b.jpg", None, None, (0, 0, 40, 100), None, 1, 2, 0.5,
                            tmp_path / "crop.jpg")]
    labelled = np.asarray(Image.open(matches_grid(matches, "a query", tmp_path / "labelled.png", thumb_size=(40, 100))))
    assert [caption(m) for m in matches] == ["0:12.0 f120", "b.jpg"]
    result = SearchResult("a query", [0, 1], [0.9, 0.5], [], [])
    plain = ranked_gallery_grid([result], [m.image() for m in matches], tmp_path / "plain.png", top=2,
                                thumb_size=(40, 100))
    plain = np.asarray(Image.open(plain))
    assert labelled.shape[1] == plain.shape[1] and labelled.shape[0] == plain.shape[0] + 14  # a second caption line
    np.testing.assert_array_equal(labelled[:100], plain[:100])  # the same thumbnails
    second_line = labelled[100 + 8 + 16 : 100 + 8 + 30]
    assert (second_line < 100).all(-1).any()  # text drawn there


def test_reading_times():
    assert [parse_time(t) for t in ("75", "1:10", "0:02.5", "1:00:01", "2.25")] == [75, 70, 2.5, 3601, 2.25]
    for bad in ("1:75", "soon", "-3", "1:2:3:4", ""):
        with pytest.raises(ValueError, match=f"{bad!r} is not a time: give seconds, m:ss or h:mm:ss"):
            parse_time(bad)


def person(rank, score, start, end, moment, source="/v/street.avi", thumbnail="t.jpg"):
    """A `TrackMatch` seen every second from `start` to `end`, its best moment at `moment`."""
    times = [start] if start is None else [float(t) for t in range(int(start), int(end) + 1)]
    frames = [None] if start is None else [int(10 * t) for t in times]
    best = FootageMatch(source, None, None if moment is None else int(10 * moment), moment, (5, 5, 45, 105), 1.0,
                        rank, rank, score, thumbnail)
    return TrackMatch(rank, score, rank, source, None, start, end, False, frames, times, [(5, 5, 45, 105)] * len(times),
                      best)


def test_people_table_and_captions():
    people = [person(1, 0.9, 2, 14, 5), person(2, 0.5, None, None, None, "/p/photo.jpg")]
    people[1].static = True
    rows = [line.split() for line in tracks_table(people).splitlines()]
    assert rows[0] == ["rank", "score", "source", "seen", "span", "best", "moment", "box", "p(match)"]
    assert rows[1] == ["1", "0.9000", "/v/street.avi", "13", "0:02.0-0:14.0", "0:05.0", "5,5,45,105", "-"]
    assert rows[2] == ["2", "0.5000", "/p/photo.jpg", "1", "-", "-", "5,5,45,105", "-", "static"]
    people[0].probability = 0.25
    assert tracks_table(people).splitlines()[1].split()[-1] == "0.250"
    assert [caption(p) for p in people] == ["0:02.0-0:14.0", "photo.jpg"] and span(61, 62.5) == "1:01.0-1:02.5"
    row = people[0].to_dict()
    assert (row["start"], row["end"], row["duration"], row["moment"]["timestamp"]) == (2, 14, 12, 5)
    assert row["boxes"][:2] == [{"frame": 20, "timestamp": 2.0, "box": [5, 5, 45, 105]},
                                {"frame": 30, "timestamp": 3.0, "box": [5, 5, 45, 105]}]


def test_timeline_lanes_and_ticks():
    people = [person(1, 0.9, 2, 14, 5), person(2, 0.8, 10, 20, 12), person(3, 0.7, 15, 30, 20), person(4, 0.1, 0, 1, 0)]
    placed, lanes = lanes_of(people)
    assert lanes == 2 and [(lane, m.rank) for lane, m in placed] == [(0, 4), (0, 1), (1, 2), (0, 3)]
    placed, lanes = lanes_of(people, label=2)  # each bar followed by a label 2 s wide
    assert lanes == 3 and [(lane, m.rank) for lane, m in placed] == [(0, 4), (1, 1), (0, 2), (2, 3)]
    assert [tick_step(d) for d in (5, 30, 80, 100, 600, 5000)] == [1, 5, 10, 15, 120, 900]


def test_the_timeline_draws_each_person_when_they_appear(tmp_path):
    people = [person(1, 0.9, 2, 14, 5), person(2, 0.8, 10, 20, 12), person(3, 0.3, 30, 60, 40, "/v/other.avi"),
              person(4, 0.2, None, None, None, "/p/photo.jpg")]
    path = matches_timeline(people, "a man in black", tmp_path / "timeline.png", width=612,
                            durations={"/v/street.avi": 30})
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    red, orange, blue = (200, 40, 40), (230, 130, 20), (40, 120, 200)
    rows_of = lambda colour: np.flatnonzero((pixels == colour).all(-1).any(1))  # noqa: E731
    columns_of = lambda colour: np.flatnonzero((pixels == colour).all(-1).any(0))  # noqa: E731
    # street.avi, 30 s over 588 pixels from x = 12: person 1 from 2 s to 14 s, person 2 (a second lane) 10 s to 20 s
    assert abs(columns_of(red)[0] - (12 + 2 * 19.6)) <= 1 and abs(columns_of(red)[-1] - (12 + 14 * 19.6)) <= 1
    assert abs(columns_of(orange)[0] - (12 + 10 * 19.6)) <= 1 and rows_of(orange)[0] > rows_of(red)[-1]
    # other.avi below, its own band: 60 s over 588 pixels, person 3 from 30 s to 60 s
    assert abs(columns_of(blue)[0] - (12 + 30 * 9.8)) <= 1 and rows_of(blue)[0] > rows_of(orange)[-1]
    best = 12 + round(5 * 19.6)  # a black tick at person 1's best moment, across the red bar
    assert (pixels[rows_of(red)[len(rows_of(red)) // 2], best - 1 : best + 2] < 40).all(-1).any()
