"""The model's loss terms against pair-by-pair references built from its own building blocks (`itm_logits`,
`mlm_logits`, the encoders): ITM with injected and sampled negatives, the hard-negative distribution, IAC with label
smoothing, IAM over the drawn prompts, MAM's prompt/image pairing, the EDA weights and the PA-100K schema."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aptm import build_processor
from modeling_aptm import APTMForPreTraining, attribute_contrastive_loss, prompt_targets, sample_hard_negatives

from helpers.models import tiny_config

TEXTS = ["a man in a red shirt", "a woman with a black bag", "a child in blue shorts and a hat", "an old man in gray"]


def random_images(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 16, 3), dtype=np.uint8) for _ in range(count)]


def smoothed_two_way(logits, target, smoothing):
    """Hand-written cross-entropy of one 2-way logit pair against targets (1 - s/2, s/2)."""
    log_p = F.log_softmax(logits.double(), dim=-1)
    return -((1 - smoothing / 2) * log_p[target] + smoothing / 2 * log_p[1 - target]).item()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return APTMForPreTraining(tiny_config(num_attributes=27)).eval()


@pytest.fixture(scope="module")
def inputs(processor):
    return processor(text=TEXTS, images=random_images(4))


@pytest.fixture(scope="module")
def encoded(model, inputs):
    with torch.no_grad():
        image_embeds = model.vision_model(inputs["pixel_values"]).last_hidden_state
        text_embeds = model.text_model(inputs["input_ids"], inputs["attention_mask"]).last_hidden_state
    return image_embeds, text_embeds


def pair_logits(model, inputs, encoded, image, text):
    image_embeds, text_embeds = encoded
    return model.itm_logits(text_embeds[text : text + 1], inputs["attention_mask"][text : text + 1],
                            image_embeds[image : image + 1])[0]


@torch.no_grad()
def test_itm_loss_is_the_cross_entropy_of_the_listed_pairs(model, inputs, encoded):
    ids = torch.tensor([0, 0, 1, 2])
    negative_images, negative_texts = torch.tensor([2, 3, 0, -1]), torch.tensor([3, 2, -1, 1])
    out = model(**inputs, person_ids=ids, itm_negatives=(negative_images, negative_texts))
    pairs = [(b, b, 1) for b in range(4)]
    pairs += [(int(i), b, 0) for b, i in enumerate(negative_images) if i >= 0]  # (negative image, text b)
    pairs += [(b, int(t), 0) for b, t in enumerate(negative_texts) if t >= 0]  # (image b, negative text)
    reference = np.mean([-F.log_softmax(pair_logits(model, inputs, encoded, image, text), -1)[label].item()
                         for image, text, label in pairs])
    assert out.itm_logits.shape == (len(pairs), 2)
    assert out.loss_itm.item() == pytest.approx(reference, rel=1e-4)


@torch.no_grad()
def test_sampled_itm_negatives_give_a_valid_loss(model, inputs):
    torch.manual_seed(3)
    out = model(**inputs, person_ids=torch.tensor([5, 5, 6, 6]))
    assert out.itm_logits.shape == (12, 2) and torch.isfinite(out.loss_itm)
    alone = model(**{k: v[:2] for k, v in inputs.items()}, person_ids=torch.tensor([5, 5]))
    assert alone.itm_logits.shape == (2, 2) and alone.loss_itm.item() == 0.0  # nobody to contrast with


def test_hard_negatives_follow_the_softmax_over_other_people():
    image = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(11)), dim=-1)
    text = F.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(12)), dim=-1)
    ids, temp, draws = torch.tensor([0, 0, 1, 2]), 0.5, 600
    torch.manual_seed(0)
    counts = torch.zeros(2, 4, 4)
    for _ in range(draws):
        for k, drawn in enumerate(sample_hard_negatives(image, text, temp, ids)):
            counts[k, torch.arange(4), drawn] += 1
    for k, similarity in enumerate((text @ image.t() / temp, image @ text.t() / temp)):
        weights = (similarity.softmax(dim=1) + 1e-5) * (ids[:, None] != ids[None, :])
        expected = weights / weights.sum(dim=1, keepdim=True)
        assert torch.allclose(counts[k] / draws, expected, atol=0.07), (k, counts[k] / draws, expected)


def test_attribute_contrast_with_label_smoothing_matches_a_loop():
    image = F.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(21)), dim=-1)
    prompts = F.normalize(torch.randn(8, 8, generator=torch.Generator().manual_seed(22)), dim=-1)
    labels = torch.tensor([[1, 0, -1, 1], [0, -1, -1, 1], [1, 1, -1, 0]])
    logits = image @ prompts.t() / 0.07
    per_attribute = []
    for i in range(4):
        rows = [b for b in range(3) if labels[b, i] >= 0]
        per_attribute.append(np.mean([smoothed_two_way(logits[b, 2 * i : 2 * i + 2], labels[b, i], 0.4)
                                      for b in rows]) if rows else 0.0)
    got = attribute_contrastive_loss(image, prompts, 0.07, labels, label_smoothing=0.4)
    assert got.item() == pytest.approx(np.mean(per_attribute), rel=1e-5)


def prompt_bank(processor, labels):
    prompts = processor.encode_attribute_prompts()
    positions = torch.tensor([[1, 2]] * len(prompts["input_ids"]))
    masked = prompts["input_ids"].clone()
    masked[:, 1:3] = processor.tokenizer.mask_token_id
    return dict(attribute_labels=labels, attribute_input_ids=prompts["input_ids"],
                attribute_attention_mask=prompts["attention_mask"], attribute_mlm_input_ids=masked,
                attribute_mlm_positions=positions, attribute_mlm_labels=prompts["input_ids"].gather(1, positions))


@torch.no_grad()
@pytest.mark.parametrize("smoothing", [0.0, 0.4])
def test_attribute_matching_and_masked_prompts_match_pairwise_references(model, inputs, encoded, processor, smoothing):
    image_embeds, _ = encoded
    labels = torch.randint(-1, 2, (4, 27), generator=torch.Generator().manual_seed(4))
    labels[:, 0] = -1  # nobody is known for attribute 0: prompts 0 and 1 have no positive image
    bank = prompt_bank(processor, labels)
    targets = prompt_targets(labels)
    positive = targets == 1
    kept = [p for p in range(54) if positive[:, p].any()]
    images = torch.tensor([int(positive[:, p].nonzero()[-1]) for p in kept])  # the last positive image of each
    drawn = torch.tensor([7, 0, 30])
    model.config.attribute_label_smoothing = smoothing
    try:
        out = model(inputs["pixel_values"], **bank, attribute_matching_prompts=drawn, attribute_mlm_images=images)
    finally:
        model.config.attribute_label_smoothing = 0.0

    prompt_embeds = model.text_model(bank["attribute_input_ids"], bank["attribute_attention_mask"]).last_hidden_state
    matching = []
    for p in drawn.tolist():
        logits = model.itm_logits(prompt_embeds[p : p + 1].expand(4, -1, -1),
                                  bank["attribute_attention_mask"][p : p + 1].expand(4, -1), image_embeds)
        known = [b for b in range(4) if targets[b, p] >= 0]
        matching.append(np.mean([smoothed_two_way(logits[b], targets[b, p], smoothing) for b in known])
                        if known else 0.0)
    assert out.loss_iam.item() == pytest.approx(np.mean(matching), rel=1e-4)

    assert 0 not in kept and 1 not in kept
    logits = model.mlm_logits(bank["attribute_mlm_input_ids"][kept], bank["attribute_attention_mask"][kept],
                              image_embeds[images], bank["attribute_mlm_positions"][kept])
    reference = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), bank["attribute_mlm_labels"][kept].reshape(-1))
    assert out.loss_mam.item() == pytest.approx(reference.item(), rel=1e-4)
    assert out.loss.item() == pytest.approx((out.loss_iac + out.loss_iam + out.loss_mam).item(), rel=1e-6)


@torch.no_grad()
def test_masked_prompts_pair_with_their_only_positive_image(model, inputs, processor, monkeypatch):
    """Two images with opposite labels: every prompt has exactly one positive image, so the random draw is forced."""
    labels = torch.zeros(2, 27, dtype=torch.long)
    labels[1] = 1
    labels[:, 5] = -1  # unknown for both: prompts 10 and 11 are left out
    pixels = inputs["pixel_values"][:2]
    image_embeds = model.vision_model(pixels).last_hidden_state
    seen = []
    mlm_logits = model.mlm_logits
    monkeypatch.setattr(model, "mlm_logits", lambda ids, mask, images, positions: seen.append(images) or
                        mlm_logits(ids, mask, images, positions))
    model(pixels, **prompt_bank(processor, labels), attribute_matching_prompts=torch.tensor([0]))
    kept = [p for p in range(54) if p not in (10, 11)]
    forced = torch.tensor([p % 2 for p in kept])  # prompt 2i states value 0 (image 0), 2i+1 value 1 (image 1)
    assert len(seen) == 1 and torch.allclose(seen[0], image_embeds[forced], atol=1e-6)


@torch.no_grad()
def test_eda_terms_have_weight_0_8_and_their_own_features(model, inputs, processor):
    eda = processor(text=["man red shirt a in", "a woman a black bag", "child blue shorts hat", "old man gray"])
    ids = torch.tensor([0, 1, 2, 2])
    negatives = (torch.tensor([1, 0, 0, 1]), torch.tensor([2, 3, 1, 0]))
    out = model(**inputs, person_ids=ids, eda_input_ids=eda["input_ids"], eda_attention_mask=eda["attention_mask"],
                itm_negatives=negatives)
    expected = out.loss_itc + out.loss_itm + 0.8 * (out.loss_itc_eda + out.loss_itm_eda)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    eda_only = model(inputs["pixel_values"], input_ids=eda["input_ids"], attention_mask=eda["attention_mask"],
                     person_ids=ids, itm_negatives=negatives)
    assert out.loss_itc_eda.item() == pytest.approx(eda_only.loss_itc.item(), rel=1e-5)
    assert abs(out.loss_itc_eda.item() - out.loss_itc.item()) > 1e-5


@torch.no_grad()
def test_pa100k_schema_uses_the_three_attribute_losses_only():
    processor = build_processor("pa100k", "pa100k")
    torch.manual_seed(1)
    model = APTMForPreTraining(tiny_config(num_attributes=26)).eval()
    labels = torch.randint(0, 2, (3, 26), generator=torch.Generator().manual_seed(2))
    bank = prompt_bank(processor, labels)
    pixels = processor(images=random_images(3, seed=1))["pixel_values"]
    out = model(pixels, **bank)
    assert bank["attribute_input_ids"].shape[0] == 52 and out.loss_itc is None and out.loss_itm is None
    assert out.loss.item() == pytest.approx((out.loss_iac + out.loss_iam + out.loss_mam).item(), rel=1e-6)
    assert all(math.isfinite(getattr(out, name).item()) for name in ("loss_iac", "loss_iam", "loss_mam"))
