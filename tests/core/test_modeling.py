import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_aptm import APTMForPreTraining, APTMModel, image_text_contrastive_loss, window_partition

from helpers.models import tiny_config

OUTPUT_KEYS = ("itm_logits", "logits_per_text", "image_embeds", "text_embeds", "image_features", "text_features")


def build(model_class=APTMModel, seed=0, **overrides):
    torch.manual_seed(seed)
    return model_class(tiny_config(**overrides)).eval()


def test_output_shapes(batch):
    model = build()
    with torch.no_grad():
        out = model(**batch)
    width, hidden, length = model.config.vision_config.hidden_size, 32, batch["input_ids"].shape[1]
    assert out.itm_logits.shape == (3, 2)
    assert out.logits_per_text.shape == (3, 3)
    assert out.image_embeds.shape == (3, 49, width)
    assert out.text_embeds.shape == (3, length, hidden)
    assert out.image_features.shape == out.text_features.shape == (3, 16)
    torch.testing.assert_close(out.image_features.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.text_features.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.logits_per_text, out.text_features @ out.image_features.t() / model.temp)
    as_tuple = model(**batch, return_dict=False)  # the six tensors, then the two towers' outputs as tuples
    assert len(as_tuple) == len(OUTPUT_KEYS) + 2 and all(isinstance(item, tuple) for item in as_tuple[-2:])
    with torch.no_grad():
        with_loss = model(**batch, return_loss=True, person_ids=torch.tensor([0, 0, 1]))
    assert with_loss.loss.item() == pytest.approx(image_text_contrastive_loss(
        out.image_features, out.text_features, model.temp, torch.tensor([0, 0, 1])).item(), rel=1e-6)
    assert out.loss is None


def test_global_token_is_the_mean_of_patch_tokens(batch):
    model = build()
    with torch.no_grad():
        image_embeds = model.vision_model(batch["pixel_values"]).last_hidden_state
    torch.testing.assert_close(image_embeds[:, 0], image_embeds[:, 1:].mean(dim=1))


def test_swin_window_geometry_follows_the_original():
    model = APTMModel(tiny_config(vision_config={"embed_dim": 8, "depths": [2, 2, 2, 2], "num_heads": [1, 1, 1, 1]}))
    blocks = [stage.blocks for stage in model.vision_model.layers]
    assert [b[1].shift_size for b in blocks] == [4, 4, 0, 0]
    assert [b[0].window_size for b in blocks] == [8, 8, 8, 4]
    assert [b[0].attn.relative_position_bias_table.shape[0] for b in blocks] == [225, 225, 225, 49]
    assert blocks[0][1].attn_mask.shape == (48, 64, 64) and blocks[1][1].attn_mask.shape == (12, 64, 64)
    assert blocks[2][1].attn_mask is None


def test_features_methods_match_forward(batch):
    model = build()
    with torch.no_grad():
        out = model(**batch)
        image = model.get_image_features(batch["pixel_values"])
        text = model.get_text_features(batch["input_ids"], batch["attention_mask"])
        as_tuple = model.get_text_features(batch["input_ids"], batch["attention_mask"], return_dict=False)
    torch.testing.assert_close(image.pooler_output, out.image_features)
    torch.testing.assert_close(image.last_hidden_state, out.image_embeds)
    torch.testing.assert_close(text.pooler_output, out.text_features)
    torch.testing.assert_close(text.last_hidden_state, out.text_embeds)
    torch.testing.assert_close(as_tuple[1], out.text_features)


def test_cached_cross_key_values_give_the_same_itm_logits(batch):
    model = build()
    with torch.no_grad():
        out = model(**batch)
        cached = model.fusion_model.cross_key_values(out.image_embeds)
        logits = model.itm_logits(out.text_embeds, batch["attention_mask"], cross_key_values=cached)
    torch.testing.assert_close(logits, out.itm_logits)
    with pytest.raises(ValueError, match="exactly one"):
        model.itm_logits(out.text_embeds, batch["attention_mask"])


def test_fusion_self_attention_is_bidirectional(batch):
    model = build()
    ids = batch["input_ids"][:1].clone()
    with torch.no_grad():
        before = model(input_ids=ids, pixel_values=batch["pixel_values"][:1]).itm_logits
        ids[0, 5] = 2000 if ids[0, 5] != 2000 else 2001
        after = model(input_ids=ids, pixel_values=batch["pixel_values"][:1]).itm_logits
    assert not torch.allclose(before, after)


