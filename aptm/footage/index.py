"""A searchable, incremental index of the people in footage: folders, archives, photos and videos become person
crops (detected in wide images and video frames, taken as they are when an image already is a crop), encoded with an
APTM model and stored with their provenance and a thumbnail; then searched by a sentence, an example image or both.

On disk, an index folder holds `footage.json` (format, model, the model's features of a fixed probe image) and
`shards/NNNNNN/`, one per written batch: a saved `GalleryIndex` (the crops' features and image tokens),
`crops.json` (provenance of each crop, the keys of the pictures and files the batch completes) and `thumbnails/`.
A shard is written under a temporary name and renamed when complete, so a crash loses at most the batch in flight
and never what was indexed before; a re-run skips every picture and file already recorded. One process should
write to an index at a time.
"""

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..factory import load_checkpoint
from ..images import SourceError, decode_image
from ..retrieval import GalleryIndex, RetrievalEngine
from ..retrieval.index import ShardedFolder
from .crops import Provenance, is_person_crop, people_in
from .detection import HOGPersonDetector
from .ranking import rank_crops
from .sources import SkipLog, SourceReader, list_files

FORMAT = 1
MANIFEST = "footage.json"
PROBE_AGREEMENT = 0.999  # cosine between the stored and the current probe features for "the same model"


