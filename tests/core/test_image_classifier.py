"""The image-only attribute classifier of the paper's PA-100K ablation: its head and initialisation, the binary
cross-entropy and the 0.5 threshold, initialisation from a pre-training checkpoint, and loading through the Auto
classes with the checkpoint's own code."""

import pytest
import torch
from transformers import AutoModelForImageClassification

from aptm import load_checkpoint
from modeling_aptm import APTMForImageClassification, APTMForPreTraining

from helpers.models import tiny_config


def classifier(**overrides):
    torch.manual_seed(0)
    return APTMForImageClassification(tiny_config(num_attributes=26, **overrides))


def test_head_initialisation_and_shapes():
    model = classifier()
    first, batch_norm, dropout, last = model.classifier
    assert (first.in_features, first.out_features, last.out_features) == (model.config.vision_config.hidden_size,
                                                                          model.config.embed_dim, 26)
    assert isinstance(batch_norm, torch.nn.BatchNorm1d) and dropout.p == 0.1  # the original's dop
    for linear in (first, last):  # the original's attr_mlp: N(0, 1e-5^2), zero biases
        assert 0.5e-5 < linear.weight.std().item() < 2e-5 and not linear.bias.any()
    assert 0.01 < model.vision_model.layers[0].blocks[0].attn.qkv.weight.std().item() < 0.03  # the encoder's init


def test_binary_cross_entropy_and_threshold():
    model = classifier().eval()
    pixels = torch.randn(3, 3, 384, 128, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 2, (3, 26), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model.classifier[3].weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(3))  # logits of both signs
        out = model(pixels, attribute_labels=labels)
    probabilities = torch.sigmoid(out.logits)
    by_hand = -(labels * probabilities.log() + (1 - labels) * (1 - probabilities).log()).mean()
    assert out.logits.shape == (3, 26) and out.loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    predictions, scores = model.classify_attributes(pixels)
    assert torch.equal(predictions, (out.logits >= 0).long()) and torch.allclose(scores, probabilities)
    assert 0 < predictions.sum() < predictions.numel()
    assert model(pixels).loss is None


def test_pretraining_checkpoint_initialises_the_image_encoder(tmp_path):
    torch.manual_seed(0)
    pretrained = APTMForPreTraining(tiny_config(num_attributes=26))
    pretrained.save_pretrained(tmp_path / "pretrained")
    model = APTMForImageClassification.from_pretrained(tmp_path / "pretrained")
    for name, tensor in pretrained.vision_model.state_dict().items():
        assert torch.equal(model.vision_model.state_dict()[name], tensor), name
    assert 0.5e-5 < model.classifier[0].weight.std().item() < 2e-5  # a new head
    assert not any(name.startswith(("text_model", "fusion_model")) for name in model.state_dict())


def test_saved_classifier_loads_through_the_auto_classes(tmp_path, processor):
    model = classifier().eval()
    model.save_pretrained(tmp_path / "classifier")
    processor.save_pretrained(tmp_path / "classifier")
    pixels = torch.randn(2, 3, 384, 128, generator=torch.Generator().manual_seed(4))
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "classifier", trust_remote_code=True).eval()
    assert type(loaded).__name__ == "APTMForImageClassification"
    assert type(loaded).__module__.startswith("transformers_modules")  # the checkpoint's own code
    reloaded, _ = load_checkpoint(tmp_path / "classifier", device="cpu")
    with torch.no_grad():
        for other in (loaded, reloaded):
            assert torch.allclose(other(pixels).logits, model(pixels).logits, atol=1e-6)


def test_classifier_dropout_is_validated():
    with pytest.raises(ValueError, match=r"classifier_dropout must be in \[0, 1\)"):
        tiny_config(classifier_dropout=1.0)
