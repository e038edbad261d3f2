"""A searchable, incremental index of the people in footage: folders, archives, photos and videos become tracks (a
person followed through a video's sampled frames, `tracking`; each person of a photo is a track of one sighting),
of which a few crops are encoded with an APTM model and stored with their provenance and a thumbnail; then searched
by a sentence, an example image or both, one result per person (`search`) or per crop (`search_crops`).

On disk, an index folder holds `footage.json` (format, model, the model's features of a fixed probe image) and
`shards/NNNNNN/`, one per written batch: a saved `GalleryIndex` (the encoded crops' features and image tokens),
`crops.json` (per track: its sightings' frames, time stamps and boxes, whether it is static, its encoded crops and
the best of them; per encoded crop: its provenance and track; the keys of the pictures and files the batch
completes) and `thumbnails/`. A track's feature is the normalised mean of its encoded crops' features, its image
tokens (for ITM re-ranking) those of its best crop (the largest). A shard is written under a temporary name and
renamed when complete, so a crash loses at most the batch in flight (and, in a video, the frames since the oldest
track still followed began) and never what was indexed before; a re-run skips every picture and file already
recorded. One process should write to an index at a time.
"""

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..factory import load_checkpoint
from ..images import SourceError, decode_image
from ..retrieval import GalleryIndex, RetrievalEngine
from ..retrieval.calibration import Calibration, itm_margins
from ..retrieval.index import ShardedFolder
from .crops import Provenance, is_person_crop, people_in
from .detection import HOGPersonDetector, PersonDetector
from .ranking import gallery_rows, rank_crops, rank_tracks, track_gallery
from .parallel import map_ahead, usable_cores
from .sources import Picture, SkipLog, SourceReader, list_files
from .tracking import Tracker, single_tracks

FORMAT = 2
MANIFEST = "footage.json"
PROBE_AGREEMENT = 0.999  # cosine between the stored and the current probe features for "the same model"


