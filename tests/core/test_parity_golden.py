"""The converted original checkpoints reproduce every tensor the original APTM code computed (fp32, 1e-4 absolute):
forward outputs, the evaluator's score matrix through the engine, the training-step losses through
`AutoModelForPreTraining` (with the original's recorded masks and negatives), the attribute prompt scores, and the
processor's token ids and pixels. Set C (vendored) runs on every clone; A and B where `../shared/golden` exists."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoProcessor

from aptm.convert.original_checkpoint import convert_checkpoint, load_original_checkpoint
from aptm.retrieval import AttributeRecognizer, RetrievalEngine
from processing_aptm import APTMProcessor

from helpers.golden import GOLDEN_SETS, golden_dir, golden_images, golden_pixels

ATOL = 1e-4


@pytest.fixture(scope="module", params=GOLDEN_SETS)
def golden(request):
    folder = golden_dir(request.param)
    model, processor, _ = load_original_checkpoint(folder / "checkpoint.pth")
    inputs = {**np.load(folder / "inputs.npz"), "pixel_values": golden_pixels(folder)}
    outputs = dict(np.load(folder / "outputs.npz"))
    meta = json.loads((folder / "inputs.json").read_text())
    return folder, model, processor, inputs, outputs, meta


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
    """The golden checkpoint written as a Hub folder by the converter."""
    folder = golden[0]
    output = tmp_path_factory.mktemp(f"converted_{folder.name}")
    report = convert_checkpoint(folder / "checkpoint.pth", output)
    return output, report


def close(got, expected, atol=ATOL):
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)


def test_processor_reproduces_token_ids_and_pixels(golden):
    folder, _, processor, inputs, _, meta = golden
    encoded = processor(text=meta["captions_raw"])
    assert encoded["input_ids"].tolist() == inputs["input_ids"].tolist()
    assert encoded["attention_mask"].tolist() == inputs["attention_mask"].tolist()
    prompts = processor.tokenize(meta["attr_prompts"], padding="longest")
    assert prompts["input_ids"].tolist() == inputs["attr_prompt_input_ids"].tolist()
    losses = np.load(folder / "losses.npz")
    mals = processor.encode_attribute_prompts()  # the 54 MALS prompts of the training step
    assert mals["input_ids"].tolist() == losses["attr_input_ids"].tolist()
    assert mals["attention_mask"].tolist() == losses["attr_attention_mask"].tolist()
    if "eda_input_ids" in losses:
        eda = processor(text=meta["eda_captions"])
        assert eda["input_ids"].tolist() == losses["eda_input_ids"].tolist()
    pa100k_ids = np.load(folder / "pa100k_attr.npz")
    if "prompt_input_ids" in pa100k_ids:
        pa100k = APTMProcessor.from_schema(processor.image_processor, processor.tokenizer, "pa100k")
        assert pa100k.encode_attribute_prompts()["input_ids"].tolist() == pa100k_ids["prompt_input_ids"].tolist()
    close(processor(images=golden_images(folder))["pixel_values"], inputs["pixel_values"])
    close(torch.tensor(processor.image_processor.image_mean), inputs["norm_mean"], atol=1e-7)


def test_encoders_features_and_similarities(golden):
    _, model, _, inputs, outputs, _ = golden
    pixels, ids, mask = (torch.from_numpy(inputs[k]) for k in ("pixel_values", "input_ids", "attention_mask"))
    with torch.no_grad():
        vision = model.vision_model(pixels, output_hidden_states=True)
        text = model.text_model(ids, mask, output_hidden_states=True)
        image_embeds, text_embeds = vision.last_hidden_state, text.last_hidden_state
        close(image_embeds, outputs["image_embeds"])
        close(text_embeds, outputs["text_embeds"])
        close(model.vision_proj(image_embeds[:, 0]), outputs["image_feat_proj"])
        close(model.text_proj(text_embeds[:, 0]), outputs["text_feat_proj"])
        image_feat, text_feat = model.image_features_from_embeds(image_embeds), model.text_features_from_embeds(text_embeds)
        close(image_feat, outputs["image_feat"])
        close(text_feat, outputs["text_feat"])
        close(text_feat @ image_feat.t(), outputs["itc_cosine_t2i"])
        close(text_feat @ image_feat.t() / model.temp, outputs["itc_logits_t2i"])
        close(model.temp.reshape(1), outputs["temp"], atol=0)
        close(torch.stack(text.hidden_states)[:, 0], outputs["dbg_text_hidden_states_t0"])
        close(vision.hidden_states[0][0], outputs["dbg_swin_patch_embed_i0"])
        for stage in range(len(model.config.vision_config.depths)):
            close(vision.hidden_states[stage + 1][0], outputs[f"dbg_swin_layer{stage}_i0"])
        close(image_embeds[0, 1:], outputs["dbg_swin_final_norm_i0"])


def test_fusion_itm_and_mlm(golden):
    _, model, _, inputs, outputs, _ = golden
    pixels, ids, mask = (torch.from_numpy(inputs[k]) for k in ("pixel_values", "input_ids", "attention_mask"))
    with torch.no_grad():
        image_embeds = model.vision_model(pixels).last_hidden_state
        text_embeds = model.text_model(ids, mask).last_hidden_state
        num_images = len(image_embeds)
        fused = torch.stack([
            model.fusion_model(text_embeds[t : t + 1].expand(num_images, -1, -1), mask[t : t + 1].expand(num_images, -1),
                               image_embeds).last_hidden_state
            for t in range(len(text_embeds))
        ])
        close(fused[:, :, 0], outputs["itm_cross_cls"])
        close(model.itm_head(fused[:, :, 0]), outputs["itm_logits"])
        close(fused[0, 0], outputs["fusion_last_hidden_t0_i0"])

        masked_ids, masked_mask, positions, targets = (
            torch.from_numpy(inputs[k]) for k in
            ("mlm_eval_input_ids_masked", "mlm_eval_attention_mask", "mlm_eval_masked_pos", "mlm_eval_target_ids"))
        logits = model.mlm_logits(masked_ids, masked_mask, image_embeds[:1], positions)
        close(logits, outputs["mlm_eval_logits"])
        hidden = model.fusion_model(model.text_model(masked_ids, masked_mask).last_hidden_state, masked_mask,
                                    image_embeds[:1]).last_hidden_state
        close(hidden, outputs["mlm_eval_last_hidden"])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        close(loss.reshape(1), outputs["mlm_eval_loss"])


def test_attribute_prompt_scores(golden):
    folder, model, processor, inputs, outputs, _ = golden
    pixels = torch.from_numpy(inputs["pixel_values"])
    prompt_ids, prompt_mask = torch.from_numpy(inputs["attr_prompt_input_ids"]), torch.from_numpy(inputs["attr_prompt_attention_mask"])
    with torch.no_grad():
        image_embeds = model.vision_model(pixels).last_hidden_state
        prompt_embeds = model.text_model(prompt_ids, prompt_mask).last_hidden_state
        close(model.text_features_from_embeds(prompt_embeds), outputs["attr_prompt_feat"])
        num_prompts = len(prompt_ids)
        logits = torch.stack([
            model.itm_logits(prompt_embeds, prompt_mask, image_embeds[i : i + 1].expand(num_prompts, -1, -1))
            for i in range(len(image_embeds))
        ])
    close(logits, outputs["attr_itm_logits_i2t"])
    close(logits[..., 1], outputs["attr_itm_score_i2t"])
    if "mals54_prompt_feat" in outputs:
        prompts = processor.encode_attribute_prompts()
        with torch.no_grad():
            states = model.text_model(prompts["input_ids"], prompts["attention_mask"]).last_hidden_state
        close(model.text_features_from_embeds(states), outputs["mals54_prompt_feat"])

    recognizer = AttributeRecognizer(model, processor, progress=False, batch_size=3)
    close(recognizer.prompt_scores(pixels)[:, : len(prompt_ids)], outputs["attr_itm_score_i2t"])
    pa100k = APTMProcessor.from_schema(processor.image_processor, processor.tokenizer, "pa100k")
    recognizer = AttributeRecognizer(model, pa100k, progress=False)
    close(recognizer.prompt_scores(pixels), np.load(folder / "pa100k_attr.npz")["score_i2t"])


def test_evaluator_score_matrix_through_the_engine(golden):
    folder, model, processor, inputs, _, meta = golden
    expected = np.load(folder / "eval.npz")
    engine = RetrievalEngine(model, processor, progress=False, batch_size=3)
    assert engine.k == 2  # the original config's k_test
    index = engine.encode_gallery(torch.from_numpy(inputs["pixel_values"]), person_ids=inputs["image_pids"])
    scores = engine.score_matrix(meta["captions_pre_caption"], index)
    close(scores, expected["score_t2i"])
    assert np.array_equal(scores.argsort(dim=1, descending=True, stable=True).numpy(), expected["ranking_t2i"])


class RecordedDraws:
    """Stands in for `torch.multinomial` during a training step: returns the original's recorded draws in call order
    and keeps the weights each call was given."""

    def __init__(self, draws):
        self.draws, self.weights = draws.tolist(), []

    def __call__(self, weights, num_samples, *args, **kwargs):
        assert num_samples == 1
        self.weights.append(weights.detach().float().clone())
        return torch.tensor([self.draws[len(self.weights) - 1]], device=weights.device)


def training_model(folder, **overrides):
    """The converted folder through `AutoModelForPreTraining` in train mode, with stochastic depth off as the golden
    harness ran it (dropout is 0 in the sets' BERT config); `overrides` are config arguments."""
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True, **overrides)
    config.vision_config.drop_path_rate = 0.0
    return AutoModelForPreTraining.from_pretrained(folder, config=config, trust_remote_code=True).train()