def test_padding_is_masked(batch):
    model = build()
    ids, mask = batch["input_ids"][:1], batch["attention_mask"][:1]
    changed = ids.clone()
    changed[0, mask[0] == 0] = 1234
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, pixel_values=batch["pixel_values"][:1])
        b = model(input_ids=changed, attention_mask=mask, pixel_values=batch["pixel_values"][:1])
    torch.testing.assert_close(a.itm_logits, b.itm_logits)
    torch.testing.assert_close(a.text_features, b.text_features)


def test_sdpa_and_eager_agree(batch, tmp_path):
    build(APTMForPreTraining).save_pretrained(tmp_path)
    outputs = {}
    for implementation in ("sdpa", "eager"):
        model = APTMModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert model.config.text_config._attn_implementation == implementation
        assert model.config.vision_config._attn_implementation == implementation
        with torch.no_grad():
            outputs[implementation] = model(**batch)
    for key in OUTPUT_KEYS:
        torch.testing.assert_close(outputs["sdpa"][key], outputs["eager"][key], atol=1e-5, rtol=1e-5)


def test_mlm_head_is_tied_and_survives_save(tmp_path, batch):
    model = build(APTMForPreTraining)
    assert model.mlm_head.decoder.weight is model.text_model.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path)
    assert "mlm_head.decoder.weight" not in load_file(tmp_path / "model.safetensors")
    loaded = APTMForPreTraining.from_pretrained(tmp_path).eval()
    assert loaded.mlm_head.decoder.weight is loaded.text_model.embeddings.word_embeddings.weight
    positions = torch.tensor([[1, 2], [3, 4], [1, 5]])
    with torch.no_grad():
        image_embeds = model.vision_model(batch["pixel_values"]).last_hidden_state
        expected = model.mlm_logits(batch["input_ids"], batch["attention_mask"], image_embeds, positions)
        got = loaded.mlm_logits(batch["input_ids"], batch["attention_mask"], image_embeds, positions)
        full = model.mlm_logits(batch["input_ids"], batch["attention_mask"], image_embeds)
    assert expected.shape == (3, 2, model.config.text_config.vocab_size)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(full[1, 3:5], expected[1])


def reference_swin_block(block, hidden_states):
    """The textbook Swin block on row-major tokens: cyclic shift, window partition, attention, reverse, shift back."""
    (height, width), size, shift = block.resolution, block.window_size, block.shift_size
    batch, _, channels = hidden_states.shape
    grid = block.norm1(hidden_states).view(batch, height, width, channels)
    grid = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
    windows, _ = block.attn(window_partition(grid, size), block.attn_mask)
    windows = windows.view(batch, height // size, width // size, size, size, channels)
    grid = windows.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, channels)
    grid = torch.roll(grid, shifts=(shift, shift), dims=(1, 2))
    hidden_states = hidden_states + grid.view(batch, -1, channels)
    return hidden_states + block.mlp(block.norm2(hidden_states))


def reference_patch_merging(merging, hidden_states):
    """The textbook patch merging on row-major tokens: the 2x2 neighbours' channels concatenated."""
    (height, width), (batch, _, channels) = merging.resolution, hidden_states.shape
    grid = hidden_states.view(batch, height, width, channels)
    merged = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], dim=-1)
    return merging.reduction(merging.norm(merged.view(batch, -1, 4 * channels)))


def test_swin_stages_in_window_order_equal_roll_and_partition():
    model = build(vision_config={"embed_dim": 8, "depths": [2, 3, 2, 2], "num_heads": [1, 2, 2, 2]})
    hidden_states = torch.randn(2, 96 * 32, 8)
    with torch.no_grad():
        for stage in model.vision_model.layers:
            expected = hidden_states
            for block in stage.blocks:
                expected = reference_swin_block(block, expected)
            got, _ = stage(hidden_states)
            expected = expected if stage.downsample is None else reference_patch_merging(stage.downsample, expected)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
            hidden_states = got
    # stages 3 and 4 have one window across (8 and 4 wide, no shift): their window order is the row-major order; the
    # last step goes into the patch merging's order (stages 1-3) or back to row-major (stage 4: nothing to do)
    assert [stage.reorder_needed for stage in model.vision_model.layers] == [
        [True, True, True], [True, True, True, True], [False, False, True], [False, False, False]]