def probe_image():
    """A fixed 384 x 128 colour pattern whose features identify the model an index was encoded with."""
    rows, columns = np.mgrid[0:384, 0:128]
    return np.stack([rows * 255 // 383, columns * 2, (rows // 32 + columns // 32) % 2 * 200 + 30], -1).astype(np.uint8)


@dataclass
class FootageMatch(Provenance):
    """One crop found: a person crop's `Provenance` (`source`: absolute file path), the `track` it belongs to, its
    `rank` and `score`, and `thumbnail` (the stored crop)."""

    track: int
    rank: int
    score: float
    thumbnail: Path

    def image(self):
        """The crop's stored thumbnail as an RGB PIL image."""
        with Image.open(self.thumbnail) as image:
            return image.convert("RGB")

    def to_dict(self):
        """JSON-ready fields."""
        return {"rank": self.rank, "score": self.score, "track": self.track, **self.provenance(),
                "thumbnail": str(self.thumbnail)}


@dataclass
class TrackMatch:
    """One person found: the track's `rank` and `score`, its id (`track`), `source` and `member`, its time span
    (`start`, `end`, seconds; None for a photo), whether it is `static`, its sightings (`frames`, `timestamps`,
    `boxes`), `moment`, the `FootageMatch` of its encoded crop that matches the query best, and `probability`, the
    calibrated ITM probability that the description matches the person (the highest over its encoded crops; None
    unless asked for)."""

    rank: int
    score: float
    track: int
    source: str
    member: str
    start: float
    end: float
    static: bool
    frames: list
    timestamps: list
    boxes: list
    moment: FootageMatch
    probability: float = None

    @property
    def duration(self):
        """Seconds between the first and the last sighting (0 for a photo)."""
        return 0.0 if self.start is None else self.end - self.start

    def image(self):
        """The best-matching moment's thumbnail as an RGB PIL image."""
        return self.moment.image()

    def to_dict(self):
        """JSON-ready fields: the time span, the best moment and the per-frame boxes."""
        return {"rank": self.rank, "score": self.score, "track": self.track, "source": self.source,
                "member": self.member, "start": self.start, "end": self.end, "duration": self.duration,
                "static": self.static, "probability": self.probability, "moment": self.moment.to_dict(),
                "boxes": [{"frame": frame, "timestamp": timestamp, "box": list(box)}
                          for frame, timestamp, box in zip(self.frames, self.timestamps, self.boxes)]}


@dataclass
class IndexingReport:
    """What one `add_sources` call did: files read, pictures (images and sampled frames) read, pictures without a
    person, people detected, tracks added (and how many of them static), crops encoded, files skipped as already
    indexed, skips by reason, and the seconds it took."""

    files: int = 0
    pictures: int = 0
    pictures_without_people: int = 0
    detections: int = 0
    tracks: int = 0
    static_tracks: int = 0
    crops: int = 0
    already_indexed: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self):
        """A few lines for people."""
        rate = f" ({self.pictures / self.seconds:.2f} pictures/s, {self.detections / self.seconds:.2f} people/s)" \
            if self.seconds > 0 and self.pictures else ""
        lines = [f"{self.files} files, {self.pictures} pictures read ({self.pictures_without_people} without a "
                 f"person), {self.detections} people seen in {self.seconds:.1f} s{rate}",
                 f"{self.tracks} tracks added ({self.static_tracks} static), {self.crops} crops encoded",
                 f"{self.already_indexed} files already indexed"]
        lines += [f"{reason}: {count}" for reason, count in sorted(self.skipped.items())]
        return "\n".join(lines)


class _Batch:
    """Finished tracks (with the crops to encode), picture keys and completed files waiting to be written as one
    shard."""

    def __init__(self):
        self.tracks, self.keys, self.completed = [], [], []
        self.crops = 0

    def add(self, track, crops_per_track):
        static = track.is_static()
        chosen = track.chosen(1 if static else crops_per_track)
        self.tracks.append((track, static, chosen))
        self.crops += len(chosen)
        return static, len(chosen)

    def __len__(self):
        return len(self.keys) + len(self.completed) + len(self.tracks)


@dataclass
class _FileEnd:
    """Marks the end of a file's pictures in the stream `add_sources` reads: `completed` unless it failed
    (`SourceError`)."""

    path: Path
    completed: bool


class _Pending:
    """The tracker of the video being read and the keys of its sampled frames not yet settled: a frame is settled (its
    key may be recorded) once no live track began at or before it, so a resumed run re-reads the frames of the
    tracks it lost."""

    def __init__(self):
        self.video, self.tracker, self.keys = None, None, []

    def picture(self, picture, crops):
        """Tracks that `picture`'s people `crops` end (all of a photo's, which are single sightings)."""
        ended = []
        if self.video is not None and self.video != (picture.source, picture.member):
            ended = self.tracker.finish()
            self.video = None
        if picture.frame is None:
            self.keys.append(picture.key)
            return ended + single_tracks(crops)
        if self.video is None:
            self.video, self.tracker = (picture.source, picture.member), Tracker()
        self.keys.append((picture.frame, picture.key))
        return ended + self.tracker.update(crops)

    def finish(self):
        """Tracks still followed when the file ends."""
        ended = self.tracker.finish() if self.video is not None else []
        self.video = None
        return ended

    def settled(self):
        """Keys of the pictures settled since the last call."""
        oldest = min((track.crops[0].frame for track in self.tracker.live), default=None) \
            if self.video is not None else None
        settled, pending = [], []
        for key in self.keys:
            if isinstance(key, str):
                settled.append(key)
            elif oldest is None or key[0] < oldest:
                settled.append(key[1])
            else:
                pending.append(key)
        self.keys = pending
        return settled


class FootageIndex:
    r"""
    Opens (or creates) the footage index in `folder`.

    Args:
        folder (`str` or `Path`): the index folder.
        model (`str`, `Path` or `APTMModel`, *optional*): a checkpoint folder or Hub id, or a loaded model (then give
            `processor`). Default: the model the index was built with. A model other than the index's (its features
            of a fixed probe image differ) raises a `ValueError`: features of two models do not compare.
        processor (`APTMProcessor`, *optional*): the processor of a loaded `model`.
        batch_size (`int`, *optional*, defaults to 32): crops encoded at once and (about) per shard.
        fusion (`str`, *optional*): score fusion of text search (see `retrieval_aptm`; default the engine's).
        device (`str`, *optional*): where a model loaded from a name runs (default: the GPU when there is one).
    """

    def __init__(self, folder: str | Path, model: str | Path | torch.nn.Module | None = None, processor: Any = None,
                 batch_size: int = 32, fusion: str = "aptm", device: str | torch.device | None = None):
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
        if manifest is not None and manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest_path}: format {manifest.get('format')}, this version reads {FORMAT}")
        if model is None:
            if manifest is None:
                raise FileNotFoundError(f"{self.folder} is not a footage index (no {MANIFEST}); give a model to "
                                        "create one (scripts/index_gallery.py --model)")
            model = manifest["model"]
        if isinstance(model, (str, Path)):
            name = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
            model, processor = load_checkpoint(model, device)
        else:
            if processor is None:
                raise ValueError("a loaded model needs its processor")
            name = model.name_or_path or None
        self.engine = RetrievalEngine(model, processor, batch_size=batch_size, fusion=fusion, progress=False)
        self.batch_size = batch_size
        probe = self.engine.encode_images([probe_image()])[1][0].cpu()
        if manifest is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            manifest_path.write_text(json.dumps({"format": FORMAT, "model": name, "probe": probe.tolist()}))
        elif float(probe @ torch.tensor(manifest["probe"])) < PROBE_AGREEMENT:
            raise ValueError(f"{self.folder} was encoded with the model {manifest['model']}, not {name}: features of "
                             "two models do not compare; search it with its own model or index into a new folder")
        self.calibration = Calibration.load(name) if name and Path(name).is_dir() else Calibration()
        (self.folder / "shards").mkdir(exist_ok=True)
        self._store = ShardedFolder(self.folder / "shards")
        self._store.remove_partial()  # a batch in flight when a run crashed
        self._loaded = None

    # ---------------------------------------------------------------------------------------------------------------
    # Reading
    # ---------------------------------------------------------------------------------------------------------------

    def indexed_keys(self):
        """Keys of the pictures (file, member, frame) and files already indexed."""
        keys = set()
        for shard in self._store.shards():
            contents = json.loads((shard / "crops.json").read_text())
            keys.update(contents["pictures"], contents["completed"])
        return keys

    def _load(self):
        """`(crop GalleryIndex, crop records, track GalleryIndex, track records)`, loaded once per change; track and
        crop numbers (`id`, `track`, `crops`, `best`) run over the whole index."""
        if self._loaded is None:
            parts, records, tracks = [], [], []
            for shard in self._store.shards():
                contents = json.loads((shard / "crops.json").read_text())
                first_crop, first_track = len(records), len(tracks)
                records += [{**record, "track": first_track + record["track"], "thumbnail": shard / record["thumbnail"]}
                            for record in contents["crops"]]
                tracks += [{**track, "id": first_track + number, "crops": [first_crop + row for row in track["crops"]],
                            "best": first_crop + track["best"]} for number, track in enumerate(contents["tracks"])]
                if contents["crops"]:
                    parts.append(shard)
            gallery = people = None
            if parts:
                gallery = GalleryIndex.load_shards(parts)
                if len(gallery) != len(records):
                    raise ValueError(f"{self.folder}: crops.json files list {len(records)} crops, the shards' "
                                     f"gallery indices {len(gallery)}")
                gallery.paths = [str(record["thumbnail"]) for record in records]
                people = track_gallery(gallery, [track["crops"] for track in tracks],
                                       [track["best"] for track in tracks])
            self._loaded = gallery, records, people, tracks
        return self._loaded

    def __len__(self):
        return len(self.tracks)

    @property
    def gallery(self):
        """The encoded crops as a `GalleryIndex` (paths: the thumbnails), in index order; None while empty."""
        return self._load()[0]

    @property
    def track_gallery(self):
        """The tracks as a `GalleryIndex`: features the normalised mean of their encoded crops' features, image tokens
        those of their best crop; None while empty."""
        return self._load()[2]

    @property
    def sources(self):
        """The files that tracks came from, in index order (each once)."""
        return list(dict.fromkeys(track["source"] for track in self.tracks))

    @property
    def durations(self):
        """Seconds of each video source up to its last sighting, `{source: seconds}`."""
        durations = {}
        for track in self.tracks:
            if track["end"] is not None:
                durations[track["source"]] = max(durations.get(track["source"], 0.0), track["end"])
        return durations

    @property
    def records(self):
        """Provenance of every encoded crop, in index order (`source`, `member`, `frame`, `timestamp`, `box`,
        `detection_score`, `track`, `thumbnail`)."""
        return self._load()[1]

    @property
    def tracks(self):
        """Every track, in index order: `id`, `source`, `member`, `frames`, `timestamps`, `boxes`, `start` and `end`
        (seconds; None for a photo), `static`, its encoded `crops` (rows of `records`) and the `best` of them."""
        return self._load()[3]

    # ---------------------------------------------------------------------------------------------------------------
    # Indexing
    # ---------------------------------------------------------------------------------------------------------------

    def add_sources(self, sources: Sequence[str | Path], detector: PersonDetector | None = None, frame_step: int = 10,
                    crop_aspect: float = 1.5, max_pixels: int | None = None, thumbnail_size: int = 256,
                    crops_per_track: int = 3, progress: bool = True,
                    workers: int | None = None) -> "IndexingReport":
        r"""
        Index folders (recursively), zip/tar archives, images and videos; pictures and files already in the index are
        skipped, so running it again resumes or adds only what is new. Returns an `IndexingReport`.

        Args:
            sources (`list`): paths. A missing one raises `FileNotFoundError` before anything is read.
            detector (`PersonDetector`, *optional*): finds people in wide images and video frames (default: a
                `HOGPersonDetector`, built when first needed).
            frame_step (`int`, *optional*, defaults to 10): every `frame_step`-th video frame is searched for people.
            crop_aspect (`float`, *optional*, defaults to 1.5): an image at least this many times taller than wide is
                a person crop and is indexed as it is; other images go through the detector (`float("inf")`: all).
            max_pixels (`int`, *optional*): larger images are skipped (default: Pillow's decompression-bomb limit).
            thumbnail_size (`int`, *optional*, defaults to 256): longest side of the stored crops.
            crops_per_track (`int`, *optional*, defaults to 3): crops of a track encoded and stored (its best and
                others spread over it; one for a static track).
            progress (`bool`, *optional*, defaults to `True`): progress bars.
            workers (`int`, *optional*): threads that search pictures for people while the calling thread tracks,
                encodes and writes (default: one per usable core; 1: detection in the calling thread, one picture at
                a time). The index is the same whatever their number; with more than one, a custom `detector` must be
                safe to call from several threads at once (`HOGPersonDetector` is).
        """
        if crops_per_track < 1:
            raise ValueError(f"crops_per_track must be at least 1, got {crops_per_track}")
        workers = usable_cores() if workers is None else workers
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
        files = list_files(sources)
        reader = SourceReader(frame_step=frame_step, max_pixels=max_pixels, progress=progress)
        indexed, skips, report = self.indexed_keys(), SkipLog(), IndexingReport(files=len(files))
        start, batch, pending = time.perf_counter(), _Batch(), _Pending()
        bar = tqdm(files, desc="indexing", unit="file", disable=not progress)

        def pictures():
            """The pictures of every file not yet indexed, each file followed by its `_FileEnd`; the default detector
            is built (here, in the calling thread) for the first picture that needs one."""
            nonlocal detector
            for path in bar:
                if str(path) in indexed:
                    report.already_indexed += 1
                    continue
                try:
                    for picture in reader.read(path, indexed, skips):
                        if detector is None and not is_person_crop(picture, crop_aspect):
                            detector = HOGPersonDetector()
                        yield picture
                except SourceError as error:
                    skips.skip_error(error)
                    yield _FileEnd(path, completed=False)
                else:
                    yield _FileEnd(path, completed=True)

        def people(item):
            return people_in(item, detector, crop_aspect) if isinstance(item, Picture) else None

        def add(tracks):
            for track in tracks:
                static, encoded = batch.add(track, crops_per_track)
                report.tracks += 1
                report.static_tracks += static
                report.crops += encoded

        for item, crops in map_ahead(people, pictures(), workers):
            if isinstance(item, _FileEnd):
                add(pending.finish())
                batch.keys += pending.settled()
                if item.completed:
                    batch.completed.append(str(item.path))
                continue
            add(pending.picture(item, crops))
            report.pictures += 1
            report.pictures_without_people += not crops
            report.detections += len(crops)
            if batch.crops >= self.batch_size or len(batch) >= 8 * self.batch_size:
                batch.keys += pending.settled()
                self._write(batch, thumbnail_size)
                batch = _Batch()
            bar.set_postfix(tracks=report.tracks)
        bar.close()
        if len(batch):
            self._write(batch, thumbnail_size)
        report.skipped, report.seconds = skips.counts, time.perf_counter() - start
        return report

    def _write(self, batch, thumbnail_size):
        """Write `batch` as the next shard: under a temporary name, then renamed (`ShardedFolder`)."""
        crops, crop_records, track_records = [], [], []
        for number, (track, static, chosen) in enumerate(batch.tracks):
            rows = list(range(len(crops), len(crops) + len(chosen)))
            for index in chosen:
                crop = track.crops[index]
                crops.append(crop)
                crop_records.append({**crop.provenance(), "track": number,
                                     "thumbnail": f"thumbnails/{len(crop_records):05d}.jpg"})
            first = track.crops[0]
            track_records.append({"source": first.source, "member": first.member,
                                  "frames": [crop.frame for crop in track.crops],
                                  "timestamps": [crop.timestamp for crop in track.crops],
                                  "boxes": [list(crop.box) for crop in track.crops],
                                  "start": track.start, "end": track.end, "static": static, "crops": rows,
                                  "best": rows[chosen.index(track.best())]})
        with self._store.new_shard() as partial:
            (partial / "thumbnails").mkdir()
            for crop, record in zip(crops, crop_records):
                crop.thumbnail(thumbnail_size).save(partial / record["thumbnail"], quality=90)
            if crops:
                self.engine.encode_gallery([crop.image for crop in crops],
                                           paths=[record["thumbnail"] for record in crop_records]).save(partial)
            (partial / "crops.json").write_text(json.dumps({"tracks": track_records, "crops": crop_records,
                                                            "pictures": batch.keys, "completed": batch.completed}))
        self._loaded = None

    # ---------------------------------------------------------------------------------------------------------------
    # Searching
    # ---------------------------------------------------------------------------------------------------------------

    def select_tracks(self, source: str | Path | None = None, after: float | str | None = None,
                      before: float | str | None = None, min_duration: float = 0.0,
                      include_static: bool = False) -> list[int]:
        r"""
        Ids of the tracks that pass the filters, in index order.

        Args:
            source (`str` or `Path`, *optional*): only the tracks of this indexed file (see `sources`).
            after, before (`float`, *optional*): seconds; only the video tracks seen at some time in this window
                (photos have no time and are left out when either is given).
            min_duration (`float`, *optional*, defaults to 0): only the tracks followed at least this many seconds.
            include_static (`bool`, *optional*, defaults to `False`): keep the static tracks (parked vehicles,
                posters, people standing still), left out by default.
        """
        if after is not None and before is not None and after > before:
            raise ValueError(f"the time window ends ({before} s) before it begins ({after} s)")
        tracks = self.tracks
        if not tracks:
            raise ValueError(f"{self.folder} holds no people yet: add sources first")
        chosen = tracks
        if source is not None:
            chosen = [track for track in chosen if track["source"] == str(Path(source).resolve())]
            if not chosen:
                raise ValueError(f"{source} has no people in {self.folder}")
        timed = after is not None or before is not None
        chosen = [track for track in chosen
                  if (include_static or not track["static"])
                  and (not timed or (track["start"] is not None and (after is None or track["end"] >= after)
                                     and (before is None or track["start"] <= before)))
                  and (0.0 if track["start"] is None else track["end"] - track["start"]) >= min_duration]
        return [track["id"] for track in chosen]

    def search(self, text: str | None = None, image: str | Path | Image.Image | None = None, top: int = 10,
               image_weight: float = 0.5, fusion: str | None = None, min_probability: float | None = None,
               **filters: Any) -> list["TrackMatch"]:
        r"""
        The `top` tracks (people) best matching a sentence, an example image of the person, or both, best first, each
        with its best-matching moment.

        Args:
            text (`str`, *optional*): a description; ranked as `RetrievalEngine.search` ranks (ITM re-ranking).
            image (`str`, `Path`, PIL image or RGB array, *optional*): an example crop of the person (from this index or
                elsewhere); ranked by the cosine similarity of image features.
            top (`int`, *optional*, defaults to 10): results returned.
            image_weight (`float`, *optional*, defaults to 0.5): with both, the score is
                `(1 - image_weight) * text + image_weight * image`, each min-max normalised over the tracks searched
                (`ranking.combined_scores`).
            fusion (`str`, *optional*): text score fusion for this call (default: the index's).
            min_probability (`float`, *optional*): keep only the people whose calibrated match probability with
                `text` (`probabilities`) is at least this; their `probability` is filled in.
            filters: `source`, `after`, `before`, `min_duration`, `include_static` (see `select_tracks`).
        """
        if min_probability is not None and text is None:
            raise ValueError("min_probability needs a text: the probability is the text's match with the person")
        ids, image = self._query(text, image, filters)
        gallery, records, people, tracks = self._load()
        found = rank_tracks(self.engine, gallery_rows(people, ids), gallery, [tracks[i]["crops"] for i in ids], text,
                            image, top, image_weight, fusion)
        matches = [_track_match(tracks[ids[index]], rank + 1, score,
                                _crop_match(records[moment], rank + 1, moment_score))
                   for rank, (index, score, moment, moment_score) in enumerate(found)]
        if min_probability is not None:
            for match, probability in zip(matches, self.probabilities(text, [m.track for m in matches])):
                match.probability = probability
            matches = [match for match in matches if match.probability >= min_probability]
        return matches

    def probabilities(self, text: str, ids: Sequence[int]) -> list[float]:
        r"""
        Calibrated probabilities that `text` describes each of the tracks `ids`: the highest over the track's encoded
        crops of `self.calibration.probability` of the ITM margin (the checkpoint's `calibration.json`; the head's
        raw probability without one).
        """
        gallery, _, _, tracks = self._load()
        text_embeds, mask, _ = self.engine.encode_text_batch([text])
        rows = [row for track in ids for row in tracks[track]["crops"]]
        margins = []
        for start in range(0, len(rows), self.batch_size):
            chunk = torch.tensor(rows[start : start + self.batch_size])
            image_embeds = gallery.image_embeds[chunk].to(self.engine.device, torch.float32)
            margins.append(itm_margins(self.engine.model, text_embeds.expand(len(chunk), -1, -1),
                                       mask.expand(len(chunk), -1), image_embeds).cpu())
        probability = self.calibration.probability(torch.cat(margins)) if margins else torch.zeros(0)
        best, position = [], 0
        for track in ids:
            count = len(tracks[track]["crops"])
            best.append(float(probability[position : position + count].max()))
            position += count
        return best

    def watch(self, text: str, probability: float, **filters: Any) -> "Watch":
        r"""
        A standing query: a `Watch` whose `poll()` returns the people added to the index since the last poll (or
        since now) whom `text` describes with a calibrated probability of at least `probability`, most probable
        first. `filters` as `select_tracks` (static tracks are left out by default).
        """
        return Watch(self, text, probability, filters)

    def search_crops(self, text: str | None = None, image: str | Path | Image.Image | None = None, top: int = 10,
                     image_weight: float = 0.5, fusion: str | None = None, **filters: Any) -> list["FootageMatch"]:
        """The `top` encoded crops best matching, as `search` (same arguments and filters), several per person."""
        ids, image = self._query(text, image, filters)
        gallery, records, _, tracks = self._load()
        rows = [row for track in ids for row in tracks[track]["crops"]]
        indices, scores = rank_crops(self.engine, gallery_rows(gallery, rows), text, image, top, image_weight,
                                     fusion)
        return [_crop_match(records[rows[index]], rank + 1, score)
                for rank, (index, score) in enumerate(zip(indices, scores))]

    def _query(self, text, image, filters):
        """The ids of the tracks `filters` select (an error when none) and the example image decoded."""
        if text is None and image is None:
            raise ValueError("give a text, an image, or both")
        ids = self.select_tracks(**filters)
        if not ids:
            raise ValueError(f"no track of {self.folder} passes the filters {filters}")
        if isinstance(image, (str, Path)):
            image = decode_image(Path(image), image)
        return ids, image


