"""Push a checkpoint to a local fake Hub (stdlib server on 127.0.0.1), load it back from that endpoint in a fresh
process, and get identical outputs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from modeling_aptm import APTMForPreTraining, APTMModel

from helpers.fake_hub import serve
from helpers.models import tiny_config
from helpers.overlay import onnx_overlay
from helpers.paths import REPO


@pytest.fixture
def hub(tmp_path):
    server, url = serve(0, tmp_path / "hub")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=url, HF_TOKEN="hf_fake", HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "home"),
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(REPO))
    yield env
    server.shutdown()


def test_push_and_load_back(hub, tmp_path, processor, batch):
    folder = tmp_path / "checkpoint"
    torch.manual_seed(0)
    model = APTMForPreTraining(tiny_config()).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (tmp_path / "metrics.json").write_text(json.dumps({"retrieval": {"R@1": 12.5}}))
    push = subprocess.run([sys.executable, str(REPO / "scripts" / "push_to_hub.py"), str(folder), "tester/aptm-tiny",
                           "--metrics", str(tmp_path / "metrics.json")], env=hub, capture_output=True, text=True,
                          timeout=300)
    assert push.returncode == 0, push.stderr[-3000:]
    card = (tmp_path / "hub" / "models" / "tester" / "aptm-tiny" / "README.md").read_text()
    assert 'AutoModel.from_pretrained("tester/aptm-tiny", trust_remote_code=True)' in card and "12.50" in card
    torch.save({k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}, tmp_path / "inputs.pt")
    script = textwrap.dedent(f"""
        import torch
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained("tester/aptm-tiny", trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained("tester/aptm-tiny", trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules")
        inputs = torch.load({str(tmp_path / "inputs.pt")!r}, weights_only=True)
        with torch.no_grad():
            out = model(**inputs)
        torch.save({{"itm": out.itm_logits, "features": out.image_features, "ids": processor(text="a man")["input_ids"]}},
                   {str(tmp_path / "out.pt")!r})
    """)
    load = subprocess.run([sys.executable, "-c", script], env=hub, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert load.returncode == 0, load.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        expected = APTMModel.forward(model, **{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")})
    assert torch.equal(got["itm"], expected.itm_logits) and torch.equal(got["features"], expected.image_features)
    assert torch.equal(got["ids"], processor(text="a man")["input_ids"])


def test_push_with_onnx_exports_and_uploads_the_onnx_files(hub, tmp_path, processor):
    from aptm.export import ONNX_STAGES, int8_name

    folder = tmp_path / "checkpoint"
    torch.manual_seed(0)
    APTMModel(tiny_config()).save_pretrained(folder)
    processor.save_pretrained(folder)
    env = {**hub, "PYTHONPATH": f"{REPO}:{onnx_overlay()}"}
    push = subprocess.run([sys.executable, str(REPO / "scripts" / "push_to_hub.py"), str(folder), "tester/aptm-onnx",
                           "--onnx"], env=env, capture_output=True, text=True, timeout=600)
    assert push.returncode == 0, push.stderr[-3000:]
    names = sorted([*ONNX_STAGES, *map(int8_name, ONNX_STAGES)])
    assert sorted(path.name for path in (folder / "onnx").iterdir()) == names
    pushed = tmp_path / "hub" / "models" / "tester" / "aptm-onnx" / "onnx"
    assert sorted(path.name for path in pushed.iterdir()) == names
    for name in names:
        assert (pushed / name).read_bytes() == (folder / "onnx" / name).read_bytes(), name


def test_push_refuses_an_incomplete_folder(tmp_path):
    from aptm.hub import push_checkpoint

    with pytest.raises(FileNotFoundError, match="config.json"):
        push_checkpoint(tmp_path, "tester/empty")


def test_card_for_push_keeps_source_and_notes(tmp_path, processor):
    from aptm.hub import card_for_push, model_card

    config = tiny_config()
    card = model_card(config, processor, source="Converted from `checkpoint_best.pth`.", metrics={"R@1": 1.0},
                      notes=["inferred  vision depths [2, 2]", "dropped   attn_mask"])
    pushed = card_for_push(card, "tester/aptm", metrics={"R@1": 76.5, "mAP": 66.25})
    assert 'AutoModel.from_pretrained("tester/aptm", trust_remote_code=True)' in pushed and "path/to/this" not in pushed
    assert "Converted from `checkpoint_best.pth`." in pushed and "- dropped   attn_mask" in pushed
    assert "| 76.50 | 66.25 |" in pushed and "| 1.00 |" not in pushed and pushed.count("## Evaluation") == 1
    assert pushed.index("## Evaluation") < pushed.index("## Conversion notes")
    fresh = card_for_push(model_card(config, processor, notes=["x"]), "tester/aptm", metrics={"R@1": 2.0})
    assert fresh.index("| 2.00 |") < fresh.index("## Conversion notes")
    assert card_for_push(card, "tester/aptm") == card.replace("path/to/this/folder", "tester/aptm")


def test_save_pretrained_with_push_to_hub_uploads_the_checkpoint_files(hub, tmp_path):
    """`save_pretrained(..., push_to_hub=True)` uploads only the files written since it started, before the model's
    own files (sentence-transformers', the endpoint handler) come: the pushed repository has them all the same."""
    script = textwrap.dedent(f"""
        import torch
        from modeling_aptm import APTMModel
        from helpers.models import tiny_config
        torch.manual_seed(0)
        APTMModel(tiny_config()).save_pretrained({str(tmp_path / "checkpoint")!r}, push_to_hub=True,
                                                 repo_id="tester/aptm-pushed")
    """)
    saved = subprocess.run([sys.executable, "-c", script], env={**hub, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"},
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0, saved.stderr[-3000:]
    pushed = {path.name for path in (tmp_path / "hub" / "models" / "tester" / "aptm-pushed").iterdir()}
    written = {path.name for path in (tmp_path / "checkpoint").iterdir()}
    for name in ("model.safetensors", "modeling_aptm.py", "modules.json", "config_sentence_transformers.json",
                 "sentence_transformers_aptm.py", "handler.py", "handler_aptm.py"):
        assert name in written and name in pushed, name
