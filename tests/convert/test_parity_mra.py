"""An MRA checkpoint (APTM's successor) converted by `aptm.convert` reproduces what the original MRA code computed on
golden set M (vendored in `tests/golden/M`, so this runs on any clone): the processor's token ids and pixels bit for
bit, every encoder, projection, fusion and head output, and the evaluator's score matrix with and without the
test-time flip and under its two-process rule (fp32, 1e-4 absolute)."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from aptm.convert.original_checkpoint import convert_checkpoint, load_original_checkpoint, original_family
from aptm.retrieval import RetrievalEngine

from helpers.golden_mra import MRA_DIR, arrays, images, record
from helpers.paths import REPO

ATOL = 1e-4
TOKENIZER = MRA_DIR / "tokenizer"


@pytest.fixture(scope="module")
def converted():
    model, processor, report = load_original_checkpoint(MRA_DIR / "checkpoint.pth", tokenizer_dir=TOKENIZER)
    return model, processor, report


@pytest.fixture(scope="module")
def encoded(converted):
    """The model's outputs on M's inputs: image tokens (plain and mirrored) and text states."""
    model, processor, _ = converted
    inputs = arrays("inputs")
    pixels = processor(images=images())["pixel_values"]
    ids, mask = torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"])
    with torch.no_grad():
        vision = model.vision_model(pixels, output_hidden_states=True)
        flipped = model.vision_model(pixels.flip(-1)).last_hidden_state
        text = model.text_model(ids, mask, output_hidden_states=True)
    return vision, flipped, text, ids, mask


def close(got, expected, atol=ATOL):
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)


def test_the_checkpoint_converts_with_mra_s_own_values(converted):
    model, processor, report = converted
    config = model.config
    assert config.vision_config.image_size == [384, 256]
    assert config.vision_config.stage_window_sizes == [8, 8, 8, 4]
    assert config.projection_head == "pooled_batchnorm" and config.embed_dim == 16
    assert config.test_time_flip is True and config.k_test == 2
    assert processor.add_sep_token is True
    assert processor.image_processor.size == {"height": 384, "width": 256}
    assert processor.image_processor.image_mean == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert any("an MRA checkpoint" in line for line in report.lines())
    # every Swin stage is shifted at 384x256, the last one (12x8, window 4) by 2, as the original's saved masks say
    last = model.vision_model.layers[3].blocks[1]
    assert (last.window_size, last.shift_size) == (4, 2)
    assert all(stage.blocks[1].shift_size for stage in model.vision_model.layers)
    state = torch.load(MRA_DIR / "checkpoint.pth", map_location="cpu", weights_only=True)["model"]
    for stage, layer in enumerate(model.vision_model.layers):
        close(layer.blocks[1].attn_mask, state[f"vision_encoder.layers.{stage}.blocks.1.attn_mask"].numpy(), atol=0)
    assert original_family(state) == "mra"


def test_an_aptm_checkpoint_is_not_taken_for_mra():
    aptm_like = {"vision_proj.weight": torch.zeros(2, 2),
                 "vision_encoder.layers.0.blocks.1.attn_mask": torch.zeros(1),
                 "vision_encoder.layers.3.blocks.0.attn.qkv.weight": torch.zeros(1)}
    assert original_family(aptm_like, {"k_test": 128}) == "aptm"
    assert original_family(aptm_like, {"test_hflip": True}) == "mra"


def test_processor_reproduces_token_ids_and_pixels(converted):
    _, processor, _ = converted
    inputs, meta = arrays("inputs"), record("inputs")
    tokens = processor(text=meta["captions_raw"])
    assert tokens["input_ids"].tolist() == inputs["input_ids"].tolist()  # [CLS] pieces [SEP] [PAD]...
    assert tokens["attention_mask"].tolist() == inputs["attention_mask"].tolist()
    pixels = processor(images=images())["pixel_values"]
    assert hashlib.sha256(pixels.numpy().tobytes()).hexdigest() == meta["pixel_values_sha256"]
    mirrored = pixels.flip(-1).contiguous().numpy()
    assert hashlib.sha256(mirrored.tobytes()).hexdigest() == meta["pixel_values_flip_sha256"]


def test_encoders_and_swin_stages(encoded):
    vision, flipped, text, _, _ = encoded
    outputs = arrays("outputs")
    close(vision.last_hidden_state, outputs["image_embeds"])
    close(flipped, outputs["himage_embeds"])
    close(text.last_hidden_state, outputs["text_embeds"])
    close(torch.stack(text.hidden_states)[:, 0], outputs["dbg_text_hidden_states_t0"])
    close(vision.hidden_states[0][0, :1024], outputs["dbg_swin_patch_embed_i0_rows0_1023"])
    for stage in range(4):
        close(vision.hidden_states[stage + 1][0], outputs[f"dbg_swin_layer{stage}_i0"])


def test_pooled_batchnorm_projections_features_and_similarities(converted, encoded):
    model, _, _ = converted
    vision, flipped, text, _, _ = encoded
    outputs = arrays("outputs")
    image_embeds, text_embeds = vision.last_hidden_state, text.last_hidden_state
    with torch.no_grad():
        for head, embeds, prefix in ((model.vision_proj, image_embeds, "image"), (model.vision_proj, flipped, "himage"),
                                     (model.text_proj, text_embeds, "text")):
            close(head.pooled(embeds), outputs[f"{prefix}_pool_in"])
            close(head(embeds), outputs[f"{prefix}_feat_proj"])
            if prefix != "himage":
                close(head.norm(head.pooled(embeds)), outputs[f"{prefix}_pool_bn"])
        image_feat = model.image_features_from_embeds(image_embeds)
        flipped_feat = model.image_features_from_embeds(flipped)
        text_feat = model.text_features_from_embeds(text_embeds)
    close(image_feat, outputs["image_feat"])
    close(flipped_feat, outputs["himage_feat"])
    close(text_feat, outputs["text_feat"])
    close((image_feat + flipped_feat) / 2, outputs["image_feat_tta"])
    close(text_feat @ image_feat.t(), outputs["itc_cosine_t2i"])
    close(text_feat @ flipped_feat.t(), outputs["itc_cosine_t2i_flip"])
    close(text_feat @ ((image_feat + flipped_feat) / 2).t(), outputs["itc_sims_t2i_tta"])
    close(text_feat @ image_feat.t() / model.temp.detach(), outputs["itc_logits_t2i"])
    close(model.temp.detach().reshape(1), outputs["temp"], atol=0)


def test_fusion_itm_and_mlm(converted, encoded):
    model, _, _ = converted
    vision, flipped, text, _, mask = encoded
    outputs, inputs = arrays("outputs"), arrays("inputs")
    image_embeds, text_embeds = vision.last_hidden_state, text.last_hidden_state
    num_images = len(image_embeds)
    with torch.no_grad():
        for embeds, suffix in ((image_embeds, ""), (flipped, "_flip")):
            cls = torch.stack([model.fusion_model.first_token_states(text_embeds[t : t + 1], mask[t : t + 1], embeds,
                                                                     images_per_text=num_images)
                               for t in range(len(text_embeds))])
            close(cls, outputs[f"itm_cross_cls{suffix}"])
            close(model.itm_head(cls), outputs[f"itm_logits{suffix}"])
        fused = model.fusion_model(text_embeds[:1], mask[:1], image_embeds[:1]).last_hidden_state
        close(fused[0], outputs["fusion_last_hidden_t0_i0"])
        masked_ids, masked_mask, positions = (torch.from_numpy(inputs[k]) for k in
                                              ("mlm_eval_input_ids_masked", "mlm_eval_attention_mask",
                                               "mlm_eval_masked_pos"))
        close(model.mlm_logits(masked_ids, masked_mask, image_embeds[:1], positions), outputs["mlm_eval_logits"])
        hidden = model.fusion_model(model.text_model(masked_ids, masked_mask).last_hidden_state, masked_mask,
                                    image_embeds[:1]).last_hidden_state
        close(hidden, outputs["mlm_eval_last_hidden"])


@pytest.mark.parametrize("flip, world_size, suffix", [(True, 1, ""), (False, 1, "_noflip"), (True, 2, "_ws2")])
def test_the_evaluator_s_score_matrix_ranking_and_metrics(converted, flip, world_size, suffix):
    model, processor, _ = converted
    inputs, expected = arrays("inputs"), arrays("eval")
    engine = RetrievalEngine(model, processor, progress=False, batch_size=3, test_time_flip=flip,
                             world_size=world_size)
    index = engine.encode_gallery(images(), person_ids=inputs["image_pids"])
    metrics, scores = engine.evaluate(record("inputs")["captions_raw"], inputs["caption_pids"], index)
    matrix = scores.matrix().numpy()
    close(matrix, expected[f"score_t2i{suffix}"])
    close(engine.score_matrix(record("inputs")["captions_raw"], index), expected[f"score_t2i{suffix}"])
    if suffix != "_ws2":
        close(index.image_features, arrays("outputs")["image_feat_tta" if flip else "image_feat"])
    assert np.array_equal(np.argsort(-matrix, axis=1, kind="stable"), expected[f"ranking_t2i{suffix}"])
    original = record("eval")["mAP_metrics" + suffix]
    # 4 gallery images: the original's R5 and R10 are recall@4 (see the golden README, section 6)
    for ours, theirs in (("R@1", "R1"), ("R@5", "R5"), ("R@10", "R10"), ("mAP", "mAP"), ("mINP", "mINP")):
        assert metrics[ours] == pytest.approx(original[theirs], abs=1e-4), ours


RETRIEVAL = textwrap.dedent("""
    import json, sys
    import numpy as np
    from PIL import Image
    from transformers import AutoModel, AutoProcessor

    folder, golden, out = sys.argv[1:]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    from aptm.retrieval import RetrievalEngine  # imported after loading, so the remote classes stay in use

    inputs, meta = np.load(f"{golden}/inputs.npz"), json.load(open(f"{golden}/inputs.json"))
    pictures = [Image.open(f"{golden}/{name}") for name in meta["images"]]
    engine = RetrievalEngine(model, processor, progress=False, batch_size=3)
    index = engine.encode_gallery(pictures, person_ids=inputs["image_pids"])
    metrics, scores = engine.evaluate(meta["captions_raw"], inputs["caption_pids"], index)
    np.save(f"{out}/scores.npy", scores.matrix().numpy())
    settings = {"k": engine.k, "flip": engine.test_time_flip, "sep": processor.add_sep_token,
                "size": processor.image_processor.size, "mean": processor.image_processor.image_mean,
                "windows": model.config.vision_config.stage_window_sizes, "head": model.config.projection_head}
    json.dump({"metrics": metrics, **settings}, open(f"{out}/result.json", "w"))
