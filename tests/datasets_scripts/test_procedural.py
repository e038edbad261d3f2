"""The procedural pedestrians: deterministic, labels agree with the pixels, and one call gives ready splits."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from datasets_scripts import load_aptm_dataset, procedural
from processing_aptm import MALS_ATTRIBUTES


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".hf_cache" not in p.parts}


def test_same_seed_same_bytes(tmp_path):
    procedural.generate(tmp_path / "a", num_identities=5, views_per_identity=2, seed=3, progress=False)
    procedural.generate(tmp_path / "b", num_identities=5, views_per_identity=2, seed=3, progress=False)
    procedural.generate(tmp_path / "c", num_identities=5, views_per_identity=2, seed=4, progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def nearest_colour(rgb, names):
    return min(names, key=lambda name: sum((a - b) ** 2 for a, b in zip(rgb, procedural.PALETTE[name])))


def test_labels_agree_with_the_pixels():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        identity = procedural.sample_identity(rng)
        image, layout = procedural.render(identity, rng)
        labels = procedural.attribute_labels(identity)
        pixels = np.asarray(image, dtype=np.float32)
        if layout["view"] != "back" or not identity.backpack:  # the torso shows the upper clothes
            x0, y0, x1, y1 = (int(v) for v in layout["upper_box"])
            upper = nearest_colour(pixels[y0:y1, x0:x1].reshape(-1, 3).mean(0), procedural.UPPER_CHOICES)
            assert upper == identity.upper_colour
            for colour in procedural.UPPER_COLOURS:
                assert labels[MALS_ATTRIBUTES.index(f"upper_{colour}")] == (0 if upper == colour else 1)
            checked += 1
        x0, y0, x1, y1 = (int(v) for v in layout["lower_box"])
        lower = nearest_colour(pixels[y0:y1, x0:x1].reshape(-1, 3).mean(0), procedural.LOWER_CHOICES + ("orange",))
        assert lower == identity.lower_colour
        for colour in procedural.LOWER_COLOURS:
            assert labels[MALS_ATTRIBUTES.index(f"lower_{colour}")] == (0 if lower == colour else 1)
        assert labels[MALS_ATTRIBUTES.index("lower_type")] == (0 if identity.lower_type in ("skirt", "dress") else 1)
        assert labels[MALS_ATTRIBUTES.index("gender")] == (1 if identity.gender == "man" else 0)
    assert checked > 30


def test_saved_images_keep_the_colours(tmp_path):
    procedural.generate(tmp_path, num_identities=6, views_per_identity=2, seed=1, progress=False)
    rng = np.random.default_rng(1)
    identities = [procedural.sample_identity(rng) for _ in range(6)]
    for pid, identity in enumerate(identities):
        view_rng = np.random.default_rng([1, pid, 0])
        _, layout = procedural.render(identity, view_rng)
        saved = np.asarray(Image.open(tmp_path / f"imgs/{pid:05d}_0.jpg"), dtype=np.float32)
        x0, y0, x1, y1 = (int(v) for v in layout["lower_box"])
        assert nearest_colour(saved[y0:y1, x0:x1].reshape(-1, 3).mean(0),
                              procedural.LOWER_CHOICES + ("orange",)) == identity.lower_colour


def test_one_call_gives_ready_splits(tmp_path):
    data = load_aptm_dataset("procedural", data_dir=tmp_path, num_identities=12, views_per_identity=3, seed=0)
    assert {"train", "validation_gallery", "validation_queries", "test_gallery", "test_queries", "attributes_test"} <= set(data)
    train, gallery, queries = data["train"], data["test_gallery"], data["test_queries"]
    assert train.num_rows == 2 * 3 * 9 and len(train[0]["attribute_labels"]) == 27
    assert gallery.num_rows == 3 * 2 and queries.num_rows == 2 * gallery.num_rows
    assert set(train["image_path"]).isdisjoint(gallery["image_path"])  # disjoint identities
    for query in queries:
        assert gallery[query["image_index"]]["person_id"] == query["person_id"]
    assert data["attributes_test"]["image_path"] == gallery["image_path"]
    assert data["train"][0]["image"].size == (128, 384)
    again = load_aptm_dataset("procedural", data_dir=tmp_path, num_identities=12, views_per_identity=3, seed=0)
    assert again["train"]["caption"] == train["caption"]
    mals = load_aptm_dataset("mals", data_dir=tmp_path)["train"]
    assert mals.num_rows == train.num_rows and mals["attribute_labels"] == train["attribute_labels"]
    with pytest.raises(TypeError, match="unknown procedural options"):
        load_aptm_dataset("procedural", data_dir=tmp_path, identities=3)


def test_contact_sheet(tmp_path):
    procedural.generate(tmp_path, num_identities=5, views_per_identity=2, progress=False)
    sheet = Image.open(procedural.render_contact_sheet(tmp_path, tmp_path / "sheet.png", count=2, columns=2))
    assert sheet.size[0] == 2 * (procedural.WIDTH + 16) and np.asarray(sheet).std() > 20


def test_scene_is_muted_so_clothes_stand_out():
    """Street scenes are near-grey (chroma = max - min channel), unlike the saturated clothes of the palette."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        scene, _ = procedural._background(rng)
        pixels = np.asarray(scene, dtype=np.int32)
        assert np.percentile(pixels.max(-1) - pixels.min(-1), 99) <= 64
    saturated = [name for name, rgb in procedural.PALETTE.items() if max(rgb) - min(rgb) > 80]
    assert {"red", "purple", "yellow", "blue", "green", "pink"} <= set(saturated)


def test_folder_from_an_older_renderer_is_regenerated(tmp_path):
    settings = dict(num_identities=4, views_per_identity=1, seed=2)
    load_aptm_dataset("procedural", data_dir=tmp_path / "fresh", **settings)
    load_aptm_dataset("procedural", data_dir=tmp_path / "old", **settings)
    manifest = tmp_path / "old" / "manifest.json"
    old = json.loads(manifest.read_text())
    old["render_version"] = procedural.RENDER_VERSION - 1
    manifest.write_text(json.dumps(old))
    (tmp_path / "old" / "imgs" / "00000_0.jpg").write_bytes(b"drawn by the old renderer")
    assert not procedural.is_generated(tmp_path / "old", **settings)
    data = load_aptm_dataset("procedural", data_dir=tmp_path / "old", **settings)
    assert json.loads(manifest.read_text())["render_version"] == procedural.RENDER_VERSION
    assert digest(tmp_path / "old") == digest(tmp_path / "fresh")
    assert data["train"].num_rows > 0


def test_processes_draw_the_same_bytes(tmp_path):
    procedural.generate(tmp_path / "one", num_identities=4, views_per_identity=3, seed=5, progress=False)
    procedural.generate(tmp_path / "two", num_identities=4, views_per_identity=3, seed=5, progress=False, num_proc=2)
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
