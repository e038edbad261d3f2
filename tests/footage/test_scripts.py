"""The command lines: `scripts/index_gallery.py` and `scripts/search.py` on real footage (Debian's vtest.avi:
detection finds people, crops carry provenance, a query returns crops with valid time stamps, re-indexing skips) and
on generated footage (people as tracks with time spans and per-frame boxes, the static one left out, crops, JSON,
tables, grid and timeline, filters by time, duration and file)."""

import json

import pytest
from PIL import Image

from aptm.footage import FootageIndex, format_time

from helpers.footage import VTEST_MISSING, overlap, pedestrian_video, vtest_path
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
    assert f"{out}: {report.tracks} tracks ({report.static_tracks} static), {report.crops} crops" in \
        capsys.readouterr().out
    matches = search([str(out), "a man in a dark jacket walking", "--top", "50", "--json", "--include-static",
                      "--crops", "--grid", str(tmp_path / "grid.png")])
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
    assert f"{out}: {report.tracks} tracks" in capsys.readouterr().out


@pytest.mark.skipif(vtest_path() is None, reason=VTEST_MISSING)
def test_vtest_people_are_tracks_and_the_parked_van_is_static(checkpoint, tmp_path, capsys):
    out = tmp_path / "vtest-tracks"
    report = index_gallery([str(vtest_path()), "--model", str(checkpoint), "--out", str(out), "--frame-step", "20",
                            "--no-progress"])
    assert report.pictures == 40 and report.detections >= 3 * report.tracks  # people followed, not cut per frame
    index = FootageIndex(out)
    static = [track for track in index.tracks if track["static"]]
    assert len(static) == report.static_tracks >= 1
    van = static[0]  # HOG's "person" in the van parked at the top right, seen all along
    assert len(van["frames"]) >= 30 and van["boxes"][0][0] > 600 and van["boxes"][0][3] < 160
    for query in ("a woman in a white coat", "a man in a dark jacket walking"):
        people = search([str(out), query, "--top", str(len(index)), "--grid", str(tmp_path / "grid.png")])
        assert van["id"] not in {m.track for m in people} and not any(m.static for m in people)
        assert len(people) == len(index) - len(static)
    shown = search([str(out), "a white van", "--top", str(len(index)), "--include-static", "--grid",
                    str(tmp_path / "all.png")])
    assert van["id"] in {m.track for m in shown}
    capsys.readouterr()


def test_index_and_search_generated_footage(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = tmp_path / "street.avi"  # two people walking right, a third standing still
    _, boxes, _ = pedestrian_video(video, frames=40, paths=[(20, 100, 4), (200, 100, 4), (500, 100, 0)])
    index_gallery([str(video), "--model", str(checkpoint), "--out", "index", "--upscale", "1", "--frame-step",
                   "10", "--min-score", "1", "--no-progress"])
    summary = capsys.readouterr().out
    assert "1 files, 4 pictures read (0 without a person), 12 people seen" in summary
    assert "3 tracks added (1 static), 7 crops encoded" in summary  # 3 of each walker, 1 of the static one
    example = next((tmp_path / "index" / "shards").glob("*/thumbnails/00000.jpg"))
    people = search(["index", "--image", str(example), "--top", "3", "--json", "--grid", "people.png"])
    printed = json.loads(capsys.readouterr().out)
    assert len(people) == len(printed) == 2  # the walkers; the static person is left out
    for match, row in zip(people, printed):
        assert (row["start"], row["end"], row["duration"], row["static"]) == (0.0, 3.0, 3.0, False)
        assert [b["frame"] for b in row["boxes"]] == [0, 10, 20, 30]
        assert [b["timestamp"] for b in row["boxes"]] == [0.0, 1.0, 2.0, 3.0]
        walker = 0 if row["boxes"][0]["box"][0] < 100 else 1
        assert all(overlap(b["box"], boxes[b["frame"]][walker]) > 0.25 for b in row["boxes"])
        assert row["moment"]["track"] == row["track"] and row["moment"]["frame"] in (0, 10, 20, 30)
        assert match.to_dict() == row
    assert (tmp_path / "people.png").is_file() and (tmp_path / "people_timeline.png").is_file()
    table = search(["index", "--image", str(example), "--include-static", "--timeline", "when.png"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rank", "score", "source", "seen", "span", "best", "moment", "box", "p(match)"]
    assert len(table) == 3 and [line.split()[3:5] for line in lines[1:]] == [["4", "0:00.0-0:03.0"]] * 3
    assert [line.endswith("static") for line in lines[1:]].count(True) == 1
    assert [m.static for m in table].count(True) == 1
    assert (tmp_path / "when.png").is_file()
    crops = search(["index", "--image", str(example), "--top", "3", "--crops"])
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["rank", "score", "source", "frame", "time", "box"]
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "3"]
    assert all(str(video.name) in line for line in table[1:])  # inside the working directory: a relative path
    assert table[1].split()[3:5] == [str(crops[0].frame), format_time(crops[0].timestamp)]
    both = search(["index", "a person in white", "--image", str(example), "--image-weight", "1", "--top", "3",
                   "--crops", "--grid", "both.png"])
    assert [m.box for m in both] == [m.box for m in crops]
    assert len(search(["index", "a person in white", "--after", "0:02.5", "--before", "9"])) == 2
    for window in (["--after", "0:03.5"], ["--min-duration", "4"]):
        with pytest.raises(ValueError, match="passes the filters"):
            search(["index", "a person in white", *window])
    with pytest.raises(ValueError, match=r"the time window ends \(1.0 s\) before it begins \(2.0 s\)"):
        search(["index", "a person in white", "--after", "2", "--before", "0:01"])
    capsys.readouterr()
    probable = search(["index", "a person in white", "--min-probability", "0", "--json", "--grid", "p.png"])
    printed = json.loads(capsys.readouterr().out)
    assert len(probable) == 2 and all(0 < row["probability"] < 1 for row in printed)
    assert search(["index", "a person in white", "--min-probability", "1.01", "--grid", "none.png"]) == []
    assert capsys.readouterr().out.strip() == "no person reaches --min-probability"
    assert not (tmp_path / "none.png").exists()
    with pytest.raises(SystemExit):
        search(["index", "a person in white", "--min-probability", "0.5", "--crops"])
    assert "--min-probability needs a text and ranks people" in capsys.readouterr().err
    with pytest.raises(ValueError, match="elsewhere.avi has no people"):
        search(["index", "a person in white", "--source", "elsewhere.avi"])
    with pytest.raises(SystemExit):
        search(["index"])
    assert "give a text, --image, or both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search(["index", "a person", "--after", "1:75"])
    assert "'1:75' is not a time" in capsys.readouterr().err


def test_footage_benchmark_compares_detection_threads_on_the_same_index(walk, checkpoint, tmp_path, capsys):
    load_script("scripts/benchmark.py").main(["--footage", str(walk.path), str(checkpoint)])
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert "x real time" in table[0] and "detection CPU s" in table[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert [(row[0], row[-1]) for row in rows] == [("1", "yes"), ("2", "yes"), ("2", "yes")]
    assert rows[2][1] == "1" and all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
    with pytest.raises(ValueError, match="workers must be at least 1"):  # the option reaches add_sources
        index_gallery([str(walk.path), "--model", str(checkpoint), "--out", str(tmp_path / "index"), "--workers", "0",
                       "--no-progress"])