def test_buffers_are_rebuilt_after_from_pretrained(tmp_path, batch):
    model = build()
    model.save_pretrained(tmp_path)
    loaded = APTMModel.from_pretrained(tmp_path).eval()
    for (name, expected), (_, got) in zip(model.named_buffers(), loaded.named_buffers()):
        assert torch.equal(expected, got), name
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).itm_logits, model(**batch).itm_logits)


def test_missing_temperature_is_initialised_from_the_config(tmp_path):
    model = build(temp=0.05)
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["temp"]
    from safetensors.torch import save_file

    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    assert APTMModel.from_pretrained(tmp_path).temp.item() == pytest.approx(0.05)


def test_gradient_checkpointing_gives_the_same_gradients(batch):
    grads = []
    for checkpointing in (False, True):
        model = build()
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.vision_model.layers[0].blocks[0].gradient_checkpointing
        out = model(**batch)
        (out.itm_logits.sum() + out.logits_per_text.logsumexp(-1).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 50
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_wrong_image_size_and_misaligned_pairs_are_rejected(batch):
    model = build()
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        model.get_image_features(torch.zeros(1, 3, 224, 224))
    with pytest.raises(ValueError, match="aligned pairs"):
        model(input_ids=batch["input_ids"][:2], pixel_values=batch["pixel_values"])


def test_remote_code_round_trip_in_a_fresh_process(tmp_path, processor, batch):
    """save_pretrained writes safetensors + the three Hub files; a fresh offline process loads them with the Auto
    classes (as remote code, not the installed modules) and computes identical outputs."""
    folder = tmp_path / "aptm-tiny"
    model = build(APTMForPreTraining)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    for name in ("configuration_aptm.py", "modeling_aptm.py", "processing_aptm.py", "model.safetensors"):
        assert (folder / name).is_file(), name
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_aptm.APTMModel"
    texts = ["a woman in a red coat", "a man with a black backpack"]
    images = [np.asarray(batch["pixel_values"][0]), np.asarray(batch["pixel_values"][1])]
    np.save(tmp_path / "pixels.npy", np.stack(images))
    script = textwrap.dedent(
        f"""
        import json, numpy as np, torch
        from transformers import AutoConfig, AutoModel, AutoProcessor
        folder = {str(folder)!r}
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        inputs = processor(text={texts!r})
        pixels = torch.from_numpy(np.load({str(tmp_path / "pixels.npy")!r}))
        with torch.no_grad():
            out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], pixel_values=pixels)
        print(json.dumps({{"type": type(model).__name__, "config": type(config).__name__,
                           "ids": inputs["input_ids"].tolist(), "itm": out.itm_logits.tolist(),
                           "features": out.image_features.tolist(), "text": out.text_features.tolist()}}))
        """
    )
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["type"] == "APTMModel" and got["config"] == "APTMConfig"
    inputs = processor(text=texts)
    assert got["ids"] == inputs["input_ids"].tolist()
    with torch.no_grad():  # the inference forward of the saved pre-training model
        out = APTMModel.forward(model, input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                pixel_values=torch.from_numpy(np.stack(images)))
    assert torch.equal(torch.tensor(got["itm"]), out.itm_logits)
    assert torch.equal(torch.tensor(got["features"]), out.image_features)
    assert torch.equal(torch.tensor(got["text"]), out.text_features)


@pytest.mark.parametrize("fusion_layers", [1, 2, 3])
def test_first_token_states_equal_the_full_fusion_pass_on_repeated_texts(fusion_layers):
    """The re-ranking pass (self-attention of the first layer once per text, only [CLS] in the last layer) gives the
    [CLS] states and ITM logits of the plain pass over every (text, image) pair, with padded texts."""
    cross = {**tiny_config().cross_config.to_dict(), "num_hidden_layers": fusion_layers}
    model = build(cross_config=cross)
    generator = torch.Generator().manual_seed(1)
    texts, images, length = 3, 4, 7
    hidden = torch.randn(texts, length, 32, generator=generator)
    mask = torch.ones(texts, length, dtype=torch.long)
    mask[1, 4:], mask[2, 2:] = 0, 0
    image_embeds = torch.randn(texts * images, 49, model.config.vision_config.hidden_size, generator=generator)
    with torch.no_grad():
        full = model.fusion_model(hidden.repeat_interleave(images, 0), mask.repeat_interleave(images, 0),
                                  image_embeds).last_hidden_state[:, 0]
        cached = model.fusion_model.cross_key_values(image_embeds)
        shared = model.fusion_model.first_token_states(hidden, mask, cross_key_values=cached, images_per_text=images)
        logits = model.itm_logits(hidden, mask, image_embeds, images_per_text=images)
    torch.testing.assert_close(shared, full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, model.itm_head(full), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        model.fusion_model.first_token_states(hidden, mask)


def test_hidden_states_and_attentions_on_request(batch):
    """Each tower's hidden states and (eager) attention weights, with the shapes the docstrings give; the ITM logits
    of the full fusion pass that produces them equal those of the [CLS]-only pass."""
    vision = {"embed_dim": 8, "depths": [2, 1, 1, 1], "num_heads": [1, 2, 2, 2]}
    model = build(vision_config=vision)
    model.set_attn_implementation("eager")
    length = batch["input_ids"].shape[1]
    with torch.no_grad():
        plain = model(**batch)
        out = model(**batch, output_hidden_states=True, output_attentions=True)
    assert plain.vision_model_output.hidden_states is None and plain.fusion_model_output is None
    torch.testing.assert_close(out.itm_logits, plain.itm_logits)
    vision_states = out.vision_model_output.hidden_states
    assert [tuple(h.shape) for h in vision_states] == [(3, 96 * 32, 8), (3, 48 * 16, 16), (3, 24 * 8, 32),
                                                        (3, 12 * 4, 64), (3, 12 * 4, 64)]
    # one map per block: stage 1 has 48 windows of 8x8 (its second block shifted), stage 4 three of 4x4
    assert [tuple(a.shape) for a in out.vision_model_output.attentions] == [
        (3 * 48, 1, 64, 64), (3 * 48, 1, 64, 64), (3 * 12, 2, 64, 64), (3 * 3, 2, 64, 64), (3 * 3, 2, 16, 16)]
    text, fusion = out.text_model_output, out.fusion_model_output
    assert len(text.hidden_states) == model.config.text_config.num_hidden_layers + 1
    assert all(h.shape == (3, length, 32) for h in text.hidden_states + fusion.hidden_states)
    torch.testing.assert_close(text.hidden_states[-1], out.text_embeds)
    torch.testing.assert_close(fusion.hidden_states[0], out.text_embeds)
    heads = model.config.text_config.num_attention_heads
    assert all(a.shape == (3, heads, length, length) for a in text.attentions + fusion.attentions)
    assert [a.shape for a in fusion.cross_attentions] == [(3, heads, length, 49)] * len(fusion.hidden_states[1:])
    torch.testing.assert_close(fusion.cross_attentions[0].sum(-1), torch.ones(3, heads, length))
    padded = batch["attention_mask"] == 0  # no weight on padding
    assert padded.any() and (text.attentions[0] * padded[:, None, None, :]).abs().max() == 0


def test_attention_implementation_switches_per_tower(batch):
    model = build()
    assert model.config.vision_config._attn_implementation == "sdpa"
    with torch.no_grad():
        reference = model(**batch).itm_logits
        model.set_attn_implementation({"vision_config": "eager"})
        assert model.vision_model.config._attn_implementation == "eager"
        assert model.text_model.config._attn_implementation == model.fusion_model.config._attn_implementation == "sdpa"
        out = model(**batch, output_attentions=True)
    assert all(a is not None for a in out.vision_model_output.attentions)
    assert all(a is None for a in out.text_model_output.attentions)  # SDPA exposes no weights
    torch.testing.assert_close(out.itm_logits, reference, atol=1e-5, rtol=1e-5)


def test_cross_config_round_trips_on_its_own(tmp_path):
    from configuration_aptm import APTMCrossConfig

    config = tiny_config()
    config.save_pretrained(tmp_path)
    cross = APTMCrossConfig.from_pretrained(tmp_path)
    assert cross.to_dict() == config.cross_config.to_dict()
    assert cross.encoder_hidden_size == config.vision_config.hidden_size


def test_a_tower_on_its_own_initialises_its_weights():
    from modeling_aptm import APTMVisionModel

    torch.manual_seed(0)
    tower = APTMVisionModel(tiny_config().vision_config)
    table = tower.layers[0].blocks[0].attn.relative_position_bias_table  # torch.empty until initialised
    std = tower.config.initializer_range  # a normal draw of that deviation (torch.empty would leave any values)
    assert torch.isfinite(table).all() and 0.7 * std < table.std() < 1.3 * std and table.abs().max() < 6 * std
    assert torch.equal(tower.norm.weight, torch.ones_like(tower.norm.weight))
