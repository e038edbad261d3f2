"""`scripts/export_onnx.py` writes the image encoder, text encoder and fusion + ITM stage of a checkpoint as ONNX into
its `onnx/` folder; onnxruntime alone (a bare environment where torch cannot be imported, with a cached overlay of
onnxruntime) runs them at other batch sizes and text lengths than the export's and matches torch fp32 within 1e-4."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from aptm.export import ONNX_STAGES, export_onnx
from modeling_aptm import APTMForImageClassification, APTMModel

from helpers.bare_environment import bare_python
from helpers.models import tiny_config
from helpers.overlay import overlay
from helpers.paths import REPO

# onnxruntime and onnx (torch's exporter writes with it) with their requirements that the test environment lacks
ONNX_OVERLAY = ["onnx==1.23.2", "onnxruntime==1.32.0", "ml_dtypes==0.7.0", "protobuf==7.36.2", "flatbuffers==25.12.19"]


def test_onnxruntime_alone_matches_torch(tmp_path, processor):
    folder = tmp_path / "checkpoint"
    torch.manual_seed(0)
    model = APTMModel(tiny_config()).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    packages = overlay("onnxruntime", ONNX_OVERLAY)
    exported = subprocess.run([sys.executable, str(REPO / "scripts" / "export_onnx.py"), str(folder)],
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{packages}",
                                   "HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"},
                              capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == sorted(ONNX_STAGES)

    generator = torch.Generator().manual_seed(3)
    inputs = {"pixel_values": torch.randn(3, 3, 384, 128, generator=generator),
              "input_ids": torch.randint(1000, 5000, (3, 11), generator=generator),
              "attention_mask": torch.tensor([[1] * 11, [1] * 8 + [0] * 3, [1] * 5 + [0] * 6])}
    with torch.no_grad():
        image_embeds = model.vision_model(inputs["pixel_values"]).last_hidden_state
        text_embeds = model.text_model(inputs["input_ids"], inputs["attention_mask"]).last_hidden_state
        expected = {"image_features": model.image_features_from_embeds(image_embeds), "image_embeds": image_embeds,
                    "text_features": model.text_features_from_embeds(text_embeds), "text_embeds": text_embeds,
                    "itm_logits": model.itm_logits(text_embeds, inputs["attention_mask"], image_embeds)}
    np.savez(tmp_path / "inputs.npz", **{name: value.numpy() for name, value in inputs.items()})
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # onnxruntime alone: any import of torch fails
        import numpy as np
        import onnxruntime
        folder = {str(folder / "onnx")!r}
        inputs = dict(np.load("inputs.npz"))
        def run(name, feeds):
            session = onnxruntime.InferenceSession(f"{{folder}}/{{name}}", providers=["CPUExecutionProvider"])
            return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        outputs = run("image_encoder.onnx", {{"pixel_values": inputs["pixel_values"]}})
        outputs.update(run("text_encoder.onnx", {{"input_ids": inputs["input_ids"],
                                                  "attention_mask": inputs["attention_mask"]}}))
        outputs.update(run("fusion_itm.onnx", {{"text_embeds": outputs["text_embeds"],
                                                "attention_mask": inputs["attention_mask"],
                                                "image_embeds": outputs["image_embeds"]}}))
        np.savez("outputs.npz", **outputs)
    """)
    result = subprocess.run([bare_python(tmp_path / "venv"), "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(packages)})
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    assert sorted(outputs.files) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value.numpy(), atol=1e-4, err_msg=name)


def test_export_refuses_a_model_without_the_retrieval_stages(tmp_path):
    with pytest.raises(ValueError, match="APTMForImageClassification is not a retrieval model"):
        export_onnx(APTMForImageClassification(tiny_config()), tmp_path)
