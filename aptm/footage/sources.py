"""Reading footage: folders (recursively), zip and tar archives, image files and videos, as a stream of RGB
`Picture`s with their provenance (file, archive member, frame number, time stamp).

A problem with a whole file (unreadable image or video, damaged archive, too many pixels) raises `SourceError`
naming the file; a problem with part of a file (an archive member that is not an image, or whose path would leave the
archive; a video that stops before its announced end or runs past the frame limit) is logged and counted in a
`SkipLog`, and reading goes on.

Imports only numpy, Pillow, tqdm, OpenCV (for videos) and `aptm.images`, so the Space runs it from a copy
(`scripts/publish_space.py`): its gallery and footage tabs read uploads through `SourceReader`.
"""

from __future__ import annotations


import logging
import os
import tarfile
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..images import SourceError, decode_image, kind_of, unsafe_member_name
from .detection import import_opencv

logger = logging.getLogger(__name__)


@dataclass
class Picture:
    """One image to index: a photo or crop (`frame` None) or a video frame, as an RGB `uint8` array `[H, W, 3]`.
    `key` identifies it within an index (file, member and frame), `source` is the file's absolute path, `member`
    the path inside an archive."""

    key: str
    source: str
    member: str
    frame: int
    timestamp: float
    image: np.ndarray


class SkipLog:
    """Counted skips by reason, each logged as a warning naming what was skipped; `entries` keeps each skip as
    `(name, reason, detail)`, in order, for a program to show."""

    def __init__(self):
        self.counts = Counter()
        self.entries: list[tuple[str, str, str]] = []

    def skip(self, reason: str, name: str | Path, detail: str = "", outcome: str = "skipped") -> None:
        """Count `reason`, keep the entry and log `"<outcome> <name>: <reason> (<detail>)"`."""
        self.counts[reason] += 1
        self.entries.append((str(name), reason, detail))
        logger.warning("%s %s: %s%s", outcome, name, reason, f" ({detail})" if detail else "")

    def skip_error(self, error: SourceError) -> None:
        """Count and log a `SourceError`."""
        self.skip(error.reason, error.name, error.detail)