""")


def test_converted_folder_loads_with_the_auto_classes_and_retrieves_like_mra(tmp_path):
    convert_checkpoint(MRA_DIR / "checkpoint.pth", tmp_path / "converted", tokenizer_dir=TOKENIZER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", RETRIEVAL, str(tmp_path / "converted"), str(MRA_DIR), str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert (result["k"], result["flip"], result["sep"], result["head"]) == (2, True, True, "pooled_batchnorm")
    assert result["size"] == {"height": 384, "width": 256} and result["windows"] == [8, 8, 8, 4]
    assert result["mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    close(np.load(tmp_path / "scores.npy"), arrays("eval")["score_t2i"])
    assert result["metrics"]["R@1"] == pytest.approx(record("eval")["mAP_metrics"]["R1"], abs=1e-4)


def test_a_geometry_that_disagrees_with_the_saved_masks_is_refused(tmp_path):
    """The same MRA checkpoint read as APTM's 384x128 geometry: its saved shifted-window masks name the block."""
    checkpoint = torch.load(MRA_DIR / "checkpoint.pth", map_location="cpu", weights_only=True)
    swin = json.loads((MRA_DIR / "config_swin.json").read_text())
    (tmp_path / "swin.json").write_text(json.dumps({**swin, "w": 128}))
    torch.save(checkpoint, tmp_path / "checkpoint.pth")
    with pytest.raises(ValueError, match=r"vision_encoder\.layers\.\d\.blocks\.1\.attn_mask"):
        load_original_checkpoint(tmp_path / "checkpoint.pth", tokenizer_dir=TOKENIZER,
                                 vision_config_file=tmp_path / "swin.json",
                                 text_config_file=MRA_DIR / "config_bert.json")
