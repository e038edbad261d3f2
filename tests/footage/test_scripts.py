"""The command lines: `scripts/index_gallery.py` and `scripts/search.py` on real footage (Debian's vtest.avi:
detection finds people, crops carry provenance, a query returns crops with valid time stamps, re-indexing skips) and
on generated footage (query by example, JSON, the table and the grid, one file only)."""

import json

import pytest
from PIL import Image

from aptm.footage import format_time

from helpers.footage import VTEST_MISSING, vtest_path
from helpers.paths import load_script

index_gallery = load_script("scripts/index_gallery.py").main
search = load_script("scripts/search.py").main


@pytest.mark.skipif(vtest_path() is None, reason=VTEST_MISSING)
def test_vtest_footage_end_to_end(checkpoint, tmp_path, capsys):
    video = vtest_path()
    out = tmp_path / "vtest-index"
    report = index_gallery([str(video), "--model", str(checkpoint), "--out", str(out), "--frame-step", "200",
                            "--no-progress"])
    assert (report.files, report.pictures, report.already_indexed, dict(report.skipped)) == (1, 4, 0, {})
    assert f"{out}: {report.crops} crops" in capsys.readouterr().out
    matches = search([str(out), "a man in a dark jacket walking", "--top", "50", "--json",
                      "--grid", str(tmp_path / "grid.png")])
    printed = json.loads(capsys.readouterr().out)
    assert len(printed) == len(matches) == report.crops
    frames = {}
    for match, row in zip(matches, printed):
        assert row["source"] == str(video.resolve()) and row["member"] is None
        assert row["frame"] in (0, 200, 400, 600) and row["timestamp"] == pytest.approx(row["frame"] / 10)  # 10 fps
        left, top, right, bottom = row["box"]
        assert 0 <= left < right <= 768 and 0 <= top < bottom <= 576
        assert right - left >= 24 and bottom - top >= 64 and row["detection_score"] >= 0.5
        assert match.image().size[1] == min(256, bottom - top)
        frames[row["frame"]] = frames.get(row["frame"], 0) + 1
    assert sorted(frames) == [0, 200, 400, 600] and min(frames.values()) >= 2  # people walk through every sample
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.width > len(matches) * 80  # one thumbnail per match
    again = index_gallery([str(video), "--out", str(out), "--frame-step", "200", "--no-progress"])
    assert (again.already_indexed, again.pictures, again.crops) == (1, 0, 0)
    assert f"{out}: {report.crops} crops" in capsys.readouterr().out


def test_index_and_search_generated_footage(walk, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    index_gallery([str(walk.path), "--model", str(checkpoint), "--out", "index", "--upscale", "1", "--frame-step",
                   "15", "--min-score", "1", "--no-progress"])
    summary = capsys.readouterr().out
    assert "1 files, 2 pictures read (0 without a person), 6 crops added" in summary
    example = next((tmp_path / "index" / "shards").glob("*/thumbnails/00000.jpg"))
    matches = search(["index", "--image", str(example), "--top", "3"])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["rank", "score", "source", "frame", "time", "box"]
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "3"]
    assert all(str(walk.path) in line for line in table[1:])  # outside the working directory: the full path
    assert table[1].split()[3:5] == [str(matches[0].frame), format_time(matches[0].timestamp)]
    assert (tmp_path / "search_results.png").is_file()
    both = search(["index", "a person in white", "--image", str(example), "--image-weight", "1", "--top", "3",
                   "--grid", "both.png"])
    assert [m.box for m in both] == [m.box for m in matches]
    within = search(["index", "a person in white", "--source", str(walk.path), "--top", "9", "--grid", "within.png"])
    assert len(within) == 6 and {m.source for m in within} == {str(walk.path)}
    with pytest.raises(ValueError, match="elsewhere.avi has no crops"):
        search(["index", "a person in white", "--source", "elsewhere.avi"])
    with pytest.raises(SystemExit):
        search(["index"])
    assert "give a text, --image, or both" in capsys.readouterr().err