def test_training_step_losses(golden, converted, monkeypatch):
    """The original training step with its recorded masks, hard negatives (and EDA captions where the set has them)
    injected gives its losses, ITM logits and the weights the negatives were drawn from; so does the MALS step with
    label smoothing 0.4 and the recorded prompt draws."""
    folder, *_ = golden
    losses, recorded = np.load(folder / "losses.npz"), json.loads((folder / "losses.json").read_text())
    pixels = torch.from_numpy(golden_pixels(folder))
    t = lambda key: torch.from_numpy(losses[key])  # noqa: E731
    captions = dict(input_ids=t("input_ids"), attention_mask=t("attention_mask"), person_ids=t("idx"))

    model = training_model(converted[0])
    eda = {"eda_input_ids": t("eda_input_ids"), "eda_attention_mask": t("eda_attention_mask")} \
        if "eda_input_ids" in losses else {}
    draws = RecordedDraws(losses["multinomial_draws"])
    monkeypatch.setattr(torch, "multinomial", draws)
    out = model(pixels, **captions, mlm_input_ids=t("text_ids_masked"), mlm_positions=t("masked_pos"),
                mlm_labels=t("masked_ids"), **eda)
    components = recorded["components"]
    expected = {"loss_itc": components["get_contrastive_loss"][0], "loss_itm": components["get_matching_loss"][0],
                "loss_mlm": recorded["loss_mlm"], "loss": recorded["loss_total"]}
    if eda:
        expected.update(loss_itc_eda=components["get_contrastive_loss"][1],
                        loss_itm_eda=components["get_matching_loss"][1])
    for name, value in expected.items():
        assert getattr(out, name).item() == pytest.approx(value, abs=ATOL), name
    close(out.itm_logits, losses["itm_head_out_call0"])
    close(torch.stack(draws.weights), losses["multinomial_weights"])

    attr = recorded["attr"]
    assert "LabelSmooth=0.4" in attr["recipe"]
    model = training_model(converted[0], attribute_label_smoothing=0.4)
    draws = RecordedDraws(losses["attr_step_multinomial_draws"])
    monkeypatch.setattr(torch, "multinomial", draws)
    out = model(pixels, **captions, mlm_input_ids=t("attr_step_text_ids_masked"),
                mlm_positions=t("attr_step_masked_pos"), mlm_labels=t("attr_step_masked_ids"),
                attribute_labels=t("attr_label"), attribute_input_ids=t("attr_input_ids"),
                attribute_attention_mask=t("attr_attention_mask"), attribute_mlm_input_ids=t("attr_text_ids_masked"),
                attribute_mlm_positions=t("attr_masked_pos"), attribute_mlm_labels=t("attr_masked_ids"),
                attribute_matching_prompts=torch.tensor(attr["random_sample_draws"][0]))
    components = attr["components"]
    expected = {"loss_itc": components["get_contrastive_loss"][0], "loss_itm": components["get_matching_loss"][0],
                "loss_mlm": components["get_mlm_loss"][0], "loss_iac": components["get_contrastive_loss_attr"][0],
                "loss_iam": components["get_matching_loss_attr"][0], "loss_mam": components["get_mlm_loss_attr"][0],
                "loss": attr["loss_total"]}
    for name, value in expected.items():
        assert getattr(out, name).item() == pytest.approx(value, abs=ATOL), name
    close(out.itm_logits, losses["attr_step_itm_head_out_call5"])
    close(torch.stack(draws.weights), losses["attr_step_multinomial_weights"])


def test_converted_folder_loads_through_the_auto_classes(golden, converted):
    _, _, _, inputs, outputs, meta = golden
    folder, report = converted
    assert any("normalisation of cuhk-pedes" in line for line in report.lines())
    loaded = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert "Conversion notes" in (folder / "README.md").read_text()
    encoded = processor(text=meta["captions_raw"][:2])
    pixels = torch.from_numpy(inputs["pixel_values"][:2])
    with torch.no_grad():
        out = loaded(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"], pixel_values=pixels)
    close(out.image_features, outputs["image_feat"][:2])
    close(out.text_features, outputs["text_feat"][:2])
    close(out.itm_logits, outputs["itm_logits"][[0, 1], [0, 1]])
