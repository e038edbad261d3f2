"""APTMCollator batches: MLM masks on text only (or on padding, as the original, behind the option), the EDA copy
cleaned per dataset, the prompt bank with its masks, attribute-only (PA-100K) rows, random erasing, and draws that
depend on the rows only."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

import aptm.data.collator as collator_module
from aptm import build_processor
from aptm.data.captions import eda
from aptm.data.collator import APTMCollator

CAPTIONS = ["a man in a red jacket", "a woman wearing a long blue dress and white shoes", "child", "an old man"]


def rows(captions=CAPTIONS, labels=27, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": Image.fromarray(rng.integers(0, 256, (96, 32, 3), dtype=np.uint8)), "caption": caption,
             "person_id": i // 2, "attribute_labels": [(i + j) % 3 - 1 for j in range(labels)]}
            for i, caption in enumerate(captions)]


def check_masks(batch, ids_key, mask_key, prefix):
    """Masked ids differ from the ids only at the listed positions, whose labels are the original ids."""
    ids, masked = batch[ids_key], batch[f"{prefix}input_ids"]
    positions, labels = batch[f"{prefix}positions"], batch[f"{prefix}labels"]
    for row in range(len(ids)):
        chosen = positions[row][labels[row] != -100]
        assert (positions[row][labels[row] == -100] == 0).all()
        assert torch.equal(labels[row][labels[row] != -100], ids[row, chosen])
        untouched = torch.ones(ids.shape[1], dtype=torch.bool)
        untouched[chosen] = False
        assert torch.equal(masked[row, untouched], ids[row, untouched])
    return [positions[row][labels[row] != -100] for row in range(len(ids))]


def test_mlm_masks_only_text_unless_asked_to_mask_padding(processor):
    batch = APTMCollator(processor, erasing_p=0.0, randaugment=False)(rows())
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == lengths.max()  # padded to the longest caption
    for chosen, length in zip(check_masks(batch, "input_ids", "attention_mask", "mlm_"), lengths.tolist()):
        assert len(chosen) == min(10, max(1, round(length * 0.25)))
        assert 0 < chosen.min() and chosen.max() < length

    original = APTMCollator(processor, mask_padding=True, erasing_p=0.0, randaugment=False)(rows())
    assert original["input_ids"].shape[1] == 56
    chosen = check_masks(original, "input_ids", "attention_mask", "mlm_")
    assert all(len(c) == 10 for c in chosen)  # the original's budget: 25% of the padded length, at most 10
    lengths = original["attention_mask"].sum(1)
    on_padding = sum(int((c >= length).sum()) for c, length in zip(chosen, lengths.tolist()))
    assert on_padding > 0 and (original["mlm_labels"][original["mlm_positions"] >= lengths[:, None]] == 0).all()


@pytest.mark.parametrize("dataset, vocabulary", [("cuhk-pedes", {"the", "mans", "coat"}),
                                                 ("icfg-pedes", {"the", "man", "s", "coat"})])
def test_eda_copy_is_cleaned_per_dataset(processor, monkeypatch, dataset, vocabulary):
    monkeypatch.setattr(collator_module, "eda", lambda text, rng: eda(text, rng, wordnet=None))
    batch = APTMCollator(processor, mlm=False, eda=True, dataset=dataset, erasing_p=0.0, randaugment=False)(
        rows(["The man's coat"] * 8))
    words = set()
    for ids, mask in zip(batch["eda_input_ids"], batch["eda_attention_mask"]):
        words.update(processor.tokenizer.decode(ids[mask.bool()][1:]).split())
    assert words and words <= vocabulary
    main = {processor.tokenizer.decode(ids[mask.bool()][1:]) for ids, mask in
            zip(batch["input_ids"], batch["attention_mask"])}
    assert main == {"the man ' s coat"}  # the training caption keeps its apostrophe: only truncated, any dataset


def test_prompt_bank_masks_and_labels(processor):
    batch = APTMCollator(processor, attributes=True, erasing_p=0.0, randaugment=False)(rows())
    prompts = processor.encode_attribute_prompts()
    assert torch.equal(batch["attribute_input_ids"], prompts["input_ids"])
    assert torch.equal(batch["attribute_attention_mask"], prompts["attention_mask"])
    lengths = prompts["attention_mask"].sum(1)
    for chosen, length in zip(check_masks(batch, "attribute_input_ids", "attribute_attention_mask", "attribute_mlm_"),
                              lengths.tolist()):
        assert len(chosen) >= 1 and chosen.max() < length
    assert batch["attribute_labels"].tolist() == [row["attribute_labels"] for row in rows()]
    assert batch["person_ids"].tolist() == [0, 0, 1, 1]


def test_attribute_only_rows_with_the_pa100k_schema():
    processor = build_processor("pa100k", "pa100k")
    plain = [{"image": row["image"], "attribute_labels": [j % 2 for j in range(26)]} for row in rows(labels=26)]
    batch = APTMCollator(processor, captions=False, attributes=True, erasing_p=0.0, randaugment=False)(plain)
    assert set(batch) == {"pixel_values", "attribute_labels", "attribute_input_ids", "attribute_attention_mask",
                          "attribute_mlm_input_ids", "attribute_mlm_positions", "attribute_mlm_labels"}
    assert batch["attribute_input_ids"].shape[0] == 52 and batch["attribute_labels"].shape == (4, 26)
    with_ids = rows(labels=26)
    labels_only = APTMCollator(processor, captions=False, attributes=True, image_classifier=True, erasing_p=0.0,
                               randaugment=False)(with_ids)  # the image-only classifier's batches
    assert set(labels_only) == {"pixel_values", "attribute_labels"}  # rows with person ids too
    assert torch.equal(labels_only["attribute_labels"], torch.tensor([row["attribute_labels"] for row in with_ids]))


def test_random_erasing_probability(processor):
    def erased_fraction(batch):  # pixels set to 0 on every channel (the dataset mean after normalisation)
        return (batch["pixel_values"] == 0).all(dim=1).flatten(1).float().mean(1)

    always = APTMCollator(processor, mlm=False, erasing_p=1.0, randaugment=False)(rows())
    never = APTMCollator(processor, mlm=False, erasing_p=0.0, randaugment=False)(rows())
    assert (erased_fraction(always) >= 0.02).all() and (erased_fraction(never) == 0).all()
    assert always["pixel_values"].shape == (4, 3, 384, 128)


def test_draws_depend_on_the_rows_not_on_the_global_random_state(processor):
    collator = APTMCollator(processor, attributes=True, eda=True)
    batches = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        random.seed(seed)
        torch_state, python_state = torch.random.get_rng_state(), random.getstate()
        batches.append(collator(rows()))
        assert torch.equal(torch.random.get_rng_state(), torch_state) and random.getstate() == python_state
    for key in ("pixel_values", "mlm_input_ids", "eda_input_ids", "attribute_mlm_input_ids"):
        assert torch.equal(batches[0][key], batches[1][key]), key
    other = collator(rows()[::-1])
    assert not torch.equal(other["pixel_values"], batches[0]["pixel_values"].flip(0))
