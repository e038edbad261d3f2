"""Calibrating the ITM match probability: the temperature fitted on overconfident synthetic margins recovers the
overconfidence and lowers the expected calibration error; reliability tables and ECE on a known case; held-out pairs
from a dataset split; margins of batched pairs equal those of pairs one by one; `calibration.json` round trip and
bad files; `scripts/calibrate.py` on generated procedural data writes what `FootageIndex` reads."""

import json

import numpy as np
import pytest
from datasets import Dataset

from aptm import load_checkpoint
from aptm.retrieval import RetrievalEngine
from aptm.retrieval.calibration import (CALIBRATION_FILE, Calibration, fit_temperature, held_out_pairs, itm_margins,
                                        negative_log_likelihood, pair_margins, reliability)
from datasets_scripts import load_aptm_dataset

from helpers.footage import save_tiny_checkpoint
from helpers.images import person_image
from helpers.paths import load_script


def overconfident(count=20000, scale=3.0, seed=0):
    """Margins `scale` times too large for labels drawn from `sigmoid(true margin)`."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 2, count)
    labels = (rng.random(count) < 1 / (1 + np.exp(-true))).astype(int)
    return scale * true, labels


def test_the_temperature_undoes_overconfidence():
    margins, labels = overconfident()
    temperature = fit_temperature(margins, labels)
    assert temperature == pytest.approx(3.0, rel=0.08)
    for other in (temperature * 0.8, temperature * 1.25):  # the likelihood's minimum
        assert negative_log_likelihood(margins, labels, other) > negative_log_likelihood(margins, labels, temperature)
    calibration = Calibration.fit(margins, labels, data="synthetic")
    assert (calibration.pairs, calibration.matches) == (20000, int(labels.sum()))
    test_margins, test_labels = overconfident(seed=1)  # measured on other pairs
    before, after = calibration.measure(test_margins, test_labels)
    assert calibration.ece_before > 0.08 and calibration.ece_after < 0.02
    assert sum(count for count, _, _ in after) == 20000 and len(before) == 10
    with pytest.raises(ValueError, match="pairs of both kinds"):
        fit_temperature(margins[:5], np.ones(5))


def test_reliability_on_a_known_case():
    table, error = reliability([0.05, 0.05, 0.95, 0.95, 1.0], [0, 1, 1, 1, 1], bins=10)
    assert table[0] == (2, pytest.approx(0.05), 0.5) and table[9] == (3, pytest.approx(0.9667, abs=1e-4), 1.0)
    assert table[1:9] == [(0, None, None)] * 8
    assert error == pytest.approx((2 * 0.45 + 3 * (1 - 0.9666667)) / 5)


def test_held_out_pairs():
    gallery = Dataset.from_dict({"image": [person_image(seed) for seed in range(4)], "person_id": [0, 0, 1, 2]})
    queries = Dataset.from_dict({"caption": ["zero", "one", "three"], "person_id": [0, 1, 3]})
    texts, images, labels = held_out_pairs(queries, gallery, negatives=2)
    assert texts == ["zero"] * 3 + ["one"] * 3 and labels == [1, 0, 0] * 2  # person 3 has no image: left out
    pixels = [np.asarray(image) for image in images]
    own = {0: [0, 1], 1: [2]}
    assert any((pixels[0] == np.asarray(gallery[row]["image"])).all() for row in own[0])
    assert not any((pixels[1] == np.asarray(gallery[row]["image"])).all() for row in own[0])
    with pytest.raises(ValueError, match="no query has both"):
        held_out_pairs(queries.select([2]), gallery)


def test_batched_margins_are_the_pairs_margins(tmp_path):
    model, processor = load_checkpoint(save_tiny_checkpoint(tmp_path / "checkpoint"), "cpu")
    texts = ["a man in a red coat", "a woman with a long black skirt and a white bag", "a child"]
    images = [person_image(seed) for seed in range(3)]
    batched = pair_margins(RetrievalEngine(model, processor, batch_size=2, progress=False), texts, images)
    single = RetrievalEngine(model, processor, batch_size=1, progress=False)
    for text, image, margin in zip(texts, images, batched):
        text_embeds, mask, _ = single.encode_text_batch([text])
        logits = model.itm_logits(text_embeds, mask, image_embeds=single.encode_images([image])[0])
        assert float(margin) == pytest.approx(float(logits[0, 1] - logits[0, 0]), abs=1e-4)
        assert float(itm_margins(model, text_embeds, mask, single.encode_images([image])[0])[0]) == \
            pytest.approx(float(margin), abs=1e-4)
    with pytest.raises(ValueError, match="3 texts for 2 images"):
        pair_margins(single, texts, images[:2])


def test_the_calibration_file(tmp_path):
    assert Calibration.load(tmp_path) == Calibration() and not Calibration().fitted
    calibration = Calibration(2.5, 100, 50, "procedural", 0.2, 0.03)
    assert calibration.save(tmp_path) == tmp_path / CALIBRATION_FILE
    assert Calibration.load(tmp_path) == calibration and calibration.fitted
    assert float(calibration.probability(np.array([5.0]))[0]) == pytest.approx(1 / (1 + np.exp(-2)))
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"temperature": -1}))
    with pytest.raises(ValueError, match=f"{tmp_path / CALIBRATION_FILE}: not a calibration"):
        Calibration.load(tmp_path)


def test_the_script_calibrates_a_checkpoint(tmp_path, monkeypatch, capsys):
    data = load_aptm_dataset("procedural", data_dir=tmp_path / "procedural", num_identities=12, views_per_identity=2,
                             seed=0, test_fraction=0.34, validation_fraction=0.34)
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint")
    script = load_script("scripts/calibrate.py")
    monkeypatch.setattr(script, "load_aptm_dataset", lambda name, data_dir: data)
    calibration = script.main([str(checkpoint), "--dataset", "procedural", "--data-dir", "unused"])
    assert Calibration.load(checkpoint) == calibration and calibration.fitted
    assert calibration.pairs == 2 * len(data["validation_queries"]) and calibration.matches == calibration.pairs // 2
    assert calibration.data == "procedural: fitted on validation, measured on test"
    assert calibration.ece_before is not None and calibration.ece_after is not None
    assert (checkpoint / "reliability.png").is_file()
    assert f"temperature {calibration.temperature:.3f}" in capsys.readouterr().out
