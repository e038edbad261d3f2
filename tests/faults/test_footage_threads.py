"""`FootageIndex.search` (and `search_crops`, `probabilities`) called from several threads at once, on an index just
opened (its shards loaded lazily by whichever call comes first): every call gives the result it gives alone, and none
fails."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

pytest.importorskip("cv2", reason="the footage extra (opencv-python-headless) is not installed")

from aptm.footage import FootageIndex  # noqa: E402

from helpers.footage import SceneDifference, pedestrian_video, save_tiny_checkpoint  # noqa: E402

CALLS = {
    "text": lambda index, crop: [m.to_dict() for m in index.search("a man in a black jacket", top=3)],
    "example": lambda index, crop: [m.to_dict() for m in index.search(image=crop, top=3)],
    "both": lambda index, crop: [m.to_dict() for m in index.search("a woman in white", image=crop, image_weight=0.3)],
    "probability": lambda index, crop: [m.to_dict() for m in index.search("red and blue", min_probability=0.0)],
    "crops": lambda index, crop: [m.to_dict() for m in index.search_crops("a person walking", top=5)],
    "filtered": lambda index, crop: [m.to_dict() for m in index.search("a person", after=1.0, before=2.0)],
    "probabilities": lambda index, crop: index.probabilities("a man", [0, 1, 2]),
}


def test_searches_from_eight_threads_give_the_sequential_results(tmp_path):
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint")
    _, _, scene = pedestrian_video(tmp_path / "walk.avi")
    built = FootageIndex(tmp_path / "index", checkpoint, batch_size=4)
    built.add_sources([tmp_path / "walk.avi"], detector=SceneDifference(scene), progress=False)
    crop = Image.open(built.records[4]["thumbnail"]).convert("RGB")
    expected = {name: call(built, crop) for name, call in CALLS.items()}
    assert all(expected.values())  # every kind of call finds something

    index = FootageIndex(tmp_path / "index")  # nothing loaded yet: the threads' first calls race to load it
    names = list(CALLS) * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda name: CALLS[name](index, crop), names))
    for name, result in zip(names, results):
        assert result == expected[name], name
