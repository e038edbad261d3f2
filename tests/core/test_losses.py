"""Each loss against a brute-force or hand-computed reference, degenerate batches (the original's recorded
losses: `tests/core/test_parity_golden.py`)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_aptm import (APTMForPreTraining, attribute_contrastive_loss, image_text_contrastive_loss, masked_lm_loss,
                           prompt_targets, sample_hard_negatives, two_way_loss)

from helpers.models import tiny_config


def normalised(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def brute_force_itc(image, text, temp, ids):
    total = 0.0
    n = len(ids)
    for direction in ("i2t", "t2i"):
        for i in range(n):
            row = [(image[i] @ text[j] if direction == "i2t" else text[i] @ image[j]).item() / temp for j in range(n)]
            log_norm = math.log(sum(math.exp(v) for v in row))
            positives = [j for j in range(n) if ids[j] == ids[i]]
            total += -sum(row[j] - log_norm for j in positives) / len(positives) / n
    return total / 2


@pytest.mark.parametrize("ids", [[0, 1, 2, 3, 4], [0, 0, 1, 1, 2], [3, 3, 3, 3, 3], [7]])
def test_itc_matches_brute_force(ids):
    image, text = normalised(len(ids), 8, seed=1), normalised(len(ids), 8, seed=2)
    got = image_text_contrastive_loss(image, text, 0.07, torch.tensor(ids))
    assert got.item() == pytest.approx(brute_force_itc(image, text, 0.07, ids), rel=1e-5, abs=1e-6)


def test_hard_negatives_are_other_people():
    torch.manual_seed(0)
    image, text = normalised(6, 8, seed=3), normalised(6, 8, seed=4)
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    for _ in range(20):
        negative_images, negative_texts = sample_hard_negatives(image, text, 0.07, ids)
        assert (ids[negative_images] != ids).all() and (ids[negative_texts] != ids).all()
    same = sample_hard_negatives(image[:3], text[:3], 0.07, torch.tensor([5, 5, 6]))
    assert same[0].tolist()[:2] == [2, 2] and same[0][2] in (0, 1)
    assert sample_hard_negatives(image[:3], text[:3], 0.07, torch.tensor([5, 5, 5]))[0].tolist() == [-1, -1, -1]


def test_mlm_and_two_way_losses_by_hand():
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([[4, -100, 2], [-100, -100, 9]])
    expected = np.mean([-F.log_softmax(logits[b, m], -1)[labels[b, m]].item()
                        for b, m in [(0, 0), (0, 2), (1, 2)]])
    assert masked_lm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert masked_lm_loss(logits, torch.full((2, 3), -100)).item() == 0.0
    pair = torch.tensor([[0.3, -1.2], [2.0, 0.5], [0.0, 0.0]])
    log_p = F.log_softmax(pair, -1)
    smoothed = -(0.2 * log_p[0, 0] + 0.8 * log_p[0, 1] + 0.8 * log_p[1, 0] + 0.2 * log_p[1, 1]) / 2
    assert two_way_loss(pair, torch.tensor([1, 0, -1]), 0.4).item() == pytest.approx(smoothed.item(), rel=1e-6)
    assert two_way_loss(pair, torch.tensor([1, 0, -1])).item() == pytest.approx(-(log_p[0, 1] + log_p[1, 0]).item() / 2)
    assert two_way_loss(pair, torch.tensor([-1, -1, -1]), 0.4).item() == 0.0


def test_balanced_two_way_loss_weighs_each_label_value_equally():
    pair = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, 0.4], [1.1, 0.2], [0.0, 0.0]])
    nll = -F.log_softmax(pair, -1)
    targets = torch.tensor([1, 0, 0, 0, -1])
    # one positive against three negatives: the positive carries half the loss
    expected = (nll[0, 1] + (nll[1, 0] + nll[2, 0] + nll[3, 0]) / 3) / 2
    assert two_way_loss(pair, targets, balanced=True).item() == pytest.approx(expected.item(), rel=1e-6)
    assert two_way_loss(pair, targets).item() == pytest.approx((nll[0, 1] + nll[1, 0] + nll[2, 0] + nll[3, 0]).item() / 4,
                                                               rel=1e-6)
    smoothed = 0.8 * nll + 0.2 * nll.flip(-1)
    expected = (smoothed[0, 1] + (smoothed[1, 0] + smoothed[2, 0] + smoothed[3, 0]) / 3) / 2
    assert two_way_loss(pair, targets, 0.4, balanced=True).item() == pytest.approx(expected.item(), rel=1e-6)
    # one label value only, or none known: the same as the plain mean
    same = torch.tensor([0, 0, -1, 0, 0])
    assert two_way_loss(pair, same, balanced=True).item() == pytest.approx(two_way_loss(pair, same).item(), rel=1e-6)
    assert two_way_loss(pair, torch.full((5,), -1), balanced=True).item() == 0.0


def test_attribute_contrastive_loss_matches_a_loop():
    image, prompts = normalised(4, 8, seed=6), normalised(6, 8, seed=7)
    labels = torch.tensor([[1, 0, -1], [0, -1, -1], [1, 1, -1], [-1, 0, -1]])
    logits = image @ prompts.t() / 0.05
    per_attribute = []
    for i in range(3):
        rows = [b for b in range(4) if labels[b, i] >= 0]
        per_attribute.append(np.mean([F.cross_entropy(logits[b, 2 * i : 2 * i + 2][None], labels[b, i][None]).item()
                                      for b in rows]) if rows else 0.0)
    got = attribute_contrastive_loss(image, prompts, 0.05, labels)
    assert got.item() == pytest.approx(np.mean(per_attribute), rel=1e-5)
    balanced = []
    for i in range(3):
        per_value = [[F.cross_entropy(logits[b, 2 * i : 2 * i + 2][None], labels[b, i][None]).item()
                      for b in range(4) if labels[b, i] == v] for v in (0, 1)]
        per_value = [np.mean(losses) for losses in per_value if losses]
        balanced.append(np.mean(per_value) if per_value else 0.0)
    got = attribute_contrastive_loss(image, prompts, 0.05, labels, balanced=True)
    assert got.item() == pytest.approx(np.mean(balanced), rel=1e-5)
    assert prompt_targets(labels)[0].tolist() == [0, 1, 1, 0, -1, -1]


@pytest.mark.parametrize("value, position", [(2, (0, 0)), (-2, (1, 2))])
def test_prompt_targets_name_a_bad_label(value, position):
    labels = torch.zeros(2, 3, dtype=torch.long)
    labels[position] = value
    with pytest.raises(ValueError, match=rf"attribute_labels\[{position[0]}\]\[{position[1]}\] = {value} is not one"):
        prompt_targets(labels)


@pytest.fixture(scope="module")
def model_and_batch(processor):
    torch.manual_seed(0)
    model = APTMForPreTraining(tiny_config(num_attributes=27))
    texts = ["a man in red", "a woman in blue", "a child with a bag"]
    inputs = processor(text=texts, images=[np.full((40, 20, 3), v, dtype=np.uint8) for v in (10, 120, 240)])
    prompts = processor.encode_attribute_prompts()
    labels = torch.randint(-1, 2, (3, 27), generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([[1, 2], [1, 3], [2, 0]])
    masked = inputs["input_ids"].clone()
    masked[torch.arange(3)[:, None], positions] = processor.tokenizer.mask_token_id
    batch = dict(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                 attention_mask=inputs["attention_mask"], mlm_input_ids=masked, mlm_positions=positions,
                 mlm_labels=inputs["input_ids"].gather(1, positions).masked_fill(positions == 0, -100),
                 attribute_labels=labels, attribute_input_ids=prompts["input_ids"],
                 attribute_attention_mask=prompts["attention_mask"], attribute_mlm_input_ids=prompts["input_ids"],
                 attribute_mlm_positions=torch.ones(54, 1, dtype=torch.long),
                 attribute_mlm_labels=prompts["input_ids"][:, 1:2])
    return model, batch


def test_terms_follow_the_inputs(model_and_batch):
    model, batch = model_and_batch
    captions = {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}
    out = model(**captions, person_ids=torch.tensor([0, 0, 1]))
    assert out.loss_mlm is None and out.loss_iac is None
    assert out.loss.item() == pytest.approx((out.loss_itc + out.loss_itm).item())
    assert out.itm_logits.shape == (9, 2)  # 3 positives, 3 (negative image, text), 3 (image, negative text)
    attributes = {k: v for k, v in batch.items() if k not in ("input_ids", "mlm_input_ids", "mlm_positions", "mlm_labels")}
    out = model(**attributes)
    assert out.loss_itc is None
    assert out.loss.item() == pytest.approx((out.loss_iac + out.loss_iam + out.loss_mam).item(), rel=1e-6)
    out = model(**batch)
    expected = out.loss_itc + out.loss_itm + out.loss_mlm + 0.8 * (out.loss_iac + out.loss_iam + out.loss_mam) / 3
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    assert model.temp.grad is not None and model.mlm_head.transform.dense.weight.grad is not None
    with pytest.raises(ValueError, match="no loss"):
        model(pixel_values=batch["pixel_values"])
    with pytest.raises(ValueError, match="prompt bank"):
        model(pixel_values=batch["pixel_values"], attribute_labels=batch["attribute_labels"])


def test_balanced_attribute_losses_follow_the_config(model_and_batch):
    model, batch = model_and_batch
    attributes = {k: v for k, v in batch.items() if k not in ("input_ids", "mlm_input_ids", "mlm_positions", "mlm_labels")}
    model.eval()
    temp = model.temp.item()
    with torch.no_grad():
        model.temp.fill_(0.005)  # sharp IAC logits, so the two weightings differ clearly at random initialisation
        image_embeds = model.vision_model(batch["pixel_values"]).last_hidden_state
        prompt_embeds = model.text_model(batch["attribute_input_ids"], batch["attribute_attention_mask"]).last_hidden_state
        targets = prompt_targets(batch["attribute_labels"])
        # a prompt true for one image and false for two: the weightings differ
        prompt = next(p for p in range(54) if sorted(targets[:, p].tolist()) in ([0, 0, 1], [0, 1, 1]))
        logits = model.itm_logits(prompt_embeds[prompt : prompt + 1].expand(3, -1, -1),
                                  batch["attribute_attention_mask"][prompt : prompt + 1].expand(3, -1), image_embeds)
        expected_iac = attribute_contrastive_loss(model.image_features_from_embeds(image_embeds),
                                                  model.text_features_from_embeds(prompt_embeds), model.temp,
                                                  batch["attribute_labels"], balanced=True)
        expected_iam = two_way_loss(logits, targets[:, prompt], balanced=True)
        plain = model(**attributes, attribute_matching_prompts=torch.tensor([prompt]))
        model.config.attribute_balanced_loss = True
        try:
            balanced = model(**attributes, attribute_matching_prompts=torch.tensor([prompt]))
        finally:
            model.config.attribute_balanced_loss = False
            model.temp.fill_(temp)
    model.train()
    assert balanced.loss_iac.item() == pytest.approx(expected_iac.item(), rel=1e-5)
    assert balanced.loss_iam.item() == pytest.approx(expected_iam.item(), rel=1e-6)
    assert abs(balanced.loss_iac.item() - plain.loss_iac.item()) > 1e-4
    assert abs(balanced.loss_iam.item() - plain.loss_iam.item()) > 1e-6


def test_degenerate_batches_stay_finite(model_and_batch):
    model, batch = model_and_batch
    same = model(**batch, person_ids=torch.tensor([4, 4, 4]))
    assert same.loss_itm.item() == 0.0 and torch.isfinite(same.loss)
    unknown = model(**{**batch, "attribute_labels": torch.full((3, 27), -1)})
    assert unknown.loss_iac.item() == unknown.loss_iam.item() == unknown.loss_mam.item() == 0.0
    one = model(**{k: v[:1] if k in ("pixel_values", "input_ids", "attention_mask", "mlm_input_ids", "mlm_positions",
                                     "mlm_labels", "attribute_labels") else v for k, v in batch.items()})
    assert torch.isfinite(one.loss)
    one.loss.backward()