def list_files(paths: list[str | Path]) -> list[Path]:
    """The files of `paths` (files as given, folders recursively in name order), as absolute paths. Raises
    `FileNotFoundError` naming the first path that does not exist."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p.resolve() for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path.resolve())
        else:
            raise FileNotFoundError(f"source {path} does not exist")
    return files


class SourceReader:
    r"""
    Turns one file into `Picture`s.

    Args:
        frame_step (`int`, *optional*, defaults to 10): every `frame_step`-th video frame is read (frames 0, N, 2N...).
        max_pixels (`int`, *optional*): largest image, in pixels (default: Pillow's decompression-bomb limit, about
            89 million).
            A video whose frames are larger is refused before any frame is decoded.
        max_member_bytes (`int`, *optional*, defaults to 2 GiB): largest archive member read (its size as declared).
        max_frames (`int`, *optional*): most frames sampled per video; the rest of a longer video is skipped and
            counted as `"video longer than the limit"` (default: no limit).
        progress (`bool`, *optional*, defaults to `True`): a progress bar per video and archive.
        videos (`bool`, *optional*, defaults to `True`): read videos; with `False` a video file raises `SourceError`
            and a video inside an archive is skipped (`"video"`), as for a reader of photos only.
    """

    def __init__(self, frame_step: int = 10, max_pixels: int | None = None, max_member_bytes: int = 2**31,
                 max_frames: int | None = None, progress: bool = True, videos: bool = True):
        if frame_step < 1:
            raise ValueError(f"frame_step must be at least 1, got {frame_step}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.frame_step = frame_step
        self.max_frames = max_frames
        self.max_pixels = max_pixels or Image.MAX_IMAGE_PIXELS
        self.max_member_bytes = max_member_bytes
        self.progress = progress
        self.kinds = ("image", "video") if videos else ("image",)

    def read(self, path: str | Path, indexed: set[str], skips: SkipLog):
        """`Picture`s of the file `path`, leaving out those whose key is in `indexed`. Member-level problems go to
        `skips` (a `SkipLog`); a file that cannot be read at all raises `SourceError`."""
        path = Path(path)
        kind = kind_of(path.name)
        if kind == "video" and "video" not in self.kinds:
            raise SourceError(path, "video", "this reader takes images and archives of images only")
        if kind == "image":
            if str(path) not in indexed:
                yield Picture(str(path), str(path), None, None, None, decode_image(path, path, self.max_pixels))
        elif kind == "video":
            yield from self._video(path, path, None, indexed, skips)
        elif kind == "archive":
            yield from self._archive(path, indexed, skips)
        else:
            raise SourceError(path, "not an image, video or archive", "by its suffix")

    def _video(self, path, source, member, indexed, skips):
        """Every `frame_step`-th frame of the video file `path` (`source`/`member`: where it came from)."""
        cv2 = import_opencv()
        name = f"{source}::{member}" if member else str(source)
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise SourceError(name, "unreadable video", "OpenCV cannot open it")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > self.max_pixels:
            capture.release()
            raise SourceError(name, "video frames too large", f"{width}x{height} pixels, over the limit of "
                              f"{self.max_pixels}")
        bar = tqdm(total=total or None, desc=Path(name).name, unit="frame", leave=False, disable=not self.progress)
        frame = 0
        try:
            while capture.grab():
                if self.max_frames is not None and frame >= self.max_frames * self.frame_step:
                    skips.skip("video longer than the limit", name, f"read {self.max_frames} frames, one every "
                               f"{self.frame_step}, up to frame {frame} of {total or 'unknown'}",
                               outcome="indexed only the start of")
                    return
                key = f"{name}#{frame}"
                if frame % self.frame_step == 0 and key not in indexed:
                    retrieved, bgr = capture.retrieve()
                    if not retrieved:
                        break
                    seconds = frame / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
                    yield Picture(key, str(source), member, frame, round(seconds, 3), bgr[:, :, ::-1].copy())
                frame += 1
                bar.update()
        finally:
            capture.release()
            bar.close()
        if frame == 0:
            raise SourceError(name, "unreadable video", "no frame could be decoded")
        if total > 0 and frame < total - max(2, total // 50):
            skips.skip("truncated video", name, f"decoding stopped at frame {frame} of {total}",
                       outcome="indexed only the start of")

    def _archive(self, path, indexed, skips):
        """Images of a zip or tar archive, and frames of the videos in it; other members are skipped."""
        try:
            if path.name.lower().endswith(".zip"):
                archive = zipfile.ZipFile(path)
                members = [(m.filename, m.file_size, not m.is_dir(), m) for m in archive.infolist()]
                open_member = archive.open
            else:
                archive = tarfile.open(path, "r:*")
                members = [(m.name, m.size, m.isfile(), m) for m in archive.getmembers() if not m.isdir()]
                open_member = archive.extractfile
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
            raise SourceError(path, "unreadable archive", str(error)) from error
        with archive:
            for name, size, regular, member in tqdm(members, desc=path.name, unit="member", leave=False,
                                                    disable=not self.progress):
                if name.endswith("/"):
                    continue
                where = f"{path}::{name}"
                kind = kind_of(name)
                if unsafe_member_name(name) or not regular:
                    skips.skip("unsafe archive member", where, "absolute path, '..', link or special file")
                elif kind == "video" and "video" not in self.kinds:
                    skips.skip("video", where, "this reader takes images only")
                elif kind not in ("image", "video"):
                    skips.skip(f"not an {' or '.join(self.kinds)}", where)
                elif size > self.max_member_bytes:
                    skips.skip("member too large", where, f"{size} bytes, over the limit of {self.max_member_bytes}")
                elif kind == "image" and where not in indexed:
                    try:
                        with open_member(member) as stream:
                            image = decode_image(stream.read(), where, self.max_pixels)
                    except SourceError as error:
                        skips.skip_error(error)
                        continue
                    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as error:
                        skips.skip("unreadable image", where, f"damaged member: {error}")
                        continue
                    yield Picture(where, str(path), name, None, None, image)
                elif kind == "video":
                    yield from self._archived_video(path, name, open_member(member), indexed, skips)

    def _archived_video(self, path, name, stream, indexed, skips):
        """Frames of a video inside an archive, read from a temporary copy (OpenCV reads files)."""
        handle, temporary = tempfile.mkstemp(suffix=Path(name).suffix)
        try:
            with os.fdopen(handle, "wb") as copy, stream:
                while chunk := stream.read(1 << 20):
                    copy.write(chunk)
            yield from self._video(temporary, path, name, indexed, skips)
        except SourceError as error:
            skips.skip_error(error)
        finally:
            os.unlink(temporary)