def _track_match(track, rank, score, moment, probability=None):
    """The `TrackMatch` of a track record (as `FootageIndex.tracks` lists them)."""
    return TrackMatch(rank, score, track["id"], track["source"], track["member"], track["start"], track["end"],
                      track["static"], track["frames"], track["timestamps"], [tuple(box) for box in track["boxes"]],
                      moment, probability)


def _crop_match(record, rank, score):
    """The `FootageMatch` of a crop record (as `FootageIndex.records` lists them)."""
    return FootageMatch(**{**record, "box": tuple(record["box"])}, rank=rank, score=score)


class Watch:
    """A standing query on a `FootageIndex` (see `FootageIndex.watch`): `poll()` reports, once each, the tracks added
    since the last poll whose calibrated probability reaches the threshold."""

    def __init__(self, index, text, probability, filters):
        if not 0 <= probability <= 1:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        self.index, self.text, self.threshold, self.filters = index, text, probability, filters
        self.seen = len(index.tracks)

    def poll(self) -> list:
        """`TrackMatch`es (rank by probability, `score` and `probability` the calibrated probability, `moment` the
        track's best crop) of the new tracks that reach the threshold."""
        tracks = self.index.tracks
        new = [i for i in (self.index.select_tracks(**self.filters) if len(tracks) > self.seen else [])
               if i >= self.seen]
        self.seen = len(tracks)
        if not new:
            return []
        probabilities = self.index.probabilities(self.text, new)
        alerts = sorted((p, i) for p, i in zip(probabilities, new) if p >= self.threshold)[::-1]
        records = self.index.records
        return [_track_match(tracks[i], rank + 1, probability, _crop_match(records[tracks[i]["best"]], rank + 1,
                                                                           probability), probability)
                for rank, (probability, i) in enumerate(alerts)]
