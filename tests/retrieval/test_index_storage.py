"""Gallery indices on disk: stored in float32, float16 or bfloat16, loaded in RAM or memory-mapped (image tokens read
only for the re-ranked candidates, results equal to the in-RAM index's), built incrementally in shards (resumed after
a crash, appended to, equal to a one-shot build)."""

import json

import datasets
import numpy as np
import pytest
import torch

import aptm
from aptm.retrieval import GalleryIndex, RetrievalEngine
from aptm.retrieval.index import MappedImageTokens, ShardedFolder

from helpers.images import person_image
from helpers.models import tiny_config

TEXTS = ["a man in a red jacket", "a woman with a black bag and blue jeans walking down the street", "a child",
         "someone wearing a green coat and white shoes", "a person with long hair", "an old man with a hat"]
PATHS = [f"{i}.jpg" for i in range(12)]
IDS = [i // 2 for i in range(12)]


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = aptm.APTMModel(tiny_config()).eval()
    engine = RetrievalEngine(model, aptm.build_processor(), k=4, query_batch_size=4, batch_size=5, progress=False)
    images = [person_image(i) for i in range(12)]
    return engine, images, engine.encode_gallery(images, person_ids=IDS, paths=PATHS)


class CountingEngine:
    """Counts the images `build_index` encodes, and raises instead of encoding the `fail_at`-th shard (a crash)."""

    def __init__(self, engine, fail_at=None):
        self.engine, self.fail_at, self.calls, self.encoded = engine, fail_at, 0, 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def encode_gallery(self, images, person_ids=None, paths=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated crash")
        self.encoded += len(images)
        return self.engine.encode_gallery(images, person_ids, paths)


def build(engine, images, folder, **kwargs):
    return GalleryIndex.build(engine, images, folder, **{"person_ids": IDS[: len(images)],
                                                         "paths": PATHS[: len(images)], **kwargs})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_round_trip(setup, tmp_path, dtype):
    _, _, index = setup
    index.save(tmp_path, dtype=dtype)
    loaded = GalleryIndex.load(tmp_path)
    assert loaded.image_features.dtype == torch.float32 and loaded.image_embeds.dtype == dtype
    assert torch.equal(loaded.image_features, index.image_features.to(dtype).float())
    assert torch.equal(loaded.image_embeds, index.image_embeds.to(dtype))
    assert torch.equal(loaded.person_ids, index.person_ids) and loaded.paths == PATHS
    half_size = (tmp_path / "index.safetensors").stat().st_size
    index.save(tmp_path / "full")
    assert half_size < 0.55 * (tmp_path / "full" / "index.safetensors").stat().st_size
    with pytest.raises(ValueError, match="dtype must be one of"):
        index.save(tmp_path, dtype=torch.int8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("kv_memory_limit", [0, 2**31])
def test_memory_mapped_index_gives_the_in_memory_results(setup, tmp_path, dtype, kv_memory_limit):
    engine, _, index = setup
    index.save(tmp_path, dtype=dtype)
    in_memory, mapped = GalleryIndex.load(tmp_path), GalleryIndex.load(tmp_path, mmap=True)
    assert isinstance(mapped.image_embeds, MappedImageTokens) and mapped.image_embeds.shape == index.image_embeds.shape
    engine.kv_memory_limit = kv_memory_limit
    try:
        assert torch.equal(engine.score_matrix(TEXTS, mapped), engine.score_matrix(TEXTS, in_memory))
        assert engine.search(TEXTS[:2], mapped, top=5) == engine.search(TEXTS[:2], in_memory, top=5)
        (metrics, scores), (expected_metrics, expected) = (engine.evaluate(TEXTS, range(6), gallery)
                                                           for gallery in (mapped, in_memory))
        assert metrics == expected_metrics and torch.equal(scores.matrix(), expected.matrix())
    finally:
        engine.kv_memory_limit = 2**31
    if dtype == torch.float32:  # what was encoded, saved and read back unchanged
        assert torch.equal(engine.score_matrix(TEXTS, mapped), engine.score_matrix(TEXTS, index))


def test_only_the_candidates_tokens_are_read(setup, tmp_path):
    """With keys/values computed per query batch, each batch reads exactly its distinct candidates' rows; features
    and person ids come from RAM, so evaluation, FAISS and the gallery's size read no tokens."""
    engine, _, index = setup
    index.save(tmp_path, dtype=torch.float16)
    mapped = GalleryIndex.load(tmp_path, mmap=True)
    engine.kv_memory_limit = 0
    try:
        _, topk, _ = engine.rank(TEXTS, mapped)
        assert mapped.image_embeds.rows_read == sum(len(topk[rows].unique()) for rows in
                                                   (slice(0, 4), slice(4, 5), slice(5, 6)))  # batches of 5, then 4
        mapped.image_embeds.rows_read = 0
        engine.evaluate(TEXTS[:1], [0], mapped)
        assert mapped.image_embeds.rows_read == 4  # k
        mapped.image_embeds.rows_read = 0
        assert engine._gallery_key_values(mapped) is None and len(mapped) == 12
        assert mapped.image_embeds.rows_read == 0
    finally:
        engine.kv_memory_limit = 2**31


def test_mapped_rows_as_tensor_indexing(setup, tmp_path):
    """Rows of a memory-mapped index across shards, in any order, repeated, by int, slice, list, tensor or mask."""
    _, images, index = setup
    for number, rows in enumerate((slice(0, 5), slice(5, 7), slice(7, 12))):
        GalleryIndex(index.image_features[rows], index.image_embeds[rows]).save(tmp_path / f"{number:06d}")
    mapped = MappedImageTokens([tmp_path / f"{number:06d}" / "index.safetensors" for number in range(3)])
    tokens = index.image_embeds
    for rows in (torch.tensor([11, 0, 4, 5, 4, 6, 7]), [3], [], 2, -1, slice(3, 9), slice(None, None, 3),
                 torch.arange(12) % 3 == 0, torch.tensor([[1, 2], [10, 1]]), np.array([4, -2])):
        assert torch.equal(mapped[rows], tokens[rows]), rows
    assert mapped.rows_read == 28 and len(mapped) == 12
    with pytest.raises(IndexError, match="out of range for 12 images"):
        mapped[[3, 12]]
    with pytest.raises(IndexError, match="boolean mask of shape"):
        mapped[torch.ones(5, dtype=torch.bool)]
    GalleryIndex(index.image_features[:2], index.image_embeds[:2, :5]).save(tmp_path / "other")
    with pytest.raises(ValueError, match="image tokens of shape"):
        MappedImageTokens([tmp_path / "000000" / "index.safetensors", tmp_path / "other" / "index.safetensors"])
    with pytest.raises(ValueError, match="already saved"):
        GalleryIndex(index.image_features, mapped).save(tmp_path / "copy")


def test_incremental_build_equals_one_shot(setup, tmp_path):
    engine, images, index = setup
    one_shot = build(engine, images, tmp_path / "one", shard_size=5)
    assert len(ShardedFolder(tmp_path / "one" / "shards").shards()) == 3
    counting = CountingEngine(engine)
    build(counting, images[:7], tmp_path / "grown", shard_size=5)
    grown = build(counting, images, tmp_path / "grown", shard_size=5)  # the same list, longer: the rest is added
    assert counting.encoded == 12
    for built in (one_shot, grown):
        assert len(built) == 12 and built.paths == PATHS and built.person_ids.tolist() == IDS
        torch.testing.assert_close(built.image_features, index.image_features, atol=1e-6, rtol=0)
        torch.testing.assert_close(built.image_embeds[torch.arange(12)], index.image_embeds, atol=1e-5, rtol=0)
    in_memory = GalleryIndex.load(tmp_path / "grown")
    assert torch.equal(in_memory.image_embeds, grown.image_embeds[torch.arange(12)])
    assert torch.equal(engine.score_matrix(TEXTS, grown), engine.score_matrix(TEXTS, in_memory))
    build(counting, images, tmp_path / "grown", shard_size=5)
    assert counting.encoded == 12  # nothing left to encode


def test_resume_after_a_crash_encodes_only_what_is_missing(setup, tmp_path):
    engine, images, index = setup
    crashing = CountingEngine(engine, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        build(crashing, images, tmp_path, shard_size=4, dtype=torch.float16)
    shards = ShardedFolder(tmp_path / "shards")
    assert [shard.name for shard in shards.shards()] == ["000000", "000001"]
    (tmp_path / "shards" / ".partial-1-000002").mkdir()  # what a killed process leaves behind
    (tmp_path / "shards" / ".partial-1-000002" / "index.json").write_text("{")
    assert GalleryIndex.load(tmp_path).paths == PATHS[:8]  # readable meanwhile
    resumed = CountingEngine(engine)
    built = build(resumed, images, tmp_path, shard_size=4, dtype=torch.float16)
    assert resumed.encoded == 4 and not list((tmp_path / "shards").glob(".partial-*"))
    assert built.paths == PATHS and built.image_embeds.dtype == torch.float16
    torch.testing.assert_close(built.image_embeds[torch.arange(12)], index.image_embeds.half(), atol=2e-3, rtol=0)


def test_appending_image_files(setup, tmp_path):
    """Image files in two folders: the second call appends, a repeated file is skipped; files are read as arrays."""
    engine, images, index = setup
    files = []
    for number, image in enumerate(images[:6]):
        files.append(tmp_path / ("first" if number < 4 else "second") / f"{number}.png")
        files[-1].parent.mkdir(exist_ok=True)
        image.save(files[-1])
    counting = CountingEngine(engine)
    GalleryIndex.build(counting, files[:4], tmp_path / "index", shard_size=3)
    built = GalleryIndex.build(counting, files[2:], tmp_path / "index", shard_size=3)
    assert counting.encoded == 6 and built.paths == [str(file) for file in files] and built.person_ids is None
    torch.testing.assert_close(built.image_features, index.image_features[:6], atol=1e-6, rtol=0)
    assert json.loads((tmp_path / "index" / "gallery.json").read_text()) == {"format": 1, "dtype": "float32",
                                                                             "person_ids": False}
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(Exception, match="broken.jpg: unreadable image"):
        engine.build_index([tmp_path / "broken.jpg"], tmp_path / "index")


def test_build_errors(setup, tmp_path):
    engine, images, index = setup
    build(engine, images[:2], tmp_path / "index")
    with pytest.raises(ValueError, match="needs paths"):
        engine.build_index(images, tmp_path / "index")
    with pytest.raises(ValueError, match="paths has 2 entries for 3"):
        engine.build_index(images[:3], tmp_path / "index", paths=PATHS[:2])
    with pytest.raises(ValueError, match="'a.jpg' is repeated"):
        engine.build_index(images[:2], tmp_path / "index", paths=["a.jpg", "a.jpg"])
    with pytest.raises(ValueError, match="the index has dtype 'float32', this call 'float16'"):
        build(engine, images, tmp_path / "index", dtype=torch.float16)
    with pytest.raises(ValueError, match="the index has person_ids True, this call False"):
        engine.build_index(images, tmp_path / "index", paths=PATHS)
    with pytest.raises(ValueError, match="shard_size must be at least 1"):
        build(engine, images, tmp_path / "index", shard_size=0)
    index.save(tmp_path / "single")
    with pytest.raises(ValueError, match="a saved index of one file"):
        build(engine, images, tmp_path / "single")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "gallery.json").write_text("{}")
    with pytest.raises(ValueError, match="holds no images yet"):
        GalleryIndex.load(tmp_path / "empty")
    GalleryIndex(index.image_features[:2], index.image_embeds[:2]).save(tmp_path / "index" / "shards" / "000001")
    with pytest.raises(ValueError, match="000001: person ids in some shards only"):
        GalleryIndex.load(tmp_path / "index")
    meta = tmp_path / "single" / "index.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "size": 3}))
    with pytest.raises(ValueError, match="index.json describes 3 images, the tensors 12"):
        GalleryIndex.load(tmp_path / "single", mmap=True)


def test_build_from_a_dataset_and_pixel_values(setup, tmp_path):
    engine, images, index = setup
    dataset = datasets.Dataset.from_dict({"image": images[:3]}).cast_column("image", datasets.Image())
    from_dataset = build(engine, dataset, tmp_path / "dataset", shard_size=2)
    pixel_values = engine.processor.image_processor(images[:3])["pixel_values"]
    from_pixels = build(engine, pixel_values, tmp_path / "pixels", shard_size=2)
    for built in (from_dataset, from_pixels):
        assert built.paths == PATHS[:3] and built.person_ids.tolist() == IDS[:3]
        torch.testing.assert_close(built.image_features, index.image_features[:3], atol=1e-6, rtol=0)
