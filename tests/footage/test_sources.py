"""Reading footage: folders, archives, images and videos become pictures with provenance; bad input raises or is
skipped with a message naming the file, and counted."""

import io
import logging
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from aptm.footage import SkipLog, SourceError, SourceReader
from aptm.footage.sources import list_files
from aptm.images import unsafe_member_name

from helpers.images import person_image


def jpeg_bytes(seed=0, size=(40, 120)):
    buffer = io.BytesIO()
    person_image(seed, size).save(buffer, format="JPEG")
    return buffer.getvalue()


def png_header(width, height):
    """A PNG whose header announces `width` x `height` pixels (a decompression bomb as far as a reader can tell)."""
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def read_all(reader, path, indexed=()):
    skips = SkipLog()
    return list(reader.read(path, set(indexed), skips)), skips


def test_folders_are_listed_recursively_in_name_order(tmp_path):
    (tmp_path / "b" / "c").mkdir(parents=True)
    for name in ("b/c/2.jpg", "a.jpg", "b/1.jpg", ".hidden.jpg"):
        (tmp_path / name).write_bytes(jpeg_bytes())
    single = tmp_path / "b" / "1.jpg"
    assert list_files([tmp_path, single]) == [(tmp_path / n).resolve() for n in ("a.jpg", "b/1.jpg", "b/c/2.jpg")] + [
        single.resolve()]
    with pytest.raises(FileNotFoundError, match="nowhere.avi does not exist"):
        list_files([tmp_path, tmp_path / "nowhere.avi"])


def test_an_image_file_becomes_one_picture_with_its_path(tmp_path):
    path = tmp_path / "person.jpg"
    path.write_bytes(jpeg_bytes())
    (picture,), skips = read_all(SourceReader(), path)
    assert (picture.key, picture.source, picture.member, picture.frame, picture.timestamp) == (
        str(path), str(path), None, None, None)
    assert picture.image.shape == (120, 40, 3) and picture.image.dtype == np.uint8
    assert read_all(SourceReader(), path, indexed=[str(path)])[0] == []


