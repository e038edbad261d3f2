"""The converted original checkpoints reproduce every tensor the original APTM code computed (fp32, 1e-4 absolute),
and the processor reproduces the original token ids and pixels."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor

from aptm.convert.original_checkpoint import convert_checkpoint, load_original_checkpoint

from helpers.golden import GOLDEN_SETS, IMAGES, golden_dir

ATOL = 1e-4


@pytest.fixture(scope="module", params=GOLDEN_SETS)
def golden(request):
    folder = golden_dir(request.param)
    model, processor, report = load_original_checkpoint(folder / "checkpoint.pth")
    inputs = dict(np.load(folder / "inputs.npz"))
    outputs = dict(np.load(folder / "outputs.npz"))
    meta = json.loads((folder / "inputs.json").read_text())
    return folder, model, processor, inputs, outputs, meta


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
    images = [Image.open(IMAGES / f"img{i}.png") for i in range(len(inputs["pixel_values"]))]
    close(processor(images=images)["pixel_values"], inputs["pixel_values"], atol=1e-3)
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
        for stage in range(4):
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
    _, model, _, inputs, outputs, _ = golden
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


def test_converted_folder_loads_through_the_auto_classes(golden, tmp_path):
    folder, model, _, inputs, outputs, meta = golden
    report = convert_checkpoint(folder / "checkpoint.pth", tmp_path / "converted")
    assert any("normalisation of cuhk-pedes" in line for line in report.lines())
    loaded = AutoModel.from_pretrained(tmp_path / "converted", trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "converted", trust_remote_code=True)
    assert "Conversion notes" in (tmp_path / "converted" / "README.md").read_text()
    encoded = processor(text=meta["captions_raw"][:2])
    pixels = torch.from_numpy(inputs["pixel_values"][:2])
    with torch.no_grad():
        out = loaded(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"], pixel_values=pixels)
    close(out.image_features, outputs["image_feat"][:2])
    close(out.text_features, outputs["text_feat"][:2])
    close(out.itm_logits, outputs["itm_logits"][[0, 1], [0, 1]])
