"""Showing results: time stamps, the table, and the ranked grid with a time stamp (or file name) under each crop."""

import numpy as np
from PIL import Image

from aptm.figures import ranked_gallery_grid
from aptm.footage import caption, format_time, matches_grid, matches_table
from aptm.footage.index import FootageMatch
from aptm.retrieval import SearchResult


def test_time_stamps_and_the_table():
    assert [format_time(s) for s in (None, 0, 9.96, 61.25, 3725.5)] == ["-", "0:00.0", "0:10.0", "1:01.2", "1:02:05.5"]
    match = FootageMatch("/nowhere/photos.zip", "a/b.jpg", None, None, (0, 0, 10, 30), None, 1, 0.5, "t.jpg")
    assert matches_table([match]).splitlines()[1].split() == ["1", "0.5000", "/nowhere/photos.zip::a/b.jpg", "-", "-",
                                                             "0,0,10,30"]


def test_the_grid_labels_each_crop(tmp_path):
    Image.new("RGB", (40, 100), (200, 30, 30)).save(tmp_path / "crop.jpg")
    matches = [FootageMatch("/v/street.avi", None, 120, 12.0, (0, 0, 40, 100), 1.5, 1, 0.9, tmp_path / "crop.jpg"),
               FootageMatch("/p/photos.zip", "b.jpg", None, None, (0, 0, 40, 100), None, 2, 0.5, tmp_path / "crop.jpg")]
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
