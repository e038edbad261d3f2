"""Masking, collator, optimiser groups and schedules."""

import random

import pytest
import torch
from PIL import Image

from aptm.data.collator import APTMCollator
from aptm.data.masking import WholeWordMasker
from aptm.training import parameter_groups, schedule_factor
from modeling_aptm import APTMForPreTraining

from helpers.models import tiny_config


def test_masking_follows_the_original_rules(tokenizer):
    masker = WholeWordMasker(tokenizer)
    ids = [101] + tokenizer("a pedestrian carrying an umbrella and a skateboard", add_special_tokens=False)["input_ids"]
    length = len(ids)
    ids, mask = ids + [0] * (56 - length), [1] * length + [0] * (56 - length)
    rng = random.Random(0)
    whole = 0
    for _ in range(50):
        masked, positions, labels = masker(ids, mask, rng)
        chosen = [p for p in positions if p]
        assert 1 <= len(chosen) <= min(10, round(length * 0.25)) and all(0 < p < length for p in chosen)
        assert [labels[i] for i in range(len(chosen))] == [ids[p] for p in chosen]
        assert labels[len(chosen):] == [-100] * (10 - len(chosen))
        assert all(masked[p] == ids[p] for p in range(56) if p not in chosen)
        # whole words: a masked piece drags its ## continuation along (unless the final cut to the budget splits it)
        whole += all(p + 1 in chosen for p in chosen
                     if p + 1 < length and tokenizer.convert_ids_to_tokens(ids[p + 1]).startswith("##"))
    assert whole >= 35
    with_padding = WholeWordMasker(tokenizer, mask_padding=True)
    reach = {p for _ in range(100) for p in with_padding(ids, mask, rng)[1]}
    assert max(reach) >= length  # the original may mask padding
    assert masker(ids, mask, random.Random(3)) == masker(ids, mask, random.Random(3))


def test_replacement_proportions(tokenizer):
    masker = WholeWordMasker(tokenizer, mask_probability=1.0, max_masks=50)
    ids = [101] + [2000 + i for i in range(50)]
    rng = random.Random(1)
    kinds = {"mask": 0, "kept": 0, "random": 0}
    for _ in range(200):
        masked, positions, _ = masker(ids, [1] * len(ids), rng)
        for p in positions:
            kinds["mask" if masked[p] == 103 else "kept" if masked[p] == ids[p] else "random"] += 1
    total = sum(kinds.values())
    assert abs(kinds["mask"] / total - 0.8) < 0.03 and abs(kinds["kept"] / total - 0.1) < 0.03


def test_collator_builds_every_input(processor):
    rows = [{"image": Image.new("RGB", (60, 180), (i * 60, 20, 20)), "caption": f"a person in red number {i}",
             "person_id": i // 2, "attribute_labels": [i % 2] * 27} for i in range(4)]
    torch.manual_seed(0)
    batch = APTMCollator(processor, attributes=True, eda=True)(rows)
    assert batch["pixel_values"].shape == (4, 3, 384, 128) and batch["person_ids"].tolist() == [0, 0, 1, 1]
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["mlm_input_ids"].shape
    assert batch["mlm_positions"].shape == batch["mlm_labels"].shape == (4, 10)
    assert batch["attribute_input_ids"].shape[0] == 54 and batch["attribute_mlm_positions"].shape == (54, 10)
    assert "eda_input_ids" in batch and batch["attribute_labels"].shape == (4, 27)
    model = APTMForPreTraining(tiny_config())
    out = model(**batch)
    assert all(getattr(out, name) is not None for name in ("loss_itc", "loss_itm", "loss_mlm", "loss_itc_eda",
                                                            "loss_iac", "loss_iam", "loss_mam"))
    only_attributes = APTMCollator(processor, captions=False, attributes=True, mlm=False)(
        [{"image": r["image"], "attribute_labels": r["attribute_labels"]} for r in rows])
    assert "input_ids" not in only_attributes and "attribute_mlm_input_ids" not in only_attributes
    again = APTMCollator(processor, attributes=True, eda=True)(rows)  # the draws depend on the seed and rows only
    assert torch.equal(again["pixel_values"], batch["pixel_values"]) and torch.equal(again["mlm_input_ids"], batch["mlm_input_ids"])
    other = APTMCollator(processor, attributes=True, eda=True, seed=1)(rows)
    assert not torch.equal(other["pixel_values"], batch["pixel_values"])


def test_parameter_groups_follow_the_original():
    model = APTMForPreTraining(tiny_config())
    groups = parameter_groups(model, lr=1e-4, weight_decay=0.01, lr_mult=2, lr_2=True, init_cross=True)
    by_id = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert sum(len(g["params"]) for g in groups) == len(named)
    decay = lambda name: by_id[id(named[name])]["weight_decay"]  # noqa: E731
    rate = lambda name: by_id[id(named[name])]["lr"]  # noqa: E731
    assert decay("temp") == 0.01 and decay("itm_head.1.weight") == 0.01  # names match no no-decay pattern
    assert decay("vision_model.layers.0.blocks.0.norm1.weight") == 0.0 and decay("itm_head.0.bias") == 0.0
    assert rate("vision_model.layers.3.blocks.0.attn.qkv.weight") == 2e-4
    assert rate("vision_model.layers.1.blocks.0.attn.qkv.weight") == 1e-4
    assert rate("fusion_model.layer.0.crossattention.self.key.weight") == 2e-4
    assert rate("text_model.embeddings.word_embeddings.weight") == 1e-4 and rate("itm_head.3.weight") == 2e-4
    slow_text = parameter_groups(model, lr=1e-4, lr_2=True, text_lr=1e-5)
    by_id = {id(p): g for g in slow_text for p in g["params"]}
    assert by_id[id(named["text_model.embeddings.word_embeddings.weight"])]["lr"] == 1e-5
    assert by_id[id(named["text_model.encoder.layer.1.output.dense.weight"])]["lr"] == 2e-5  # last two text layers x2
    assert by_id[id(named["vision_model.layers.0.blocks.0.attn.qkv.weight"])]["lr"] == 1e-4


def test_schedules():
    assert [schedule_factor("linear", s, 100, 10) for s in (0, 5, 10, 55, 100)] == [0, 0.5, 1.0, 0.5, 0.0]
    step = [schedule_factor("step", s, 100, 0.1) for s in (5, 20, 45, 80)]
    assert step == pytest.approx([0.5, 90 / 90 * 80 / 90 * 1.0, 0.5 * 55 / 90, 0.2 * 20 / 90])
    with pytest.raises(ValueError, match="schedule"):
        schedule_factor("cosine", 1, 10, 1)