def probe_image():
    """A fixed 384 x 128 colour pattern whose features identify the model an index was encoded with."""
    rows, columns = np.mgrid[0:384, 0:128]
    return np.stack([rows * 255 // 383, columns * 2, (rows // 32 + columns // 32) % 2 * 200 + 30], -1).astype(np.uint8)


@dataclass
class FootageMatch(Provenance):
    """One search result: a person crop's `Provenance` (`source`: absolute file path), its `rank` and `score`, and
    `thumbnail` (the stored crop)."""

    rank: int
    score: float
    thumbnail: Path

    def image(self):
        """The crop's stored thumbnail as an RGB PIL image."""
        with Image.open(self.thumbnail) as image:
            return image.convert("RGB")

    def to_dict(self):
        """JSON-ready fields."""
        return {"rank": self.rank, "score": self.score, **self.provenance(), "thumbnail": str(self.thumbnail)}


@dataclass
class IndexingReport:
    """What one `add_sources` call did: files read, pictures (images and sampled frames) read, pictures without a
    person, crops added, files skipped as already indexed, skips by reason, and the seconds it took."""

    files: int = 0
    pictures: int = 0
    pictures_without_people: int = 0
    crops: int = 0
    already_indexed: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self):
        """A few lines for people."""
        rate = f" ({self.pictures / self.seconds:.2f} pictures/s, {self.crops / self.seconds:.2f} crops/s)" \
            if self.seconds > 0 and self.pictures else ""
        lines = [f"{self.files} files, {self.pictures} pictures read ({self.pictures_without_people} without a "
                 f"person), {self.crops} crops added in {self.seconds:.1f} s{rate}",
                 f"{self.already_indexed} files already indexed"]
        lines += [f"{reason}: {count}" for reason, count in sorted(self.skipped.items())]
        return "\n".join(lines)


class _Batch:
    """Crops, picture keys and completed files waiting to be written as one shard."""

    def __init__(self):
        self.crops, self.records, self.keys, self.completed = [], [], [], []

    def __len__(self):
        return len(self.keys) + len(self.completed)


class FootageIndex:
    r"""
    Opens (or creates) the footage index in `folder`.

    Args:
        folder (`str` or `Path`): the index folder.
        model (`str`, `Path` or `APTMModel`, *optional*): a checkpoint folder or Hub id, or a loaded model (then give
            `processor`). Default: the model the index was built with. A model other than the index's (its features
            of a fixed probe image differ) raises a `ValueError`: features of two models do not compare.
        processor (`APTMProcessor`, *optional*): the processor of a loaded `model`.
        batch_size (`int`, *optional*, defaults to 32): crops encoded and written per shard.
        fusion (`str`, *optional*): score fusion of text search (see `retrieval_aptm`; default the engine's).
        device (`str`, *optional*): where a model loaded from a name runs (default: the GPU when there is one).
    """

    def __init__(self, folder, model=None, processor=None, batch_size=32, fusion="aptm", device=None):
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
        """`(GalleryIndex, records)` of every crop, loaded once per change."""
        if self._loaded is None:
            parts, records = [], []
            for shard in self._store.shards():
                crops = json.loads((shard / "crops.json").read_text())["crops"]
                if crops:
                    parts.append(shard)
                    records += [{**record, "thumbnail": shard / record["thumbnail"]} for record in crops]
            gallery = None
            if parts:
                gallery = GalleryIndex.load_shards(parts)
                if len(gallery) != len(records):
                    raise ValueError(f"{self.folder}: crops.json files list {len(records)} crops, the shards' "
                                     f"gallery indices {len(gallery)}")
                gallery.paths = [str(record["thumbnail"]) for record in records]
            self._loaded = gallery, records
        return self._loaded

    def __len__(self):
        return len(self.records)

    @property
    def gallery(self):
        """The encoded crops as a `GalleryIndex` (paths: the thumbnails), in index order; None while empty."""
        return self._load()[0]

    @property
    def sources(self):
        """The files that crops came from, in index order (each once)."""
        return list(dict.fromkeys(record["source"] for record in self.records))

    @property
    def records(self):
        """Provenance of every crop, in index order (`source`, `member`, `frame`, `timestamp`, `box`,
        `detection_score`, `thumbnail`)."""
        return self._load()[1]

    # ---------------------------------------------------------------------------------------------------------------
    # Indexing
    # ---------------------------------------------------------------------------------------------------------------

    def add_sources(self, sources, detector=None, frame_step=10, crop_aspect=1.5, max_pixels=None,
                    thumbnail_size=256, progress=True):
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
            progress (`bool`, *optional*, defaults to `True`): progress bars.
        """
        sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
        files = list_files(sources)
        reader = SourceReader(frame_step=frame_step, max_pixels=max_pixels, progress=progress)
        indexed, skips, report = self.indexed_keys(), SkipLog(), IndexingReport(files=len(files))
        start, batch = time.perf_counter(), _Batch()
        bar = tqdm(files, desc="indexing", unit="file", disable=not progress)
        for path in bar:
            if str(path) in indexed:
                report.already_indexed += 1
                continue
            try:
                for picture in reader.read(path, indexed, skips):
                    if detector is None and not is_person_crop(picture, crop_aspect):
                        detector = HOGPersonDetector()
                    added = self._add_picture(batch, picture, people_in(picture, detector, crop_aspect),
                                              thumbnail_size)
                    report.pictures += 1
                    report.pictures_without_people += added == 0
                    report.crops += added
                    if len(batch.crops) >= self.batch_size or len(batch) >= 8 * self.batch_size:
                        self._write(batch)
                        batch = _Batch()
                    bar.set_postfix(crops=report.crops)
            except SourceError as error:
                skips.skip_error(error)
                continue
            batch.completed.append(str(path))
        bar.close()
        if len(batch):
            self._write(batch)
        report.skipped, report.seconds = skips.counts, time.perf_counter() - start
        return report

    @staticmethod
    def _add_picture(batch, picture, crops, thumbnail_size):
        """Put a picture's person `crops` in `batch`; returns how many."""
        for crop in crops:
            batch.crops.append((crop.image, crop.thumbnail(thumbnail_size)))
            batch.records.append(crop.provenance())
        batch.keys.append(picture.key)
        return len(crops)

    def _write(self, batch):
        """Write `batch` as the next shard: under a temporary name, then renamed (`ShardedFolder`)."""
        names = [f"thumbnails/{i:05d}.jpg" for i in range(len(batch.crops))]
        records = [{**record, "thumbnail": name} for record, name in zip(batch.records, names)]
        with self._store.new_shard() as partial:
            (partial / "thumbnails").mkdir()
            for (_, thumbnail), name in zip(batch.crops, names):
                thumbnail.save(partial / name, quality=90)
            if batch.crops:
                self.engine.encode_gallery([crop for crop, _ in batch.crops], paths=names).save(partial)
            (partial / "crops.json").write_text(json.dumps({"crops": records, "pictures": batch.keys,
                                                            "completed": batch.completed}))
        self._loaded = None

    # ---------------------------------------------------------------------------------------------------------------
    # Searching
    # ---------------------------------------------------------------------------------------------------------------

    def search(self, text=None, image=None, top=10, image_weight=0.5, fusion=None, source=None):
        r"""
        The `top` crops best matching a sentence, an example image of the person, or both, best first.

        Args:
            text (`str`, *optional*): a description; ranked as `RetrievalEngine.search` ranks (ITM re-ranking).
            image (`str`, `Path`, PIL image or RGB array, *optional*): an example crop of the person (from this index or
                elsewhere); ranked by the cosine similarity of image features.
            top (`int`, *optional*, defaults to 10): results returned.
            image_weight (`float`, *optional*, defaults to 0.5): with both, the score is
                `(1 - image_weight) * text + image_weight * image`, each min-max normalised over the crops searched
                (`ranking.combined_scores`).
            fusion (`str`, *optional*): text score fusion for this call (default: the index's).
            source (`str` or `Path`, *optional*): search only the crops of this indexed file (see `sources`).
        """
        if text is None and image is None:
            raise ValueError("give a text, an image, or both")
        gallery, records = self._load()
        if gallery is None:
            raise ValueError(f"{self.folder} holds no crops yet: add sources first")
        if source is not None:
            rows = [i for i, record in enumerate(records) if record["source"] == str(Path(source).resolve())]
            if not rows:
                raise ValueError(f"{source} has no crops in {self.folder}")
            gallery = GalleryIndex(gallery.image_features[rows], gallery.image_embeds[rows])
            records = [records[i] for i in rows]
        if isinstance(image, (str, Path)):
            image = decode_image(Path(image), image)
        indices, scores = rank_crops(self.engine, gallery, text, image, top, image_weight, fusion)
        return [FootageMatch(**{**records[index], "box": tuple(records[index]["box"])}, rank=rank + 1, score=score)
                for rank, (index, score) in enumerate(zip(indices, scores))]