def test_bad_image_files_raise_naming_the_file(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg_bytes()[:300])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(40000, 40000))  # 1.6 billion pixels announced in 57 bytes
    large = tmp_path / "large.jpg"
    large.write_bytes(jpeg_bytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    cases = [(truncated, SourceReader(), "unreadable image"), (bomb, SourceReader(), "image too large"),
             (large, SourceReader(max_pixels=1000), "image too large"),
             (notes, SourceReader(), "not an image, video or archive")]
    for path, reader, reason in cases:
        with pytest.raises(SourceError, match=str(path)) as raised:
            read_all(reader, path)
        assert raised.value.reason == reason
    assert "decompression bomb" in str(pytest.raises(SourceError, read_all, SourceReader(), bomb).value)
    bomb.write_bytes(png_header(10000, 10000))  # over the default limit, under the one where Pillow refuses to open
    assert "10000x10000 pixels, over the limit of 89478485" in str(
        pytest.raises(SourceError, read_all, SourceReader(), bomb).value)


def test_video_frames_every_nth_with_time_stamps(walk):
    path = walk.path
    pictures, skips = read_all(SourceReader(frame_step=10), path)
    assert [(p.frame, p.timestamp) for p in pictures] == [(0, 0.0), (10, 1.0), (20, 2.0)]
    assert [p.key for p in pictures] == [f"{path}#{frame}" for frame in (0, 10, 20)]
    assert all(p.image.shape == (360, 640, 3) and p.source == str(path) for p in pictures)
    assert not skips.counts
    resumed, _ = read_all(SourceReader(frame_step=10), path, indexed=[f"{path}#0", f"{path}#10"])
    assert [p.frame for p in resumed] == [20]
    np.testing.assert_array_equal(resumed[0].image, pictures[2].image)


def test_unreadable_and_truncated_videos(walk, tmp_path, caplog):
    path = walk.path
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(SourceError, match=f"{junk}: unreadable video"):
        read_all(SourceReader(), junk)
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        pictures, skips = read_all(SourceReader(frame_step=5), truncated)
    assert [p.frame for p in pictures] == [0, 5, 10]  # the frames before the cut are read
    assert skips.counts == {"truncated video": 1}
    assert f"indexed only the start of {truncated}: truncated video (decoding stopped at frame" in caplog.text


def test_long_and_oversized_videos_are_capped(walk, caplog):
    with caplog.at_level(logging.WARNING):
        pictures, skips = read_all(SourceReader(frame_step=5, max_frames=2), walk.path)
    assert [p.frame for p in pictures] == [0, 5]
    assert skips.counts == {"video longer than the limit": 1}  # not "truncated": it stopped by choice
    assert f"indexed only the start of {walk.path}: video longer than the limit (read 2 frames, one every 5" \
        in caplog.text
    pictures, skips = read_all(SourceReader(frame_step=10, max_frames=3), walk.path)  # exactly the whole video
    assert [p.frame for p in pictures] == [0, 10, 20] and not skips.counts
    with pytest.raises(SourceError, match=f"{walk.path}: video frames too large \\(640x360 pixels"):
        read_all(SourceReader(max_pixels=640 * 360 - 1), walk.path)
    with pytest.raises(ValueError, match="max_frames must be at least 1, got 0"):
        SourceReader(max_frames=0)


def test_zip_members_images_videos_and_skips(walk, tmp_path, caplog):
    path = walk.path
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("people/a.jpg", jpeg_bytes(1))
        writer.writestr("people/", b"")
        writer.writestr("readme.txt", "not a picture")
        writer.writestr("../escape.jpg", jpeg_bytes(2))
        writer.writestr("/etc/absolute.jpg", jpeg_bytes(3))
        writer.writestr("broken.jpg", b"\xff\xd8 not really")
        writer.write(path, "clips/walk.avi")
    with caplog.at_level(logging.WARNING):
        pictures, skips = read_all(SourceReader(frame_step=15), archive)
    assert [(p.key, p.member, p.frame) for p in pictures] == [
        (f"{archive}::people/a.jpg", "people/a.jpg", None),
        (f"{archive}::clips/walk.avi#0", "clips/walk.avi", 0), (f"{archive}::clips/walk.avi#15", "clips/walk.avi", 15)]
    assert {p.source for p in pictures} == {str(archive)}
    assert skips.counts == {"not an image or video": 1, "unsafe archive member": 2, "unreadable image": 1}
    for name in ("readme.txt", "../escape.jpg", "/etc/absolute.jpg", "broken.jpg"):
        assert f"skipped {archive}::{name}" in caplog.text
    again, _ = read_all(SourceReader(frame_step=15), archive, indexed=[p.key for p in pictures])
    assert again == []


def test_tar_links_escapes_and_oversized_members_are_skipped(tmp_path):
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as writer:
        for name, data in (("ok.jpg", jpeg_bytes(1)), ("../../up.jpg", jpeg_bytes(2)), ("big.png", png_header(9, 9))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            writer.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        writer.addfile(link)
    pictures, skips = read_all(SourceReader(max_member_bytes=100), archive)
    assert [p.member for p in pictures] == []  # ok.jpg is over 100 bytes too
    assert skips.counts == {"unsafe archive member": 2, "member too large": 1, "unreadable image": 1}
    pictures, skips = read_all(SourceReader(), archive)
    assert [p.member for p in pictures] == ["ok.jpg"]
    assert skips.counts == {"unsafe archive member": 2, "unreadable image": 1}


def test_damaged_archive_raises_naming_it(tmp_path):
    archive = tmp_path / "damaged.zip"
    archive.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SourceError, match=f"{archive}: unreadable archive"):
        read_all(SourceReader(), archive)


def test_unsafe_member_names():
    assert [unsafe_member_name(n) for n in ("a/b.jpg", "../a.jpg", "a/../../b.jpg", "/a.jpg", "C:\\a.jpg",
                                            "a\\..\\..\\b.jpg", "..a.jpg")] == [
        False, True, True, True, True, True, False]


def test_frame_step_must_be_positive():
    with pytest.raises(ValueError, match="frame_step must be at least 1, got 0"):
        SourceReader(frame_step=0)


def test_rgb_pictures_from_any_image_mode(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (30, 90), 128).save(path)
    (picture,), _ = read_all(SourceReader(), path)
    assert picture.image.shape == (90, 30, 3)
