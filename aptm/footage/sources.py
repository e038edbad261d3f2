"""Reading footage: folders (recursively), zip and tar archives, image files and videos, as a stream of RGB
`Picture`s with their provenance (file, archive member, frame number, time stamp).

A problem with a whole file (unreadable image or video, damaged archive, too many pixels) raises `SourceError`
naming the file; a problem with part of a file (an archive member that is not an image, or whose path would leave the
archive; a video that stops before its announced end or runs past the frame limit) is logged and counted in a
`SkipLog`, and reading goes on.

Imports only numpy, Pillow, tqdm and (for videos) OpenCV, so the Space (`space/aptm_footage/`) links this module.
"""

import logging
import os
import tarfile
import tempfile
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from .detection import import_opencv

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class SourceError(Exception):
    """A file (or archive member) that cannot be indexed at all: `name` says which, `reason` why (a short category
    the skip counts use), `detail` what was found."""

    def __init__(self, name, reason, detail=""):
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))
        self.name, self.reason, self.detail = str(name), reason, detail


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
    """Counted skips by reason, each logged as a warning naming what was skipped."""

    def __init__(self):
        self.counts = Counter()

    def skip(self, reason, name, detail="", outcome="skipped"):
        """Count `reason` and log `"<outcome> <name>: <reason> (<detail>)"`."""
        self.counts[reason] += 1
        logger.warning("%s %s: %s%s", outcome, name, reason, f" ({detail})" if detail else "")

    def skip_error(self, error):
        """Count and log a `SourceError`."""
        self.skip(error.reason, error.name, error.detail)


def kind_of(name):
    """`"image"`, `"video"`, `"archive"` or None, from a file name's suffix."""
    name = name.lower()
    for kind, suffixes in (("archive", ARCHIVE_SUFFIXES), ("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


def list_files(paths):
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


def decode_image(data, name, max_pixels):
    """RGB array of an image file (path or bytes), EXIF orientation applied. Raises `SourceError` naming `name` when it
    is unreadable or has more than `max_pixels` pixels (a decompression bomb is refused before it is decoded; Pillow
    itself refuses more than twice its `Image.MAX_IMAGE_PIXELS` whatever `max_pixels` says)."""
    try:
        with warnings.catch_warnings():  # Pillow warns past its own limit; the check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data) if isinstance(data, bytes) else data)
        with image:
            if image.width * image.height > max_pixels:
                raise SourceError(name, "image too large", f"{image.width}x{image.height} pixels, over the limit of "
                                  f"{max_pixels}; raise max_pixels (--max-pixels) to index it")
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Image.DecompressionBombError as error:
        raise SourceError(name, "image too large", str(error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise SourceError(name, "unreadable image", str(error)) from error


def unsafe_member_name(name):
    """Whether an archive member's path is absolute or climbs out of the archive (`..`)."""
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or (len(name) > 1 and name[1] == ":")


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
    """

    def __init__(self, frame_step=10, max_pixels=None, max_member_bytes=2**31, max_frames=None, progress=True):
        if frame_step < 1:
            raise ValueError(f"frame_step must be at least 1, got {frame_step}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        self.frame_step = frame_step
        self.max_frames = max_frames
        self.max_pixels = max_pixels or Image.MAX_IMAGE_PIXELS
        self.max_member_bytes = max_member_bytes
        self.progress = progress

    def read(self, path, indexed, skips):
        """`Picture`s of the file `path`, leaving out those whose key is in `indexed`. Member-level problems go to
        `skips` (a `SkipLog`); a file that cannot be read at all raises `SourceError`."""
        path = Path(path)
        kind = kind_of(path.name)
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
                elif kind not in ("image", "video"):
                    skips.skip("not an image or video", where)
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
